//! Intake addresses and contact requests (`engine::intake`): each test
//! pins one decision, both sides, with scripted relay answers.

use std::time::Duration;

use tropa_e2e::{LinkKind, ShortLink};

use super::*;
use crate::client::IntakeError;
use crate::records::{AddressRecord, RequestRecord};

/// The relay-side secret of every mailbox the tests create (so they can
/// seal deliveries as the relay would).
const RELAY_DH: [u8; 32] = [9; 32];

fn profile(name: &str) -> Client {
    Client::in_memory(Arc::new(MemoryKv::new()), name, &relay(4433)).unwrap()
}

fn sync_engine(c: &Client, seed: u8) -> Engine {
    c.engine_seeded(Mode::Sync, opts(), [seed; 32])
}

fn created(n: u8) -> CreatedMailbox {
    CreatedMailbox {
        recipient_id: [n; 24],
        sender_id: [n + 1; 24],
        relay_dh_pub: PublicKey::from(&StaticSecret::from(RELAY_DH)).to_bytes(),
    }
}

/// The requests in `actions`, by op.
fn requests(actions: Vec<Action>) -> Vec<(OpId, Request)> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Request { op, request, .. } => Some((op, request)),
            _ => None,
        })
        .collect()
}

fn outcome(actions: &[Action]) -> Option<&Result<Outcome, ClientError>> {
    actions.iter().find_map(|a| match a {
        Action::Complete { result, .. } => Some(result),
        _ => None,
    })
}

fn done(e: &mut Engine, op: OpId, result: Result<Reply, RelayError>) -> Vec<Action> {
    e.handle(Input::Done { op, result }, NOW).unwrap()
}

fn refused(reason: Refusal) -> RelayError {
    RelayError::Refused {
        reason,
        detail: String::new(),
    }
}

/// Runs `address create` on `org` against a relay that creates mailbox
/// `n` and stores the link data; returns the engine, the link and the
/// PutLink op (answered).
fn create_address(org: &Client, n: u8) -> (Engine, String) {
    let mut e = sync_engine(org, 1);
    e.handle(Input::Start, NOW).unwrap();
    e.handle(
        Input::Command {
            ticket: 1,
            command: Command::CreateAddress,
        },
        NOW,
    )
    .unwrap();
    // A new profile has no mailbox yet: the command connects.
    let a = e
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (op, req) = requests(a).remove(0);
    assert!(
        matches!(req, Request::CreateIntake { .. }),
        "an intake mailbox"
    );
    let a = done(&mut e, op, Ok(Reply::Created(created(n))));
    let (op, req) = requests(a).remove(0);
    let Request::PutLink { ttl_secs, .. } = req else {
        panic!("link data is put next");
    };
    assert_eq!(u64::from(ttl_secs), ADDRESS_TTL_SECS);
    assert!(
        e.repo.active_address().unwrap().is_none(),
        "no address before the relay has its link"
    );
    let a = done(
        &mut e,
        op,
        Ok(Reply::LinkStored(Duration::from_secs(90 * 24 * 3600))),
    );
    let Some(Ok(Outcome::AddressCreated { link })) = outcome(&a) else {
        panic!("the link");
    };
    let link = link.clone();
    // Listened to at once in a running sync.
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Subscribe { mailbox, .. } if *mailbox == [n; 24]))
    );
    (e, link)
}

/// The owner's address invitation (what a requester fetches).
fn address_invitation(org: &Client) -> (AddressRecord, tropa_e2e::Invitation) {
    let rec = org.repo().active_address().unwrap().unwrap();
    let inv = tropa_e2e::Invitation::from_encoded(&rec.invitation).unwrap();
    (rec, inv)
}

/// `envelope` as the relay delivers it into mailbox `rid` of `c`.
fn delivery_to(c: &Client, rid: [u8; 24], envelope: &[u8], id: u8) -> Input {
    let mb = c.repo().mailbox(&rid).unwrap().unwrap();
    let dh = StaticSecret::from(<[u8; 32]>::try_from(mb.dh_secret.as_slice()).unwrap());
    let sealing = SealingKey::delivery(&StaticSecret::from(RELAY_DH), &PublicKey::from(&dh), &rid);
    Input::Subscription {
        relay: key(4433),
        mailbox: rid,
        event: SubEvent::Delivery(Delivery {
            envelope_id: [id; 16],
            sealed: Bytes::from(sealing.seal(&[id; 16], envelope)),
        }),
    }
}

/// Runs `accept TROPA:A/...` on `requester` (Deliver mode, as the CLI
/// does), its reply mailbox being mailbox `n`, up to the deposit; returns
/// the engine, the deposit's op and what it deposits (sender id, bytes).
fn send_request(
    requester: &Client,
    address: &tropa_e2e::Invitation,
    n: u8,
) -> (Engine, OpId, Vec<u8>, Bytes) {
    let mut e = requester.engine_seeded(
        Mode::Deliver(std::collections::BTreeSet::new()),
        SyncOptions::default(),
        [n; 32],
    );
    e.handle(Input::Start, NOW).unwrap();
    let a = e
        .handle(
            Input::Command {
                ticket: 7,
                command: Command::SendRequest {
                    address: address.to_link(),
                    alias: "refuge".into(),
                    text: "I am in Rostov, I need to leave".into(),
                },
            },
            NOW,
        )
        .unwrap();
    assert!(outcome(&a).is_none(), "{:?}", outcome(&a));
    let a = e
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (op, req) = requests(a).remove(0);
    assert!(matches!(req, Request::Create { .. }), "a normal mailbox");
    let a = done(&mut e, op, Ok(Reply::Created(created(n))));
    let (op, req) = requests(a).remove(0);
    let Request::Deposit {
        sender_id,
        envelope,
        signer,
    } = req
    else {
        panic!("the request is deposited next");
    };
    assert!(
        signer.is_none(),
        "an intake mailbox takes unsigned deposits"
    );
    (e, op, sender_id, envelope)
}

/// The address is kept only once the relay holds its link data; its link
/// is a kind-A short link to our relay; a second one is refused.
#[test]
fn an_address_exists_once_its_link_is_stored_and_only_one() {
    let org = profile("org");
    let (mut e, link) = create_address(&org, 50);
    let parsed: ShortLink = link.parse().unwrap();
    assert_eq!(parsed.kind(), LinkKind::Address);
    assert!(parsed.matches_relay(&relay(4433)));
    let rec = org.repo().active_address().unwrap().unwrap();
    assert_eq!(rec.mailbox, vec![50; 24]);
    assert!(org.repo().mailbox(&[50; 24]).unwrap().is_some());
    assert_eq!(org.address().unwrap().unwrap().link, link);
    let a = e
        .handle(
            Input::Command {
                ticket: 2,
                command: Command::CreateAddress,
            },
            NOW,
        )
        .unwrap();
    assert!(matches!(
        outcome(&a),
        Some(Err(ClientError::Intake(IntakeError::AddressExists)))
    ));
}

/// A refused PutLink leaves no address behind, and the new mailbox is
/// deleted.
#[test]
fn no_address_without_its_link_data() {
    let org = profile("org");
    let mut e = sync_engine(&org, 1);
    e.handle(Input::Start, NOW).unwrap();
    e.handle(
        Input::Command {
            ticket: 1,
            command: Command::CreateAddress,
        },
        NOW,
    )
    .unwrap();
    let a = e
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (op, _) = requests(a).remove(0);
    let a = done(&mut e, op, Ok(Reply::Created(created(50))));
    let (op, _) = requests(a).remove(0);
    let a = done(&mut e, op, Err(refused(Refusal::Invalid)));
    assert!(matches!(
        outcome(&a),
        Some(Err(ClientError::Intake(IntakeError::RelayTooOld)))
    ));
    assert!(
        requests(a)
            .iter()
            .any(|(_, r)| matches!(r, Request::Delete { .. }))
    );
    assert!(org.repo().addresses().unwrap().is_empty());
    assert!(org.repo().mailbox(&[50; 24]).unwrap().is_none());
}

/// The owner's engine, with its address (mailbox 50), running.
fn org_with_address() -> (Client, Engine, tropa_e2e::Invitation) {
    let org = profile("org");
    let (e, _) = create_address(&org, 50);
    let (_, inv) = address_invitation(&org);
    (org, e, inv)
}

fn acks(actions: &[Action]) -> usize {
    ack_ops(actions).len()
}

/// Delivers `envelope` into the owner's address mailbox and confirms the
/// acks (so the envelope's digest is forgotten: a later delivery of it
/// is recognised by its request id alone).
fn deliver(o: &mut Engine, org: &Client, envelope: &[u8], id: u8) -> Vec<Action> {
    let a = o
        .handle(delivery_to(org, [50; 24], envelope, id), NOW)
        .unwrap();
    for op in ack_ops(&a) {
        done(o, op, Ok(Reply::Done));
    }
    a
}

/// A request is sealed, kept durably with everything it needs and
/// deposited unsigned into the address's mailbox; the owner opens it,
/// keeps it once however often it is delivered, and drops junk and
/// replies that are not requests, counting them: none becomes a contact.
#[test]
fn a_request_is_deposited_opened_once_and_junk_is_dropped() {
    let (org, mut o, inv) = org_with_address();
    let requester = profile("karim");
    let (mut r, op, sender_id, envelope) = send_request(&requester, &inv, 60);
    assert_eq!(sender_id, inv.sender_id());
    // Durable before it leaves: the placeholder, the invitation, the
    // identity its Hello must come from, and the sealed request.
    let rrepo = requester.repo();
    let c = rrepo.contact_by_alias("refuge").unwrap().unwrap();
    assert_eq!(c.state, ContactState::Invited as i32);
    let out = rrepo.request_out(&c.id).unwrap().unwrap();
    assert_eq!(out.envelope, envelope.to_vec());
    let (invite_id, _) = rrepo.pending_invitations().unwrap().remove(0);
    assert_eq!(
        rrepo.expected_identity(&invite_id).unwrap().unwrap(),
        inv.inviter().to_bytes().to_vec()
    );
    let a = done(&mut r, op, Ok(Reply::Done));
    assert!(matches!(
        outcome(&a),
        Some(Ok(Outcome::RequestSent {
            delivered: true,
            ..
        }))
    ));
    assert!(rrepo.requests_out().unwrap().is_empty());
    assert!(r.finished());

    // The owner opens it.
    let a = deliver(&mut o, &org, &envelope, 1);
    assert_eq!(acks(&a), 1);
    assert!(a.iter().any(|a| matches!(
        a,
        Action::Emit(crate::sync::SyncEvent::RequestReceived { .. })
    )));
    let list = org.requests().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].text, "I am in Rostov, I need to leave");
    assert_eq!(list[0].safety_prefix.len(), 11, "two groups of five digits");
    assert_eq!(o.report().requests, 1);
    // Delivered again (a replay, a lost ack): kept once.
    let a = deliver(&mut o, &org, &envelope, 2);
    assert_eq!(acks(&a), 1);
    assert_eq!(org.requests().unwrap().len(), 1);
    // Junk, and a plain reply to the address's invitation (a Hello):
    // dropped, counted, acked.
    let mut junk = vec![0u8; tropa_proto::ENVELOPE_SIZE];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut junk);
    let a = deliver(&mut o, &org, &junk, 3);
    assert_eq!(acks(&a), 1);
    let hello = Hello {
        reply_relay: relay(4433),
        reply_sender_id: vec![3; 24],
        sender_auth: [4; 32],
    };
    let mallory = Identity::generate(&mut rand::rng());
    let (_, env) = Session::initiate(&mut rand::rng(), &mallory, &inv, &hello, None, NOW).unwrap();
    let a = deliver(&mut o, &org, env.as_bytes(), 4);
    assert_eq!(acks(&a), 1);
    assert_eq!(org.requests().unwrap().len(), 1);
    assert_eq!(org.address().unwrap().unwrap().dropped, 2);
    assert_eq!(o.report().requests_dropped, 2);
    assert!(
        org.contacts().unwrap().is_empty(),
        "no contact from a request"
    );
}

/// Accepting a request accepts the requester's own invitation: a contact
/// with new mailboxes (nothing of the address's), the Hello in the
/// requester's mailbox, and the request gone. The requester's placeholder
/// becomes the organisation, with the address's identity.
#[test]
fn accepting_a_request_makes_a_contact_with_mailboxes_of_its_own() {
    let (org, mut o, inv) = org_with_address();
    let requester = profile("karim");
    let (mut r, op, _, envelope) = send_request(&requester, &inv, 60);
    done(&mut r, op, Ok(Reply::Done));
    deliver(&mut o, &org, &envelope, 1);
    let short = org.requests().unwrap()[0].short_id.clone();

    let a = o
        .handle(
            Input::Command {
                ticket: 3,
                command: Command::AcceptRequest {
                    id: short,
                    alias: "karim".into(),
                },
            },
            NOW,
        )
        .unwrap();
    let (op, req) = requests(a).remove(0);
    assert!(matches!(req, Request::Create { .. }));
    let a = done(&mut o, op, Ok(Reply::Created(created(70))));
    let (op, req) = requests(a).remove(0);
    assert!(matches!(req, Request::Secure { .. }));
    let a = done(&mut o, op, Ok(Reply::Done));
    let (op, req) = requests(a)
        .into_iter()
        .find(|(_, r)| matches!(r, Request::Deposit { .. }))
        .unwrap();
    let Request::Deposit {
        sender_id,
        envelope: hello,
        ..
    } = req
    else {
        unreachable!()
    };
    // Into the requester's mailbox, not the address's.
    assert_eq!(sender_id, vec![61; 24]);
    assert_ne!(sender_id, inv.sender_id());
    let a = done(&mut o, op, Ok(Reply::Done));
    assert!(matches!(
        outcome(&a),
        Some(Ok(Outcome::Accepted {
            delivered: true,
            ..
        }))
    ));
    assert!(org.requests().unwrap().is_empty(), "the request is done");
    let karim = org.repo().contact_by_alias("karim").unwrap().unwrap();
    assert_eq!(karim.recv_mailbox, vec![70; 24]);
    assert_eq!(karim.send_sender_id, vec![61; 24]);

    // The requester receives the Hello: the organisation is a contact.
    let mut r = sync_engine(&requester, 8);
    r.handle(Input::Start, NOW).unwrap();
    r.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Quic,
        },
        NOW,
    )
    .unwrap();
    r.handle(delivery_to(&requester, [60; 24], &hello, 1), NOW)
        .unwrap();
    let refuge = requester
        .repo()
        .contact_by_alias("refuge")
        .unwrap()
        .unwrap();
    assert_eq!(refuge.state, ContactState::Established as i32);
    assert_eq!(refuge.identity, inv.inviter().to_bytes().to_vec());
}

/// S10: the invitation sent with a request takes a Hello from the
/// address's owner only. Someone else who got hold of it (here: anyone
/// who can read it, e.g. from a leaked request) is refused, and the
/// invitation stays open for the owner.
#[test]
fn only_the_address_owner_may_answer_a_request() {
    let (org, mut o, inv) = org_with_address();
    let requester = profile("karim");
    let (mut r, op, _, envelope) = send_request(&requester, &inv, 60);
    done(&mut r, op, Ok(Reply::Done));
    deliver(&mut o, &org, &envelope, 1);
    let rec: RequestRecord = org.repo().requests().unwrap().remove(0);
    let theirs = tropa_e2e::Invitation::from_encoded(&rec.invitation).unwrap();

    let mallory = Identity::generate(&mut rand::rng());
    let hello = Hello {
        reply_relay: relay(4433),
        reply_sender_id: vec![3; 24],
        sender_auth: [4; 32],
    };
    let (_, env) =
        Session::initiate(&mut rand::rng(), &mallory, &theirs, &hello, None, NOW).unwrap();
    let mut r = sync_engine(&requester, 8);
    r.handle(Input::Start, NOW).unwrap();
    r.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Quic,
        },
        NOW,
    )
    .unwrap();
    let a = r
        .handle(delivery_to(&requester, [60; 24], env.as_bytes(), 1), NOW)
        .unwrap();
    assert_eq!(acks(&a), 1);
    assert!(a.iter().any(|a| matches!(
        a,
        Action::Emit(crate::sync::SyncEvent::Dropped { reason, .. }) if reason.contains("another identity")
    )));
    let refuge = requester
        .repo()
        .contact_by_alias("refuge")
        .unwrap()
        .unwrap();
    assert_eq!(refuge.state, ContactState::Invited as i32);
    assert_eq!(requester.repo().pending_invitations().unwrap().len(), 1);
    assert_eq!(r.report().joined, 0);
}

/// At most `MAX_REQUESTS` wait; a further one is dropped and counted on
/// the address (acked, so the relay does not keep it either).
#[test]
fn requests_beyond_the_bound_are_dropped_and_counted() {
    let (org, mut o, inv) = org_with_address();
    let mut c = Changes::new();
    for i in 0..MAX_REQUESTS {
        let mut rec = RequestRecord::default();
        rec.id = [&(i as u64).to_be_bytes()[..], &[0u8; 24]].concat();
        rec.expires_at = NOW + 3600;
        c.put_request(&rec);
    }
    org.repo().apply(c).unwrap();
    let requester = profile("karim");
    let (_, _, _, envelope) = send_request(&requester, &inv, 60);
    let a = deliver(&mut o, &org, &envelope, 1);
    assert_eq!(acks(&a), 1);
    assert_eq!(org.repo().requests().unwrap().len(), MAX_REQUESTS);
    assert_eq!(org.address().unwrap().unwrap().overflow, 1);
}

/// Rejecting deletes the request and sends nothing; the same envelope
/// delivered again stays rejected.
#[test]
fn a_rejected_request_stays_rejected() {
    let (org, mut o, inv) = org_with_address();
    let requester = profile("karim");
    let (_, _, _, envelope) = send_request(&requester, &inv, 60);
    deliver(&mut o, &org, &envelope, 1);
    let short = org.requests().unwrap()[0].short_id.clone();
    assert!(matches!(
        org.reject_request("zz"),
        Err(ClientError::Intake(IntakeError::UnknownRequest(_)))
    ));
    org.reject_request(&short[..4]).unwrap();
    assert!(org.requests().unwrap().is_empty());
    let a = deliver(&mut o, &org, &envelope, 2);
    assert_eq!(acks(&a), 1);
    assert!(
        requests(a)
            .iter()
            .all(|(_, r)| !matches!(r, Request::Deposit { .. }))
    );
    assert!(org.requests().unwrap().is_empty());
    assert!(org.contacts().unwrap().is_empty());
}

/// Deleting the address forgets its secrets and requests at once; the
/// relay's copies go next, and what the relay has not confirmed is asked
/// again by the next sync, until the record can go.
#[test]
fn deleting_the_address_forgets_at_once_and_finishes_on_the_relay() {
    let (org, mut o, inv) = org_with_address();
    let requester = profile("karim");
    let (_, _, _, envelope) = send_request(&requester, &inv, 60);
    deliver(&mut o, &org, &envelope, 1);
    let a = o
        .handle(
            Input::Command {
                ticket: 4,
                command: Command::DeleteAddress,
            },
            NOW,
        )
        .unwrap();
    assert!(org.requests().unwrap().is_empty());
    assert!(org.repo().request_ids().unwrap().is_empty());
    assert!(org.address().unwrap().is_none());
    let rec = org.repo().address(&[50; 24]).unwrap().unwrap();
    assert!(rec.withdrawn && rec.pending.is_empty() && rec.invitation.is_empty());
    let reqs = requests(a);
    assert_eq!(reqs.len(), 2);
    let mut last = Vec::new();
    for (op, req) in reqs {
        last = match req {
            // NO_LINK: gone already, as good as deleted.
            Request::DeleteLink { .. } => done(&mut o, op, Err(refused(Refusal::NoMailbox))),
            Request::Delete { .. } => done(
                &mut o,
                op,
                Err(RelayError::Unreachable {
                    detail: "cut".into(),
                }),
            ),
            _ => panic!("only deletions"),
        };
    }
    assert!(matches!(
        outcome(&last),
        Some(Ok(Outcome::AddressDeleted { confirmed: false }))
    ));
    let rec = org.repo().address(&[50; 24]).unwrap().unwrap();
    assert!(rec.link_deleted);
    // Whatever still arrives is not opened.
    deliver(&mut o, &org, &envelope, 2);
    assert!(org.requests().unwrap().is_empty());

    // The next sync deletes the mailbox, and the record goes.
    let mut o = sync_engine(&org, 2);
    o.handle(Input::Start, NOW).unwrap();
    let a = o
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (op, _) = requests(a)
        .into_iter()
        .find(|(_, r)| matches!(r, Request::Delete { mailbox, .. } if *mailbox == [50; 24]))
        .unwrap();
    done(&mut o, op, Ok(Reply::Done));
    assert!(org.repo().addresses().unwrap().is_empty());
    assert!(org.repo().mailbox(&[50; 24]).unwrap().is_none());
}

/// The link data is put again once half the time the relay granted has
/// passed, under the same locator with the same owner key.
#[test]
fn the_link_data_is_put_again_at_half_its_time() {
    let (org, _, _) = org_with_address();
    let link: ShortLink = org.address().unwrap().unwrap().link.parse().unwrap();
    let day = 24 * 3600;
    let mut o = sync_engine(&org, 2);
    let a = o.handle(Input::Start, NOW + 44 * day).unwrap();
    o.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Quic,
        },
        NOW + 44 * day,
    )
    .unwrap();
    assert!(requests(a).is_empty(), "not due yet");
    let mut o = sync_engine(&org, 3);
    o.handle(Input::Start, NOW + 46 * day).unwrap();
    let a = o
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW + 46 * day,
        )
        .unwrap();
    let (op, req) = requests(a)
        .into_iter()
        .find(|(_, r)| matches!(r, Request::PutLink { .. }))
        .unwrap();
    let Request::PutLink { locator, .. } = req else {
        unreachable!()
    };
    assert_eq!(locator, link.locator());
    o.handle(
        Input::Done {
            op,
            result: Ok(Reply::LinkStored(Duration::from_secs(90 * day))),
        },
        NOW + 46 * day,
    )
    .unwrap();
    let rec = org.repo().active_address().unwrap().unwrap();
    assert_eq!(rec.link_stored_at, NOW + 46 * day);
}

/// A request the address's relay refuses for now (its hourly budget) is
/// kept and sent again, byte for byte, by a later sync; one refused for
/// good (the address was deleted) removes the half-made contact.
#[test]
fn a_refused_request_is_sent_again_or_given_up() {
    let (_org, _, inv) = org_with_address();
    let requester = profile("karim");
    let (mut r, op, _, envelope) = send_request(&requester, &inv, 60);
    let a = done(&mut r, op, Err(refused(Refusal::RateLimited)));
    assert!(matches!(
        outcome(&a),
        Some(Ok(Outcome::RequestSent {
            delivered: false,
            ..
        }))
    ));
    let (cid, out) = requester.repo().requests_out().unwrap().remove(0);
    assert_eq!(out.failures, 1);
    assert!(r.finished(), "a one-shot run does not retry at once");

    let mut r = sync_engine(&requester, 9);
    r.handle(Input::Start, NOW + 3600).unwrap();
    let a = r
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW + 3600,
        )
        .unwrap();
    let (op, again) = deposits(&a).remove(0);
    assert_eq!(again, envelope, "the same bytes: the same request id");
    let a = r
        .handle(
            Input::Done {
                op,
                result: Err(refused(Refusal::NoMailbox)),
            },
            NOW + 3600,
        )
        .unwrap();
    assert!(outcome(&a).is_none(), "no command waits on a sync's retry");
    assert!(requester.repo().contact(&cid).unwrap().is_none());
    assert!(requester.repo().requests_out().unwrap().is_empty());
    assert_eq!(r.report().removed, vec!["refuge".to_owned()]);
}

/// A request whose invitation has expired (past the grace period) can no
/// longer be accepted: a sync forgets it, and keeps its id, so the same
/// envelope delivered again stays dropped.
#[test]
fn an_expired_request_goes_and_its_id_stays() {
    let (org, mut o, inv) = org_with_address();
    let requester = profile("karim");
    let (_, _, _, envelope) = send_request(&requester, &inv, 60);
    deliver(&mut o, &org, &envelope, 1);
    let expires = org.requests().unwrap()[0].expires_at;
    let later = expires + tropa_e2e::INVITATION_GRACE_SECS + 1;
    let mut o = sync_engine(&org, 2);
    o.handle(Input::Start, later).unwrap();
    assert!(org.requests().unwrap().is_empty());
    assert_eq!(org.repo().request_ids().unwrap().len(), 1);
}

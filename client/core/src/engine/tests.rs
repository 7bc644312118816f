//! Engine unit tests: scripted inputs against in-memory profiles, no relay
//! and no sockets. Each pins one decision; the simulation in `tests/`
//! covers whole schedules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use tropa_e2e::{Hello, Identity, InviteParams, PendingInvitation, Session};
use tropa_relay_client::Delivery;
use tropa_relay_protocol::crypto::SealingKey;
use x25519_dalek::{PublicKey, StaticSecret};

use super::*;
use crate::client::Client;
use crate::error::Refusal;
use crate::records::{ContactRecord, ContactState, OwnMailbox};
use crate::repo::Changes;
use crate::store::MemoryKv;

mod intake;
mod isolation;
mod links;
mod receipts;

const NOW: u64 = 1_750_000_000;

fn relay(port: u16) -> RelayAddress {
    format!("tropa://{}@127.0.0.1:{port}", "A".repeat(43))
        .parse()
        .unwrap()
}

/// One side of a conversation: a profile holding a session with the other,
/// its mailbox on relay 4433 (whose relay-side secret the test holds, to
/// seal deliveries), and the other side's mailbox on relay `peer_port`.
struct Side {
    client: Client,
    rid: MailboxId,
    relay_secret: StaticSecret,
    dh: StaticSecret,
}

fn contact(id: u8, alias: &str, port: u16, identity: Vec<u8>) -> ContactRecord {
    ContactRecord {
        id: vec![id; 16],
        alias: alias.into(),
        identity,
        state: ContactState::Established as i32,
        verified: false,
        send_relay: relay(port).to_string(),
        send_sender_id: vec![id; 24],
        send_auth_secret: vec![id; 32],
        recv_mailbox: vec![id; 24],
        timer_secs: 0,
        dropped: 0,
        created_at: NOW,
        broken: false,
    }
}

/// Alice and Bob with a session between them, built without relays.
fn pair() -> (Side, Side) {
    let mut rng = rand::rng();
    let alice_id = Identity::generate(&mut rng);
    let bob_id = Identity::generate(&mut rng);
    let (pending, inv) = PendingInvitation::create(
        &mut rng,
        &alice_id,
        InviteParams {
            relay: relay(4433),
            sender_id: vec![1; 24],
            reply_sender_auth: [2; 32],
            now: NOW,
            ttl_secs: 3600,
        },
    )
    .unwrap();
    let hello = Hello {
        reply_relay: relay(4433),
        reply_sender_id: vec![3; 24],
        sender_auth: [4; 32],
    };
    let (bob_session, env) = Session::initiate(&mut rng, &bob_id, &inv, &hello, None, NOW).unwrap();
    let (alice_session, ..) =
        Session::accept(&mut rng, &alice_id, &pending, env.as_bytes(), NOW).unwrap();
    let side = |id: Identity, peer: &Identity, alias: &str, s: &Session, n: u8| {
        let kv = Arc::new(MemoryKv::new());
        let mut c = Changes::new();
        c.put_profile(&crate::records::ProfileRecord {
            name: alias.into(),
            relay: relay(4433).to_string(),
            identity: id.to_bytes().to_vec(),
            created_at: NOW,
            metered: false,
            transport: String::new(),
            socks5: String::new(),
            isolation: String::new(),
            tcp_relays: Vec::new(),
            relays: Vec::new(),
        });
        let relay_secret = StaticSecret::from([n; 32]);
        let dh = StaticSecret::from([n + 1; 32]);
        let rid = [n; 24];
        let peer_contact = contact(n, "peer", 4434, peer.public().to_bytes().to_vec());
        c.put_contact(&peer_contact)
            .put_session(&peer_contact.id, s)
            .put_mailbox(&OwnMailbox {
                relay: relay(4433).to_string(),
                recipient_id: rid.to_vec(),
                auth_secret: vec![n; 32],
                dh_secret: dh.to_bytes().to_vec(),
                relay_dh_pub: PublicKey::from(&relay_secret).to_bytes().to_vec(),
                contact_id: peer_contact.id.clone(),
                invite_id: Vec::new(),
                secure_with: Vec::new(),
            });
        Repo::new(kv.clone()).apply(c).unwrap();
        Side {
            client: Client::in_memory(kv, alias, &relay(4433)).unwrap(),
            rid,
            relay_secret,
            dh,
        }
    };
    (
        side(alice_id.clone(), &bob_id, "alice", &alice_session, 10),
        side(bob_id, &alice_id, "bob", &bob_session, 20),
    )
}

fn opts() -> SyncOptions {
    SyncOptions {
        wait: Some(std::time::Duration::from_secs(3600)),
        ..SyncOptions::default()
    }
}

fn engine(s: &Side, mode: Mode) -> Engine {
    // Deliver mode is a one-shot run (`tropa send`); Sync here waits.
    let opts = match mode {
        Mode::Sync => opts(),
        Mode::Deliver(_) => SyncOptions::default(),
    };
    s.client.engine_seeded(mode, opts, [7; 32])
}

fn connects(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { relay, .. } => Some(relay.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

fn deposits(actions: &[Action]) -> Vec<(OpId, Bytes)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request {
                op,
                request: Request::Deposit { envelope, .. },
                ..
            } => Some((*op, envelope.clone())),
            _ => None,
        })
        .collect()
}

fn ack_ops(actions: &[Action]) -> Vec<OpId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request {
                op,
                request: Request::Ack { .. },
                ..
            } => Some(*op),
            _ => None,
        })
        .collect()
}

fn send(e: &mut Engine, text: &str) -> Vec<Action> {
    let command = Command::Send {
        alias: "peer".into(),
        text: text.into(),
    };
    e.handle(Input::Command { ticket: 1, command }, NOW)
        .unwrap()
}

fn key(port: u16) -> RelayKey {
    RelayKey::of(&relay(port))
}

/// The engine connects to its mailbox's relay, subscribes once connected,
/// and leaves its peer's relay alone while nothing is due there.
#[test]
fn sync_connects_and_subscribes_each_mailbox() {
    let (alice, _) = pair();
    let mut e = engine(&alice, Mode::Sync);
    let a = e.handle(Input::Start, NOW).unwrap();
    assert_eq!(connects(&a), vec![key(4433).as_str().to_owned()]);
    assert!(!e.finished());
    let a = e
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let subscribed: Vec<MailboxId> = a
        .iter()
        .filter_map(|a| match a {
            Action::Subscribe { mailbox, .. } => Some(*mailbox),
            _ => None,
        })
        .collect();
    assert_eq!(subscribed, vec![alice.rid]);
}

/// `send` delivers to its contact's relay only: no subscription, no other
/// relay, even with other mailboxes and other queued work.
#[test]
fn deliver_mode_touches_only_its_contact() {
    let (alice, _) = pair();
    let mut c = Changes::new();
    c.put_contact(&contact(99, "carol", 4555, vec![1; 64]));
    alice.client_repo().apply(c).unwrap();
    let mut e = engine(&alice, Mode::Deliver(BTreeSet::new()));
    assert!(e.handle(Input::Start, NOW).unwrap().is_empty());
    let a = send(&mut e, "hi");
    assert_eq!(connects(&a), vec![key(4434).as_str().to_owned()]);
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    assert!(!a.iter().any(|a| matches!(a, Action::Subscribe { .. })));
    let d = deposits(&a);
    assert_eq!(d.len(), 1);
    let a = e
        .handle(
            Input::Done {
                op: d[0].0,
                result: Ok(Reply::Done),
            },
            NOW,
        )
        .unwrap();
    assert!(deposits(&a).is_empty());
    assert!(e.finished());
}

/// Texts to one contact leave one at a time, in order.
#[test]
fn one_deposit_in_flight_per_contact() {
    let (alice, _) = pair();
    let mut e = engine(&alice, Mode::Sync);
    e.handle(Input::Start, NOW).unwrap();
    send(&mut e, "one");
    send(&mut e, "two");
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let first = deposits(&a);
    assert_eq!(first.len(), 1, "one at a time");
    let a = e
        .handle(
            Input::Done {
                op: first[0].0,
                result: Ok(Reply::Done),
            },
            NOW,
        )
        .unwrap();
    assert_eq!(deposits(&a).len(), 1, "then the next");
}

/// A refused deposit is retried after the backoff with the very same
/// bytes (no ratchet key burned), and not before.
#[test]
fn a_refused_deposit_is_retried_later_with_the_same_bytes() {
    let (alice, _) = pair();
    let mut e = engine(&alice, Mode::Sync);
    e.handle(Input::Start, NOW).unwrap();
    send(&mut e, "hello");
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (op, bytes) = deposits(&a).remove(0);
    let refused = RelayError::Refused {
        reason: Refusal::Quota,
        detail: "mailbox is full".into(),
    };
    let a = e
        .handle(
            Input::Done {
                op,
                result: Err(refused),
            },
            NOW,
        )
        .unwrap();
    assert!(deposits(&a).is_empty());
    assert!(deposits(&e.handle(Input::Tick, NOW + 1).unwrap()).is_empty());
    let later = NOW + opts().refusal_backoff.as_secs();
    let retried = deposits(&e.handle(Input::Tick, later).unwrap());
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].1, bytes, "the same envelope, byte for byte");
}

/// A delivery processed but not yet acked (crash, lost ack) comes again:
/// it is acked silently, not shown twice and not reported as tampering.
#[test]
fn a_redelivered_envelope_is_acked_silently() {
    let (alice, delivery) = a_text_from_bob("are you there", [5; 16]);
    let mut e = connected(&alice);
    let deliver = |e: &mut Engine| {
        e.handle(alice_sub(&alice, SubEvent::Delivery(delivery.clone())), NOW)
            .unwrap()
    };
    let first = deliver(&mut e);
    let received = |a: &[Action]| {
        a.iter()
            .filter(|a| matches!(a, Action::Emit(SyncEvent::Received(_))))
            .count()
    };
    assert_eq!(received(&first), 1);
    assert_eq!(ack_ops(&first).len(), 1);
    // The engine crashes before the ack is confirmed; a new one gets the
    // same envelope again.
    let mut e = connected(&alice);
    let again = deliver(&mut e);
    assert_eq!(received(&again), 0, "not shown twice");
    assert_eq!(ack_ops(&again).len(), 1, "acked");
    assert!(
        !again
            .iter()
            .any(|a| matches!(a, Action::Emit(SyncEvent::Dropped { .. }))),
        "not reported as tampering"
    );
    assert_eq!(alice.client.messages(None).unwrap().len(), 1);
}

/// A text stored and acked, then the relay goes down before its `Idle`
/// (killed mid-batch): the receipt owed must be queued durably at once. A
/// link that is down counts as settled, so a one-shot run may end right
/// after; a receipt left in memory was lost (found by the kill loops in
/// tests/tests/kill_loops.rs), and the sender showed `sent` until its
/// resend, 10 minutes on.
#[test]
fn a_receipt_owed_is_queued_when_the_relay_goes_down() {
    let (alice, mut e) = alice_stores_a_text_from_bob();
    // Receipts are batched until the relay's Idle...
    assert_eq!(receipts_queued(&e), 0);
    let gone = RelayError::Unreachable {
        detail: "killed".into(),
    };
    e.handle(alice_sub(&alice, SubEvent::Ended(gone)), NOW)
        .unwrap();
    // ...or until the link is lost.
    assert_eq!(receipts_queued(&e), 1, "the receipt owed is in the outbox");
}

/// A text stored and acked, then the receiver is killed before the batch
/// ends: the receipt owed was stored with the text, so the next run sends
/// it (it was only in memory, and the sender showed `sent` until its
/// resend, 10 minutes on; found by the client kill loop).
#[test]
fn a_receipt_owed_survives_a_kill_before_it_is_queued() {
    let (alice, e) = alice_stores_a_text_from_bob();
    assert_eq!(receipts_queued(&e), 0);
    drop(e);
    let mut next = engine(&alice, Mode::Sync);
    next.handle(Input::Start, NOW + 1).unwrap();
    next.handle(Input::Tick, NOW + 2).unwrap();
    assert_eq!(receipts_queued(&next), 1, "the next run queues it");
    next.handle(Input::Tick, NOW + 3).unwrap();
    assert_eq!(receipts_queued(&next), 1, "once");
}

fn alice_sub(alice: &Side, event: SubEvent) -> Input {
    Input::Subscription {
        relay: key(4433),
        mailbox: alice.rid,
        event,
    }
}

fn receipts_queued(e: &Engine) -> usize {
    e.repo
        .outbox()
        .unwrap()
        .iter()
        .filter(|(_, r)| r.kind == crate::records::OutboxKind::Receipt as i32)
        .count()
}

/// Alice's engine, started and connected to her mailbox's relay.
fn connected(alice: &Side) -> Engine {
    let mut e = engine(alice, Mode::Sync);
    e.handle(Input::Start, NOW).unwrap();
    e.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Quic,
        },
        NOW,
    )
    .unwrap();
    e
}

/// Bob's text to Alice as her relay delivers it (sealed for her mailbox,
/// envelope `id`).
fn a_text_from_bob(text: &str, id: [u8; 16]) -> (Side, Delivery) {
    let (alice, bob) = pair();
    let mut b = engine(&bob, Mode::Sync);
    b.handle(Input::Start, NOW).unwrap();
    send(&mut b, text);
    let a = b
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (_, envelope) = deposits(&a).remove(0);
    let sealing =
        SealingKey::delivery(&alice.relay_secret, &PublicKey::from(&alice.dh), &alice.rid);
    let delivery = Delivery {
        envelope_id: id,
        sealed: Bytes::from(sealing.seal(&id, &envelope)),
    };
    (alice, delivery)
}

/// Bob sends Alice a text; Alice's engine stores it and acks it, mid-batch
/// (no Idle yet).
fn alice_stores_a_text_from_bob() -> (Side, Engine) {
    let (alice, delivery) = a_text_from_bob("still there?", [6; 16]);
    let mut e = connected(&alice);
    let a = e
        .handle(alice_sub(&alice, SubEvent::Delivery(delivery)), NOW)
        .unwrap();
    assert_eq!(ack_ops(&a).len(), 1);
    (alice, e)
}

/// A delivery the relay did not seal for this mailbox (forged, damaged) is
/// dropped, reported, acked so it does not come back, and the relay is
/// named in the report.
#[test]
fn a_delivery_that_does_not_open_is_dropped_and_reported() {
    let (alice, _) = pair();
    let mut e = connected(&alice);
    let forged = SubEvent::Delivery(Delivery {
        envelope_id: [1; 16],
        sealed: Bytes::from(vec![0u8; 16_412]),
    });
    let a = e.handle(alice_sub(&alice, forged), NOW).unwrap();
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Emit(SyncEvent::Dropped { .. })))
    );
    assert_eq!(ack_ops(&a).len(), 1);
    assert_eq!(e.report().dropped, 1);
    assert_eq!(e.report().misbehaving.len(), 1);
}

/// A relay that cannot be reached is reported, and a waiting engine tries
/// again once the backoff has run out, not before.
#[test]
fn an_unreachable_relay_is_retried_after_its_backoff() {
    let (alice, _) = pair();
    let mut e = engine(&alice, Mode::Sync);
    e.handle(Input::Start, NOW).unwrap();
    let a = e
        .handle(
            Input::ConnectFailed {
                relay: key(4433),
                error: RelayError::Unreachable {
                    detail: "timeout".into(),
                },
            },
            NOW,
        )
        .unwrap();
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Emit(SyncEvent::Unreachable { .. })))
    );
    assert_eq!(e.report().unreachable.len(), 1);
    assert!(connects(&e.handle(Input::Tick, NOW).unwrap()).is_empty());
    assert_eq!(connects(&e.handle(Input::Tick, NOW + 1).unwrap()).len(), 1);
    // Back: the front end hears of it (the desktop's banner goes away).
    let back = e
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW + 1,
        )
        .unwrap();
    assert!(
        back.iter()
            .any(|a| matches!(a, Action::Emit(SyncEvent::Reachable { .. })))
    );
    assert!(e.report().unreachable.is_empty());
}

impl Side {
    fn client_repo(&self) -> Arc<Repo> {
        self.client.repo()
    }
}

/// A relay too busy for a subscription (rate limit, memory) is asked again
/// shortly; a refusal that will not change (no such mailbox) is final.
#[test]
fn a_busy_relay_is_asked_again_for_the_subscription() {
    let (alice, _) = pair();
    let mut e = connected(&alice);
    let refused = |reason| {
        alice_sub(
            &alice,
            SubEvent::Refused(RelayError::Refused {
                reason,
                detail: String::new(),
            }),
        )
    };
    e.handle(refused(Refusal::RateLimited), NOW).unwrap();
    let subscribes = |a: &[Action]| {
        a.iter()
            .filter(|a| matches!(a, Action::Subscribe { .. }))
            .count()
    };
    assert_eq!(subscribes(&e.handle(Input::Tick, NOW + 1).unwrap()), 0);
    assert_eq!(subscribes(&e.handle(Input::Tick, NOW + 2).unwrap()), 1);
    e.handle(refused(Refusal::NoMailbox), NOW + 2).unwrap();
    assert_eq!(subscribes(&e.handle(Input::Tick, NOW + 60).unwrap()), 0);
}

/// A deposit refused for good (the contact's mailbox is gone) marks the
/// contact broken: it is not tried again, however long the engine runs,
/// a new text to them is refused up front, and the text already queued
/// stays (nothing is lost). Other contacts are not held up.
#[test]
fn a_mailbox_gone_for_good_breaks_only_its_contact() {
    let (alice, _) = pair();
    // Carol: another contact with a working session (borrowed from another
    // pair; sealing needs only the ratchet state).
    let (other, _) = pair();
    let session = other.client_repo().session(&[10; 16]).unwrap().unwrap();
    let mut c = Changes::new();
    let carol = contact(99, "carol", 4434, vec![1; 64]);
    c.put_contact(&carol).put_session(&carol.id, &session);
    alice.client_repo().apply(c).unwrap();
    let mut e = engine(&alice, Mode::Sync);
    e.handle(Input::Start, NOW).unwrap();
    send(&mut e, "hello");
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (op, _) = deposits(&a).remove(0);
    let gone = RelayError::Refused {
        reason: Refusal::NoMailbox,
        detail: "no such mailbox".into(),
    };
    let a = e
        .handle(
            Input::Done {
                op,
                result: Err(gone),
            },
            NOW,
        )
        .unwrap();
    assert!(a.iter().any(|a| matches!(
        a,
        Action::Emit(crate::sync::SyncEvent::ContactBroken { alias }) if alias == "peer"
    )));
    assert_eq!(e.report().broken, vec!["peer".to_owned()]);
    for later in [NOW + 3600, NOW + 10 * 86_400] {
        assert!(deposits(&e.handle(Input::Tick, later).unwrap()).is_empty());
    }
    let refused = e
        .handle(
            Input::Command {
                ticket: 2,
                command: Command::Send {
                    alias: "peer".into(),
                    text: "again".into(),
                },
            },
            NOW,
        )
        .unwrap();
    assert!(refused.iter().any(|a| matches!(
        a,
        Action::Complete {
            result: Err(ClientError::ContactBroken(_)),
            ..
        }
    )));
    let queued = alice
        .client_repo()
        .messages()
        .unwrap()
        .into_iter()
        .filter(|m| m.status == crate::records::Status::Queued as i32)
        .count();
    assert_eq!(queued, 1, "the first text stays queued");
    let to_carol = e
        .handle(
            Input::Command {
                ticket: 3,
                command: Command::Send {
                    alias: "carol".into(),
                    text: "hi carol".into(),
                },
            },
            NOW + 20,
        )
        .unwrap();
    assert_eq!(deposits(&to_carol).len(), 1, "carol is not held up");
}

/// S10: an invitation under a known contact's alias with another identity
/// key is refused, and the refusal stays on the contact's case as an alert
/// until the handler acknowledges it.
#[test]
fn another_key_under_a_known_alias_raises_an_alert_on_the_case() {
    let (alice, _) = pair();
    let mut rng = rand::rng();
    let mallory = Identity::generate(&mut rng);
    let (_, inv) = PendingInvitation::create(
        &mut rng,
        &mallory,
        InviteParams {
            relay: relay(4433),
            sender_id: vec![9; 24],
            reply_sender_auth: [9; 32],
            now: NOW,
            ttl_secs: 3600,
        },
    )
    .unwrap();
    let mut e = engine(&alice, Mode::Sync);
    let command = Command::Accept {
        link: inv.to_link(),
        alias: "peer".into(),
    };
    let out = e
        .handle(Input::Command { ticket: 1, command }, NOW)
        .unwrap();
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Complete {
            result: Err(ClientError::IdentityChanged(_)),
            ..
        }
    )));
    let case = alice.client.case("peer").unwrap();
    assert_eq!(case.summary.identity_alert_at, NOW);
    alice.client.acknowledge_identity_alert("peer").unwrap();
    assert_eq!(
        alice.client.case("peer").unwrap().summary.identity_alert_at,
        0
    );
}

/// `sync --resend-after N` applies to texts already sent: a later run with
/// a shorter interval than the one they were deposited under resends them
/// once that shorter interval has passed since they were sent (found by
/// the kill-loop and hostile-relay tests: the interval was fixed at
/// deposit, so `--resend-after 0` resent nothing for 10 minutes).
#[test]
fn a_shorter_resend_after_applies_to_texts_already_sent() {
    let (alice, _) = pair();
    let mut e = engine(&alice, Mode::Sync);
    e.handle(Input::Start, NOW).unwrap();
    send(&mut e, "hello");
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (op, _) = deposits(&a).remove(0);
    e.handle(
        Input::Done {
            op,
            result: Ok(Reply::Done),
        },
        NOW,
    )
    .unwrap();
    drop(e);

    let run = |resend_after: u64, now: u64| {
        let opts = SyncOptions {
            resend_after: std::time::Duration::from_secs(resend_after),
            ..opts()
        };
        let mut e = alice.client.engine_seeded(Mode::Sync, opts, [8; 32]);
        e.handle(Input::Start, now).unwrap();
        deposits(
            &e.handle(
                Input::Connected {
                    relay: key(4434),
                    transport: Transport::Quic,
                },
                now,
            )
            .unwrap(),
        )
        .len()
    };
    assert_eq!(run(600, NOW + 30), 0, "not due under the default");
    assert_eq!(run(60, NOW + 30), 0, "not due before the shorter interval");
    assert_eq!(run(0, NOW + 1), 1, "--resend-after 0 resends now");
    assert_eq!(run(60, NOW + 61), 1, "due once the shorter interval passed");
}

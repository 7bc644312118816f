//! Short links in the engine (issue 11): an invitation's link data is
//! stored (`PutLink`) before the link is shown, with a lifetime of the
//! invitation plus its grace period; it is deleted (`DeleteLink`, signed by
//! the key that stored it) once the invitation is used, cancelled or
//! expired; a relay that does not know link data gets the long link only;
//! any other refusal fails the invitation and deletes its new mailbox.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use tropa_e2e::{Invitation, ShortLink, open_link_data};
use tropa_relay_client::CreatedMailbox;

use super::*;

/// The relay-side DH secret of the invitation's mailbox (the test plays
/// the relay, so it seals deliveries with it).
const RELAY_SECRET: [u8; 32] = [50; 32];
/// The invitation mailbox's recipient ID.
const RID: MailboxId = [51; 24];

fn find<T>(actions: &[Action], f: impl Fn(&Action) -> Option<T>) -> Vec<T> {
    actions.iter().filter_map(f).collect()
}

fn link_puts(a: &[Action]) -> Vec<(OpId, [u8; 32], Bytes, VerifyingKey, u32)> {
    find(a, |a| match a {
        Action::Request {
            op,
            request:
                Request::PutLink {
                    locator,
                    data,
                    owner,
                    ttl_secs,
                    ..
                },
            ..
        } => Some((
            *op,
            *locator,
            data.clone(),
            owner.verifying_key(),
            *ttl_secs,
        )),
        _ => None,
    })
}

fn link_deletes(a: &[Action]) -> Vec<([u8; 32], VerifyingKey)> {
    find(a, |a| match a {
        Action::Request {
            request: Request::DeleteLink { locator, owner },
            ..
        } => Some((*locator, owner.verifying_key())),
        _ => None,
    })
}

fn mailbox_deletes(a: &[Action]) -> Vec<MailboxId> {
    find(a, |a| match a {
        Action::Request {
            request: Request::Delete { mailbox, .. },
            ..
        } => Some(*mailbox),
        _ => None,
    })
}

fn completions(a: &[Action]) -> Vec<&Result<Outcome, ClientError>> {
    a.iter()
        .filter_map(|a| match a {
            Action::Complete { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

/// An invitation in the making: Alice's engine asked for its link data.
struct Put {
    op: OpId,
    locator: [u8; 32],
    data: Bytes,
    owner: VerifyingKey,
    ttl_secs: u32,
    /// The new mailbox's own DH public key (deliveries are sealed to it).
    dh: PublicKey,
}

/// Alice, connected, invites `carol` for an hour; the relay creates the
/// mailbox. Returns the `PutLink` the engine then asks for.
fn invite_until_put(e: &mut Engine) -> Put {
    let command = Command::Invite {
        alias: Some("carol".into()),
        ttl_secs: 3600,
    };
    let a = e
        .handle(Input::Command { ticket: 5, command }, NOW)
        .unwrap();
    let (op, dh) = find(&a, |a| match a {
        Action::Request {
            op,
            request: Request::Create { dh, .. },
            ..
        } => Some((*op, *dh)),
        _ => None,
    })
    .remove(0);
    let created = CreatedMailbox {
        recipient_id: RID,
        sender_id: [52; 24],
        relay_dh_pub: PublicKey::from(&StaticSecret::from(RELAY_SECRET)).to_bytes(),
    };
    let a = e
        .handle(
            Input::Done {
                op,
                result: Ok(Reply::Created(created)),
            },
            NOW,
        )
        .unwrap();
    assert!(
        completions(&a).is_empty(),
        "no link before the data is stored"
    );
    let (op, locator, data, owner, ttl_secs) = link_puts(&a).remove(0);
    Put {
        op,
        locator,
        data,
        owner,
        ttl_secs,
        dh,
    }
}

/// The relay answers the `PutLink` with `result`; returns the outcome.
fn answer_put(e: &mut Engine, put: &Put, result: Result<Reply, RelayError>) -> Vec<Action> {
    e.handle(Input::Done { op: put.op, result }, NOW).unwrap()
}

fn invited(a: &[Action]) -> (String, Option<String>) {
    match completions(a).as_slice() {
        [Ok(Outcome::Invited { link, short, .. })] => (link.clone(), short.clone()),
        other => panic!("expected an invitation: {other:?}"),
    }
}

/// Bob accepts the invitation: his Hello as the relay delivers it into the
/// invitation's mailbox.
fn hello_for(inv: &Invitation, put: &Put) -> Input {
    let mut rng = rand::rng();
    let bob = Identity::generate(&mut rng);
    let hello = Hello {
        reply_relay: relay(4434),
        reply_sender_id: vec![53; 24],
        sender_auth: [54; 32],
    };
    let (_, env) = Session::initiate(&mut rng, &bob, inv, &hello, None, NOW + 10).unwrap();
    let sealing = SealingKey::delivery(&StaticSecret::from(RELAY_SECRET), &put.dh, &RID);
    Input::Subscription {
        relay: key(4433),
        mailbox: RID,
        event: SubEvent::Delivery(Delivery {
            envelope_id: [55; 16],
            sealed: Bytes::from(sealing.seal(&[55; 16], env.as_bytes())),
        }),
    }
}

/// The link is shown only once its data is stored; the data opens with the
/// link into the very invitation of the long link, and lives as long as
/// the invitation plus its grace period. Bob's Hello then deletes it, with
/// the key that stored it.
#[test]
fn a_used_invitation_deletes_its_link_data() {
    let (alice, _) = pair();
    let mut e = connected(&alice);
    let put = invite_until_put(&mut e);
    let grace = SyncOptions::default().invitation_grace.as_secs();
    assert_eq!(u64::from(put.ttl_secs), 3600 + grace);
    let a = answer_put(
        &mut e,
        &put,
        Ok(Reply::LinkStored(Duration::from_secs(7200))),
    );
    let (long, short) = invited(&a);
    let short: ShortLink = short.expect("a short link").parse().unwrap();
    assert_eq!(short.locator(), put.locator);
    let inv = open_link_data(&short, &put.data).unwrap();
    assert_eq!(inv.to_link(), long);

    let a = e.handle(hello_for(&inv, &put), NOW + 10).unwrap();
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Emit(SyncEvent::Joined { .. })))
    );
    assert_eq!(link_deletes(&a), vec![(put.locator, put.owner)]);
    // Nothing of the link stays on the device once the invitation is used.
    assert!(e.repo.pending_invitations().unwrap().is_empty());
}

/// An older relay refuses `PutLink` as not understood: the invitation is
/// made with its long link only (and nothing to delete when it is used).
#[test]
fn a_relay_without_link_data_gets_the_long_link_only() {
    let (alice, _) = pair();
    let mut e = connected(&alice);
    let put = invite_until_put(&mut e);
    let refused = RelayError::Refused {
        reason: Refusal::Invalid,
        detail: "unknown or missing command".into(),
    };
    let a = answer_put(&mut e, &put, Err(refused));
    let (long, short) = invited(&a);
    assert_eq!(short, None);
    let pending = e.repo.pending_invitations().unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].1.link_locator.is_empty());
    assert!(pending[0].1.link_owner_secret.is_empty());
    let inv = Invitation::from_link(&long).unwrap();
    let a = e.handle(hello_for(&inv, &put), NOW + 10).unwrap();
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Emit(SyncEvent::Joined { .. })))
    );
    assert!(link_deletes(&a).is_empty());
}

/// Any other refusal (here: the relay holds its maximum of links) fails the
/// invitation as a failed mailbox creation would: nothing is kept, and the
/// mailbox just made is deleted again.
#[test]
fn a_refused_link_fails_the_invitation_and_deletes_its_mailbox() {
    let (alice, _) = pair();
    let mut e = connected(&alice);
    let put = invite_until_put(&mut e);
    let refused = RelayError::Refused {
        reason: Refusal::Quota,
        detail: "full".into(),
    };
    let a = answer_put(&mut e, &put, Err(refused));
    assert!(matches!(
        completions(&a).as_slice(),
        [Err(ClientError::Relay(RelayError::Refused {
            reason: Refusal::Quota,
            ..
        }))]
    ));
    assert_eq!(mailbox_deletes(&a), vec![RID]);
    assert!(e.repo.pending_invitations().unwrap().is_empty());
    assert!(e.repo.contact_by_alias("carol").unwrap().is_none());
}

/// Cancelling an invitation (`invite --cancel`) deletes its link data
/// along with its mailbox.
#[test]
fn a_cancelled_invitation_deletes_its_link_data() {
    let (alice, _) = pair();
    let mut e = connected(&alice);
    let put = invite_until_put(&mut e);
    answer_put(
        &mut e,
        &put,
        Ok(Reply::LinkStored(Duration::from_secs(7200))),
    );
    let command = Command::Forget {
        alias: "carol".into(),
    };
    let a = e
        .handle(Input::Command { ticket: 6, command }, NOW + 5)
        .unwrap();
    assert!(matches!(
        completions(&a).as_slice(),
        [Ok(Outcome::Forgotten)]
    ));
    assert_eq!(link_deletes(&a), vec![(put.locator, put.owner)]);
    assert_eq!(mailbox_deletes(&a), vec![RID]);
}

/// An invitation that expired unused (past its grace period) deletes its
/// link data too, in case the relay still has it.
#[test]
fn an_expired_invitation_deletes_its_link_data() {
    let (alice, _) = pair();
    let mut e = connected(&alice);
    let put = invite_until_put(&mut e);
    answer_put(
        &mut e,
        &put,
        Ok(Reply::LinkStored(Duration::from_secs(7200))),
    );
    drop(e);
    let grace = SyncOptions::default().invitation_grace.as_secs();
    let later = NOW + 3600 + grace + 1;
    let mut e = engine(&alice, Mode::Sync);
    e.handle(Input::Start, later).unwrap();
    let a = e
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            later,
        )
        .unwrap();
    assert_eq!(link_deletes(&a), vec![(put.locator, put.owner)]);
    assert!(e.repo.pending_invitations().unwrap().is_empty());
}

/// A short link handed to the engine as it is gets a clear error: the
/// front end fetches its data first (the engine does no I/O of its own).
#[test]
fn the_engine_wants_short_links_resolved_first() {
    let (alice, _) = pair();
    let mut e = connected(&alice);
    let command = Command::Accept {
        link: format!(
            "TROPA:I/127.0.0.1:4433/{}/{}",
            "A".repeat(26),
            "B".repeat(26)
        ),
        alias: "dave".into(),
    };
    let a = e
        .handle(Input::Command { ticket: 7, command }, NOW)
        .unwrap();
    assert!(matches!(
        completions(&a).as_slice(),
        [Err(ClientError::Link(
            crate::client::LinkResolveError::NotResolved
        ))]
    ));
}

//! Receipts carried by texts (`Plaintext.receipts`) and held back on
//! metered profiles: each test pins one decision of `queue_receipts` and
//! `seal_into`, and the S13 rule that a receipt is forgotten only once an
//! envelope carrying it is on the relay.

use super::*;
use crate::records::{OutboxKind, Status};
use crate::sync::MAX_RECEIPT_HOLD;

/// An engine on `s` with its own seed: two sides with the same seed would
/// draw the same message ids.
fn engine_seeded(s: &Side, mode: Mode, seed: u8) -> Engine {
    let opts = match mode {
        Mode::Sync => opts(),
        Mode::Deliver(_) => SyncOptions::default(),
    };
    s.client.engine_seeded(mode, opts, [seed; 32])
}

/// `envelope` as the relay delivers it to `side`'s mailbox.
fn delivery(side: &Side, envelope: &[u8], id: u8) -> Input {
    let sealing = SealingKey::delivery(&side.relay_secret, &PublicKey::from(&side.dh), &side.rid);
    let d = Delivery {
        envelope_id: [id; 16],
        sealed: Bytes::from(sealing.seal(&[id; 16], envelope)),
    };
    sub(side, SubEvent::Delivery(d))
}

fn sub(side: &Side, event: SubEvent) -> Input {
    Input::Subscription {
        relay: key(4433),
        mailbox: side.rid,
        event,
    }
}

fn done(op: OpId, result: Result<Reply, RelayError>) -> Input {
    Input::Done { op, result }
}

fn set_metered(side: &Side, on: bool) {
    let repo = side.client_repo();
    let mut p = repo.profile().unwrap().unwrap();
    p.metered = on;
    let mut c = Changes::new();
    c.put_profile(&p);
    repo.apply(c).unwrap();
}

fn owed(e: &Engine) -> usize {
    e.repo.receipts_owed().unwrap().len()
}

fn delivered(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Emit(SyncEvent::Delivered { .. })))
        .count()
}

/// Bob's engine after his text to Alice was accepted by her relay, and
/// the envelope it deposited.
fn bob_sent(bob: &Side, text: &str) -> (Engine, Bytes) {
    let mut b = engine_seeded(bob, Mode::Sync, 2);
    b.handle(Input::Start, NOW).unwrap();
    b.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Quic,
        },
        NOW,
    )
    .unwrap();
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
    let (op, envelope) = deposits(&a).remove(0);
    b.handle(done(op, Ok(Reply::Done)), NOW).unwrap();
    (b, envelope)
}

/// Alice's engine, connected to her relay, having stored `envelope` (no
/// Idle yet).
fn alice_received(alice: &Side, envelope: &[u8]) -> Engine {
    let mut e = engine_seeded(alice, Mode::Sync, 1);
    e.handle(Input::Start, NOW).unwrap();
    e.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Quic,
        },
        NOW,
    )
    .unwrap();
    let a = e.handle(delivery(alice, envelope, 1), NOW).unwrap();
    assert_eq!(ack_ops(&a).len(), 1);
    assert_eq!(owed(&e), 1);
    e
}

/// A reply queued while the receipt is owed carries it: no receipt
/// envelope of its own is queued or deposited, and the reply alone tells
/// Bob his text was delivered.
#[test]
fn a_reply_carries_the_receipt_and_no_standalone_receipt_is_queued() {
    let (alice, bob) = pair();
    let (mut b, text) = bob_sent(&bob, "are you there");
    let mut e = alice_received(&alice, &text);
    send(&mut e, "yes");
    e.handle(sub(&alice, SubEvent::Idle), NOW).unwrap();
    assert_eq!(receipts_queued(&e), 0, "the receipt waits for the reply");
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let d = deposits(&a);
    assert_eq!(d.len(), 1, "the reply only");
    let a = e.handle(done(d[0].0, Ok(Reply::Done)), NOW).unwrap();
    assert!(deposits(&a).is_empty());
    let a = e.handle(Input::Tick, NOW + 1).unwrap();
    assert!(deposits(&a).is_empty(), "no receipt envelope");
    assert_eq!(receipts_queued(&e), 0);
    assert_eq!(owed(&e), 0, "settled once the relay took the reply");
    // Bob: the reply delivers his text.
    let a = b.handle(delivery(&bob, &d[0].1, 2), NOW + 2).unwrap();
    assert_eq!(delivered(&a), 1);
    assert!(b.repo.outbox().unwrap().is_empty(), "no resend");
    let msgs = bob.client_repo().messages().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].status, Status::Delivered as i32);
}

/// Metered: a receipt with no text to ride on is held through the run's
/// Idle and Stop, and queued once it has waited `MAX_RECEIPT_HOLD`.
#[test]
fn metered_holds_a_receipt_until_the_longest_hold() {
    let (alice, bob) = pair();
    set_metered(&alice, true);
    let (_, text) = bob_sent(&bob, "are you there");
    let mut e = alice_received(&alice, &text);
    e.handle(sub(&alice, SubEvent::Idle), NOW).unwrap();
    e.handle(Input::Stop, NOW).unwrap();
    assert_eq!(receipts_queued(&e), 0, "held");
    drop(e);
    // The next run, before and after the longest hold.
    let hold = MAX_RECEIPT_HOLD.as_secs();
    let mut e = engine_seeded(&alice, Mode::Sync, 3);
    e.handle(Input::Start, NOW + hold - 1).unwrap();
    e.handle(sub(&alice, SubEvent::Idle), NOW + hold - 1)
        .unwrap();
    assert_eq!(receipts_queued(&e), 0, "still held");
    e.handle(Input::Tick, NOW + hold).unwrap();
    assert_eq!(receipts_queued(&e), 1, "queued after the hold");
    assert_eq!(owed(&e), 0);
    // Not metered: queued at the first Idle, as before.
    let (alice, bob) = pair();
    let (_, text) = bob_sent(&bob, "are you there");
    let mut e = alice_received(&alice, &text);
    e.handle(sub(&alice, SubEvent::Idle), NOW).unwrap();
    assert_eq!(receipts_queued(&e), 1);
}

/// Metered: a run that deposits anything releases the held receipts with
/// it, and a text received twice (its sender resends already) gets its
/// receipt at once.
#[test]
fn metered_releases_held_receipts_when_the_run_sends_or_the_text_came_twice() {
    let (alice, bob) = pair();
    set_metered(&alice, true);
    let (mut b, text) = bob_sent(&bob, "are you there");
    let mut e = alice_received(&alice, &text);
    e.handle(sub(&alice, SubEvent::Idle), NOW).unwrap();
    assert_eq!(receipts_queued(&e), 0, "held");
    // Bob resends (no receipt came); the duplicate makes it due.
    let a = b.handle(Input::Tick, NOW + 600).unwrap();
    let (_, resent) = deposits(&a).remove(0);
    e.handle(delivery(&alice, &resent, 3), NOW + 601).unwrap();
    e.handle(sub(&alice, SubEvent::Idle), NOW + 601).unwrap();
    assert_eq!(receipts_queued(&e), 1, "a resend is answered at once");

    // Another receipt held; a text to another contact goes out, and the
    // receipt goes with the run.
    let (alice, bob) = pair();
    set_metered(&alice, true);
    let (other, _) = pair();
    let session = other.client_repo().session(&[10; 16]).unwrap().unwrap();
    let carol = contact(99, "carol", 4434, vec![1; 64]);
    let mut c = Changes::new();
    c.put_contact(&carol).put_session(&carol.id, &session);
    alice.client_repo().apply(c).unwrap();
    let (_, text) = bob_sent(&bob, "are you there");
    let mut e = alice_received(&alice, &text);
    e.handle(sub(&alice, SubEvent::Idle), NOW).unwrap();
    assert_eq!(receipts_queued(&e), 0, "held");
    let command = Command::Send {
        alias: "carol".into(),
        text: "hi carol".into(),
    };
    e.handle(Input::Command { ticket: 5, command }, NOW)
        .unwrap();
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let d = deposits(&a);
    assert_eq!(d.len(), 1, "carol's text");
    let a = e.handle(done(d[0].0, Ok(Reply::Done)), NOW).unwrap();
    assert_eq!(
        deposits(&a).len(),
        1,
        "and the held receipt, in the same run"
    );
    assert_eq!(owed(&e), 0);
}

/// Killed after the reply was sealed with the receipt, before the relay
/// took it: the next run deposits the same envelope (receipt inside), does
/// not queue the receipt again on its own, and forgets it only once the
/// relay accepted the reply.
#[test]
fn a_kill_between_seal_and_deposit_still_delivers_the_receipt() {
    let (alice, bob) = pair();
    let (mut b, text) = bob_sent(&bob, "are you there");
    let mut e = alice_received(&alice, &text);
    send(&mut e, "yes");
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let (_, sealed) = deposits(&a).remove(0);
    drop(e); // killed: the deposit's answer never came
    assert_eq!(owed(&engine(&alice, Mode::Sync)), 1, "still owed");

    let mut e = engine_seeded(&alice, Mode::Sync, 4);
    e.handle(Input::Start, NOW + 5).unwrap();
    e.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Quic,
        },
        NOW + 5,
    )
    .unwrap();
    e.handle(sub(&alice, SubEvent::Idle), NOW + 5).unwrap();
    assert_eq!(receipts_queued(&e), 0, "the sealed reply carries it");
    let a = e
        .handle(
            Input::Connected {
                relay: key(4434),
                transport: Transport::Quic,
            },
            NOW + 5,
        )
        .unwrap();
    let d = deposits(&a);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, sealed, "the same envelope, byte for byte");
    assert_eq!(owed(&e), 1, "owed until the relay takes it");
    e.handle(done(d[0].0, Ok(Reply::Done)), NOW + 5).unwrap();
    assert_eq!(owed(&e), 0);
    assert_eq!(receipts_queued(&e), 0);
    let a = b.handle(delivery(&bob, &sealed, 2), NOW + 6).unwrap();
    assert_eq!(delivered(&a), 1, "Bob learns his text was delivered");
}

/// A sealed text waiting to be retried (refused by the relay) holds on to
/// its receipts; if it leaves the outbox without being deposited (here its
/// disappearing timer ran out), they are free again and go on their own.
#[test]
fn receipts_of_a_text_dropped_before_its_deposit_are_sent_on_their_own() {
    let (alice, bob) = pair();
    let repo = alice.client_repo();
    let mut peer = repo.contact(&[10; 16]).unwrap().unwrap();
    peer.timer_secs = 1;
    let mut c = Changes::new();
    c.put_contact(&peer);
    repo.apply(c).unwrap();
    let (_, text) = bob_sent(&bob, "are you there");
    let mut e = alice_received(&alice, &text);
    send(&mut e, "yes");
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
    let full = RelayError::Refused {
        reason: Refusal::Quota,
        detail: "mailbox is full".into(),
    };
    e.handle(done(op, Err(full)), NOW).unwrap();
    e.handle(sub(&alice, SubEvent::Idle), NOW).unwrap();
    assert_eq!(receipts_queued(&e), 0, "the refused reply still carries it");
    let texts = |e: &Engine| {
        e.repo
            .outbox()
            .unwrap()
            .iter()
            .filter(|(_, r)| r.kind == OutboxKind::Text as i32)
            .count()
    };
    assert_eq!(texts(&e), 1);
    // The reply disappears (its timer ran out long before the real clock).
    alice.client.purge_expired().unwrap();
    assert_eq!(texts(&e), 0);
    e.handle(Input::Tick, NOW + 2).unwrap();
    assert_eq!(receipts_queued(&e), 1, "the receipt goes on its own");
    assert_eq!(owed(&e), 0);
}

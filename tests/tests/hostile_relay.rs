//! Real clients (the `tropa` CLI and the `tropa_client` library) against a
//! relay that lies (issue 14, item 3). The relay is the real server in this
//! process over a store that misbehaves on demand, or a bare QUIC endpoint
//! with the relay's key that breaks the framing
//! (`tropa_tests::hostile_relay`).
//!
//! For every misbehaviour this proves: the client does not crash (no panic,
//! no exit code 101), shows only genuine messages, each exactly once, loses
//! none (once the relay is honest again, or the sender's resend timer ran),
//! and names the relay in `SyncReport::misbehaving` / `tropa sync -v`
//! wherever a client can tell misbehaviour from a bad network.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use tropa_client::{SyncOptions, SyncReport};
use tropa_proto::ENVELOPE_SIZE;
use tropa_tests::hostile_relay::{FrameAttack, HostileRelay, Knobs};
use tropa_tests::{Profile, Run, alice_and_bob};

/// A relay and two connected profiles on it.
fn setup() -> (tempfile::TempDir, HostileRelay, Profile, Profile) {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let relay = HostileRelay::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    eprintln!("set up in {:?}", start.elapsed());
    (dir, relay, alice, bob)
}

/// Texts `p` received from `alias`, in order.
fn received(p: &Profile, alias: &str) -> Vec<String> {
    p.read_json(Some(alias))
        .iter()
        .filter(|m| m["direction"] == "in")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

/// A CLI run that did not crash (it may fail).
#[track_caller]
fn no_crash(run: Run) -> Run {
    assert_ne!(run.code, 101, "tropa panicked: {run:?}");
    assert_ne!(run.code, -1, "tropa was killed: {run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    run
}

/// `tropa sync -v`, which must not crash.
fn sync_v(p: &Profile) -> Run {
    no_crash(p.tropa(&["-v", "sync"]))
}

/// One library sync that leaves when caught up.
fn sync(p: &Profile) -> SyncReport {
    p.sync_with(SyncOptions::default())
}

fn misbehaving(r: &SyncReport, relay: &HostileRelay) -> bool {
    let key = relay.address.without_password().to_string();
    r.misbehaving.iter().any(|m| m.starts_with(&key))
}

/// `sender` sends `text` while the relay withholds its answer: it stays
/// queued (exit 5), and the held deposit goes on under `then` once the
/// client has gone. (A text deposited by `send` waits the default resend
/// time of ten minutes; one queued is deposited by `sync`, with that
/// sync's resend time.)
fn queue(relay: &HostileRelay, sender: &Profile, text: &str, then: Knobs) {
    relay.store.set(Knobs {
        hold_deposits: true,
        ..Knobs::default()
    });
    let start = Instant::now();
    let out = no_crash(sender.tropa(&["send", "alice", text, "--timeout", "1"]));
    eprintln!(
        "held deposit: exit {} after {:?}",
        out.code,
        start.elapsed()
    );
    assert_eq!(out.code, 5, "queued: {out:?}");
    relay.store.set(then);
}

fn random(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut b);
    b
}

/// Garbage the relay seals correctly (right size, wrong sizes) is dropped
/// after end-to-end decryption fails; a genuine envelope sealed under a key
/// of the relay's own is dropped as unauthenticated. Both are reported, and
/// the genuine message arrives once the relay is honest and the sender
/// resends it.
#[test]
fn garbage_is_dropped_and_reported() {
    let (_dir, relay, alice, bob) = setup();
    bob.tropa(&["send", "alice", "genuine one"]).ok();
    let rid = relay.store.last_deposit().expect("bob's deposit");
    let sizes = [
        ENVELOPE_SIZE,
        0,
        1,
        100,
        ENVELOPE_SIZE - 1,
        ENVELOPE_SIZE + 1,
    ];
    for len in sizes {
        relay.store.inject(&rid, &random(len));
    }
    // And all zeros, so a parser is not only fed noise.
    relay.store.inject(&rid, &vec![0u8; ENVELOPE_SIZE]);
    let r = sync(&alice);
    eprintln!("garbage: {r:?}");
    assert_eq!(r.received, 1, "{r:?}");
    assert_eq!(r.dropped, sizes.len() + 1, "{r:?}");
    assert!(misbehaving(&r, &relay), "{:?}", r.misbehaving);
    assert_eq!(received(&alice, "bob"), ["genuine one"]);
    assert_eq!(relay.store.count(&rid), 0, "everything was acked");

    // Sealed under a key the relay made up: it does not authenticate.
    // (Queued first, so that the resend timer of the `sync` below applies.)
    let wrong_key = Knobs {
        wrong_key: Some(rid),
        ..Knobs::default()
    };
    queue(&relay, &bob, "sealed wrong", wrong_key);
    bob.tropa(&["sync", "--resend-after", "1"]).ok();
    let out = sync_v(&alice);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("0 new"), "{out:?}");
    assert!(out.stdout.contains("DROPPED"), "{out:?}");
    assert!(out.stderr.contains("relay misbehaving"), "{out:?}");
    assert_eq!(received(&alice, "bob"), ["genuine one"]);

    // Honest again: bob resends what has no receipt; it arrives once.
    relay.store.set(Knobs::default());
    std::thread::sleep(Duration::from_millis(1100));
    bob.tropa(&["sync", "--resend-after", "1"]).ok();
    let r = sync(&alice);
    assert_eq!((r.received, r.dropped), (1, 0), "{r:?}");
    assert!(r.misbehaving.is_empty(), "{:?}", r.misbehaving);
    assert_eq!(received(&alice, "bob"), ["genuine one", "sealed wrong"]);
}

/// A relay that confirms acks but keeps the envelopes delivers them again,
/// in the same run (after a reconnection) and after the client restarts:
/// each message is shown once.
#[test]
fn replays_are_shown_once() {
    let (_dir, mut relay, alice, bob) = setup();
    relay.store.set(Knobs {
        ignore_acks: true,
        ..Knobs::default()
    });
    bob.tropa(&["send", "alice", "only once"]).ok();
    let rid = relay.store.last_deposit().unwrap();

    // A listening client: the relay restarts under it, and the new
    // subscription delivers the acked envelope again.
    let run = std::thread::scope(|s| {
        let run = s.spawn(|| {
            alice.sync_with(SyncOptions {
                wait: Some(Duration::from_secs(6)),
                ..SyncOptions::default()
            })
        });
        std::thread::sleep(Duration::from_secs(2));
        relay.serve();
        run.join().unwrap()
    });
    eprintln!("replay in one run: {run:?}");
    assert_eq!((run.received, run.dropped), (1, 0), "{run:?}");
    assert!(misbehaving(&run, &relay), "{:?}", run.misbehaving);
    assert_eq!(relay.store.count(&rid), 1, "the relay kept it");

    // After a restart of the client (a new process each time).
    for _ in 0..2 {
        let out = sync_v(&alice);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.starts_with("0 new"), "{out:?}");
        assert!(!out.stdout.contains("DROPPED"), "{out:?}");
    }
    let r = sync(&alice);
    assert_eq!((r.received, r.dropped), (0, 0), "{r:?}");
    assert_eq!(received(&alice, "bob"), ["only once"]);

    relay.store.set(Knobs::default());
    bob.tropa(&["send", "alice", "next"]).ok();
    let r = sync(&alice);
    assert_eq!(r.received, 1, "{r:?}");
    assert_eq!(received(&alice, "bob"), ["only once", "next"]);
    assert_eq!(relay.store.count(&rid), 0);
}

/// Envelopes of one mailbox delivered on another mailbox's subscription
/// (sealed correctly for it) do not decrypt there and are dropped; the
/// genuine copy arrives once.
#[test]
fn another_mailboxs_envelopes_are_dropped() {
    let (_dir, relay, alice, bob) = setup();
    bob.tropa(&["send", "alice", "hello alice"]).ok();
    let alices = relay.store.last_deposit().unwrap();
    relay.store.set(Knobs {
        copy_to: Some(alices),
        ..Knobs::default()
    });
    alice.tropa(&["send", "bob", "hello bob"]).ok();
    let bobs = relay.store.last_deposit().unwrap();
    assert_ne!(alices, bobs);
    assert_eq!(relay.store.count(&alices), 2, "the copy is there");

    let r = sync(&bob);
    assert_eq!((r.received, r.dropped), (1, 0), "{r:?}");
    let r = sync(&alice);
    eprintln!("cross-mailbox: {r:?}");
    assert_eq!((r.received, r.dropped), (1, 1), "{r:?}");
    assert!(misbehaving(&r, &relay), "{:?}", r.misbehaving);
    assert_eq!(received(&alice, "bob"), ["hello alice"]);
    assert_eq!(received(&bob, "alice"), ["hello bob"]);
}

/// Broken framing: a length far over the limit, a frame cut short, a frame
/// that decodes to nothing, a frame that never ends, an endless flood of
/// deliveries. The client gives up on the relay in bounded time and
/// receives the waiting message once the real relay is back.
#[test]
fn broken_frames_are_survived() {
    let (_dir, mut relay, alice, bob) = setup();
    bob.tropa(&["send", "alice", "still here"]).ok();
    for attack in [
        FrameAttack::Huge,
        FrameAttack::Truncated,
        FrameAttack::Undecodable,
    ] {
        relay.attack(attack);
        let start = Instant::now();
        let r = sync(&alice);
        eprintln!("{attack:?}: {r:?} in {:?}", start.elapsed());
        assert_eq!((r.received, r.dropped), (0, 0), "{r:?}");
        assert_eq!(r.unreachable.len(), 1, "{attack:?}: {r:?}");
        assert!(misbehaving(&r, &relay), "{attack:?}: {:?}", r.misbehaving);
        let out = sync_v(&alice);
        assert_ne!(out.code, 0, "{attack:?}: {out:?}");
        assert!(out.stderr.contains("relay misbehaving"), "{out:?}");
    }

    // A frame that never ends, and a flood: a listening client leaves at
    // its deadline (plus the grace for requests in flight).
    for attack in [FrameAttack::Trickle, FrameAttack::Flood] {
        relay.attack(attack);
        let start = Instant::now();
        let r = alice.sync_with(SyncOptions {
            wait: Some(Duration::from_secs(2)),
            ..SyncOptions::default()
        });
        let took = start.elapsed();
        eprintln!("{attack:?}: {r:?} in {took:?}");
        assert!(
            took < Duration::from_secs(15),
            "{attack:?} held the client {took:?}"
        );
        assert_eq!(r.received, 0, "{r:?}");
        if attack == FrameAttack::Flood {
            assert!(r.dropped > 0, "{r:?}");
            assert!(misbehaving(&r, &relay), "{:?}", r.misbehaving);
        }
    }
    assert!(received(&alice, "bob").is_empty());

    relay.serve();
    let r = sync(&alice);
    assert_eq!((r.received, r.dropped), (1, 0), "{r:?}");
    assert!(r.misbehaving.is_empty(), "{:?}", r.misbehaving);
    assert_eq!(received(&alice, "bob"), ["still here"]);
}

/// A deposit never answered leaves the text queued; one answered
/// `Accepted` and thrown away is sent again by the resend timer. Each
/// arrives exactly once.
#[test]
fn withheld_and_dropped_deposits_arrive_once() {
    let (_dir, relay, alice, bob) = setup();
    // Held, then stored late (the client has gone), then sent again.
    queue(&relay, &bob, "held", Knobs::default());
    no_crash(bob.tropa(&["sync"]));

    // Answered `Accepted` and thrown away.
    let drop = Knobs {
        drop_deposits: true,
        ..Knobs::default()
    };
    queue(&relay, &bob, "dropped", drop);
    // Under the default resend interval: "held", accepted above, is not
    // sent again yet, and "dropped" goes out for the first time.
    bob.tropa(&["sync"]).ok();
    assert_eq!(relay.store.dropped(), 2, "the held deposit and the retry");
    relay.store.set(Knobs::default());
    let r = sync(&alice);
    eprintln!("after held and dropped: {r:?}");
    assert_eq!(r.received, 1, "{r:?}");
    assert_eq!(received(&alice, "bob"), ["held"]);

    // No receipt for "dropped": bob's resend timer sends it again.
    std::thread::sleep(Duration::from_millis(1100));
    bob.tropa(&["sync", "--resend-after", "1"]).ok();
    let r = sync(&alice);
    assert_eq!((r.received, r.dropped), (1, 0), "{r:?}");
    assert_eq!(received(&alice, "bob"), ["held", "dropped"]);
}

//! Receipts carried by replies survive SIGKILL (issue 11, S13): Alice and
//! Bob, both on metered profiles so that their receipts ride on their
//! replies, talk back and forth through the real CLI while half of their
//! `send` and `sync` processes are killed at a random moment. Afterwards
//! every message a sender's profile holds arrives exactly once and is
//! shown delivered: a receipt forgotten before the envelope carrying it
//! reached the relay would leave its text `sent` (the kill loops in
//! kill_loops.rs only send one way, so nothing rides on a reply there).
//!
//! The seed (printed; `TROPA_KILL_SEED` sets it) fixes which commands are
//! killed and when, not the processes' timing. The narrowest window, a
//! kill after a reply was sealed with its receipts and before the relay
//! took it, lasts a few milliseconds of a `send`'s 100: few kills land in
//! it (`TROPA_KILL_ROUNDS` runs more rounds). The engine's unit test
//! `a_kill_between_seal_and_deposit_still_delivers_the_receipt` pins it.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use tropa_tests::{Profile, RelayProcess, alice_and_bob, bin};

/// Rounds (each: a message each way), unless `TROPA_KILL_ROUNDS` says.
const ROUNDS: u32 = 20;
/// Rounds of `sync` on both sides for everything to settle. No resend is
/// due in the meantime: a receipt lost would leave its text `sent`, not be
/// made good by a resend and a new receipt.
const SETTLE_ROUNDS: u32 = 8;

/// Runs `tropa ARGS` on `p`, killed with SIGKILL after `kill_after` if it
/// has not finished by then. Returns how long it ran, and whether it was
/// killed.
fn run(
    p: &Profile,
    args: &[&str],
    input: Option<&str>,
    kill_after: Option<Duration>,
) -> (Duration, bool) {
    let began = Instant::now();
    let mut child = Command::new(bin("tropa"))
        .args(args)
        .env("TROPA_HOME", &p.home)
        .env("TROPA_PASSPHRASE", &p.passphrase)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tropa");
    if let Some(text) = input {
        use std::io::Write as _;
        // A process killed before it read its input closes the pipe.
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    }
    let Some(after) = kill_after else {
        child.wait().unwrap();
        return (began.elapsed(), false);
    };
    let until = began + after;
    loop {
        if child.try_wait().unwrap().is_some() {
            return (began.elapsed(), false);
        }
        if Instant::now() >= until {
            child.kill().unwrap();
            child.wait().unwrap();
            return (began.elapsed(), true);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// (text, status) of `p`'s messages with `peer` in one direction.
fn texts(p: &Profile, peer: &str, direction: &str) -> Vec<(String, String)> {
    p.read_json(Some(peer))
        .into_iter()
        .filter(|m| m["direction"] == direction)
        .map(|m| {
            (
                m["text"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn receipts_riding_on_replies_survive_kills() {
    let seed = std::env::var("TROPA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_007
        });
    eprintln!("receipt kill loop: seed {seed} (TROPA_KILL_SEED)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    for p in [&alice, &bob] {
        p.tropa(&["config", "metered", "on"]).ok();
    }
    let started = Instant::now();
    let mut killed = 0;
    let mut commands = 0;
    // How long a `send` and a `sync` last when not killed: kills are aimed
    // at a random point of a typical run.
    let mut typical = [Duration::from_millis(200); 2];
    let rounds_wanted: u32 = std::env::var("TROPA_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS);
    for round in 0..rounds_wanted {
        for (me, peer, name) in [(&alice, "bob", "a"), (&bob, "alice", "b")] {
            // This side's reply (carrying its receipts), then the other
            // side's sync fetching it.
            let other = if name == "a" { &bob } else { &alice };
            for (kind, p, args, input) in [
                (0, me, vec!["send", peer], Some(format!("{name}{round}"))),
                (1, other, vec!["sync"], None),
            ] {
                let kill = rng
                    .random_bool(0.5)
                    .then(|| typical[kind].mul_f64(rng.random_range(0.0..=1.0)));
                commands += 1;
                let (took, was_killed) = run(p, &args, input.as_deref(), kill);
                if was_killed {
                    killed += 1;
                } else {
                    typical[kind] = took;
                }
            }
        }
    }
    let loop_time = started.elapsed();
    // Settle: receipts go at once.
    for p in [&alice, &bob] {
        p.tropa(&["config", "metered", "off"]).ok();
    }
    let mut rounds = 0;
    let settled = |a: &Profile, b: &Profile| {
        texts(a, "bob", "out").iter().all(|(_, s)| s == "delivered")
            && texts(b, "alice", "out")
                .iter()
                .all(|(_, s)| s == "delivered")
    };
    while rounds < SETTLE_ROUNDS && !settled(&alice, &bob) {
        rounds += 1;
        for p in [&alice, &bob, &alice] {
            p.tropa(&["sync"]);
        }
    }
    let mut messages = 0;
    for (from, to, peer_of_from, peer_of_to) in [
        (&alice, &bob, "bob", "alice"),
        (&bob, &alice, "alice", "bob"),
    ] {
        let sent = texts(from, peer_of_from, "out");
        for (text, status) in &sent {
            assert_eq!(status, "delivered", "{text}: {sent:?}");
        }
        let mut got: BTreeMap<String, u32> = BTreeMap::new();
        for (text, _) in texts(to, peer_of_to, "in") {
            *got.entry(text).or_default() += 1;
        }
        let want: BTreeMap<String, u32> = sent.iter().map(|(t, _)| (t.clone(), 1)).collect();
        assert_eq!(got, want, "every message exactly once");
        messages += sent.len();
    }
    eprintln!(
        "receipt kill loop: {killed} of {commands} commands killed, {messages} messages, \
         loop {:.1} s, settled in {rounds} rounds; typical send {} ms, sync {} ms",
        loop_time.as_secs_f64(),
        typical[0].as_millis(),
        typical[1].as_millis()
    );
    assert!(killed > 0, "no command was killed");
}

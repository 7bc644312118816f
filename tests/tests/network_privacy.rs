//! Network privacy with real parts (issue 12): real `tropa` processes, a
//! relay served in this process (so the test can read which addresses it
//! sees and which mailboxes each of its connections serves), and Debian's
//! `microsocks` as the SOCKS5 proxy.
//!
//! What it proves:
//! - with a SOCKS5 proxy set, the relay only ever sees the proxy's address
//!   (127.0.0.2), never the client's own (127.0.0.1), and the messages
//!   arrive;
//! - with a proxy, isolation is per contact by default: a profile's two
//!   contacts' mailboxes are never served on one relay connection; without
//!   isolation they are (which shows the check can fail);
//! - a conversation whose two directions live on two relays works, and
//!   neither relay's disk holds a text, an alias or a name; a profile with
//!   two relays spreads its new contacts over both;
//! - a relay that serves no UDP (as where UDP is blocked) is reached over
//!   TCP by `auto`, and messages arrive exactly once and are delivered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tropa_relay::config::Config;
use tropa_tests::inproc::Relay;
use tropa_tests::microsocks::Microsocks;
use tropa_tests::{Profile, RelayProcess, connect_profiles, files_containing};

/// What the relay showed while something ran: every address it saw a
/// connection from, and the most mailboxes one connection was subscribed
/// to, and the most connections with a subscription at once.
#[derive(Debug, Default)]
struct Seen {
    ips: BTreeSet<IpAddr>,
    most_per_connection: usize,
    most_subscribed_connections: usize,
}

/// Runs `f` while reading the relay's view every 10 ms.
fn watching<T>(relay: &Relay, f: impl FnOnce() -> T) -> (T, Seen) {
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = Seen::default();
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(120) {
                seen.ips.extend(relay.peer_ips());
                let served = relay.served();
                let subscribed = served.iter().filter(|s| !s.is_empty()).count();
                seen.most_subscribed_connections = seen.most_subscribed_connections.max(subscribed);
                let most = served.iter().map(Vec::len).max().unwrap_or(0);
                seen.most_per_connection = seen.most_per_connection.max(most);
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        });
        let out = f();
        stop.store(true, Ordering::Relaxed);
        (out, watcher.join().unwrap())
    })
}

/// Alice with two contacts, Bob and Carol, on one relay served in this
/// process; each of them has written to her once.
fn alice_bob_carol(
    rt: &tokio::runtime::Runtime,
    root: &std::path::Path,
    cfg: Config,
) -> (Relay, Profile) {
    let relay = rt.block_on(Relay::start(cfg));
    let alice = Profile::init(root, "alice", &relay.address);
    let bob = Profile::init(root, "bob", &relay.address);
    let carol = Profile::init(root, "carol", &relay.address);
    connect_profiles(&alice, "bob", &bob, "alice");
    connect_profiles(&alice, "carol", &carol, "alice");
    bob.tropa_input(&["send", "alice"], "from bob").ok();
    carol.tropa_input(&["send", "alice"], "from carol").ok();
    (relay, alice)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Through the proxy: the relay sees only 127.0.0.2, each contact's
/// mailbox is on a connection of its own, and both messages arrive.
#[test]
fn through_socks5_the_relay_sees_only_the_proxy_and_contacts_are_apart() {
    let Some(proxy) = Microsocks::start(None) else {
        return;
    };
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (relay, alice) = alice_bob_carol(&rt, dir.path(), Config::default());
    let set = alice
        .tropa(&["config", "socks5", &proxy.addr.to_string()])
        .ok();
    assert!(
        set.stderr.contains("each contact on its own connection"),
        "{set:?}"
    );
    let config = alice.tropa(&["config"]).ok().stdout;
    assert!(config.contains("isolation: contact (default)"), "{config}");
    // Nobody else is connected now: whatever the relay sees is Alice's.
    assert!(relay.peer_ips().is_empty(), "{:?}", relay.peer_ips());

    let (run, seen) = watching(&relay, || alice.tropa(&["sync", "-v", "--wait", "3"]));
    eprintln!("{seen:?}\n{}", run.stderr);
    let run = run.ok();
    assert!(run.stdout.contains("2 new"), "{run:?}");
    let proxy_ip: IpAddr = [127, 0, 0, 2].into();
    assert_eq!(
        seen.ips,
        BTreeSet::from([proxy_ip]),
        "the relay saw only the proxy"
    );
    assert_eq!(
        seen.most_per_connection, 1,
        "never two contacts on one connection"
    );
    assert_eq!(
        seen.most_subscribed_connections, 2,
        "one connection per contact"
    );
    assert!(
        run.stderr.contains("over tcp (2): 127.0.0.1:"),
        "{}",
        run.stderr
    );
    let texts: Vec<String> = alice
        .read_json(None)
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts.contains(&"from bob".to_owned()) && texts.contains(&"from carol".to_owned()),
        "{texts:?}"
    );
    rt.block_on(relay.stop());
}

/// Without a proxy the default is one connection per relay: the relay
/// serves both contacts' mailboxes on it. (The check above can fail.)
#[test]
fn without_isolation_one_connection_serves_both_contacts() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (relay, alice) = alice_bob_carol(&rt, dir.path(), Config::default());
    let (run, seen) = watching(&relay, || alice.tropa(&["sync", "-v", "--wait", "2"]));
    eprintln!("{seen:?}");
    assert!(run.ok().stdout.contains("2 new"));
    assert_eq!(seen.most_per_connection, 2);
    assert_eq!(seen.most_subscribed_connections, 1);
    assert_eq!(seen.ips, BTreeSet::from([IpAddr::from([127, 0, 0, 1])]));
    rt.block_on(relay.stop());
}

/// A relay that serves no UDP, as where UDP is blocked: `auto` falls back
/// to TCP after QUIC's 3 s head start, every message arrives exactly once
/// and ends `delivered`.
#[test]
fn auto_falls_back_to_tcp_where_udp_is_blocked() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        quic: false,
        ..Config::default()
    };
    let relay = rt.block_on(Relay::start(cfg));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    connect_profiles(&alice, "bob", &bob, "alice");
    for i in 0..3 {
        alice
            .tropa_input(&["send", "bob"], &format!("line {i}"))
            .ok();
    }
    let start = Instant::now();
    let first = bob.tropa(&["sync", "-v"]).ok();
    eprintln!("first sync {:?}: {}", start.elapsed(), first.stderr);
    assert!(first.stdout.contains("3 new"), "{first:?}");
    assert!(first.stderr.contains("over tcp"), "{}", first.stderr);
    let texts: Vec<String> = bob
        .read_json(Some("alice"))
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["line 0", "line 1", "line 2"]);
    // Bob's profile now goes to this relay over TCP first (the engine
    // test `the_transport_that_worked_is_tried_first_next_time` checks the
    // choice; here the time is printed, not asserted).
    let start = Instant::now();
    let again = bob.tropa(&["sync", "-v"]).ok();
    eprintln!("second sync {:?}: {}", start.elapsed(), again.stderr);
    assert!(again.stderr.contains("over tcp"));
    // Alice sees every message delivered (the receipts came over TCP too).
    alice.tropa(&["sync"]).ok();
    let states: Vec<String> = alice
        .read_json(Some("bob"))
        .iter()
        .map(|m| m["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        states,
        ["delivered", "delivered", "delivered"],
        "{states:?}"
    );
    rt.block_on(relay.stop());
}

/// A relay process whose creation budget lets one address (every profile
/// here is on 127.0.0.1) make many mailboxes and links.
fn roomy_relay(dir: &std::path::Path) -> RelayProcess {
    RelayProcess::start_with(
        dir,
        &[
            "creations_per_hour_per_address = 10000",
            "creation_burst_per_address = 1000",
            "creation_burst_per_connection = 100",
        ],
    )
}

/// Alice's main relay is one, Bob's another: her mailbox for him is on
/// hers and his for her on his. Messages go both ways and both relays'
/// disks pass the privacy scan. Then Alice adds Bob's relay to hers, and
/// her new invitations land on both.
#[test]
fn new_contacts_are_spread_over_the_profiles_relays() {
    let dir = tempfile::tempdir().unwrap();
    let one = roomy_relay(&dir.path().join("one"));
    let two = roomy_relay(&dir.path().join("two"));
    let alice = Profile::init(dir.path(), "alice", &one.address);
    let bob = Profile::init(dir.path(), "bob", &two.address);
    connect_profiles(&alice, "bravo", &bob, "alpha");
    alice
        .tropa_input(&["send", "bravo"], "the river crossing at dawn")
        .ok();
    bob.tropa(&["sync"]).ok();
    bob.tropa_input(&["send", "alpha"], "understood, wait by the mill")
        .ok();
    alice.tropa(&["sync"]).ok();
    bob.tropa(&["sync"]).ok();
    let texts = |p: &Profile, alias: &str| -> Vec<(String, String)> {
        p.read_json(Some(alias))
            .iter()
            .map(|m| {
                (
                    m["text"].as_str().unwrap().to_owned(),
                    m["status"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let at_alice = texts(&alice, "bravo");
    assert_eq!(at_alice.len(), 2, "{at_alice:?}");
    assert_eq!(at_alice[0].1, "delivered", "{at_alice:?}");
    assert_eq!(texts(&bob, "alpha").len(), 2);
    // Where each direction lives: Alice's mailbox on her relay, Bob's on his.
    let relay_of = |p: &Profile, alias: &str| -> String {
        p.tropa(&["--json", "contacts"])
            .ok()
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|c| c["alias"] == alias)
            .map(|c| c["relay"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let host = |r: &RelayProcess| format!("{}:{}", r.address.host, r.address.port);
    assert_eq!(relay_of(&alice, "bravo"), host(&one));
    assert_eq!(relay_of(&bob, "alpha"), host(&two));
    for relay in [&one, &two] {
        for needle in [
            b"the river crossing at dawn".as_slice(),
            b"wait by the mill",
            b"alpha",
            b"bravo",
            b"alice",
        ] {
            assert!(
                files_containing(&relay.data, needle).is_empty(),
                "a relay has {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }

    // Two relays: new invitations are spread over both, at random (16 all
    // on one relay would happen once in 32,768 runs).
    alice
        .tropa(&["relays", "add", &two.address.to_string()])
        .ok();
    let listed = alice.tropa(&["relays"]).ok().stdout;
    assert_eq!(listed.lines().count(), 2, "{listed}");
    for i in 0..16 {
        alice.tropa(&["invite", "--name", &format!("case{i}")]).ok();
    }
    let mut on_one = 0;
    let mut on_two = 0;
    for i in 0..16 {
        let r = relay_of(&alice, &format!("case{i}"));
        if r == host(&one) {
            on_one += 1;
        } else if r == host(&two) {
            on_two += 1;
        }
    }
    eprintln!("16 invitations: {on_one} on the first relay, {on_two} on the second");
    assert_eq!(on_one + on_two, 16);
    assert!(on_one > 0 && on_two > 0);
    let shown = alice.tropa(&["contacts"]).ok().stdout;
    assert!(shown.contains(&format!("  via {}", host(&two))), "{shown}");
    // Removing a relay keeps its contacts.
    alice
        .tropa(&["relays", "remove", &two.address.to_string()])
        .ok();
    assert_eq!(relay_of(&alice, "bravo"), host(&one));
    assert_eq!(alice.tropa(&["relays"]).ok().stdout.lines().count(), 1);
}

//! What connection isolation costs (issue 12): the bytes and connections
//! of one idle `tropa sync` (nothing new to fetch or send) for a profile
//! with 1 and with 20 contacts, per isolation mode and transport, as
//! `tropa sync -v` reports them. A measurement, not a test of speed: it
//! prints a table for docs/benchmarks.md and checks only that each mode
//! made the connections it should.
//!
//! `cargo test -p tropa-tests --test isolation_cost -- --ignored --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use tropa_tests::{Profile, RelayProcess, connect_profiles};

/// `sync -v`'s byte line and connection lines, summed.
fn idle_sync(p: &Profile, args: &[&str]) -> (u64, u64, usize) {
    let mut all = vec!["sync", "-v"];
    all.extend_from_slice(args);
    let out = p.tropa(&all).ok();
    assert!(out.stdout.contains("0 new"), "{out:?}");
    let mut sent = 0;
    let mut received = 0;
    let mut connections = 0;
    for line in out.stderr.lines() {
        if let Some(rest) = line.strip_prefix("bytes: ") {
            let nums: Vec<u64> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            sent = nums[0];
            received = nums[1];
        }
        // `over tcp (3): HOST:PORT`
        if let Some(rest) = line.strip_prefix("over ") {
            let n = rest
                .split(['(', ')'])
                .nth(1)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap();
            connections += n;
        }
    }
    (sent, received, connections)
}

#[test]
#[ignore = "a measurement; run by hand"]
fn bytes_and_connections_of_an_idle_sync_per_isolation_mode() {
    let dir = tempfile::tempdir().unwrap();
    // 21 profiles on one address make more mailboxes and links than an
    // address may by default.
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &[
            "creations_per_hour_per_address = 10000",
            "creation_burst_per_address = 1000",
            "creation_burst_per_connection = 100",
            "max_connections_per_ip = 1000",
        ],
    );
    let proxy = tropa_tests::microsocks::Microsocks::start(None);
    let mut rows = Vec::new();
    for contacts in [1usize, 20] {
        let root = dir.path().join(format!("c{contacts}"));
        std::fs::create_dir_all(&root).unwrap();
        let handler = Profile::init(&root, "handler", &relay.address);
        for i in 0..contacts {
            let other = Profile::init(&root, &format!("p{i}"), &relay.address);
            connect_profiles(&handler, &format!("p{i}"), &other, "handler");
        }
        // Everything settled: receipts and handshakes out of the way.
        handler.tropa(&["sync"]).ok();
        let mut modes: Vec<(&str, Vec<&str>)> = vec![
            ("profile, quic", vec!["--transport", "quic"]),
            ("profile, tcp", vec!["--transport", "tcp"]),
            ("contact, quic", vec!["--transport", "quic"]),
            ("contact, tcp", vec!["--transport", "tcp"]),
        ];
        let socks = proxy.as_ref().map(|p| p.addr.to_string());
        if let Some(s) = &socks {
            modes.push(("contact, socks5", vec!["--socks5", s.as_str()]));
        }
        for (mode, args) in modes {
            let isolation = mode.split(',').next().unwrap();
            handler.tropa(&["config", "isolation", isolation]).ok();
            let (sent, received, connections) = idle_sync(&handler, &args);
            let want = if isolation == "profile" { 1 } else { contacts };
            assert_eq!(connections, want, "{mode}, {contacts} contacts");
            rows.push(format!(
                "| {contacts} | {mode} | {connections} | {sent} | {received} | {} |",
                sent + received
            ));
        }
    }
    eprintln!("| contacts | isolation, transport | connections | sent | received | total bytes |");
    eprintln!("| --- | --- | --- | --- | --- | --- |");
    for r in rows {
        eprintln!("{r}");
    }
}

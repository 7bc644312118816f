//! What end-to-end receipts cost in a back-and-forth conversation (issue
//! 11): Alice and Bob exchange 10 messages each way through a real relay
//! behind a counting UDP proxy, with real `tropa` processes, and the bytes
//! each side's commands cost are printed (proxy counts, and the figures
//! `tropa sync -v` prints). A measurement, so it is ignored by default; it
//! still checks that every message ends up delivered on both sides.
//!
//! One round: Alice `send bob`, Bob `sync -v`, Bob `send alice`, Alice
//! `sync -v`. After 10 rounds Alice and Bob each `sync -v` once more, so
//! that the last receipt arrives (on a metered profile Alice first turns
//! metered off, which sends the receipt she holds, as the hold's end would).
//!
//! ```text
//! cargo test -p tropa-tests --test receipt_cost -- --ignored --nocapture
//! TROPA_METERED=1 cargo test ...        # both profiles `config metered on`
//! TROPA_BIN_DIR=DIR cargo test ...      # measure DIR/tropa (an older build)
//! ```
//!
//! Figures: docs/benchmarks.md, "Receipts in a conversation".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tropa_tests::udp_proxy::UdpProxy;
use tropa_tests::{Profile, RelayProcess, bin};

const ROUNDS: usize = 10;
/// A 16 KiB envelope's deposit shows as at least this many bytes up.
const ENVELOPE: usize = 16_384;

fn tropa_bin() -> PathBuf {
    std::env::var_os("TROPA_BIN_DIR").map_or_else(|| bin("tropa"), |d| Path::new(&d).join("tropa"))
}

/// Runs `tropa ARGS` on `p` with the binary measured; returns stdout and
/// stderr, panicking unless it exits 0.
fn tropa(p: &Profile, args: &[&str], input: Option<&str>) -> (String, String) {
    let mut cmd = Command::new(tropa_bin());
    cmd.args(args)
        .env("TROPA_HOME", &p.home)
        .env("TROPA_PASSPHRASE", &p.passphrase)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run tropa");
    if let Some(text) = input {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "tropa {args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

fn profile(root: &Path, name: &str, relay: &str) -> Profile {
    let p = Profile {
        home: root.join(name),
        passphrase: format!("plover gasket violin {name}"),
    };
    let args = [
        "init",
        "--name",
        name,
        "--relay",
        relay,
        "--kdf-memory-mib",
        "1",
        "--kdf-passes",
        "1",
    ];
    tropa(&p, &args, None);
    p
}

/// What one side's commands cost.
#[derive(Default)]
struct Cost {
    up: usize,
    down: usize,
    /// Sums of the `bytes: S sent, R received` lines of `sync -v`.
    sync_sent: u64,
    sync_received: u64,
    /// Envelopes deposited by `sync` runs (receipts; texts go by `send`),
    /// from their bytes up.
    receipt_envelopes: usize,
}

struct Meter<'a> {
    proxy: &'a UdpProxy,
}

impl Meter<'_> {
    /// Runs `tropa ARGS` on `p` and adds what it cost on the wire to `cost`.
    fn run(&self, cost: &mut Cost, p: &Profile, args: &[&str], input: Option<&str>) {
        let start = Instant::now();
        let (_, stderr) = tropa(p, args, input);
        let end = Instant::now();
        // Datagrams still in flight when the process exits (its close).
        std::thread::sleep(Duration::from_millis(300));
        let (mut up, mut down) = (0, 0);
        for d in self.proxy.log() {
            if d.at >= start && d.at <= end + Duration::from_millis(250) {
                if d.up {
                    up += d.len;
                } else {
                    down += d.len;
                }
            }
        }
        cost.up += up;
        cost.down += down;
        if args.contains(&"sync") {
            cost.receipt_envelopes += up / ENVELOPE;
            let line = stderr
                .lines()
                .find_map(|l| l.strip_prefix("bytes: "))
                .expect("sync -v prints its bytes");
            let n: Vec<u64> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            cost.sync_sent += n[0];
            cost.sync_received += n[1];
        }
    }
}

fn kb(b: impl Into<u64>) -> String {
    format!("{:.1} KB", b.into() as f64 / 1000.0)
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn ten_messages_each_way() {
    let metered = std::env::var_os("TROPA_METERED").is_some();
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let proxy = UdpProxy::start(relay.address.socket_addr().unwrap());
    let via = tropa_proto::RelayAddress::new(relay.address.fingerprint, proxy.addr).to_string();
    let alice = profile(dir.path(), "alice", &via);
    let bob = profile(dir.path(), "bob", &via);
    let (link, _) = tropa(&alice, &["invite", "--name", "bob"], None);
    tropa(&bob, &["accept", "--name", "alice"], Some(link.trim()));
    tropa(&alice, &["sync"], None);
    if metered {
        for p in [&alice, &bob] {
            tropa(p, &["config", "metered", "on"], None);
        }
    }

    let meter = Meter { proxy: &proxy };
    let (mut a, mut b) = (Cost::default(), Cost::default());
    for round in 1..=ROUNDS {
        let text = format!("alice {round}: still at the station?");
        meter.run(&mut a, &alice, &["send", "bob"], Some(&text));
        meter.run(&mut b, &bob, &["-v", "sync"], None);
        let text = format!("bob {round}: yes, the bus leaves at six");
        meter.run(&mut b, &bob, &["send", "alice"], Some(&text));
        meter.run(&mut a, &alice, &["-v", "sync"], None);
    }
    if metered {
        tropa(&alice, &["config", "metered", "off"], None);
    }
    meter.run(&mut a, &alice, &["-v", "sync"], None);
    meter.run(&mut b, &bob, &["-v", "sync"], None);

    for (p, peer) in [(&alice, "bob"), (&bob, "alice")] {
        let (out, _) = tropa(p, &["read", peer, "--json"], None);
        let msgs: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mine: Vec<_> = msgs.iter().filter(|m| m["direction"] == "out").collect();
        assert_eq!(mine.len(), ROUNDS, "{msgs:?}");
        assert!(
            mine.iter().all(|m| m["status"] == "delivered"),
            "every message delivered: {msgs:?}"
        );
    }

    let bin = tropa_bin();
    eprintln!(
        "{ROUNDS} messages each way, {} ({}):",
        if metered { "metered" } else { "not metered" },
        bin.display()
    );
    for (name, c) in [("alice", &a), ("bob", &b)] {
        eprintln!(
            "  {name}: {} up, {} down on the wire; sync -v: {} sent, {} received; \
             {} receipt envelopes",
            kb(c.up as u64),
            kb(c.down as u64),
            kb(c.sync_sent),
            kb(c.sync_received),
            c.receipt_envelopes
        );
    }
    let receipts = a.receipt_envelopes + b.receipt_envelopes;
    eprintln!(
        "  total: {} up, {} down; {} text envelopes, {receipts} receipt envelopes (+{}%)",
        kb((a.up + b.up) as u64),
        kb((a.down + b.down) as u64),
        2 * ROUNDS,
        receipts * 100 / (2 * ROUNDS)
    );
}

//! The operator's deploy files as shipped: the systemd unit's exposure
//! score (`systemd-analyze security --offline=yes`, when installed; CI
//! installs it), and that a relay serving real clients makes no system call
//! the unit's filter would kill it for (under `strace`, when installed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tropa_tests::{Profile, RelayProcess, alice_and_bob, bin, free_udp_port};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/tropa-relay.service");

/// The score the unit must not exceed. What is left: the Internet address
/// families and PrivateNetwork= (a relay needs the network), an IP allow
/// list with non-localhost entries (a public relay accepts clients from
/// anywhere; the unit drops link-local and multicast only), ProtectClock's
/// read access to the RTC, and RootDirectory= (not verifiable under a
/// running systemd here).
const MAX_EXPOSURE: f64 = 1.0;

#[test]
fn the_systemd_unit_scores_at_most_the_stated_exposure() {
    let Ok(out) = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", UNIT])
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for tropa-relay.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in: {text}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} above {MAX_EXPOSURE}: {text}"
    );
}

/// The system calls the unit's `SystemCallFilter=` lines allow, expanded
/// through systemd's own group definitions (`systemd-analyze
/// syscall-filter`), or `None` when systemd-analyze is not installed.
fn allowed_syscalls() -> Option<BTreeSet<String>> {
    let out = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).unwrap();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('@') {
            current = Some(format!("@{}", name.trim()));
        } else if let Some(cur) = &current {
            let item = line.trim();
            if !item.is_empty() && !item.starts_with('#') {
                groups.entry(cur.clone()).or_default().push(item.to_owned());
            }
        }
    }
    fn expand(name: &str, groups: &BTreeMap<String, Vec<String>>, out: &mut BTreeSet<String>) {
        match groups.get(name) {
            Some(items) => items.iter().for_each(|i| expand(i, groups, out)),
            None if name.starts_with('@') => panic!("unknown syscall group {name}"),
            None => {
                out.insert(name.to_owned());
            }
        }
    }
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let mut allowed = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for value in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (deny, list) = match value.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        for item in list.split_whitespace() {
            expand(item, &groups, if deny { &mut denied } else { &mut allowed });
        }
    }
    assert!(
        !allowed.is_empty(),
        "no SystemCallFilter= allow list in the unit"
    );
    Some(allowed.difference(&denied).cloned().collect())
}

/// System calls named in an `strace -f` log, and every mapping or
/// protection change that asked for memory both writable and executable
/// (what `MemoryDenyWriteExecute=` refuses).
fn traced(log: &Path) -> (BTreeSet<String>, Vec<String>) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut calls = BTreeSet::new();
    let mut wx = Vec::new();
    for line in text.lines() {
        // "PID name(args) = ret", "PID <... name resumed>...", "PID +++ exited".
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
        let Some((name, _)) = rest.split_once('(') else {
            continue;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if matches!(name, "mmap" | "mprotect" | "pkey_mprotect")
            && rest.contains("PROT_WRITE")
            && rest.contains("PROT_EXEC")
        {
            wx.push(line.to_owned());
        }
        calls.insert(name.to_owned());
    }
    (calls, wx)
}

/// The unit kills the relay (SIGSYS) on any system call outside its filter,
/// and `MemoryDenyWriteExecute=` refuses writable-and-executable memory.
/// There is no running systemd here, so this checks the relay against the
/// same rules by tracing it: `init` (what `ExecStartPre=` runs), then `run`
/// serving two real clients that connect and exchange a message, with the
/// metrics endpoint scraped, until SIGTERM. Fails if the unit's filter or
/// the relay changes so that a call the relay makes is no longer allowed.
#[test]
fn a_traced_relay_makes_only_system_calls_the_unit_allows() {
    let Some(allowed) = allowed_syscalls() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    // Where ptrace is not allowed (some containers), strace cannot trace.
    if !Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: strace is not installed or cannot trace here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let init_log = dir.path().join("init.strace");
    let run_log = dir.path().join("run.strace");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&init_log)
        .arg(bin("tropa-relay"))
        .args(["init", "--data"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_udp_port())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Prepended: a key set twice is refused, and relay.toml has it commented out.
    let cfg = data.join("relay.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let metrics = format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n");
    std::fs::write(&cfg, metrics + &text).unwrap();
    let log = run_log.to_str().unwrap();
    let relay = RelayProcess::start_under(&data, &[], &["strace", "-f", "-qq", "-o", log]);
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    bob.tropa_input(&["send", "alice"], "under the unit's filter\n")
        .ok();
    let got = alice.tropa(&["sync"]).ok();
    assert!(got.stdout.contains("1 new"), "{got:?}");
    scrape(metrics_port);
    let _keep: (&Profile, &Profile) = (&alice, &bob);
    // SIGTERM to the relay itself (strace's child), then wait for strace.
    let strace_pid = relay.child.id().to_string();
    let st = Command::new("pkill")
        .args(["-TERM", "-P", &strace_pid])
        .status()
        .unwrap();
    assert!(st.success(), "no relay under strace {strace_pid}");
    let (status, _) = relay.wait_for_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "relay did not stop cleanly: {status:?}"
    );

    let (mut calls, mut wx) = traced(&init_log);
    let (run_calls, run_wx) = traced(&run_log);
    calls.extend(run_calls);
    wx.extend(run_wx);
    // execve is what strace itself does to start the relay; systemd execs
    // before the filter applies.
    calls.remove("execve");
    assert!(
        calls.contains("sendmsg") || calls.contains("sendmmsg"),
        "trace too thin: {calls:?}"
    );
    let outside: Vec<_> = calls.difference(&allowed).collect();
    assert!(
        outside.is_empty(),
        "the unit's filter would kill the relay on {outside:?}"
    );
    assert!(wx.is_empty(), "writable+executable memory: {wx:?}");
}

/// One GET of the metrics endpoint, checked for the build info line.
fn scrape(port: u16) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.contains("tropa_relay_build_info"), "{body}");
}

//! The network the `net_faults` scenarios run in: namespaces joined by
//! veth pairs, faults applied with `ip`, `tc` and `nft`, and `tropa`
//! processes (a `chat` with its output timestamped) run inside them.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tropa_tests::{Profile, Run, bin};

/// The relay's address, on the loopback device of its namespace so it
/// stays reachable from either client link while the other one is cut.
pub(crate) const RELAY_IP: &str = "10.231.0.1";
/// Metrics port inside the relay's namespace (its own loopback).
pub(crate) const METRICS: &str = "127.0.0.1:9464";

/// Runs `program ARGS`; its stdout, or why it failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// `ip` inside namespace `ns`, panicking on failure (set-up is done).
#[track_caller]
pub(crate) fn ip_in(ns: &str, args: &[&str]) {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all).unwrap();
}

/// Runs `program ARGS` inside `ns`.
pub(crate) fn exec_in(ns: &str, program: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    ip(&all)
}

/// Three namespaces: `r` (the relay) with a veth pair to each of `a` and
/// `b` (the clients). Deleted on drop, also when a test panics.
pub(crate) struct Net {
    pub(crate) r: String,
    pub(crate) a: String,
    pub(crate) b: String,
    made: Vec<String>,
}

impl Net {
    /// Builds the topology, or says why it cannot.
    ///
    /// R: lo 10.231.0.1/32, ra 10.231.1.1/24, rb 10.231.2.1/24
    /// A: eth0 10.231.1.2/24, default via 10.231.1.1
    /// B: eth0 10.231.2.2/24, default via 10.231.2.1
    pub(crate) fn build(scenario: &str) -> Result<Net, String> {
        remove_stale();
        let base = format!("tnf-{}-{scenario}", std::process::id());
        let mut net = Net {
            r: format!("{base}-r"),
            a: format!("{base}-a"),
            b: format!("{base}-b"),
            made: Vec::new(),
        };
        for ns in [net.r.clone(), net.a.clone(), net.b.clone()] {
            ip(&["netns", "add", &ns])?;
            net.made.push(ns);
        }
        for (client, dev, n) in [(net.a.clone(), "ra", 1), (net.b.clone(), "rb", 2)] {
            let n = n.to_string();
            // Created straight inside the namespaces: no name in ours.
            ip(&[
                "link", "add", dev, "netns", &net.r, "type", "veth", "peer", "name", "eth0",
                "netns", &client,
            ])?;
            // Deleting the primary address keeps a secondary one (scenario 3).
            exec_in(
                &client,
                "sysctl",
                &["-qw", "net.ipv4.conf.all.promote_secondaries=1"],
            )?;
            let gw = format!("10.231.{n}.1");
            ip(&["-n", &net.r, "addr", "add", &format!("{gw}/24"), "dev", dev])?;
            ip(&["-n", &net.r, "link", "set", dev, "up"])?;
            let me = format!("10.231.{n}.2/24");
            ip(&["-n", &client, "addr", "add", &me, "dev", "eth0"])?;
            ip(&["-n", &client, "link", "set", "eth0", "up"])?;
            ip(&["-n", &client, "link", "set", "lo", "up"])?;
            ip(&["-n", &client, "route", "add", "default", "via", &gw])?;
        }
        ip(&["-n", &net.r, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &net.r,
            "addr",
            "add",
            &format!("{RELAY_IP}/32"),
            "dev",
            "lo",
        ])?;
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.made {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Deletes namespaces left by an earlier test process that was killed
/// before its guards ran (names carry the process id).
fn remove_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name.strip_prefix("tnf-").and_then(|s| s.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The topology, or `None` after printing why the test is skipped.
pub(crate) fn net_or_skip(scenario: &str) -> Option<Net> {
    match Net::build(scenario) {
        Ok(n) => Some(n),
        Err(why) => {
            eprintln!("skipped: cannot create network namespaces: {why}");
            None
        }
    }
}

/// `tropa ARGS` for `p`, inside `ns` (as `Profile::tropa` builds it).
fn tropa_cmd(ns: &str, p: &Profile, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(bin("tropa"))
        .args(args)
        .env("TROPA_HOME", &p.home)
        .env("TROPA_PASSPHRASE", &p.passphrase)
        .env_remove("TROPA_NEW_PASSPHRASE");
    c
}

/// Runs `tropa ARGS` for `p` inside `ns`.
pub(crate) fn tropa_in(ns: &str, p: &Profile, args: &[&str]) -> Run {
    let out = tropa_cmd(ns, p, args)
        .stdin(Stdio::null())
        .output()
        .expect("run tropa");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The relay's counter `name` (e.g. `connections`), read from its metrics
/// inside its namespace; `None` without curl.
pub(crate) fn relay_counter(net: &Net, name: &str) -> Option<u64> {
    let body = exec_in(
        &net.r,
        "curl",
        &[
            "-s",
            "--max-time",
            "5",
            &format!("http://{METRICS}/metrics"),
        ],
    )
    .ok()?;
    let key = format!("tropa_relay_{name}_total ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

/// A line a chat printed: when, whether on stdout, and the text.
pub(crate) type Line = (Instant, bool, String);

/// `tropa chat ALIAS` running in a namespace; its output lines timestamped
/// as they come. Killed on drop.
pub(crate) struct Chat {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Line>,
    pub(crate) log: Vec<Line>,
    pub(crate) sent: usize,
}

impl Chat {
    pub(crate) fn start(ns: &str, p: &Profile, alias: &str) -> Chat {
        let mut child = tropa_cmd(ns, p, &["chat", alias])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tropa chat");
        let (tx, rx) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for (pipe, is_out) in [(out, true), (err, false)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send((Instant::now(), is_out, l));
                }
            });
        }
        Chat {
            stdin: child.stdin.take(),
            child,
            rx,
            log: Vec::new(),
            sent: 0,
        }
    }

    /// Types `text`; returns its number in this chat and when it was typed.
    pub(crate) fn say(&mut self, text: &str) -> Sent {
        let stdin = self.stdin.as_mut().expect("chat open");
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
        self.sent += 1;
        Sent {
            text: text.to_owned(),
            number: self.sent,
            at: Instant::now(),
        }
    }

    /// Collects lines until `done(log)` or `deadline`; whether `done`.
    pub(crate) fn wait(&mut self, deadline: Instant, done: impl Fn(&[Line]) -> bool) -> bool {
        loop {
            if done(&self.log) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => self.log.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => return done(&self.log),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                    if Instant::now() >= deadline {
                        return done(&self.log);
                    }
                }
            }
        }
    }

    /// Collects what arrived so far without waiting.
    pub(crate) fn pump(&mut self) {
        while let Ok(l) = self.rx.try_recv() {
            self.log.push(l);
        }
    }

    /// When `text` was shown as a message, once per showing.
    pub(crate) fn shown(&self, text: &str) -> Vec<Instant> {
        shown(&self.log, text)
    }

    /// Status lines (stderr) containing `what`.
    pub(crate) fn status_count(&self, what: &str) -> usize {
        self.log
            .iter()
            .filter(|(_, out, l)| !out && l.contains(what))
            .count()
    }

    /// Leaves the chat (end of input) and waits for it to exit.
    pub(crate) fn close(mut self) -> Vec<Line> {
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "chat did not exit on end of input");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The reader threads end with the pipes.
        let end = Instant::now() + Duration::from_secs(2);
        self.wait(end, |_| false);
        let st = self.child.wait().unwrap();
        assert!(st.success(), "chat failed: {st:?} {:?}", self.log);
        std::mem::take(&mut self.log)
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn shown(log: &[Line], text: &str) -> Vec<Instant> {
    log.iter()
        .filter(|(_, out, l)| *out && l.trim() == text)
        .map(|(t, _, _)| *t)
        .collect()
}

/// A line typed in a chat.
pub(crate) struct Sent {
    pub(crate) text: String,
    pub(crate) number: usize,
    pub(crate) at: Instant,
}

/// How the links were made lossy.
pub(crate) enum Loss {
    /// `tc netem`: loss and delay.
    Netem,
    /// An nftables rule with a counter: loss only.
    Nft,
}

/// The nftables table the tests add inside client namespaces.
pub(crate) const TABLE: &str = "tropa_net_faults";

/// Makes both clients' links drop 30 % of packets each way: with netem
/// (adding 300 ms of delay each way) where the kernel has it, else with an
/// nftables rule (no delay: nftables cannot hold packets back).
pub(crate) fn make_lossy(net: &Net) -> Result<(Loss, String), String> {
    let netem = |ns: &str, dev: &str| {
        let args = ["-n", ns, "qdisc", "add", "dev", dev, "root", "netem"];
        run(
            "tc",
            &[&args[..], &["loss", "30%", "delay", "300ms"]].concat(),
        )
    };
    let why = match netem(&net.a, "eth0") {
        Ok(_) => {
            for (ns, dev) in [(&net.b, "eth0"), (&net.r, "ra"), (&net.r, "rb")] {
                netem(ns, dev)?;
            }
            let how = "netem: 30 % loss and 300 ms delay each way on both client links";
            return Ok((Loss::Netem, how.into()));
        }
        Err(why) => why,
    };
    for ns in [&net.a, &net.b] {
        exec_in(ns, "nft", &["add", "table", "inet", TABLE])?;
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            let spec = format!("{{ type filter hook {hook} priority 0; policy accept; }}");
            exec_in(ns, "nft", &["add", "chain", "inet", TABLE, chain, &spec])?;
            let rule = "meta l4proto udp numgen random mod 100 < 30 counter drop";
            let mut args = vec!["add", "rule", "inet", TABLE, chain];
            args.extend(rule.split(' '));
            exec_in(ns, "nft", &args)?;
        }
    }
    let how = format!(
        "nftables: 30 % of UDP packets dropped each way on both client links; \
         delay NOT emulated (netem unavailable: {why})"
    );
    Ok((Loss::Nft, how))
}

/// Makes both clients' namespaces drop every UDP packet, in and out, as
/// networks that block UDP (and so QUIC) do; TCP still passes.
pub(crate) fn block_udp(net: &Net) -> Result<(), String> {
    for ns in [&net.a, &net.b] {
        exec_in(ns, "nft", &["add", "table", "inet", TABLE])?;
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            let spec = format!("{{ type filter hook {hook} priority 0; policy accept; }}");
            exec_in(ns, "nft", &["add", "chain", "inet", TABLE, chain, &spec])?;
            let mut args = vec!["add", "rule", "inet", TABLE, chain];
            args.extend("meta l4proto udp counter drop".split(' '));
            exec_in(ns, "nft", &args)?;
        }
    }
    Ok(())
}

/// Packets the nftables rules dropped in the client namespaces.
pub(crate) fn nft_dropped(net: &Net) -> u64 {
    let mut n = 0;
    for ns in [&net.a, &net.b] {
        let text = exec_in(ns, "nft", &["list", "table", "inet", TABLE]).unwrap();
        for l in text.lines() {
            let mut words = l.split_whitespace().skip_while(|w| *w != "packets");
            n += words
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    n
}

/// Gives the client in `ns` (subnet 10.231.`n`.0/24) a new address and
/// removes the old one, as a phone moving to another network does.
pub(crate) fn move_address(ns: &str, n: u8, to: u8) {
    let old = format!("10.231.{n}.2/24");
    ip_in(
        ns,
        &["addr", "add", &format!("10.231.{n}.{to}/24"), "dev", "eth0"],
    );
    ip_in(ns, &["addr", "del", &old, "dev", "eth0"]);
    ip_in(
        ns,
        &[
            "route",
            "replace",
            "default",
            "via",
            &format!("10.231.{n}.1"),
        ],
    );
}

//! Kill loops (issue 14): real `tropa-relay` and `tropa` processes killed
//! with SIGKILL at random moments while four senders and four receivers
//! run through the real CLI.
//!
//! * The relay, on a fixed port, is killed and restarted on the same data
//!   directory `TROPA_KILL_CYCLES` times (default 10). After each restart it
//!   answers with the same address; a raw depositor's every `Accepted`
//!   envelope is still there at the end; every message queued by a sender
//!   arrives exactly once and is shown delivered.
//! * `tropa send` and `tropa sync` processes are killed mid-run
//!   `TROPA_CLIENT_KILL_CYCLES` times (default 10). After each kill the
//!   profile opens at once (the next command succeeds), and at the end every
//!   message the sender's profile holds arrives exactly once, none that any
//!   finished `send` queued is missing, none is still queued, and each is
//!   shown delivered (a receiver killed between storing a text and queueing
//!   its receipt lost the receipt until the receipts owed were stored with
//!   the text; this loop found it).
//!
//! The seed (printed; `TROPA_KILL_SEED` sets it) fixes the kill schedule,
//! not the processes' timing, so a failure replays only approximately.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use tropa_proto::{ENVELOPE_SIZE, RelayAddress};
use tropa_relay_client::{Event, RelayClient};
use tropa_tests::{
    Profile, RelayProcess, SecuredMailbox, bin, connect_profiles, relay_on_fixed_port,
};

const PAIRS: usize = 4;
/// Messages one sender sends at most (bounds a loop whose length is time).
const MAX_PER_SENDER: u32 = 400;
/// Mailboxes the raw depositor fills in turn, and deposits at most: each
/// stays below the relay's default `mailbox_quota` (1000).
const RAW_MAILBOXES: u64 = 4;
const MAX_RAW: u64 = 900 * RAW_MAILBOXES;
/// Rounds of syncs after the kills for everything to settle.
const SETTLE_ROUNDS: u32 = 15;

/// Both loops start 8 workers and a relay each: run them one at a time so
/// one's load does not distort the other's timing on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    let fresh = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    env_u64("TROPA_KILL_SEED", fresh % 1_000_000_007)
}

/// Profiles s0..s3 (senders, calling their peer "r") and r0..r3
/// (receivers, calling theirs "s"), connected pairwise.
fn pairs(root: &std::path::Path, relay: &RelayAddress) -> Vec<(Profile, Profile)> {
    (0..PAIRS)
        .map(|i| {
            let s = Profile::init(root, &format!("s{i}"), relay);
            let r = Profile::init(root, &format!("r{i}"), relay);
            connect_profiles(&s, "r", &r, "s");
            (s, r)
        })
        .collect()
}

/// One worker's current child, where the killer can reach it. The worker
/// reaps it with `try_wait` under the lock, so the killer never signals a
/// PID that was already reaped (and perhaps reused).
#[derive(Default)]
struct Slot {
    child: Mutex<Option<Child>>,
    spawned: AtomicU32,
    /// Wall time of this worker's last command that was not killed, ms.
    last_ms: AtomicU64,
    /// The longest of them, ms.
    longest_ms: AtomicU64,
}

struct Shared {
    stop: AtomicBool,
    slots: Vec<Slot>,
    kills_landed: AtomicU32,
}

/// Sets the flag when dropped, also while a panic unwinds: the threads
/// that watch it then end, and the scope waiting for them returns.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

enum Ended {
    Code(i32, String),
    Killed(Duration),
}

/// Runs `tropa ARGS` as `Profile::run` does (same environment), in `slot`.
fn run_in(slot: &Slot, tropa: &PathBuf, p: &Profile, args: &[&str]) -> Ended {
    let child = Command::new(tropa)
        .args(args)
        .env("TROPA_HOME", &p.home)
        .env("TROPA_PASSPHRASE", &p.passphrase)
        .env_remove("TROPA_NEW_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tropa");
    let began = Instant::now();
    *slot.child.lock().unwrap() = Some(child);
    slot.spawned.fetch_add(1, SeqCst);
    loop {
        let mut g = slot.child.lock().unwrap();
        if let Some(status) = g.as_mut().unwrap().try_wait().unwrap() {
            let child = g.take().unwrap();
            drop(g);
            // The outputs are a line or two: the pipes never fill.
            let out = child.wait_with_output().unwrap();
            if status.signal() == Some(9) {
                return Ended::Killed(began.elapsed());
            }
            let ms = began.elapsed().as_millis() as u64;
            slot.last_ms.store(ms, SeqCst);
            slot.longest_ms.fetch_max(ms, SeqCst);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return Ended::Code(status.code().unwrap_or(-1), text);
        }
        drop(g);
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// What one worker did.
#[derive(Default)]
struct Log {
    /// `send` exited 0 (the relay has it) or 5 (queued).
    sent: Vec<String>,
    queued: u32,
    /// `send` killed: the message may or may not be queued.
    killed_sends: Vec<String>,
    commands: u32,
    network_errors: u32,
    /// Time from spawn to the kill, for each kill that landed.
    killed_after: Vec<Duration>,
    failures: Vec<String>,
}

impl Log {
    /// Records a command that ended by itself.
    fn ended(&mut self, who: &str, args: &[&str], code: i32, out: &str) {
        self.commands += 1;
        if out.contains("DROPPED") || out.contains("corrupt") {
            self.failures
                .push(format!("{who} {args:?}: exit {code}: {out}"));
        }
        match code {
            0 => {}
            // The relay is down or was killed mid-request.
            5 => self.network_errors += 1,
            _ => self
                .failures
                .push(format!("{who} {args:?}: exit {code}: {out}")),
        }
    }

    /// After a kill: the profile must open at once, intact.
    fn killed(&mut self, who: &str, p: &Profile, after: Duration, shared: &Shared) {
        self.killed_after.push(after);
        shared.kills_landed.fetch_add(1, SeqCst);
        let r = p.tropa(&["contacts", "--json"]);
        let ok = r.code == 0
            && r.stdout.contains("\"state\":\"established\"")
            && r.stdout.contains("\"dropped\":0");
        if !ok {
            self.failures.push(format!(
                "{who} after kill -9: profile did not open intact: {r:?}"
            ));
        }
    }
}

fn sender(shared: &Shared, i: usize, p: &Profile, tropa: &PathBuf) -> Log {
    let slot = &shared.slots[i];
    let who = format!("s{i}");
    let mut log = Log::default();
    let mut k = 0;
    while !shared.stop.load(SeqCst) && k < MAX_PER_SENDER {
        let text = format!("pair {i} message {k}");
        k += 1;
        let args = ["send", "r", &text, "--timeout", "2"];
        match run_in(slot, tropa, p, &args) {
            Ended::Code(code, out) => {
                log.ended(&who, &args, code, &out);
                if code == 0 || code == 5 {
                    log.sent.push(text);
                    log.queued += u32::from(code == 5);
                }
            }
            Ended::Killed(after) => {
                log.killed_sends.push(text);
                log.killed(&who, p, after, shared);
            }
        }
        // Now and then a sync: queued messages go out, receipts come in.
        if k % 4 == 0 && !shared.stop.load(SeqCst) {
            match run_in(slot, tropa, p, &["sync"]) {
                Ended::Code(code, out) => log.ended(&who, &["sync"], code, &out),
                Ended::Killed(after) => log.killed(&who, p, after, shared),
            }
        }
    }
    log
}

fn receiver(shared: &Shared, i: usize, p: &Profile, tropa: &PathBuf) -> Log {
    let slot = &shared.slots[PAIRS + i];
    let who = format!("r{i}");
    let mut log = Log::default();
    // Bounded by time (the stop flag) and, as a backstop, by count.
    for _ in 0..10_000 {
        if shared.stop.load(SeqCst) {
            break;
        }
        match run_in(slot, tropa, p, &["sync"]) {
            Ended::Code(code, out) => log.ended(&who, &["sync"], code, &out),
            Ended::Killed(after) => log.killed(&who, p, after, shared),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    log
}

/// Runs the 8 workers on `pairs` while `body` kills things; returns their
/// logs (senders first).
fn with_workers(
    pairs: &[(Profile, Profile)],
    body: impl FnOnce(&Shared),
) -> (Vec<Log>, Arc<Shared>) {
    let tropa = bin("tropa");
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        slots: (0..2 * PAIRS).map(|_| Slot::default()).collect(),
        kills_landed: AtomicU32::new(0),
    });
    let logs = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (i, (s, r)) in pairs.iter().enumerate() {
            let (sh, t) = (&*shared, &tropa);
            handles.push(scope.spawn(move || sender(sh, i, s, t)));
            handles.push(scope.spawn(move || receiver(sh, i, r, t)));
        }
        let stop = StopOnDrop(&shared.stop);
        body(&shared);
        drop(stop);
        let mut logs: Vec<Log> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Spawned interleaved (s0, r0, s1, ...): senders first.
        let receivers: Vec<Log> = (0..PAIRS).map(|j| logs.remove(j + 1)).collect();
        logs.extend(receivers);
        logs
    });
    (logs, shared)
}

fn longest(shared: &Shared) -> u64 {
    shared
        .slots
        .iter()
        .map(|s| s.longest_ms.load(SeqCst))
        .max()
        .unwrap_or(0)
}

fn conversation(p: &Profile, alias: &str) -> Vec<(String, String, String)> {
    p.read_json(Some(alias))
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap().to_owned();
            (s("direction"), s("text"), s("status"))
        })
        .collect()
}

/// Syncs every profile (relay up, no kills) until each sender's messages
/// are all delivered, or (`receipts_may_be_lost`) until a round changes no
/// status and none is queued; returns the rounds it took.
fn settle(pairs: &[(Profile, Profile)]) -> u32 {
    for round in 1..=SETTLE_ROUNDS {
        let statuses: Vec<Vec<String>> = std::thread::scope(|scope| {
            let hs: Vec<_> = pairs
                .iter()
                .map(|(s, r)| {
                    scope.spawn(move || {
                        r.tropa(&["sync"]).ok();
                        s.tropa(&["sync"]).ok();
                        conversation(s, "r").into_iter().map(|m| m.2).collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let all = || statuses.iter().flatten();
        if all().all(|st| st == "delivered") {
            return round;
        }
    }
    SETTLE_ROUNDS
}

/// Every message in a sender's profile arrived exactly once, is shown
/// delivered, and every `send` that finished is among them.
fn check_exactly_once(pairs: &[(Profile, Profile)], logs: &[Log]) -> (usize, usize) {
    let mut problems: Vec<String> = logs.iter().flat_map(|l| l.failures.clone()).collect();
    let (mut total, mut from_killed) = (0, 0);
    for (i, (s, r)) in pairs.iter().enumerate() {
        let out = conversation(s, "r");
        let got = conversation(r, "s");
        let mut count: HashMap<&str, i32> = HashMap::new();
        for m in &got {
            assert_eq!(m.0, "in", "receivers send no texts: {m:?}");
            *count.entry(&m.1).or_default() += 1;
        }
        let mut held: HashMap<&str, i32> = HashMap::new();
        for m in &out {
            *held.entry(&m.1).or_default() += 1;
            if m.2 != "delivered" {
                problems.push(format!("s{i}: {:?} is {} at the end", m.1, m.2));
            }
            match count.get(m.1.as_str()) {
                Some(1) => {}
                n => problems.push(format!("r{i} has {:?} {n:?} times", m.1)),
            }
        }
        for (t, n) in &held {
            if *n != 1 {
                problems.push(format!("s{i} holds {t:?} {n} times"));
            }
        }
        for t in count.keys() {
            if !held.contains_key(t) {
                problems.push(format!("r{i} has {t:?}, which s{i} never sent"));
            }
        }
        for t in &logs[i].sent {
            if !held.contains_key(t.as_str()) {
                problems.push(format!("s{i}: {t:?} was queued, then lost"));
            }
        }
        total += out.len();
        from_killed += logs[i]
            .killed_sends
            .iter()
            .filter(|t| held.contains_key(t.as_str()))
            .count();
    }
    assert!(
        problems.is_empty(),
        "{} problems: {problems:#?}",
        problems.len()
    );
    (total, from_killed)
}

fn envelope(n: u64) -> Bytes {
    let mut b = vec![0x5a; ENVELOPE_SIZE];
    b[..8].copy_from_slice(&n.to_le_bytes());
    Bytes::from(b)
}

/// What the raw depositor saw: deposits answered `Accepted`, and those
/// whose answer never came (the relay died mid-request).
#[derive(Default)]
struct Raw {
    accepted: Vec<u64>,
    unknown: Vec<u64>,
    refused: Vec<String>,
}

/// Deposits numbered envelopes into `mbs` in turn until `stop`, reconnecting after
/// every failure.
fn raw_depositor(
    address: &RelayAddress,
    mbs: &[SecuredMailbox],
    stop: &AtomicBool,
    in_flight: &AtomicBool,
    raw: &Mutex<Raw>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn: Option<RelayClient> = None;
        let mut n = 0;
        while !stop.load(SeqCst) && n < MAX_RAW {
            let Some(c) = conn.as_ref() else {
                let limit = Duration::from_secs(2);
                if let Ok(Ok(c)) = tokio::time::timeout(limit, RelayClient::connect(address)).await
                {
                    conn = Some(c);
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            };
            in_flight.store(true, SeqCst);
            let mb = &mbs[(n % RAW_MAILBOXES) as usize];
            let fut = c.deposit(&mb.ids.sender_id, envelope(n), Some(&mb.sender));
            let r = tokio::time::timeout(Duration::from_secs(2), fut).await;
            in_flight.store(false, SeqCst);
            match r {
                Ok(Ok(())) => raw.lock().unwrap().accepted.push(n),
                Ok(Err(e)) if e.code().is_some() => {
                    raw.lock().unwrap().refused.push(format!("{n}: {e}"));
                }
                _ => {
                    raw.lock().unwrap().unknown.push(n);
                    conn = None;
                }
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
}

/// Everything stored in `mb`, read until the relay says Idle (everything
/// stored was pushed). Nothing is acked: the relay pushes without waiting for
/// acks, and a burst of acks would meet its rate limit.
async fn drain(address: &RelayAddress, mb: &SecuredMailbox) -> Vec<u64> {
    let c = RelayClient::connect(address).await.unwrap();
    let mut sub = c.subscribe(&mb.auth, &mb.ids.recipient_id).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..=MAX_RAW {
        let ev = tokio::time::timeout(Duration::from_secs(10), sub.next_event())
            .await
            .expect("an event within 10 s")
            .unwrap();
        match ev {
            Some(Event::Delivery(d)) => {
                let plain = d
                    .open(&mb.dh, &mb.ids.relay_dh_pub, &mb.ids.recipient_id)
                    .unwrap();
                got.push(u64::from_le_bytes(plain[..8].try_into().unwrap()));
            }
            Some(Event::Idle) => break,
            None => panic!("the relay ended the subscription"),
        }
    }
    got
}

#[test]
fn relay_killed_at_random_moments_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let cycles = env_u64("TROPA_KILL_CYCLES", 10);
    let seed = seed();
    eprintln!("relay kill loop: {cycles} cycles, seed {seed} (TROPA_KILL_SEED)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    // An Option so the loop can kill (consume) and replace it.
    let mut relay = Some(relay_on_fixed_port(&data));
    let address = relay.as_ref().unwrap().address.clone();
    let pairs = pairs(dir.path(), &address);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mbs = rt.block_on(async {
        let c = RelayClient::connect(&address).await.unwrap();
        let mut mbs = Vec::new();
        for _ in 0..RAW_MAILBOXES {
            mbs.push(SecuredMailbox::create(&c).await);
        }
        mbs
    });
    let raw = Mutex::new(Raw::default());
    let (raw_stop, raw_busy) = (AtomicBool::new(false), AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(30 + 3 * cycles);
    let (mut done, mut busy_hit, mut raw_hit) = (0, 0, 0);
    // From the restart to the relay answering a new connection.
    let mut restarts: Vec<Duration> = Vec::new();
    let loop_began = Instant::now();
    // The loop ends when its commands in flight end: this is the kill phase.
    let mut kill_phase = Duration::ZERO;
    let (logs, shared) = std::thread::scope(|scope| {
        scope.spawn(|| raw_depositor(&address, &mbs, &raw_stop, &raw_busy, &raw));
        let _stop = StopOnDrop(&raw_stop);
        with_workers(&pairs, |shared| {
            while done < cycles && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(rng.random_range(50..=500)));
                busy_hit += shared
                    .slots
                    .iter()
                    .filter(|s| s.child.lock().unwrap().is_some())
                    .count();
                raw_hit += u32::from(raw_busy.load(SeqCst));
                relay.take().unwrap().kill9();
                std::thread::sleep(Duration::from_millis(rng.random_range(0..=200)));
                // `start` fails unless the store opens and the relay prints
                // its address; it must also answer, with the same key.
                let began = Instant::now();
                let restarted = RelayProcess::start(&data);
                assert_eq!(restarted.address.to_string(), address.to_string());
                relay = Some(restarted);
                rt.block_on(async {
                    let c = tokio::time::timeout(
                        Duration::from_secs(5),
                        RelayClient::connect(&address),
                    )
                    .await;
                    assert!(
                        matches!(c, Ok(Ok(_))),
                        "relay does not answer after restart"
                    );
                });
                restarts.push(began.elapsed());
                done += 1;
            }
            kill_phase = loop_began.elapsed();
        })
    });
    let loop_time = loop_began.elapsed();
    let rounds = settle(&pairs);
    let (messages, _) = check_exactly_once(&pairs, &logs);

    let raw = raw.into_inner().unwrap();
    let mut got = Vec::new();
    for mb in &mbs {
        got.extend(rt.block_on(drain(&address, mb)));
    }
    let mut seen = HashMap::new();
    for n in &got {
        *seen.entry(*n).or_insert(0) += 1;
    }
    let lost: Vec<_> = raw
        .accepted
        .iter()
        .filter(|n| !seen.contains_key(n))
        .collect();
    assert!(lost.is_empty(), "accepted, then lost by a kill: {lost:?}");
    assert!(seen.values().all(|&c| c == 1), "delivered twice: {got:?}");
    assert!(
        got.iter()
            .all(|n| raw.accepted.contains(n) || raw.unknown.contains(n)),
        "delivered an envelope never deposited: {got:?}"
    );
    assert!(raw.refused.is_empty(), "refused: {:?}", raw.refused);
    let stored_unknown = raw.unknown.iter().filter(|n| seen.contains_key(n)).count();

    let sum = |f: fn(&Log) -> u32| logs.iter().map(f).sum::<u32>();
    let restart_max = restarts.iter().max().copied().unwrap_or_default();
    let restart_mean = restarts.iter().sum::<Duration>() / u32::try_from(done.max(1)).unwrap();
    eprintln!(
        "relay kill loop: {done}/{cycles} cycles in {:.1} s (setup {:.1} s, kills {:.1} s, \
         loop {:.1} s, settled in {rounds} rounds); longest command {} ms; restart to answering: mean {} ms, max {} ms; {messages} \
         messages ({} queued while down), {} commands ({} failed on the network), \
         {busy_hit} commands running at a kill; raw deposits: {} accepted, all kept; {} \
         unanswered ({stored_unknown} of them stored); kills with a raw deposit in flight: \
         {raw_hit}",
        started.elapsed().as_secs_f64(),
        (loop_began - started).as_secs_f64(),
        kill_phase.as_secs_f64(),
        loop_time.as_secs_f64(),
        longest(&shared),
        restart_mean.as_millis(),
        restart_max.as_millis(),
        sum(|l| l.queued),
        sum(|l| l.commands),
        sum(|l| l.network_errors),
        raw.accepted.len(),
        raw.unknown.len(),
    );
    assert!(done > 0, "no cycle ran before the deadline");
}

#[test]
fn clients_killed_mid_run_keep_their_profiles_and_every_message() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let kills = env_u64("TROPA_CLIENT_KILL_CYCLES", 10) as u32;
    let seed = seed();
    eprintln!("client kill loop: {kills} kills, seed {seed} (TROPA_KILL_SEED)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let pairs = pairs(dir.path(), &relay.address);
    let deadline = Instant::now() + Duration::from_secs(30 + 2 * u64::from(kills));
    let mut attempts = 0;
    let loop_began = Instant::now();
    let (logs, shared) = with_workers(&pairs, |shared| {
        while shared.kills_landed.load(SeqCst) < kills
            && attempts < 10 * kills
            && Instant::now() < deadline
        {
            attempts += 1;
            let slot = &shared.slots[rng.random_range(0..2 * PAIRS)];
            // Aim at a command that has just started, at a random point of
            // a typical run of this worker's commands.
            let spawned = slot.spawned.load(SeqCst);
            let wait_until = Instant::now() + Duration::from_secs(5);
            while slot.spawned.load(SeqCst) == spawned && Instant::now() < wait_until {
                std::thread::sleep(Duration::from_millis(1));
            }
            let typical = slot.last_ms.load(SeqCst).max(20);
            std::thread::sleep(Duration::from_millis(rng.random_range(0..=typical)));
            if let Some(c) = slot.child.lock().unwrap().as_mut()
                && c.try_wait().unwrap().is_none()
            {
                c.kill().unwrap();
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..=100)));
        }
    });
    let loop_time = loop_began.elapsed();
    let rounds = settle(&pairs);
    let (messages, from_killed) = check_exactly_once(&pairs, &logs);
    let landed = shared.kills_landed.load(SeqCst);
    let sum = |f: fn(&Log) -> u32| logs.iter().map(f).sum::<u32>();
    let killed_sends: usize = logs.iter().map(|l| l.killed_sends.len()).sum();
    let mut after: Vec<u128> = logs
        .iter()
        .flat_map(|l| l.killed_after.iter().map(Duration::as_millis))
        .collect();
    after.sort_unstable();
    eprintln!(
        "client kill loop: {landed} kills landed of {attempts} tries ({killed_sends} in send, \
         {} in sync), {:.1} s (setup {:.1} s, loop {:.1} s, settled in {rounds} rounds); {messages} messages \
         ({from_killed} of them from killed sends), {} commands (longest {} ms); ms from spawn to kill: {after:?}",
        landed as usize - killed_sends,
        started.elapsed().as_secs_f64(),
        (loop_began - started).as_secs_f64(),
        loop_time.as_secs_f64(),
        sum(|l| l.commands),
        longest(&shared),
    );
    assert!(
        landed >= kills,
        "only {landed} of {kills} kills landed in time"
    );
}

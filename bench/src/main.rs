//! `tropa-bench`: the relay's load generator.
//!
//! It starts real `tropa-relay` processes on loopback and, alternately in
//! the same run, a raw quinn server with the relay's own TLS and transport
//! settings (`tropa-bench raw-server`, also a separate process), drives both
//! with the same shapes (16 KiB up and 16 KiB down per envelope or request),
//! and prints every figure next to the baseline's as a ratio. Every scenario
//! has a fixed count and duration; the whole run stops by itself.
//!
//! It must never talk to anything but 127.0.0.1, and never print secrets
//! (it has none worth keeping: every key is made up for the run).

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]
#![allow(clippy::print_stderr, reason = "errors end the run with one line")]

mod attack;
mod floor;
mod procs;
mod raw;
mod relay_load;
mod report;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Load generator for tropa-relay, with a raw quinn baseline.
///
/// Build and run (release; about 6 minutes on 2 cores):
///
///   cargo build --release -p tropa-relay -p tropa-bench && target/release/tropa-bench
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Seconds each throughput and latency measurement lasts (after 1 s of
    /// warm-up).
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Rounds of relay-then-raw per throughput scenario (the best of each
    /// counts).
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Connection counts for the throughput scenarios.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    connections: Vec<usize>,
    /// The relay stores to compare in the throughput scenarios (the first
    /// also runs the latency and memory scenarios).
    #[arg(long, value_delimiter = ',', default_value = "redb,sled")]
    stores: Vec<StoreName>,
    /// Envelopes stored beforehand in the "stored" scenario (1,000 per
    /// mailbox; about 16.5 KB of disk each).
    #[arg(long, default_value_t = 250_000)]
    stored: u64,
    /// Subscribed idle connections for the memory scenarios.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    idle: Vec<usize>,
    /// Run only these parts.
    #[arg(long, value_delimiter = ',', default_values = ["throughput", "floor", "mailbox", "latency", "idle", "stored", "attack"])]
    only: Vec<Part>,
    /// Attack intensities for the attack scenario: frames (or streams) per
    /// second per kind of attack, 0 for as fast as the relay answers.
    #[arg(long, value_delimiter = ',', default_value = "200,0")]
    attack_rates: Vec<u64>,
    /// Kinds of attack in the attack scenario [default: all].
    #[arg(long, value_delimiter = ',')]
    attack_kinds: Vec<attack::Kind>,
    /// The tropa-relay binary [default: next to this one].
    #[arg(long)]
    relay: Option<std::path::PathBuf>,
}

/// A relay store (`store` in relay.toml).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StoreName {
    Redb,
    Sled,
}

impl StoreName {
    fn as_str(self) -> &'static str {
        match self {
            StoreName::Redb => "redb",
            StoreName::Sled => "sled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Throughput,
    Floor,
    Mailbox,
    Latency,
    Idle,
    Stored,
    Attack,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant, reason = "parsed once per run")]
enum Command {
    /// (Internal) the raw quinn baseline server: prints its port and
    /// fingerprint, then answers every bi stream's 16 KiB with 16 KiB.
    RawServer,
    /// (Internal) creates a mailbox on the relay at ADDRESS, waits a
    /// second, deposits one envelope and exits: one quiet deposit to watch
    /// the relay's system calls with strace (docs/benchmarks.md).
    Probe {
        /// The relay's address.
        address: tropa_proto::RelayAddress,
    },
    /// (Internal) floods the relay at ADDRESS with hostile clients (see
    /// bench/src/attack.rs), then prints what it sent and what came back,
    /// one line per kind.
    Attack {
        /// The relay's address.
        address: tropa_proto::RelayAddress,
        /// Seconds the attack lasts at most.
        #[arg(long, default_value_t = 20)]
        secs: u64,
        /// Connections at once per flooding kind.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Slowloris connections (up to 1024 streams each).
        #[arg(long, default_value_t = 4)]
        slow: usize,
        /// Frames (or streams) per kind at most.
        #[arg(long, default_value_t = 1_000_000)]
        cap: u64,
        /// Frames (or streams) per second per kind at most (0: no limit).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Valid deposits at most.
        #[arg(long, default_value_t = 1_000_000)]
        deposit_cap: u64,
        /// Only these kinds [default: all].
        #[arg(long, value_delimiter = ',')]
        only: Vec<attack::Kind>,
        /// Hex sender ID of an honest mailbox to aim invalid deposits at.
        #[arg(long, value_parser = attack::mailbox_id)]
        target_sender: Option<[u8; 24]>,
        /// Hex recipient ID of that mailbox, to aim bad signatures at.
        #[arg(long, value_parser = attack::mailbox_id, requires = "target_sender")]
        target_recipient: Option<[u8; 24]>,
        /// Stop early when standard input closes.
        #[arg(long)]
        stop_on_eof: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tropa-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::RawServer) => rt.block_on(raw::serve()),
        Some(Command::Probe { address }) => rt.block_on(relay_load::probe(&address)),
        Some(Command::Attack {
            address,
            secs,
            workers,
            slow,
            cap,
            rate,
            deposit_cap,
            only,
            target_sender,
            target_recipient,
            stop_on_eof,
        }) => {
            let plan = attack::Plan {
                address,
                duration: Duration::from_secs(secs),
                workers,
                slow,
                cap,
                rate,
                deposit_cap,
                kinds: only,
                target: target_sender.map(|sender_id| attack::Target {
                    sender_id,
                    recipient_id: target_recipient.unwrap_or([0; 24]),
                }),
            };
            let stop = async move {
                if stop_on_eof {
                    let _ = tokio::task::spawn_blocking(|| {
                        std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
                    })
                    .await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            print!("{}", rt.block_on(attack::run(plan, stop)));
            Ok(())
        }
        None => rt.block_on(run(&cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tropa-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A UDP socket on 127.0.0.1 with the relay's receive buffer
/// ([`tropa_relay::tls::UDP_RECEIVE_BUFFER`]), so that neither side of a
/// burst of handshakes drops packets the other sent.
pub fn udp_socket() -> Result<std::net::UdpSocket, BenchError> {
    let socket = std::net::UdpSocket::bind(("127.0.0.1", 0))?;
    tropa_relay::tls::tune_udp_socket(&socket)?;
    Ok(socket)
}

/// A client endpoint for many connections on one [`udp_socket`].
pub fn shared_client_endpoint() -> Result<quinn::Endpoint, BenchError> {
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        udp_socket()?,
        Arc::new(quinn::TokioRuntime),
    )?)
}

/// An error that ends the run, as one line.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Handshakes in progress at once (16: the bursts of a real reconnect
/// storm, without making the set-up of 10,000 connections slow).
pub const CONNECTING: usize = 16;

/// Runs `n` connection set-ups made by `start`, [`CONNECTING`] at a time.
/// A set-up that fails is retried, at most `n / 100 + 3` times in all,
/// and the retries are reported on stderr: at thousands of connections a
/// few QUIC handshakes in a run never complete (see docs/benchmarks.md),
/// and the figures are about the connections, not the stragglers.
pub async fn connect_all<T, F>(n: usize, mut start: impl FnMut() -> F) -> Result<Vec<T>, BenchError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, BenchError>> + Send + 'static,
{
    let mut out = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    let mut started = 0;
    let mut retried = 0;
    while out.len() < n {
        while started < n && set.len() < CONNECTING {
            set.spawn(start());
            started += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok(c))) => out.push(c),
            Some(Ok(Err(e))) if retried < n / 100 + 3 => {
                retried += 1;
                eprintln!(
                    "tropa-bench: set-up {} of {n} failed ({e}); retrying",
                    out.len() + 1
                );
                started -= 1;
            }
            Some(r) => return Err(r?.err().unwrap_or_else(|| "set-up failed".into())),
            None => break,
        }
    }
    if retried > 0 {
        eprintln!("tropa-bench: {retried} of {n} set-ups were retried");
    }
    Ok(out)
}

async fn run(cli: &Cli) -> Result<(), BenchError> {
    let relay_bin = match &cli.relay {
        Some(p) => p.clone(),
        None => procs::sibling("tropa-relay")?,
    };
    let measure = Duration::from_secs(cli.secs.max(1));
    let stores = if cli.stores.is_empty() {
        vec![StoreName::Redb]
    } else {
        cli.stores.clone()
    };
    let started = std::time::Instant::now();
    println!("{}", report::header());
    let mut best_relay_16 = None;
    if cli.only.contains(&Part::Throughput) {
        println!(
            "\n## Throughput (envelopes delivered and acked per second; raw: requests per second)\n"
        );
        let names: Vec<&str> = stores.iter().map(|s| s.as_str()).collect();
        println!("{}", report::throughput_header(&names));
        for &conns in &cli.connections {
            let in_flight = (64 / conns).max(1);
            let mut relay_best = vec![0.0f64; stores.len()];
            let mut raw_best = 0.0f64;
            for _ in 0..cli.rounds.max(1) {
                for (best, store) in relay_best.iter_mut().zip(&names) {
                    let relay = procs::Relay::start(&relay_bin, store).await?;
                    let r = relay_load::throughput(&relay, conns, in_flight, measure).await?;
                    drop(relay);
                    *best = best.max(r);
                }
                let raw = procs::Raw::start().await?;
                let q = raw::throughput(&raw, conns, in_flight, measure).await?;
                drop(raw);
                raw_best = raw_best.max(q);
            }
            if conns == 16 {
                best_relay_16 = relay_best.first().copied();
            }
            println!(
                "{}",
                report::throughput_row(conns, in_flight, &relay_best, raw_best)
            );
        }
    }
    if cli.only.contains(&Part::Floor) {
        let f = tokio::task::spawn_blocking(|| floor::measure(5_000)).await?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        println!("\n## The cryptography of one envelope (one core, no I/O)\n");
        println!("| part | µs per envelope |\n| --- | --- |");
        println!("| sender signs the deposit | {:.1} |", f.sign);
        println!("| relay verifies it | {:.1} |", f.verify);
        println!(
            "| relay seals at rest, opens, seals for delivery | {:.1} |",
            f.reseal
        );
        println!("| total | {:.1} |", f.total());
        println!(
            "\nOn {cores:.0} cores, this alone caps the relay at {:.0} envelopes/s \
             (acks, batched, and TLS come on top).",
            floor::ceiling(&f, cores)
        );
    }
    if cli.only.contains(&Part::Mailbox) {
        println!(
            "\n## One busy mailbox (8 sender connections × 8 deposits in flight, acked in batches)\n"
        );
        println!("| store | deliveries/s |\n| --- | --- |");
        for store in &stores {
            let mut best = 0.0f64;
            for _ in 0..cli.rounds.max(1) {
                let relay = procs::Relay::start(&relay_bin, store.as_str()).await?;
                best = best.max(relay_load::one_mailbox(&relay, 8, 8, measure).await?);
                drop(relay);
            }
            println!("| {} | {best:.0} |", store.as_str());
        }
    }
    if cli.only.contains(&Part::Latency) {
        let max = match best_relay_16 {
            Some(m) => m,
            None => {
                let relay = procs::Relay::start(&relay_bin, stores[0].as_str()).await?;
                let m = relay_load::throughput(&relay, 16, 4, measure).await?;
                drop(relay);
                m
            }
        };
        let rate = (max / 2.0).max(1.0);
        println!(
            "\n## Latency at 50% of the relay's maximum at 16 connections ({rate:.0}/s offered to both)\n"
        );
        let relay = procs::Relay::start(&relay_bin, stores[0].as_str()).await?;
        let r = relay_load::latency(&relay, 16, rate, measure).await?;
        drop(relay);
        let raw = procs::Raw::start().await?;
        let q = raw::latency(&raw, 16, rate, measure).await?;
        drop(raw);
        println!("{}", report::latency_table(&r, &q));
    }
    if cli.only.contains(&Part::Idle) {
        println!("\n## Memory per idle subscribed connection (server RSS growth / connections)\n");
        println!("{}", report::idle_header());
        for &n in &cli.idle {
            let relay = procs::Relay::start(&relay_bin, stores[0].as_str()).await?;
            let r = relay_load::idle(&relay, n).await?;
            drop(relay);
            let raw = procs::Raw::start().await?;
            let q = raw::idle(&raw, n).await?;
            drop(raw);
            println!("{}", report::idle_row(n, &r, &q));
        }
    }
    if cli.only.contains(&Part::Stored) {
        stored_scenario(
            &relay_bin,
            stores[0].as_str(),
            cli.stored,
            measure,
            cli.rounds,
        )
        .await?;
    }
    if cli.only.contains(&Part::Attack) {
        attack_scenario(&relay_bin, measure, &cli.attack_rates, &cli.attack_kinds).await?;
    }
    println!("\nwhole run: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Throughput at 16 × 4 on an empty relay and on one holding `n`
/// envelopes (in other mailboxes), alternately, best of `rounds` each. The relay-wide disk quota
/// is raised so that the quotas are not what is measured.
async fn stored_scenario(
    relay_bin: &std::path::Path,
    store: &str,
    n: u64,
    measure: Duration,
    rounds: u32,
) -> Result<(), BenchError> {
    println!("\n## Throughput with {n} envelopes stored ({store}, 16 × 4)\n");
    let config = format!("{}disk_quota_bytes = 1099511627776\n", procs::config(store));
    let t = std::time::Instant::now();
    let full_relay =
        procs::Relay::start_prefilled(relay_bin, &config, move |data| relay_load::prefill(data, n))
            .await?;
    let fill = t.elapsed();
    // Alternately, best of `rounds` each: the full relay keeps its store
    // (every envelope the load deposits is delivered and acked).
    let (mut empty, mut full) = (0.0f64, 0.0f64);
    for _ in 0..rounds.max(1) {
        let relay = procs::Relay::start_with(relay_bin, &config).await?;
        empty = empty.max(relay_load::throughput(&relay, 16, 4, measure).await?);
        drop(relay);
        full = full.max(relay_load::throughput(&full_relay, 16, 4, measure).await?);
    }
    drop(full_relay);
    println!("| store | envelopes/s | ratio to empty |\n| --- | --- | --- |");
    println!("| empty | {empty:.0} | 100% |");
    println!(
        "| {n} stored | {full:.0} | {:.1}% |",
        100.0 * full / empty.max(1.0)
    );
    println!("\n(filling the store took {:.0} s)", fill.as_secs_f64());
    Ok(())
}

/// Honest envelopes per second in the attack scenario, over 16 connections
/// (about 12 deposits and 12 acks a second each, within the default
/// request rate of 50).
const HONEST_RATE: f64 = 200.0;

/// Honest deposit→delivery latency on a relay with default limits: first
/// with no attack, then under `tropa-bench attack` (see bench/src/attack.rs)
/// at each of `rates` (frames per second per kind, 0 for as fast as the
/// relay answers), each on a fresh relay. Also prints the relay's memory
/// and the CPU time the relay and the attacker used meanwhile.
async fn attack_scenario(
    relay_bin: &std::path::Path,
    measure: Duration,
    rates: &[u64],
    kinds: &[attack::Kind],
) -> Result<(), BenchError> {
    println!(
        "\n## Honest latency under attack ({HONEST_RATE:.0} envelopes/s over 16 connections, default limits)\n"
    );
    let relay = procs::Relay::start_with(relay_bin, "").await?;
    let calm = relay_load::latency(&relay, 16, HONEST_RATE, measure).await?;
    drop(relay);
    let mut phases = Vec::new();
    for &rate in rates {
        phases.push(attacked(relay_bin, measure, rate, kinds).await?);
    }
    let columns: Vec<(String, report::Latency)> =
        phases.iter().map(|p| (p.name.clone(), p.latency)).collect();
    println!("{}", report::attack_table(&calm, &columns));
    let mib = |b: u64| b as f64 / 1048576.0;
    for p in &phases {
        println!(
            "\n### {}\n\nrelay RSS before {:.1} MiB, peak {:.1} MiB, 1 s after {:.1} MiB; \
             CPU during the attack: relay {:.1} s, attacker {:.1} s; relay alive after: {}\n\n```\n{}```",
            p.name,
            mib(p.rss.0),
            mib(p.rss.1),
            mib(p.rss.2),
            p.cpu.0,
            p.cpu.1,
            p.alive,
            p.counts
        );
    }
    Ok(())
}

/// One attacked measurement.
struct Attacked {
    name: String,
    latency: report::Latency,
    /// Relay RSS before, at its peak, and 1 s after.
    rss: (u64, u64, u64),
    /// CPU seconds of the relay and of the attacker during the attack.
    cpu: (f64, f64),
    alive: bool,
    counts: String,
}

async fn attacked(
    relay_bin: &std::path::Path,
    measure: Duration,
    rate: u64,
    kinds: &[attack::Kind],
) -> Result<Attacked, BenchError> {
    let mut relay = procs::Relay::start_with(relay_bin, "").await?;
    let before = relay.proc.rss()?;
    let relay_cpu = procs::cpu_secs(relay.proc.id())?;
    let plan = attack::Plan {
        address: relay.address.clone(),
        // Called off once the measurement is over; this is a backstop.
        duration: measure + Duration::from_secs(60),
        workers: 2,
        slow: 4,
        cap: u64::MAX,
        rate,
        deposit_cap: u64::MAX,
        kinds: kinds.to_vec(),
        target: None,
    };
    let attacker = procs::Proc::spawn(attack::command(&plan)?.stdin(std::process::Stdio::piped()))?;
    let attacker_pid = attacker.id();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), relay.proc.id());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Ok(rss) = procs::rss(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Let every kind of attack get going before the honest clients start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let latency = relay_load::latency(&relay, 16, HONEST_RATE, measure).await;
    let attacker_cpu = procs::cpu_secs(attacker_pid).unwrap_or(0.0);
    let relay_cpu = procs::cpu_secs(relay.proc.id())? - relay_cpu;
    let counts = attacker.finish(Duration::from_secs(40)).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let (latency, counts) = (latency?, counts?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = relay.proc.rss()?;
    Ok(Attacked {
        name: match rate {
            0 => "unpaced attack".to_owned(),
            r => format!("attack at {r}/s per kind"),
        },
        latency,
        rss: (before, peak.load(Ordering::Relaxed), after),
        cpu: (relay_cpu, attacker_cpu),
        alive: relay.proc.is_running(),
        counts,
    })
}

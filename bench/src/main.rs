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

mod procs;
mod raw;
mod relay_load;
mod report;

use std::process::ExitCode;
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
    /// Subscribed idle connections for the memory scenarios.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    idle: Vec<usize>,
    /// Run only these parts.
    #[arg(long, value_delimiter = ',', default_values = ["throughput", "latency", "idle"])]
    only: Vec<Part>,
    /// The tropa-relay binary [default: next to this one].
    #[arg(long)]
    relay: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Throughput,
    Latency,
    Idle,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// (Internal) the raw quinn baseline server: prints its port and
    /// fingerprint, then answers every bi stream's 16 KiB with 16 KiB.
    RawServer,
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

/// An error that ends the run, as one line.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Handshakes in progress at once. At 64, bursts of handshake packets
/// overflowed loopback UDP receive buffers (`RcvbufErrors` in
/// /proc/net/snmp grew by 1,115 in a 3,000-connection run) and some
/// connects timed out after QUIC's retransmission backoff. 16 makes the
/// bursts smaller, but drops still happened at 3,000 (open in issue 13).
pub const CONNECTING: usize = 16;

/// Runs `n` connection set-ups made by `start`, [`CONNECTING`] at a time;
/// the first failure ends it.
pub async fn connect_all<T, F>(n: usize, mut start: impl FnMut() -> F) -> Result<Vec<T>, BenchError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, BenchError>> + Send + 'static,
{
    let mut out = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    let mut started = 0;
    while out.len() < n {
        while started < n && set.len() < CONNECTING {
            set.spawn(start());
            started += 1;
        }
        match set.join_next().await {
            Some(r) => out.push(r??),
            None => break,
        }
    }
    Ok(out)
}

async fn run(cli: &Cli) -> Result<(), BenchError> {
    let relay_bin = match &cli.relay {
        Some(p) => p.clone(),
        None => procs::sibling("tropa-relay")?,
    };
    let measure = Duration::from_secs(cli.secs.max(1));
    let started = std::time::Instant::now();
    println!("{}", report::header());
    let mut best_relay_16 = None;
    if cli.only.contains(&Part::Throughput) {
        println!(
            "\n## Throughput (envelopes delivered and acked per second; raw: requests per second)\n"
        );
        println!("{}", report::throughput_header());
        for &conns in &cli.connections {
            let in_flight = (64 / conns).max(1);
            let mut relay_best = 0.0f64;
            let mut raw_best = 0.0f64;
            for _ in 0..cli.rounds.max(1) {
                let relay = procs::Relay::start(&relay_bin).await?;
                let r = relay_load::throughput(&relay, conns, in_flight, measure).await?;
                drop(relay);
                relay_best = relay_best.max(r);
                let raw = procs::Raw::start().await?;
                let q = raw::throughput(&raw, conns, in_flight, measure).await?;
                drop(raw);
                raw_best = raw_best.max(q);
            }
            if conns == 16 {
                best_relay_16 = Some(relay_best);
            }
            println!(
                "{}",
                report::throughput_row(conns, in_flight, relay_best, raw_best)
            );
        }
    }
    if cli.only.contains(&Part::Latency) {
        let max = match best_relay_16 {
            Some(m) => m,
            None => {
                let relay = procs::Relay::start(&relay_bin).await?;
                let m = relay_load::throughput(&relay, 16, 4, measure).await?;
                drop(relay);
                m
            }
        };
        let rate = (max / 2.0).max(1.0);
        println!(
            "\n## Latency at 50% of the relay's maximum at 16 connections ({rate:.0}/s offered to both)\n"
        );
        let relay = procs::Relay::start(&relay_bin).await?;
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
            let relay = procs::Relay::start(&relay_bin).await?;
            let r = relay_load::idle(&relay, n).await?;
            drop(relay);
            let raw = procs::Raw::start().await?;
            let q = raw::idle(&raw, n).await?;
            drop(raw);
            println!("{}", report::idle_row(n, &r, &q));
        }
    }
    println!("\nwhole run: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

//! Measuring and printing: rates over a fixed window, latency histograms
//! (hdrhistogram, microseconds), memory growth, and the Markdown tables the
//! run prints, every relay figure next to the baseline's as a ratio.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

/// How long a scenario warms up before it is measured.
pub const WARM_UP: Duration = Duration::from_secs(1);

/// The run's first lines: what was measured where.
pub fn header() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "# tropa-bench {}\n\nloopback, {cores} cores; relay = real tropa-relay process (limits raised, \
         memory budgets default), raw = quinn server with the relay's TLS and transport settings \
         answering 16 KiB with 16 KiB; ratio = relay / raw",
        env!("CARGO_PKG_VERSION")
    )
}

/// Counts what `done` gains over [`WARM_UP`] then `measure`, per second of
/// `measure`.
pub async fn count_rate(done: &AtomicU64, measure: Duration) -> f64 {
    tokio::time::sleep(WARM_UP).await;
    let c0 = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(measure).await;
    let c1 = done.load(Ordering::Relaxed);
    (c1 - c0) as f64 / t0.elapsed().as_secs_f64()
}

/// Waits for `tasks` to end, for at most 20 s; aborts what is left.
pub async fn drain(mut tasks: JoinSet<()>) {
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

/// Open-loop pacing: starts `request()` every `period` until `rec`'s
/// window closes, whether or not earlier ones finished, then waits for the
/// ones still running.
pub async fn pace<F>(period: Duration, rec: LatencyRecorder, mut request: impl FnMut() -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tick = tokio::time::interval(period);
    let mut inflight = JoinSet::new();
    while !rec.finished() {
        tick.tick().await;
        inflight.spawn(request());
        while inflight.try_join_next().is_some() {}
    }
    drain(inflight).await;
}

/// The throughput table's header.
pub fn throughput_header(stores: &[&str]) -> String {
    let mut head = String::from("| connections × in flight |");
    for s in stores {
        head.push_str(&format!(" relay ({s}) envelopes/s |"));
    }
    head.push_str(" raw requests/s |");
    for s in stores {
        head.push_str(&format!(" ratio ({s}) |"));
    }
    let cols = 2 + 2 * stores.len();
    format!("{head}\n|{}", " --- |".repeat(cols))
}

/// One throughput row: each store's envelopes/s, then raw's, then each
/// store's ratio to raw.
pub fn throughput_row(conns: usize, in_flight: usize, relay: &[f64], raw: f64) -> String {
    let mut row = format!("| {conns} × {in_flight} |");
    for r in relay {
        row.push_str(&format!(" {r:.0} |"));
    }
    row.push_str(&format!(" {raw:.0} |"));
    for r in relay {
        row.push_str(&format!(" {} |", ratio(*r, raw)));
    }
    row
}

/// `relay` as a percentage of `raw` ("n/a" when `raw` is zero).
fn ratio(relay: f64, raw: f64) -> String {
    if raw > 0.0 {
        format!("{:.1}%", 100.0 * relay / raw)
    } else {
        "n/a".into()
    }
}

/// Collects latencies between the end of warm-up and the end of the
/// measurement window.
#[derive(Clone)]
pub struct LatencyRecorder {
    start: Instant,
    measure: Duration,
    hist: Arc<Mutex<Histogram<u64>>>,
    failed: Arc<AtomicU64>,
    over: Arc<AtomicBool>,
}

impl LatencyRecorder {
    /// A recorder whose window opens after [`WARM_UP`] from now.
    ///
    /// # Errors
    /// Only if hdrhistogram refuses its bounds (1 µs to 60 s, 3 digits).
    pub fn new(measure: Duration) -> Result<LatencyRecorder, crate::BenchError> {
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| format!("histogram: {e:?}"))?;
        Ok(LatencyRecorder {
            start: Instant::now(),
            measure,
            hist: Arc::new(Mutex::new(hist)),
            failed: Arc::new(AtomicU64::new(0)),
            over: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether the window has closed (pacers stop sending).
    pub fn finished(&self) -> bool {
        if self.start.elapsed() >= WARM_UP + self.measure {
            self.over.store(true, Ordering::Relaxed);
        }
        self.over.load(Ordering::Relaxed)
    }

    /// Records something that started at `t` and has just completed, if `t`
    /// is inside the window.
    pub fn record(&self, t: Instant) {
        let since = t.duration_since(self.start);
        if since < WARM_UP || since >= WARM_UP + self.measure {
            return;
        }
        let us = u64::try_from(t.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if let Ok(mut h) = self.hist.lock() {
            h.saturating_record(us);
        }
    }

    /// Counts one that failed.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Percentiles of what was recorded.
    pub fn summary(&self) -> Latency {
        let h = self.hist.lock().map(|h| h.clone()).ok();
        let q = |p: f64| h.as_ref().map_or(0, |h| h.value_at_quantile(p));
        Latency {
            count: h.as_ref().map_or(0, Histogram::len),
            failed: self.failed.load(Ordering::Relaxed),
            p50_us: q(0.50),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: h.as_ref().map_or(0, Histogram::max),
        }
    }
}

/// Latency percentiles, microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// Samples in the window.
    pub count: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// Microseconds as milliseconds, for the tables.
fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// `a / b` as a factor ("n/a" when `b` is zero).
fn factor(a: u64, b: u64) -> String {
    if b > 0 {
        format!("{:.1}×", a as f64 / b as f64)
    } else {
        "n/a".into()
    }
}

/// The latency table: relay deposit→delivery against raw request→answer.
pub fn latency_table(relay: &Latency, raw: &Latency) -> String {
    format!(
        "| | relay deposit→delivery | raw request→answer | relay / raw |\n| --- | --- | --- | --- |\n\
         | p50 | {} | {} | {} |\n| p99 | {} | {} | {} |\n| p999 | {} | {} | {} |\n\
         | max | {} | {} | |\n| samples (failed) | {} ({}) | {} ({}) | |",
        ms(relay.p50_us),
        ms(raw.p50_us),
        factor(relay.p50_us, raw.p50_us),
        ms(relay.p99_us),
        ms(raw.p99_us),
        factor(relay.p99_us, raw.p99_us),
        ms(relay.p999_us),
        ms(raw.p999_us),
        factor(relay.p999_us, raw.p999_us),
        ms(relay.max_us),
        ms(raw.max_us),
        relay.count,
        relay.failed,
        raw.count,
        raw.failed,
    )
}

/// Memory growth of a server for `n` idle connections.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    n: usize,
    before: u64,
    after: u64,
    setup: Duration,
}

impl Idle {
    /// From RSS before and after `n` connections were set up in `setup`.
    pub fn new(n: usize, before: u64, after: u64, setup: Duration) -> Idle {
        Idle {
            n,
            before,
            after,
            setup,
        }
    }

    fn per_conn_kib(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / 1024.0 / self.n.max(1) as f64
    }
}

/// The idle-memory table's header.
pub fn idle_header() -> String {
    "| connections | relay RSS before → after | relay KiB/conn | raw RSS before → after | raw KiB/conn | ratio | relay set-up |\n\
     | --- | --- | --- | --- | --- | --- | --- |"
        .into()
}

/// One idle-memory row.
pub fn idle_row(n: usize, relay: &Idle, raw: &Idle) -> String {
    let mib = |b: u64| format!("{:.1}", b as f64 / 1048576.0);
    format!(
        "| {n} | {} → {} MiB | {:.1} | {} → {} MiB | {:.1} | {} | {:.1} s |",
        mib(relay.before),
        mib(relay.after),
        relay.per_conn_kib(),
        mib(raw.before),
        mib(raw.after),
        raw.per_conn_kib(),
        ratio(relay.per_conn_kib(), raw.per_conn_kib()),
        relay.setup.as_secs_f64(),
    )
}

/// Picks one figure out of a [`Latency`].
type Percentile = fn(&Latency) -> u64;

/// The attack table: honest deposit→delivery with no attack and under
/// each attack, with the ratio of each to no attack.
pub fn attack_table(calm: &Latency, attacked: &[(String, Latency)]) -> String {
    let mut head = "| honest deposit→delivery | no attack |".to_owned();
    let mut rule = "| --- | --- |".to_owned();
    for (name, _) in attacked {
        head.push_str(&format!(" {name} | ratio |"));
        rule.push_str(" --- | --- |");
    }
    let mut rows = vec![head, rule];
    let pick: [(&str, Percentile); 4] = [
        ("p50", |l| l.p50_us),
        ("p99", |l| l.p99_us),
        ("p999", |l| l.p999_us),
        ("max", |l| l.max_us),
    ];
    for (name, f) in pick {
        let mut row = format!("| {name} | {} |", ms(f(calm)));
        for (_, l) in attacked {
            row.push_str(&format!(" {} | {} |", ms(f(l)), factor(f(l), f(calm))));
        }
        rows.push(row);
    }
    let mut row = format!("| samples (failed) | {} ({}) |", calm.count, calm.failed);
    for (_, l) in attacked {
        row.push_str(&format!(" {} ({}) | |", l.count, l.failed));
    }
    rows.push(row);
    rows.join("\n")
}

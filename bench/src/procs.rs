//! The two servers under test as child processes on 127.0.0.1: a real
//! `tropa-relay` in a fresh data directory, and the raw quinn baseline
//! (this binary's `raw-server`). Each is started fresh for a scenario and
//! killed after it, so one scenario's state never colours the next.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tropa_proto::{Fingerprint, RelayAddress};

use crate::BenchError;

/// Limits raised so the system is measured, not the limiter: rate limits,
/// the per-address connection and creation caps, and the per-mailbox quota.
/// Memory budgets and everything else keep their defaults.
const RELAY_CONFIG: &str = "\
rate_per_sec = 1000000
rate_burst = 1000000
max_connections = 30000
max_connections_per_ip = 30000
creations_per_hour_per_address = 1000000
creation_burst_per_address = 100000
mailbox_quota = 100000
";

/// [`RELAY_CONFIG`] with the store `store`.
pub fn config(store: &str) -> String {
    format!("{RELAY_CONFIG}store = \"{store}\"\n")
}

/// The path of `name` next to this executable (both built by cargo into
/// the same target directory).
pub fn sibling(name: &str) -> Result<PathBuf, BenchError> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found; build it: cargo build --release -p tropa-relay -p tropa-bench",
            path.display()
        )
        .into())
    }
}

/// A running `tropa-relay run`.
pub struct Relay {
    /// The process (killed when this is dropped, before its data goes).
    pub proc: Proc,
    /// The address it printed.
    pub address: RelayAddress,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// Initialises a fresh data directory on 127.0.0.1 (free port) with
    /// [`RELAY_CONFIG`] and the store `store` ("redb" or "sled"), and
    /// runs it.
    pub async fn start(bin: &Path, store: &str) -> Result<Relay, BenchError> {
        Self::start_with(bin, &config(store)).await
    }

    /// [`start`](Self::start) with `config` (relay.toml lines) instead of
    /// [`RELAY_CONFIG`]; `""` keeps every default.
    pub async fn start_with(bin: &Path, config: &str) -> Result<Relay, BenchError> {
        Self::start_prefilled(bin, config, |_| Ok(())).await
    }

    /// [`start_with`](Self::start_with), calling `prefill` with the data
    /// directory after `init` and before `run` (to fill its store).
    pub async fn start_prefilled(
        bin: &Path,
        config: &str,
        prefill: impl FnOnce(&Path) -> Result<(), BenchError> + Send + 'static,
    ) -> Result<Relay, BenchError> {
        let bin = bin.to_path_buf();
        let config = config.to_owned();
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir()?;
            let data = dir.path().join("relay");
            let out = Command::new(&bin)
                .args(["init", "--data"])
                .arg(&data)
                .args(["--listen", "127.0.0.1:0"])
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "tropa-relay init failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let cfg = data.join("relay.toml");
            let text = std::fs::read_to_string(&cfg)?;
            // Ours first, and the generated lines for the same keys dropped
            // (a key set twice is an error).
            let ours: Vec<&str> = config
                .lines()
                .filter_map(|l| l.split('=').next().map(str::trim))
                .collect();
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !ours.contains(&l.split('=').next().map_or("", str::trim)))
                .collect();
            std::fs::write(&cfg, format!("{config}{}\n", kept.join("\n")))?;
            prefill(&data)?;
            let child = Command::new(&bin)
                .args(["run", "--data"])
                .arg(&data)
                // The relay's log level (TROPA_BENCH_RELAY_LOG, default
                // errors only) goes to this process's stderr.
                .env(
                    "TROPA_LOG",
                    std::env::var("TROPA_BENCH_RELAY_LOG").unwrap_or_else(|_| "error".into()),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let mut proc = Proc(child);
            let line = first_line(&mut proc.0)?;
            let address: RelayAddress = line
                .trim()
                .parse()
                .map_err(|e| format!("relay printed {line:?}: {e}"))?;
            Ok(Relay {
                proc,
                address,
                _dir: dir,
            })
        })
        .await?
    }
}

/// A running raw quinn baseline server.
pub struct Raw {
    /// The process (killed when this is dropped).
    pub proc: Proc,
    /// Its UDP address.
    pub addr: std::net::SocketAddr,
    /// Its certificate's fingerprint (pinned like a relay's).
    pub fingerprint: Fingerprint,
}

impl Raw {
    /// Runs `tropa-bench raw-server`.
    pub async fn start() -> Result<Raw, BenchError> {
        tokio::task::spawn_blocking(|| {
            let child = Command::new(std::env::current_exe()?)
                .arg("raw-server")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let mut proc = Proc(child);
            let line = first_line(&mut proc.0)?;
            let (port, fp) = line
                .trim()
                .split_once(' ')
                .ok_or_else(|| format!("raw server printed {line:?}"))?;
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>()?));
            let fingerprint: Fingerprint = fp
                .parse()
                .map_err(|e| format!("raw server fingerprint {fp:?}: {e:?}"))?;
            Ok(Raw {
                proc,
                addr,
                fingerprint,
            })
        })
        .await?
    }
}

/// A server child process, killed (and reaped) when dropped, so no
/// scenario, error or early return leaves one running.
pub struct Proc(Child);

impl Proc {
    /// Starts `cmd`.
    pub fn spawn(cmd: &mut Command) -> Result<Proc, BenchError> {
        Ok(Proc(cmd.stdout(Stdio::piped()).spawn()?))
    }

    /// Resident memory of the process, bytes.
    pub fn rss(&self) -> Result<u64, BenchError> {
        rss(self.0.id())
    }

    /// Its process ID.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Closes its standard input, waits up to `limit` for it to exit (it is
    /// killed after that), and returns what it printed on standard output.
    pub async fn finish(mut self, limit: std::time::Duration) -> Result<String, BenchError> {
        drop(self.0.stdin.take());
        let mut out = self.0.stdout.take().ok_or("no stdout")?;
        let read = tokio::task::spawn_blocking(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut out, &mut s).map(|_| s)
        });
        match tokio::time::timeout(limit, read).await {
            Ok(r) => Ok(r??),
            Err(_) => Err(format!("the child did not finish within {limit:?}").into()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn first_line(child: &mut Child) -> Result<String, BenchError> {
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    Ok(line)
}

/// VmRSS of process `pid`, bytes.
pub fn rss(pid: u32) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or("no VmRSS in /proc status")?;
    Ok(kib * 1024)
}

/// CPU time (user and system) process `pid` has used, seconds. /proc
/// counts it in USER_HZ ticks, which Linux fixes at 100 a second.
pub fn cpu_secs(pid: u32) -> Result<f64, BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("bad /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, BenchError> {
        Ok(fields.get(i).ok_or("short /proc stat")?.parse::<u64>()?)
    };
    // utime and stime are fields 14 and 15, so 11 and 12 here.
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

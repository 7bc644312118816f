//! Helpers for the workspace integration tests: find the workspace's
//! binaries, run relay processes on loopback, scan directories for secrets.
//!
//! Tests only ever use 127.0.0.1; nothing here reaches another host.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod hostile_relay;
pub mod inproc;
pub mod microsocks;
pub mod sim;
pub mod udp_proxy;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tropa_proto::RelayAddress;

/// Path of a workspace binary, rebuilt once per test process so a test never
/// runs a stale binary (`cargo test -p tropa-tests` alone does not rebuild
/// other packages' binaries).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // target/<profile>/deps/<test-exe> -> target/<profile>/<name>
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let path = dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--workspace", "--bin", name])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building {name} failed");
        built.push(name.to_owned());
    }
    path
}

/// A `tropa-relay run` child process.
pub struct RelayProcess {
    /// The process.
    pub child: Child,
    /// The address it printed.
    pub address: RelayAddress,
    /// Its data directory.
    pub data: PathBuf,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl RelayProcess {
    /// Initialises `data` (if needed) for 127.0.0.1 with a free port and runs it.
    pub fn start(data: &Path) -> RelayProcess {
        Self::start_with(data, &[])
    }

    /// Like [`start`](Self::start), appending `extra_config` lines to relay.toml
    /// on first initialisation.
    pub fn start_with(data: &Path, extra_config: &[&str]) -> RelayProcess {
        Self::start_under(data, extra_config, &[])
    }

    /// Like [`start_with`](Self::start_with), running the relay under
    /// `wrapper` (a command and its arguments, e.g. `strace -f -o FILE`);
    /// an empty `wrapper` runs it directly.
    pub fn start_under(data: &Path, extra_config: &[&str], wrapper: &[&str]) -> RelayProcess {
        if !data.join("relay.key").exists() {
            let out = Command::new(bin("tropa-relay"))
                .args(["init", "--data"])
                .arg(data)
                .args(["--listen", "127.0.0.1:0"])
                .output()
                .expect("run tropa-relay init");
            assert!(out.status.success(), "init failed: {out:?}");
            if !extra_config.is_empty() {
                let cfg = data.join("relay.toml");
                let mut text = std::fs::read_to_string(&cfg).unwrap();
                for l in extra_config {
                    let key = l.split('=').next().unwrap().trim();
                    text = text
                        .lines()
                        .filter(|x| x.split('=').next().map(str::trim) != Some(key))
                        .collect::<Vec<_>>()
                        .join("\n");
                    text = format!("{l}\n{text}\n");
                }
                std::fs::write(&cfg, text).unwrap();
            }
        }
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin("tropa-relay"));
                c
            }
            None => Command::new(bin("tropa-relay")),
        };
        let mut child = cmd
            .args(["run", "--data"])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tropa-relay");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read address");
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        let address: RelayAddress = line.trim().parse().unwrap_or_else(|e| {
            panic!(
                "relay printed {line:?} ({e}); stderr: {}",
                String::from_utf8_lossy(&stderr.lock().unwrap())
            )
        });
        RelayProcess {
            child,
            address,
            data: data.to_path_buf(),
            stderr,
        }
    }

    /// Everything the relay wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// kill -9.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `limit`; returns the exit status and the time taken.
    pub fn terminate(self, limit: Duration) -> (Option<std::process::ExitStatus>, Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_for_exit(limit)
    }

    /// Waits up to `limit` for the process to exit by itself (kill -9 after
    /// that); returns the exit status and the time taken.
    pub fn wait_for_exit(
        mut self,
        limit: Duration,
    ) -> (Option<std::process::ExitStatus>, Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                return (Some(st), start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (None, start.elapsed())
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every regular file under `dir`, with its bytes.
pub fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

/// What a profile under `dir` holds: every file's bytes, except that a
/// client store (`store.redb`) is given as its records (table names, keys
/// and sealed values, in order). redb rewrites its own bookkeeping (the
/// allocator state, the clean-shutdown flag) at every open and close, so a
/// command that only reads still changes the file's bytes; what must not
/// change is a record. Read with redb's read-only open, which writes nothing.
pub fn profile_records(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition, TableHandle as _};
    files(dir)
        .into_iter()
        .map(|(path, bytes)| {
            if path.file_name().is_none_or(|n| n != "store.redb") {
                return (path, bytes);
            }
            let db = redb::ReadOnlyDatabase::open(&path).expect("store.redb opens read-only");
            let read = db.begin_read().expect("read transaction");
            let mut dump = Vec::new();
            let mut names: Vec<String> = read
                .list_tables()
                .expect("tables")
                .map(|h| h.name().to_owned())
                .collect();
            names.sort();
            for name in names {
                dump.extend_from_slice(name.as_bytes());
                dump.push(0);
                let table = read
                    .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
                    .expect("table");
                for row in table.iter().expect("rows") {
                    let (k, v) = row.expect("row");
                    for part in [k.value(), v.value()] {
                        dump.extend_from_slice(&(part.len() as u64).to_le_bytes());
                        dump.extend_from_slice(part);
                    }
                }
            }
            (path, dump)
        })
        .collect()
}

/// Files under `dir` that contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    assert!(!needle.is_empty());
    files(dir)
        .into_iter()
        .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _)| p)
        .collect()
}

/// A `tropa` profile driven through the real CLI binary.
pub struct Profile {
    /// Profile directory.
    pub home: PathBuf,
    /// Its passphrase.
    pub passphrase: String,
}

/// What a `tropa` run produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with the output unless the exit code is 0.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "tropa failed: {self:?}");
        self
    }
}

impl Profile {
    /// Creates a profile with cheap passphrase hashing (tests only); `init`
    /// checks that the relay answers.
    pub fn init(root: &Path, name: &str, relay: &RelayAddress) -> Profile {
        Self::init_with(root, name, relay, &[])
    }

    /// [`init`](Self::init) without checking the relay (`--offline`).
    pub fn init_offline(root: &Path, name: &str, relay: &RelayAddress) -> Profile {
        Self::init_with(root, name, relay, &["--offline"])
    }

    fn init_with(root: &Path, name: &str, relay: &RelayAddress, extra: &[&str]) -> Profile {
        let p = Profile {
            home: root.join(name),
            passphrase: format!("plover gasket violin {name}"),
        };
        let relay = relay.to_string();
        let mut args = vec![
            "init",
            "--name",
            name,
            "--relay",
            &relay,
            "--kdf-memory-mib",
            "1",
            "--kdf-passes",
            "1",
        ];
        args.extend_from_slice(extra);
        p.tropa(&args).ok();
        p
    }

    /// Runs `tropa ARGS` on this profile with its passphrase in the environment.
    pub fn tropa(&self, args: &[&str]) -> Run {
        self.tropa_with(args, &self.passphrase, &[])
    }

    /// Runs `tropa ARGS` with an explicit passphrase and extra environment.
    pub fn tropa_with(&self, args: &[&str], passphrase: &str, env: &[(&str, &str)]) -> Run {
        self.run(args, passphrase, env, None)
    }

    /// Runs `tropa ARGS` with `input` piped into its standard input.
    pub fn tropa_input(&self, args: &[&str], input: &str) -> Run {
        self.run(args, &self.passphrase, &[], Some(input))
    }

    fn run(
        &self,
        args: &[&str],
        passphrase: &str,
        env: &[(&str, &str)],
        input: Option<&str>,
    ) -> Run {
        let mut cmd = Command::new(bin("tropa"));
        cmd.args(args)
            .env("TROPA_HOME", &self.home)
            .env("TROPA_PASSPHRASE", passphrase)
            .env_remove("TROPA_NEW_PASSPHRASE")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run tropa");
        if let Some(text) = input {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(text.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("run tropa");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `tropa read [ALIAS] --json`, parsed.
    pub fn read_json(&self, alias: Option<&str>) -> Vec<serde_json::Value> {
        let mut args = vec!["read", "--json"];
        if let Some(a) = alias {
            args.insert(1, a);
        }
        self.tropa(&args)
            .ok()
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }
}

impl Profile {
    /// The profile unlocked in this process (through the library, not the CLI).
    pub fn open(&self) -> tropa_client::Client {
        tropa_client::Client::open(&self.home, self.passphrase.as_bytes()).unwrap()
    }

    /// One library sync with `opts`.
    pub fn sync_with(&self, opts: tropa_client::SyncOptions) -> tropa_client::SyncReport {
        let mut c = self.open();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(c.sync(opts, None))
            .unwrap()
    }
}

/// Makes `inviter` invite and `joiner` accept; both then call each other by
/// the given aliases. Returns after the inviter has processed the Hello.
pub fn connect_profiles(
    inviter: &Profile,
    as_seen_by_inviter: &str,
    joiner: &Profile,
    as_seen_by_joiner: &str,
) {
    let link = inviter
        .tropa(&["invite", "--name", as_seen_by_inviter])
        .ok()
        .stdout
        .trim()
        .to_owned();
    // A short `TROPA:I/...` link, or a long `tropa:invite#...` one.
    assert!(link.to_ascii_lowercase().starts_with("tropa:"), "{link}");
    joiner
        .tropa(&["accept", &link, "--name", as_seen_by_joiner])
        .ok();
    let out = inviter.tropa(&["sync"]).ok();
    assert!(out.stdout.contains("1 joined"), "{out:?}");
}

/// Profiles "alice" and "bob" on `relay`, connected to each other (each
/// calls the other by name).
pub fn alice_and_bob(root: &Path, relay: &RelayAddress) -> (Profile, Profile) {
    let alice = Profile::init(root, "alice", relay);
    let bob = Profile::init(root, "bob", relay);
    connect_profiles(&alice, "bob", &bob, "alice");
    (alice, bob)
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts a relay on a fixed port (so its address survives restarts).
pub fn relay_on_fixed_port(data: &Path) -> RelayProcess {
    if !data.join("relay.key").exists() {
        let port = free_udp_port();
        let out = Command::new(bin("tropa-relay"))
            .args(["init", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .output()
            .expect("init relay");
        assert!(out.status.success(), "{out:?}");
    }
    RelayProcess::start(data)
}

/// A mailbox made and secured through a relay client, with every key the
/// tests need to deposit into it and read it (as a conversation's mailbox
/// is secured: an open one holds only a few envelopes).
pub struct SecuredMailbox {
    /// The relay's answer: IDs and its DH key.
    pub ids: tropa_relay_client::CreatedMailbox,
    /// Signs the recipient's commands.
    pub auth: ed25519_dalek::SigningKey,
    /// The recipient's DH secret that deliveries are sealed to.
    pub dh: x25519_dalek::StaticSecret,
    /// The only sender key the mailbox accepts.
    pub sender: ed25519_dalek::SigningKey,
}

impl SecuredMailbox {
    /// Creates and secures a mailbox on `c`.
    pub async fn create(c: &tropa_relay_client::RelayClient) -> SecuredMailbox {
        let auth = ed25519_dalek::SigningKey::generate(&mut rand::rng());
        let dh = x25519_dalek::StaticSecret::random_from_rng(&mut rand::rng());
        let ids = c
            .create_mailbox(&auth, &x25519_dalek::PublicKey::from(&dh), None)
            .await
            .unwrap();
        let sender = ed25519_dalek::SigningKey::generate(&mut rand::rng());
        c.secure(&auth, &ids.recipient_id, &sender.verifying_key().to_bytes())
            .await
            .unwrap();
        SecuredMailbox {
            ids,
            auth,
            dh,
            sender,
        }
    }

    /// Receives `n` envelopes on `c` (10 s each at most), acking each;
    /// returns their plaintexts in delivery order.
    pub async fn receive(&self, c: &tropa_relay_client::RelayClient, n: usize) -> Vec<Vec<u8>> {
        let mut sub = c
            .subscribe(&self.auth, &self.ids.recipient_id)
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..n {
            let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("delivery in time")
                .unwrap()
                .expect("delivery");
            let plain = d
                .open(&self.dh, &self.ids.relay_dh_pub, &self.ids.recipient_id)
                .unwrap();
            got.push(plain.to_vec());
            c.ack(&self.auth, &self.ids.recipient_id, &d.envelope_id)
                .await
                .unwrap();
        }
        got
    }
}

/// Resident memory of process `pid` in KiB (VmRSS from /proc).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A raw QUIC connection to the relay at `addr`, pinned like a real client
/// (for tests that write frames by hand).
pub async fn raw_connection(addr: &RelayAddress) -> (quinn::Endpoint, quinn::Connection) {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(
        tropa_relay_client::tls::client_config(addr.fingerprint).unwrap(),
    );
    let conn = endpoint
        .connect(addr.socket_addr().unwrap(), tropa_relay_client::SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    (endpoint, conn)
}

//! A real SOCKS5 proxy for tests: Debian's `microsocks`, listening on
//! 127.0.0.1 and connecting out from 127.0.0.2, so that a relay on
//! loopback can tell the proxy's connections from the client's own.
//! `.ci/run` installs it; where it is missing, [`Microsocks::start`] says
//! so and returns `None`, and the test skips.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tropa_relay_client::Socks5;

/// A running microsocks, killed when dropped.
pub struct Microsocks {
    child: Child,
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MICROSOCKS: &str = "/usr/bin/microsocks";

impl Microsocks {
    /// Starts it (with `-u user -P password` if given); `None` if microsocks
    /// is not installed.
    pub fn start(credentials: Option<(&str, &str)>) -> Option<Microsocks> {
        let program = if std::path::Path::new(MICROSOCKS).exists() {
            MICROSOCKS.to_owned()
        } else {
            let found = Command::new("sh")
                .args(["-c", "command -v microsocks"])
                .output()
                .ok()?;
            let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
            if path.is_empty() {
                eprintln!("skipped: microsocks is not installed (.ci/run installs it)");
                return None;
            }
            path
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut cmd = Command::new(program);
        cmd.args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-b",
            "127.0.0.2",
        ]);
        if let Some((user, password)) = credentials {
            cmd.args(["-u", user, "-P", password]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn microsocks");
        let proxy = Microsocks {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(proxy.addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "microsocks listens"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(proxy)
    }

    /// The proxy as a client setting, with `credentials` if given.
    pub fn socks5(&self, credentials: Option<(&str, &str)>) -> Socks5 {
        let url = match credentials {
            Some((user, password)) => format!("socks5://{user}:{password}@{}", self.addr),
            None => format!("socks5://{}", self.addr),
        };
        url.parse().unwrap()
    }
}

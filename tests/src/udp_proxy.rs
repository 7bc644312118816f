//! A counting UDP proxy on loopback: clients talk to it as if it were the
//! relay; it forwards each datagram and records, per client address, when
//! and how many bytes went each way. Used to measure what a command costs
//! on the wire, and what keeps arriving after it exited.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One datagram seen.
#[derive(Clone, Copy, Debug)]
pub struct Datagram {
    /// The client it was from or for.
    pub client: SocketAddr,
    /// From the client to the relay.
    pub up: bool,
    /// Payload bytes.
    pub len: usize,
    /// When it passed.
    pub at: Instant,
}

/// The running proxy; stops when dropped.
pub struct UdpProxy {
    /// Where clients send.
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Datagram>>>,
    stop: Arc<AtomicBool>,
}

impl UdpProxy {
    /// Forwards 127.0.0.1:(free port) to `target`.
    pub fn start(target: SocketAddr) -> UdpProxy {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind proxy");
        front
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = front.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || run(&front, target, &l, &s));
        UdpProxy { addr, log, stop }
    }

    /// Everything seen so far.
    pub fn log(&self) -> Vec<Datagram> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn record(log: &Mutex<Vec<Datagram>>, d: Datagram) {
    if let Ok(mut l) = log.lock() {
        l.push(d);
    }
}

fn run(front: &UdpSocket, target: SocketAddr, log: &Mutex<Vec<Datagram>>, stop: &AtomicBool) {
    // One upstream socket per client, polled in turn (loopback traffic of a
    // test is small; a short timeout keeps the loop moving).
    let mut upstream: HashMap<SocketAddr, UdpSocket> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, client)) = front.recv_from(&mut buf) {
            let up = upstream.entry(client).or_insert_with(|| {
                let s = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
                s.set_nonblocking(true).expect("nonblocking");
                s
            });
            let _ = up.send_to(&buf[..n], target);
            record(
                log,
                Datagram {
                    client,
                    up: true,
                    len: n,
                    at: Instant::now(),
                },
            );
        }
        for (client, s) in &upstream {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                let _ = front.send_to(&buf[..n], client);
                record(
                    log,
                    Datagram {
                        client: *client,
                        up: false,
                        len: n,
                        at: Instant::now(),
                    },
                );
            }
        }
    }
}

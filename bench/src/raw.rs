//! The raw quinn baseline: a server with the relay's own TLS and transport
//! configuration (`tropa_relay::tls::server_config`, a relay identity) that
//! answers each bi stream's 16 KiB with 16 KiB and does nothing else, and
//! clients pinned with the relay client's own configuration. What the relay
//! adds on top (framing, signatures, the store, at-rest and delivery
//! encryption, pushing) is what the ratios measure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::JoinSet;
use tropa_proto::ENVELOPE_SIZE;

use crate::BenchError;
use crate::procs::Raw;
use crate::report::{Idle, Latency, LatencyRecorder};

static BODY: [u8; ENVELOPE_SIZE] = [0x5a; ENVELOPE_SIZE];

/// Runs the baseline server until killed.
pub async fn serve() -> Result<(), BenchError> {
    let id = tropa_relay::identity::RelayIdentity::generate()?;
    let cfg = tropa_relay::tls::server_config(id.cert(), id.private_key())?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(cfg),
        crate::udp_socket()?,
        std::sync::Arc::new(quinn::TokioRuntime),
    )?;
    println!("{} {}", endpoint.local_addr()?.port(), id.fingerprint());
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    if recv.read_to_end(ENVELOPE_SIZE + 1024).await.is_err() {
                        return;
                    }
                    let _ = send.write_chunk(Bytes::from_static(&BODY)).await;
                    let _ = send.finish();
                });
            }
        });
    }
    Ok(())
}

/// One client connection with its own endpoint (as each relay client has).
struct Client {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

async fn connect_all(
    raw: &Raw,
    n: usize,
    shared: Option<&quinn::Endpoint>,
) -> Result<Vec<Client>, BenchError> {
    let (addr, fingerprint) = (raw.addr, raw.fingerprint);
    crate::connect_all(n, || connect(addr, fingerprint, shared.cloned())).await
}

/// Connects through `shared`, or an endpoint of its own.
async fn connect(
    addr: std::net::SocketAddr,
    fingerprint: tropa_proto::Fingerprint,
    shared: Option<quinn::Endpoint>,
) -> Result<Client, BenchError> {
    let endpoint = match shared {
        Some(e) => e,
        None => quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?,
    };
    let config = tropa_relay_client::tls::client_config(fingerprint)?;
    let conn = endpoint
        .connect_with(config, addr, tropa_relay_client::SERVER_NAME)?
        .await?;
    Ok(Client {
        _endpoint: endpoint,
        conn,
    })
}

/// 16 KiB up, 16 KiB back, on a new bi stream.
async fn request(conn: &quinn::Connection) -> Result<(), BenchError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_chunk(Bytes::from_static(&BODY)).await?;
    send.finish()?;
    let got = recv.read_to_end(ENVELOPE_SIZE + 1024).await?;
    if got.len() != ENVELOPE_SIZE {
        return Err("short answer".into());
    }
    Ok(())
}

/// Requests per second with `conns` connections, `in_flight` requests on
/// each at all times, counted over `measure` after 1 s of warm-up.
pub async fn throughput(
    raw: &Raw,
    conns: usize,
    in_flight: usize,
    measure: Duration,
) -> Result<f64, BenchError> {
    let clients = connect_all(raw, conns, None).await?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for c in &clients {
        for _ in 0..in_flight {
            let (conn, done, stop) = (c.conn.clone(), done.clone(), stop.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if request(&conn).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
    let rate = crate::report::count_rate(&done, measure).await;
    stop.store(true, Ordering::Relaxed);
    crate::report::drain(tasks).await;
    for c in clients {
        c.conn.close(0u32.into(), b"done");
    }
    Ok(rate)
}

/// Request→answer latency at `rate` requests per second spread over
/// `conns` connections (open loop: requests start on schedule whether or
/// not earlier ones finished).
pub async fn latency(
    raw: &Raw,
    conns: usize,
    rate: f64,
    measure: Duration,
) -> Result<Latency, BenchError> {
    let clients = connect_all(raw, conns, None).await?;
    let rec = LatencyRecorder::new(measure)?;
    let mut pacers = JoinSet::new();
    for c in &clients {
        let (conn, rec) = (c.conn.clone(), rec.clone());
        let period = Duration::from_secs_f64(conns as f64 / rate);
        pacers.spawn(crate::report::pace(period, rec.clone(), move || {
            let (conn, rec) = (conn.clone(), rec.clone());
            async move {
                let t = Instant::now();
                if request(&conn).await.is_ok() {
                    rec.record(t);
                } else {
                    rec.failed();
                }
            }
        }));
    }
    crate::report::drain(pacers).await;
    for c in clients {
        c.conn.close(0u32.into(), b"done");
    }
    Ok(rec.summary())
}

/// Server memory growth for `n` connections that each hold one open
/// stream the server is waiting on.
pub async fn idle(raw: &Raw, n: usize) -> Result<Idle, BenchError> {
    let before = raw.proc.rss()?;
    let t = Instant::now();
    let endpoint = crate::shared_client_endpoint()?;
    let clients = connect_all(raw, n, Some(&endpoint)).await?;
    let mut streams = Vec::with_capacity(n);
    for c in &clients {
        let (mut send, recv) = c.conn.open_bi().await?;
        // A stream exists for the server once data arrives on it.
        send.write_all(b"x").await?;
        streams.push((send, recv));
    }
    let setup = t.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = raw.proc.rss()?;
    drop(streams);
    for c in clients {
        c.conn.close(0u32.into(), b"done");
    }
    Ok(Idle::new(n, before, after, setup))
}

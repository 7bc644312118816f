//! A real `tropa-relay` process under the memory attack of
//! `relay_attacks.rs`, over the TCP profile (issue 12): hostile clients
//! hold HTTP/2 subscription streams and then stop reading their TCP
//! connection altogether, after advertising the largest windows HTTP/2
//! allows (so flow control does not hold the relay back: only the relay's
//! own send buffer per stream and its write timeout do), and others open
//! request streams that announce a full frame and stall. The relay's
//! resident memory, read from /proc, must stay within what it charges for
//! those streams, and an honest client must keep working throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tropa_proto::{MAX_FRAME_LEN, RelayAddress};
use tropa_relay_client::{RelayClient, requests};
use tropa_relay_protocol::tcp::{self, H2Writer};
use tropa_tests::inproc::{envelope, pinned_tls};
use tropa_tests::{RelayProcess, SecuredMailbox, rss_kib};

/// Mailboxes the attacker fills, and envelopes in each.
const MAILBOXES: usize = 8;
const ENVELOPES: usize = 32;
/// Attacking connections of each kind.
const SUB_CONNECTIONS: usize = 8;
const STALL_CONNECTIONS: usize = 8;
/// Streams per attacking connection (the relay's per-connection maximum).
const STREAMS: usize = tropa_relay::tls::MAX_STREAMS as usize;
/// As in relay_attacks.rs: what the relay charges for the attackers' streams.
const RSS_GROWTH_LIMIT_KIB: u64 = ((SUB_CONNECTIONS + STALL_CONNECTIONS) * STREAMS) as u64
    * tropa_relay::server::STREAM_COST as u64
    / 1024;
/// The largest window HTTP/2 allows (2^31 - 1).
const HUGE_WINDOW: u32 = (1 << 31) - 1;

/// A TCP stream whose reading the attacker can stop for good: from then on
/// it never reads another byte, so the relay's answers pile up wherever
/// the relay lets them.
struct Stoppable {
    inner: TcpStream,
    stopped: Arc<AtomicBool>,
}

impl AsyncRead for Stoppable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.stopped.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stoppable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One attacking connection: its streams, held open, and its reader switch.
struct Held {
    _streams: Vec<(H2Writer, h2::client::ResponseFuture)>,
    stop_reading: Arc<AtomicBool>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Opens up to `STREAMS` streams on a fresh connection, writing what
/// `request` gives for each (it gets the connection's channel binding and
/// the stream's number).
async fn attacker(addr: &RelayAddress, request: impl Fn(&[u8; 32], usize) -> Vec<u8>) -> Held {
    let sock = TcpStream::connect(addr.socket_addr().unwrap())
        .await
        .unwrap();
    let stop_reading = Arc::new(AtomicBool::new(false));
    let io = Stoppable {
        inner: sock,
        stopped: stop_reading.clone(),
    };
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(pinned_tls(addr.fingerprint).unwrap()));
    let name = rustls::pki_types::ServerName::try_from(tropa_relay_client::SERVER_NAME).unwrap();
    let tls = connector.connect(name, io).await.unwrap();
    let binding = tls
        .get_ref()
        .1
        .export_keying_material(
            [0u8; 32],
            tropa_relay_protocol::crypto::EXPORTER_LABEL,
            Some(b""),
        )
        .unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(HUGE_WINDOW)
        .initial_connection_window_size(HUGE_WINDOW)
        .max_header_list_size(tcp::MAX_HEADER_LIST)
        .handshake::<_, Bytes>(tls)
        .await
        .unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let Ok(Ok(mut ready)) =
            tokio::time::timeout(Duration::from_secs(5), send.clone().ready()).await
        else {
            break;
        };
        let head = http::Request::builder()
            .method(tcp::METHOD)
            .uri(tcp::PATH)
            .body(())
            .unwrap();
        let Ok((response, stream)) = ready.send_request(head, false) else {
            break;
        };
        let mut w = H2Writer::new(stream);
        if w.write_all(&request(&binding, i)).await.is_err() {
            break;
        }
        streams.push((w, response));
    }
    Held {
        _streams: streams,
        stop_reading,
        driver,
    }
}

/// An honest client's whole round trip (over QUIC): create, deposit, receive.
async fn honest_round_trip(addr: &RelayAddress) -> Duration {
    let start = Instant::now();
    let c = RelayClient::connect(addr).await.unwrap();
    let m = SecuredMailbox::create(&c).await;
    c.deposit(&m.ids.sender_id, envelope(0xaa), Some(&m.sender))
        .await
        .unwrap();
    let got = m.receive(&c, 1).await;
    assert_eq!(got[0].as_slice(), envelope(0xaa).as_ref());
    c.close().await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tcp_connections_keep_relay_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &["rate_burst = 5000", "rate_per_sec = 5000"],
    );
    let addr = relay.address.clone();
    let pid = relay.child.id();

    // The attacker's own mailboxes, each holding a full old-style batch.
    let setup = Arc::new(RelayClient::connect(&addr).await.unwrap());
    let mut mailboxes = Vec::new();
    for _ in 0..MAILBOXES {
        let m = SecuredMailbox::create(&setup).await;
        let mut deposits = tokio::task::JoinSet::new();
        for n in 0..ENVELOPES {
            let (c, s, sid) = (setup.clone(), m.sender.clone(), m.ids.sender_id);
            deposits.spawn(async move { c.deposit(&sid, envelope(n as u8), Some(&s)).await });
        }
        while let Some(r) = deposits.join_next().await {
            r.unwrap().unwrap();
        }
        mailboxes.push((m.auth, m.ids.recipient_id));
    }
    Arc::into_inner(setup).unwrap().close().await;
    let calm = honest_round_trip(&addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);

    let mailboxes = Arc::new(mailboxes);
    let mut held = Vec::new();
    for _ in 0..SUB_CONNECTIONS {
        let mbs = mailboxes.clone();
        let h = attacker(&addr, move |binding, i| {
            let (auth, rid) = &mbs[i % mbs.len()];
            tropa_proto::framing::encode(&requests::subscribe(binding, auth, rid)).unwrap()
        })
        .await;
        // From now on nothing the relay sends is read.
        h.stop_reading.store(true, Ordering::Relaxed);
        held.push(h);
    }
    let prefix = u32::try_from(MAX_FRAME_LEN).unwrap().to_be_bytes().to_vec();
    for _ in 0..STALL_CONNECTIONS {
        held.push(attacker(&addr, |_, _| prefix.clone()).await);
    }
    let mut peak = before;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_kib(pid));
    }
    let during = tokio::time::timeout(Duration::from_secs(20), honest_round_trip(&addr))
        .await
        .expect("an honest client must keep working during the attack");
    peak = peak.max(rss_kib(pid));
    let growth = peak.saturating_sub(before);
    eprintln!(
        "relay RSS before {before} KiB, peak {peak} KiB, growth {growth} KiB; \
         honest round trip {calm:?} calm, {during:?} under attack"
    );
    assert!(
        growth <= RSS_GROWTH_LIMIT_KIB,
        "relay memory grew by {growth} KiB under the attack (limit {RSS_GROWTH_LIMIT_KIB} KiB)"
    );
    drop(held);
}

//! The TCP profile's server side: binds the TCP listener beside the UDP
//! socket (same IP, same port number), accepts TCP connections, admits them like
//! QUIC ones (the same `max_connections` and per-address cap), runs TLS 1.3
//! with the relay's key and ALPN `tropa/1`, then HTTP/2 (the `h2` crate)
//! as the multiplexer, and hands every HTTP/2 stream to the per-stream
//! code QUIC streams use ([`super::conn::Streams`]).
//!
//! What bounds a TCP client, beyond what every connection gets: the TLS
//! and HTTP/2 handshakes finish within [`super::HANDSHAKE_TIMEOUT`] of the
//! TCP accept; a connection from which nothing arrives for
//! [`crate::tls::IDLE_TIMEOUT`] is dropped (QUIC's idle timeout); h2 holds
//! at most [`RELAY_CONNECTION_WINDOW`] received and unread per connection
//! and [`SEND_BUFFER`] of a stream's answer not yet taken by TCP; and h2's
//! own counters end a connection that makes it reset streams too often.
//!
//! Like the rest of the shell, it never logs peer addresses (S8).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tropa_relay_protocol::tcp::{
    self as profile, H2Reader, H2Writer, MAX_HEADER_LIST, RELAY_CONNECTION_WINDOW, STREAM_WINDOW,
};

use super::conn::Streams;
use super::{Ctx, ServerError, Slot};
use crate::config::Config;
use crate::identity::RelayIdentity;
use crate::limits::ip_key;
use crate::tls::{self, IDLE_TIMEOUT};

/// What h2 may hold of one stream's answer that the TCP connection has not
/// taken yet. A write on the stream waits beyond it, so an answer is paid
/// for by the relay's budgets until all but this much of it is queued, and
/// the rest fits in what the relay charges for every open stream
/// ([`super::STREAM_COST`]). (h2's default is about 400 KiB per stream.)
const SEND_BUFFER: usize = 4 * 1024;
/// Streams a client may open and reset before the relay accepts them
/// (h2's default is 20; the relay accepts streams as they come).
const PENDING_ACCEPT_RESETS: usize = 16;
/// Streams h2 may reset on its own for the client's protocol errors over a
/// connection's life before it ends the connection. A correct client
/// causes none, but a long-lived connection may see a few (data racing a
/// reset of the relay's), and each costs the relay only a small frame: h2's
/// default, set here so that it cannot be silently lifted.
const LOCAL_ERROR_RESETS: usize = 1024;
/// Pause after a failed `accept` (out of file descriptors, say), so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The HTTP/2 settings of the relay's side (tropa_relay_protocol::tcp).
fn h2_builder() -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(RELAY_CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_concurrent_streams(tls::MAX_STREAMS)
        .max_send_buffer_size(SEND_BUFFER)
        .max_pending_accept_reset_streams(PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS));
    b
}

/// How many times a relay told to pick its port (`listen` port 0) draws a
/// new UDP port when the TCP port of the same number is taken.
const PORT_ATTEMPTS: u32 = 8;

/// Binds what the configuration serves: the UDP socket for QUIC on
/// `listen`, and the TCP listener on the same IP and the same port number
/// as the UDP socket actually bound (on `listen` itself without QUIC).
pub(super) fn bind_sockets(
    config: &Config,
) -> Result<(Option<std::net::UdpSocket>, Option<std::net::TcpListener>), ServerError> {
    let listen = config.listen;
    let udp = || {
        let socket = std::net::UdpSocket::bind(listen).map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
        match crate::tls::tune_udp_socket(&socket) {
            Ok(got) if got < crate::tls::UDP_RECEIVE_BUFFER => tracing::warn!(
                "the UDP receive buffer is {} KiB, less than the {} KiB asked for; a burst of \
                 reconnecting clients may lose handshakes. Raise net.core.rmem_max \
                 (deploy/README.md, Sizing)",
                got / 1024,
                crate::tls::UDP_RECEIVE_BUFFER / 1024
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot size the UDP receive buffer: {e}"),
        }
        Ok::<_, ServerError>(socket)
    };
    let tcp = |addr: SocketAddr| {
        std::net::TcpListener::bind(addr).map_err(|source| ServerError::BindTcp { addr, source })
    };
    match (config.quic, config.tcp) {
        (true, false) => Ok((Some(udp()?), None)),
        (false, true) => Ok((None, Some(tcp(listen)?))),
        (false, false) => Err(ServerError::NoTransport),
        (true, true) => {
            for _ in 0..PORT_ATTEMPTS {
                let socket = udp()?;
                let bound = socket.local_addr().map_err(|source| ServerError::Bind {
                    addr: listen,
                    source,
                })?;
                match tcp(SocketAddr::new(listen.ip(), bound.port())) {
                    Ok(listener) => return Ok((Some(socket), Some(listener))),
                    // A port of our own choosing: draw another pair.
                    Err(ServerError::BindTcp { source, .. })
                        if listen.port() == 0 && source.kind() == std::io::ErrorKind::AddrInUse => {
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(ServerError::NoSharedPort {
                ip: listen.ip(),
                attempts: PORT_ATTEMPTS,
            })
        }
    }
}

/// The bound TCP listener and the TLS configuration it serves.
pub(super) struct Listener {
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
}

impl Listener {
    /// Serves TLS with `identity` on an already bound listener.
    pub(super) fn new(
        listener: std::net::TcpListener,
        identity: &RelayIdentity,
    ) -> Result<Self, ServerError> {
        let bind_err = |source| ServerError::BindTcp {
            addr: listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
            source,
        };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| ServerError::BindTcp { addr, source })?;
        let config = tls::rustls_config(identity.cert(), identity.private_key())?;
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `stop` turns true (or its sender is gone).
    pub(super) async fn serve(self, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = stop.changed() => return,
            };
            let (sock, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("TCP accept failed: {}", e.kind());
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            // No slot: close at once, before any TLS work.
            let Some(slot) = ctx.try_slot(ip_key(peer.ip())) else {
                continue;
            };
            tokio::spawn(serve_connection(
                sock,
                peer.ip(),
                self.acceptor.clone(),
                ctx.clone(),
                stop.clone(),
                slot,
            ));
        }
    }
}

/// Serves one admitted TCP connection until the client leaves, falls
/// silent, breaks HTTP/2, or the relay shuts down; its slot is given back
/// at the end.
async fn serve_connection(
    sock: TcpStream,
    ip: IpAddr,
    acceptor: TlsAcceptor,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
    slot: Slot,
) {
    let _slot = slot;
    // Frames are written whole; do not hold the last segment of an answer.
    let _ = sock.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = Watched {
        inner: sock,
        activity: activity.clone(),
    };
    let setup = async {
        let tls = acceptor.accept(io).await.ok()?;
        let (_, session) = tls.get_ref();
        // A client that offered no ALPN is not speaking this protocol
        // (rustls already refuses one that offered only others).
        if session.alpn_protocol() != Some(tropa_proto::ALPN) {
            return None;
        }
        let binding = tls::tcp_channel_binding(session).ok()?;
        let conn = h2_builder().handshake::<_, Bytes>(tls).await.ok()?;
        Some((conn, binding))
    };
    let Ok(Some((mut conn, binding))) = tokio::time::timeout(super::HANDSHAKE_TIMEOUT, setup).await
    else {
        tracing::debug!("TCP handshake failed or timed out");
        return;
    };
    ctx.metrics.inc(&ctx.metrics.connections);
    ctx.metrics.inc(&ctx.metrics.tcp_connections);
    let mut streams = Streams::new(ctx.clone(), binding, ip);
    loop {
        let idle_at = tokio::time::Instant::from_std(activity.last() + IDLE_TIMEOUT);
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((request, respond))) => take_stream(&mut streams, request, respond),
                Some(Err(e)) => {
                    tracing::debug!("HTTP/2 connection ended: {e}");
                    break;
                }
                None => break,
            },
            () = tokio::time::sleep_until(idle_at) => {
                if activity.last().elapsed() >= IDLE_TIMEOUT {
                    tracing::debug!("TCP connection idle, dropped");
                    break;
                }
            }
            _ = stop.changed() => {
                // GOAWAY, then give h2 a moment to write it.
                conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                let closed = std::future::poll_fn(|cx| conn.poll_closed(cx));
                let _ = tokio::time::timeout(Duration::from_secs(1), closed).await;
                break;
            }
        }
    }
    // Dropping the connection fails every stream still open on it, so
    // their tasks end.
}

/// Checks an HTTP/2 stream's request head (the fixed `POST /` of the TCP
/// profile; anything else is reset), answers its response head at once and
/// hands the stream to the per-stream code.
fn take_stream(
    streams: &mut Streams,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    if request.method().as_str() != profile::METHOD || request.uri().path() != profile::PATH {
        respond.send_reset(h2::Reason::PROTOCOL_ERROR);
        return;
    }
    let Ok(send) = respond.send_response(http::Response::new(()), false) else {
        return;
    };
    streams.accept(H2Writer::new(send), H2Reader::new(request.into_body()));
}

/// When the client last sent anything: milliseconds since the connection
/// was accepted, so the reader can update it without a lock.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The TCP stream, noting every read that brings bytes (any TLS record,
/// HTTP/2 PINGs included) as activity.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Issue 12: TCP takes the port the UDP socket got; a fixed port whose
    /// TCP side is taken is a typed error, not a relay without TCP.
    #[test]
    fn tcp_shares_the_udp_port_and_a_taken_one_is_a_typed_error() {
        let any = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        let (udp, tcp) = bind_sockets(&any).unwrap();
        let (udp, tcp) = (udp.unwrap(), tcp.unwrap());
        let port = udp.local_addr().unwrap().port();
        assert_eq!(
            tcp.local_addr().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], port))
        );
        drop(udp);
        // The UDP port is free again, its TCP port still held by `tcp`.
        let fixed = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            ..any.clone()
        };
        assert!(matches!(
            bind_sockets(&fixed),
            Err(ServerError::BindTcp { addr, .. }) if addr.port() == port
        ));
        let tcp_only = Config {
            quic: false,
            ..fixed.clone()
        };
        assert!(matches!(
            bind_sockets(&tcp_only),
            Err(ServerError::BindTcp { .. })
        ));
        let quic_only = Config {
            tcp: false,
            ..fixed.clone()
        };
        let (udp, none) = bind_sockets(&quic_only).unwrap();
        assert!(udp.is_some() && none.is_none());
        let neither = Config {
            quic: false,
            tcp: false,
            ..any
        };
        assert!(matches!(
            bind_sockets(&neither),
            Err(ServerError::NoTransport)
        ));
    }
}

//! The client side of the TCP profile (docs/relay-protocol.md §11): a TCP
//! connection, directly or through a SOCKS5 proxy, then TLS 1.3 pinned to
//! the relay's key exactly as over QUIC, then HTTP/2 (the `h2` crate) with
//! the profile's settings. One HTTP/2 stream (`POST /`) per request,
//! exactly where QUIC opens a bidirectional stream.
//!
//! A task drives the HTTP/2 connection and sends a PING every
//! [`PING_INTERVAL`]: the relay drops a TCP connection that is silent for
//! 120 s, and a NAT forgets one that is idle for long. A PONG that does not
//! come within [`PONG_TIMEOUT`] ends the connection, as QUIC's idle
//! timeout does, so a dead path is noticed instead of waited on for the
//! kernel's retransmission timeout (many minutes).

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin as StdPin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_socks::TargetAddr;
use tokio_socks::tcp::Socks5Stream;
use tropa_proto::{ALPN, Host};
use tropa_relay_protocol::tcp::{
    CLIENT_CONNECTION_WINDOW, H2Reader, H2Writer, MAX_HEADER_LIST, PATH, STREAM_WINDOW,
};

use crate::dial::ConnectError;
use crate::options::Socks5;
use crate::requests::RequestError;
use crate::tls::{self, Pin};
use crate::transport::Connected;

/// How often an HTTP/2 PING goes out on an idle or busy connection: the
/// QUIC profile's keep-alive interval. About 40 bytes each way (a PING
/// frame in a TLS record), well within the relay's 120 s idle timeout.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(15);
/// How long a PONG may take before the connection counts as dead. Generous:
/// on a slow link the PONG waits behind deliveries already in flight.
/// Interval and timeout together match the QUIC profile's 90 s idle timeout.
pub(crate) const PONG_TIMEOUT: Duration = Duration::from_secs(75);

/// Where the TCP connection goes.
pub(crate) enum Route<'a> {
    /// Straight to the relay's (locally resolved) address.
    Direct(SocketAddr),
    /// Through a SOCKS5 proxy, which resolves the relay's name itself.
    Socks5 {
        /// The proxy.
        proxy: &'a Socks5,
        /// The relay's host, as its address names it.
        host: &'a Host,
        /// The relay's port.
        port: u16,
    },
}

/// Bytes sent and received on a TCP connection (TCP payload: TLS records,
/// and the SOCKS5 exchange through a proxy).
#[derive(Debug, Default)]
struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
}

/// One HTTP/2 connection to a relay.
#[derive(Debug)]
pub(crate) struct TcpLink {
    send: h2::client::SendRequest<Bytes>,
    traffic: Arc<Traffic>,
    closed: Arc<AtomicBool>,
    driver: JoinHandle<()>,
}

impl TcpLink {
    /// Opens a stream: `POST /`, with the request body to write and the
    /// answer to read. The relay's response head is awaited by the first
    /// read, so the request goes out without waiting a round trip.
    pub(crate) async fn open(&self) -> Result<(H2Writer, TcpRecv), RequestError> {
        let mut send = self.send.clone().ready().await?;
        let mut head = http::Request::new(());
        *head.method_mut() = http::Method::POST;
        *head.uri_mut() = http::Uri::from_static(PATH);
        let (response, stream) = send.send_request(head, false)?;
        Ok((H2Writer::new(stream), TcpRecv::Head(response)))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn traffic(&self) -> (u64, u64) {
        (
            self.traffic.sent.load(Ordering::Relaxed),
            self.traffic.received.load(Ordering::Relaxed),
        )
    }

    /// Ends the connection at once: the socket is closed (the kernel sends
    /// the FIN even if the process exits right after), and every stream
    /// still open on it fails.
    pub(crate) fn abort(&self) {
        self.closed.store(true, Ordering::Release);
        self.driver.abort();
    }
}

/// The receiving half of a stream: first the relay's response head, then
/// its body.
#[derive(Debug)]
pub(crate) enum TcpRecv {
    /// The response head has not been read yet.
    Head(h2::client::ResponseFuture),
    /// The response body.
    Body(H2Reader),
}

impl AsyncRead for TcpRecv {
    fn poll_read(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this {
                TcpRecv::Body(r) => return StdPin::new(r).poll_read(cx, buf),
                TcpRecv::Head(head) => {
                    let response = ready!(StdPin::new(head).poll(cx)).map_err(h2_io)?;
                    if response.status() != http::StatusCode::OK {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the relay answered the stream with another status than 200",
                        )));
                    }
                    *this = TcpRecv::Body(H2Reader::new(response.into_body()));
                }
            }
        }
    }
}

/// An HTTP/2 error as the I/O error a stream read reports.
fn h2_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        e.into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"))
    } else {
        io::Error::new(io::ErrorKind::ConnectionReset, e)
    }
}

/// The HTTP/2 settings of the client's side (`tropa_relay_protocol::tcp`).
/// The relay never opens streams towards a client, so push is off.
fn h2_builder() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CLIENT_CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .enable_push(false);
    b
}

/// Connects over `route`, from `local` if given, and accepts only a relay
/// whose key `pin` accepts. Not bounded in time: the caller is.
pub(crate) async fn connect(
    route: Route<'_>,
    local: Option<SocketAddr>,
    pin: Pin,
) -> Result<Connected, ConnectError> {
    let traffic = Arc::new(Traffic::default());
    let stream = match route {
        Route::Direct(target) => Counted {
            inner: dial(target, local)
                .await
                .map_err(ConnectError::TcpConnect)?,
            traffic: traffic.clone(),
        },
        Route::Socks5 { proxy, host, port } => {
            through_proxy(proxy, host, port, local, traffic.clone()).await?
        }
    };
    let (config, mismatch) = tls::tcp_config(pin)?;
    // Never sent (no SNI); rustls wants a name all the same.
    let name = rustls::pki_types::ServerName::try_from(crate::SERVER_NAME)
        .map_err(|_| tls::TlsConfigError::Rustls(rustls::Error::General("server name".into())))?;
    let tls_stream = match tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
    {
        Ok(s) => s,
        Err(_) if mismatch.load(Ordering::Relaxed) => return Err(ConnectError::WrongKey),
        Err(e) => return Err(ConnectError::TcpHandshake(e)),
    };
    let (_, session) = tls_stream.get_ref();
    // The verifier already accepted this key; checking again keeps the
    // reported fingerprint and the pin from ever disagreeing.
    let fingerprint = session
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(tls::fingerprint_of_cert)
        .filter(|fp| pin.accepts(fp))
        .ok_or(ConnectError::WrongKey)?;
    if session.alpn_protocol() != Some(ALPN) {
        return Err(ConnectError::TcpHandshake(io::Error::new(
            io::ErrorKind::InvalidData,
            "the relay did not agree on the protocol (ALPN)",
        )));
    }
    let binding = tls::tcp_channel_binding(session)?;
    let (send, conn) = h2_builder()
        .handshake::<_, Bytes>(tls_stream)
        .await
        .map_err(ConnectError::Http2)?;
    let closed = Arc::new(AtomicBool::new(false));
    let driver = tokio::spawn(drive(conn, closed.clone()));
    Ok(Connected {
        link: crate::transport::Link::Tcp(TcpLink {
            send,
            traffic,
            closed,
            driver,
        }),
        fingerprint,
        binding,
    })
}

/// A TCP connection to `target` from `local` (any address if `None`).
async fn dial(target: SocketAddr, local: Option<SocketAddr>) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = local {
        socket.bind(local)?;
    }
    let stream = socket.connect(target).await?;
    // Frames are written whole: do not hold back the last segment of one.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The target the proxy is asked to connect to: a name as a name (the
/// proxy resolves it; nothing here asks a resolver, which would tell the
/// local network which relay this is), an IP address as an address.
pub(crate) fn socks_target(host: &Host, port: u16) -> TargetAddr<'static> {
    match host {
        Host::Ip(ip) => TargetAddr::Ip(SocketAddr::new(*ip, port)),
        Host::Name(name) => TargetAddr::Domain(name.clone().into(), port),
    }
}

/// A TCP connection to the relay through `proxy`: the SOCKS5 exchange
/// (with the proxy's credentials if set) on a connection to the proxy.
async fn through_proxy(
    proxy: &Socks5,
    host: &Host,
    port: u16,
    local: Option<SocketAddr>,
    traffic: Arc<Traffic>,
) -> Result<Counted<TcpStream>, ConnectError> {
    let unreachable = |source| ConnectError::ProxyUnreachable {
        proxy: proxy.proxy.clone(),
        source,
    };
    // The proxy's own name (usually an IP address anyway) is resolved here.
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the proxy");
    let mut socket = None;
    for addr in tokio::net::lookup_host(proxy.proxy.as_str())
        .await
        .map_err(unreachable)?
    {
        match dial(addr, local).await {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let socket = Counted {
        inner: socket.ok_or_else(|| unreachable(last))?,
        traffic,
    };
    let target = socks_target(host, port);
    let stream = match &proxy.credentials {
        None => Socks5Stream::connect_with_socket(socket, target).await,
        Some((user, password)) => {
            Socks5Stream::connect_with_password_and_socket(socket, target, user, password).await
        }
    };
    stream
        .map(Socks5Stream::into_inner)
        .map_err(|source| proxy_error(&proxy.proxy, source))
}

/// Tells a proxy that refused our credentials apart from one that could
/// not (or would not) reach the relay.
fn proxy_error(proxy: &str, source: tokio_socks::Error) -> ConnectError {
    use tokio_socks::Error as E;
    let proxy = proxy.to_owned();
    match source {
        E::PasswordAuthFailure(_)
        | E::NoAcceptableAuthMethods
        | E::AuthorizationRequired
        | E::InvalidAuthValues(_) => ConnectError::ProxyAuth { proxy, source },
        source => ConnectError::Proxy { proxy, source },
    }
}

/// Drives the HTTP/2 connection and pings the relay until the connection
/// ends, a PONG is late, or the task is aborted; then marks it closed.
/// Leaving drops the connection, which closes the socket and fails every
/// stream still open on it.
async fn drive<T>(mut conn: h2::client::Connection<T, Bytes>, closed: Arc<AtomicBool>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let pinger = conn.ping_pong();
    let mut conn = std::pin::pin!(conn);
    if let Some(mut pinger) = pinger {
        loop {
            tokio::select! {
                _ = &mut conn => break,
                () = tokio::time::sleep(PING_INTERVAL) => {}
            }
            let pong = tokio::time::timeout(PONG_TIMEOUT, pinger.ping(h2::Ping::opaque()));
            tokio::select! {
                _ = &mut conn => break,
                answered = pong => if !matches!(answered, Ok(Ok(_))) { break },
            }
        }
    } else {
        // h2 hands the PING handle out once; it is taken only here.
        let _ = conn.await;
    }
    closed.store(true, Ordering::Release);
}

/// A byte stream that counts what passes through it.
struct Counted<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = StdPin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        this.traffic.received.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = StdPin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.traffic.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        StdPin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        StdPin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The head this module builds is the profile's fixed one.
    #[test]
    fn the_request_head_is_the_profiles() {
        assert_eq!(
            http::Method::POST.as_str(),
            tropa_relay_protocol::tcp::METHOD
        );
        assert_eq!(http::Uri::from_static(PATH).path(), PATH);
    }

    /// A relay named by a host name is handed to the proxy as that name,
    /// never resolved here; an IP address goes as an address.
    #[test]
    fn the_proxy_resolves_names() {
        let name = Host::Name("relay.example".into());
        assert_eq!(
            socks_target(&name, 443),
            TargetAddr::Domain("relay.example".into(), 443)
        );
        let ip = Host::Ip("192.0.2.7".parse().unwrap());
        assert_eq!(
            socks_target(&ip, 9),
            TargetAddr::Ip("192.0.2.7:9".parse().unwrap())
        );
    }

    fn server() -> h2::server::Builder {
        let mut b = h2::server::Builder::new();
        b.initial_window_size(STREAM_WINDOW);
        b
    }

    /// The driver pings an idle connection every PING_INTERVAL (so the
    /// relay's 120 s idle timeout never fires while the peer answers), and
    /// ends the connection when a PONG does not come within PONG_TIMEOUT.
    /// Virtual time: the test takes no real minutes.
    #[tokio::test(start_paused = true)]
    async fn the_driver_pings_and_drops_a_silent_peer() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let traffic = Arc::new(Traffic::default());
        let counted = Counted {
            inner: a,
            traffic: traffic.clone(),
        };
        let (answer, mut stop) = tokio::sync::oneshot::channel::<()>();
        let peer = tokio::spawn(async move {
            let mut conn = server().handshake::<_, Bytes>(b).await.unwrap();
            // Serve (and so answer PINGs) until told to fall silent.
            tokio::select! {
                _ = conn.accept() => panic!("the client opened no stream"),
                _ = &mut stop => {}
            }
            // Silent: the connection is held but no longer polled.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(conn);
        });
        let (send, conn) = h2_builder().handshake::<_, Bytes>(counted).await.unwrap();
        let closed = Arc::new(AtomicBool::new(false));
        let driver = tokio::spawn(drive(conn, closed.clone()));

        tokio::time::sleep(Duration::from_millis(100)).await;
        let settled = traffic.sent.load(Ordering::Relaxed);
        let idle = Duration::from_secs(150);
        tokio::time::sleep(idle).await;
        let pinged = traffic.sent.load(Ordering::Relaxed) - settled;
        // A PING frame is 17 bytes; no TLS here.
        let pings = pinged / 17;
        let due = idle.as_secs() / PING_INTERVAL.as_secs();
        assert!(
            pings > 0 && pings + 1 >= due,
            "{pinged} bytes sent while idle for {idle:?}: {pings} PINGs, {due} due"
        );
        assert!(
            !closed.load(Ordering::Acquire),
            "an answering peer keeps it"
        );

        answer.send(()).unwrap();
        tokio::time::sleep(PING_INTERVAL + PONG_TIMEOUT + Duration::from_secs(1)).await;
        assert!(closed.load(Ordering::Acquire), "a silent peer ends it");
        assert!(driver.is_finished());
        drop(send);
        peer.abort();
    }
}

//! Choosing the transport and connecting: QUIC, TCP, QUIC first with TCP
//! after a head start (or the other way round when TCP worked last time),
//! and TCP through a SOCKS5 proxy.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use tropa_proto::Host;

use crate::options::{ConnectOptions, Transport, TransportChoice};
use crate::tcp::{self, Route};
use crate::tls::{self, Pin};
use crate::transport::{self, Connected};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting through a SOCKS5 proxy may take: Tor builds a
/// circuit first, which takes seconds and, over a bad link, more.
pub const SOCKS5_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// With [`TransportChoice::Auto`], how long the first transport tried has
/// the field to itself before the other one starts too. Where UDP is
/// blocked a QUIC handshake gets no answer at all (nothing says it
/// failed), so after this head start TCP is tried beside it, and whichever
/// finishes its handshake first is used.
pub const QUIC_FALLBACK_AFTER: Duration = Duration::from_secs(3);

/// Why connecting to a relay failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The relay's host name did not resolve.
    #[error("cannot resolve the relay host: {0}")]
    Resolve(std::io::Error),
    /// No local UDP socket could be bound.
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsConfigError),
    /// The QUIC connection could not be started.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// Whoever answered holds another key than the address (or the short
    /// link's fingerprint prefix) names: a wrong address, or someone in the
    /// middle (S11). Never a reason to try another transport.
    #[error("the relay's key does not match the address")]
    WrongKey,
    /// The QUIC handshake failed.
    #[error("relay handshake failed: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    /// The relay did not answer in time.
    #[error("the relay did not answer in time")]
    Timeout,
    /// The TCP connection to the relay could not be made (refused,
    /// unreachable, or no local socket).
    #[error("cannot connect over TCP: {0}")]
    TcpConnect(std::io::Error),
    /// The TLS handshake over TCP failed, or the relay did not agree on
    /// the protocol.
    #[error("relay handshake over TCP failed: {0}")]
    TcpHandshake(std::io::Error),
    /// The HTTP/2 handshake over TLS failed.
    #[error("relay HTTP/2 handshake failed: {0}")]
    Http2(h2::Error),
    /// QUIC cannot go through a SOCKS5 proxy (it carries only TCP): with a
    /// proxy the transport must be `tcp` or `auto`.
    #[error("QUIC cannot go through a SOCKS5 proxy: choose the tcp or auto transport")]
    QuicThroughSocks5,
    /// The SOCKS5 proxy could not be resolved or connected to.
    #[error("cannot reach the SOCKS5 proxy {proxy}: {source}")]
    ProxyUnreachable {
        /// The proxy's `host:port`.
        proxy: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The SOCKS5 proxy refused our credentials (or wants some and we had
    /// none).
    #[error("the SOCKS5 proxy {proxy} refused the credentials: {source}")]
    ProxyAuth {
        /// The proxy's `host:port`.
        proxy: String,
        /// What the proxy answered.
        #[source]
        source: tokio_socks::Error,
    },
    /// A `.onion` relay without a proxy: only Tor can reach it, and
    /// looking the name up would tell the local network about it
    /// (RFC 7686). Nothing was sent.
    #[error("a .onion relay can only be reached through Tor: set a SOCKS5 proxy")]
    OnionWithoutProxy,
    /// The SOCKS5 proxy did not connect us to the relay: it could not
    /// reach it, refused to, or did not speak SOCKS5.
    #[error("the SOCKS5 proxy {proxy} did not connect to the relay: {source}")]
    Proxy {
        /// The proxy's `host:port`.
        proxy: String,
        /// What the proxy answered.
        #[source]
        source: tokio_socks::Error,
    },
}

/// The relay's address, resolved here (never used with a proxy).
pub(crate) async fn resolve(host: &Host, port: u16) -> Result<SocketAddr, ConnectError> {
    if let Host::Ip(ip) = host {
        return Ok(SocketAddr::new(*ip, port));
    }
    let name = host.to_string().to_ascii_lowercase();
    if name.trim_end_matches('.').ends_with(".onion") {
        return Err(ConnectError::OnionWithoutProxy);
    }
    tokio::net::lookup_host(format!("{host}:{port}"))
        .await
        .map_err(ConnectError::Resolve)?
        .next()
        .ok_or_else(|| {
            ConnectError::Resolve(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address for host",
            ))
        })
}

/// A client endpoint for `target`, bound to `local` or any address of
/// the same family.
pub(crate) fn client_endpoint(
    target: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<quinn::Endpoint, ConnectError> {
    let local: SocketAddr = local.unwrap_or_else(|| {
        if target.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        }
    });
    quinn::Endpoint::client(local).map_err(ConnectError::Socket)
}

/// `fut`, or [`ConnectError::Timeout`] at `deadline`.
async fn by<T>(
    deadline: Instant,
    fut: impl Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    tokio::time::timeout_at(deadline, fut)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}

/// Connects to the relay at `host:port` whose key `pin` accepts, as
/// `opts` say.
pub(crate) async fn dial(
    host: &Host,
    port: u16,
    pin: Pin,
    opts: &ConnectOptions,
) -> Result<Connected, ConnectError> {
    if let Some(proxy) = &opts.socks5 {
        if opts.transport == TransportChoice::Quic {
            return Err(ConnectError::QuicThroughSocks5);
        }
        let route = Route::Socks5 { proxy, host, port };
        let deadline = Instant::now() + SOCKS5_CONNECT_TIMEOUT;
        return by(deadline, tcp::connect(route, opts.local, pin)).await;
    }
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let target = by(deadline, resolve(host, port)).await?;
    // Each attempt stops at the common deadline with its own error, so a
    // TCP refusal is not hidden behind a QUIC timeout.
    let quic = by(deadline, async {
        let endpoint = client_endpoint(target, opts.local)?;
        transport::connect_quic(endpoint, pin, target).await
    });
    let tcp = by(
        deadline,
        tcp::connect(Route::Direct(target), opts.local, pin),
    );
    match (opts.transport, opts.prefer) {
        (TransportChoice::Quic, _) => quic.await,
        (TransportChoice::Tcp, _) => tcp.await,
        (TransportChoice::Auto, Some(Transport::Tcp)) => {
            with_fallback(tcp, quic, QUIC_FALLBACK_AFTER).await
        }
        (TransportChoice::Auto, _) => with_fallback(quic, tcp, QUIC_FALLBACK_AFTER).await,
    }
}

/// Runs `first`; if it has not connected after `head_start`, or fails
/// before, runs `second` too, and returns the first connection made. A
/// wrong key on either is [`ConnectError::WrongKey`] at once: the relay
/// (or someone in the middle) answered, and another transport would only
/// reach the same key. When both fail, the more telling error is kept
/// (a refusal over a timeout).
pub(crate) async fn with_fallback<T>(
    first: impl Future<Output = Result<T, ConnectError>>,
    second: impl Future<Output = Result<T, ConnectError>>,
    head_start: Duration,
) -> Result<T, ConnectError> {
    let mut first = std::pin::pin!(first);
    let early = tokio::select! {
        r = &mut first => match r {
            Ok(c) => return Ok(c),
            Err(ConnectError::WrongKey) => return Err(ConnectError::WrongKey),
            Err(e) => Some(e),
        },
        () = tokio::time::sleep(head_start) => None,
    };
    let mut second = std::pin::pin!(second);
    if let Some(e1) = early {
        return second.await.map_err(|e2| telling(e1, e2));
    }
    tokio::select! {
        r = &mut first => match r {
            Err(e1) if !matches!(e1, ConnectError::WrongKey) => {
                second.await.map_err(|e2| telling(e1, e2))
            }
            r => r,
        },
        r = &mut second => match r {
            Err(e2) if !matches!(e2, ConnectError::WrongKey) => {
                first.await.map_err(|e1| telling(e1, e2))
            }
            r => r,
        },
    }
}

/// Of two failures, the one to report: a wrong key above all, then the
/// first transport's unless it only timed out.
fn telling(first: ConnectError, second: ConnectError) -> ConnectError {
    match (first, second) {
        (ConnectError::WrongKey, _) | (_, ConnectError::WrongKey) => ConnectError::WrongKey,
        (ConnectError::Timeout, e) => e,
        (e, _) => e,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An attempt that takes `after` and ends with `result`, and notes
    /// whether it was ever started.
    fn attempt(
        after: Duration,
        result: Result<&'static str, ConnectError>,
    ) -> (
        Arc<AtomicBool>,
        impl Future<Output = Result<&'static str, ConnectError>>,
    ) {
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let fut = async move {
            flag.store(true, Ordering::SeqCst);
            tokio::time::sleep(after).await;
            result
        };
        (started, fut)
    }

    fn never() -> Result<&'static str, ConnectError> {
        Err(ConnectError::Timeout)
    }

    const HEAD: Duration = QUIC_FALLBACK_AFTER;

    /// A first transport that connects within its head start is used, and
    /// the second is never started.
    #[tokio::test(start_paused = true)]
    async fn a_quick_first_transport_wins_alone() {
        let (_, quic) = attempt(Duration::from_millis(200), Ok("quic"));
        let (tcp_started, tcp) = attempt(Duration::ZERO, Ok("tcp"));
        assert_eq!(with_fallback(quic, tcp, HEAD).await.unwrap(), "quic");
        assert!(!tcp_started.load(Ordering::SeqCst));
    }

    /// A first transport with no answer gets its head start, then the
    /// second runs beside it and the first connection made wins: the
    /// second if the first never answers, the first if it answers late
    /// but before the second.
    #[tokio::test(start_paused = true)]
    async fn after_the_head_start_the_first_connection_made_wins() {
        let start = Instant::now();
        let (_, quic) = attempt(Duration::from_secs(3600), never());
        let (_, tcp) = attempt(Duration::from_millis(100), Ok("tcp"));
        assert_eq!(with_fallback(quic, tcp, HEAD).await.unwrap(), "tcp");
        assert_eq!(start.elapsed(), HEAD + Duration::from_millis(100));

        let (_, quic) = attempt(HEAD + Duration::from_millis(50), Ok("quic"));
        let (_, tcp) = attempt(Duration::from_millis(100), Ok("tcp"));
        assert_eq!(with_fallback(quic, tcp, HEAD).await.unwrap(), "quic");
    }

    /// A wrong key ends the attempt at once, before or after the head
    /// start, on either transport: never a fallback, never a wait.
    #[tokio::test(start_paused = true)]
    async fn a_wrong_key_never_falls_back() {
        let (_, quic) = attempt(Duration::from_millis(10), Err(ConnectError::WrongKey));
        let (tcp_started, tcp) = attempt(Duration::ZERO, Ok("tcp"));
        let r = with_fallback(quic, tcp, HEAD).await;
        assert!(matches!(r, Err(ConnectError::WrongKey)));
        assert!(!tcp_started.load(Ordering::SeqCst), "no fallback");

        let start = Instant::now();
        let (_, quic) = attempt(Duration::from_secs(3600), Ok("quic"));
        let (_, tcp) = attempt(Duration::from_millis(10), Err(ConnectError::WrongKey));
        let r = with_fallback(quic, tcp, HEAD).await;
        assert!(matches!(r, Err(ConnectError::WrongKey)));
        assert_eq!(start.elapsed(), HEAD + Duration::from_millis(10));
    }

    /// A first transport that fails outright (no UDP socket, say) hands
    /// over at once; when both fail the telling error is kept.
    #[tokio::test(start_paused = true)]
    async fn an_early_failure_hands_over_at_once() {
        let start = Instant::now();
        let refused = || ConnectError::TcpConnect(std::io::ErrorKind::ConnectionRefused.into());
        let (_, quic) = attempt(Duration::ZERO, Err(refused()));
        let (_, tcp) = attempt(Duration::from_millis(5), Ok("tcp"));
        assert_eq!(with_fallback(quic, tcp, HEAD).await.unwrap(), "tcp");
        assert_eq!(start.elapsed(), Duration::from_millis(5));

        let (_, quic) = attempt(Duration::from_secs(15), never());
        let (_, tcp) = attempt(Duration::from_millis(5), Err(refused()));
        let r = with_fallback(quic, tcp, HEAD).await;
        assert!(matches!(r, Err(ConnectError::TcpConnect(_))), "{r:?}");
    }

    /// QUIC cannot go through a SOCKS5 proxy: a typed error before any
    /// network activity.
    #[tokio::test]
    async fn quic_through_socks5_is_refused() {
        let opts = ConnectOptions {
            transport: TransportChoice::Quic,
            socks5: Some("127.0.0.1:9".parse().unwrap()),
            ..ConnectOptions::default()
        };
        let host = Host::Ip("127.0.0.1".parse().unwrap());
        let pin = Pin::Key(tropa_proto::Fingerprint([0; 32]));
        let r = dial(&host, 9, pin, &opts).await;
        assert!(matches!(r, Err(ConnectError::QuicThroughSocks5)));
    }

    /// A `.onion` name is never looked up in local DNS: without a proxy,
    /// connecting to it is a typed error before any network activity.
    #[tokio::test]
    async fn an_onion_relay_without_a_proxy_is_refused_before_any_lookup() {
        for name in ["abcdefghijklmnop.onion", "x.ONION", "y.onion."] {
            let host: Host = Host::Name(name.to_owned());
            let r = resolve(&host, 4433).await;
            assert!(matches!(r, Err(ConnectError::OnionWithoutProxy)), "{name}");
        }
    }
}

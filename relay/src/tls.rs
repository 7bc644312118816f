//! TLS 1.3 and QUIC settings of the relay: its server configuration, its
//! transport profile, and the channel binding of a connection. Clients
//! pin the relay's key (S11; `tropa-relay-client`), so the certificate's
//! names, dates and issuer are irrelevant by design. The TCP profile
//! (`server::tcp`) uses the same rustls configuration and binding.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use tropa_proto::ALPN;
use tropa_relay_protocol::crypto::{BINDING_LEN, ChannelBinding, EXPORTER_LABEL};

/// Concurrent streams per connection at most: requests plus
/// subscriptions, so a client subscribes to fewer mailboxes than this on
/// one connection (a handler has hundreds). All connections together are
/// bounded by the relay's stream budget (`server::budget::STREAM_COST`).
pub const MAX_STREAMS: u32 = 1024;

/// Concurrent streams a new QUIC connection may open: what a phone uses (a
/// subscription or two and up to 8 requests). The relay doubles it, up to
/// [`MAX_STREAMS`], whenever a connection has half of it open
/// (`server::conn`). quinn reserves state for every stream a connection
/// may open, about 70 bytes each, so 1,024 from the start cost every idle
/// phone some 70 KiB (measured: 121 KiB per idle subscribed connection at
/// 1,024, 37 KiB at 8).
pub const INITIAL_STREAMS: u32 = 16;

/// How long a connection may stay silent (nothing received from the
/// client) before the relay drops it, on either transport. Clients keep
/// their connections alive below it (QUIC PINGs; HTTP/2 PINGs over TCP).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The crypto provider (ring; TLS 1.3 suites only).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// rustls refused the configuration (e.g. a bad key).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the rustls configuration.
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
}

/// The UDP receive buffer the relay asks for: room for the handshake
/// flights of a burst of reconnecting clients (after a relay restart, or a
/// mobile network's outage) while the relay is busy. With the kernel's
/// default (208 KiB on Linux) a burst of 3,000 connects overflowed it on
/// loopback and the lost Initials waited out QUIC's retransmission
/// backoff. Linux caps the request at `net.core.rmem_max`.
pub const UDP_RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// Asks for [`UDP_RECEIVE_BUFFER`] on `socket`; returns the size the
/// kernel granted, comparable with what was asked.
///
/// # Errors
/// The socket option could not be set or read.
pub fn tune_udp_socket(socket: &std::net::UdpSocket) -> std::io::Result<usize> {
    let sock = socket2::SockRef::from(socket);
    sock.set_recv_buffer_size(UDP_RECEIVE_BUFFER)?;
    let got = sock.recv_buffer_size()?;
    // Linux grants min(asked, net.core.rmem_max) and reports twice that
    // (the other half is its bookkeeping).
    Ok(if cfg!(target_os = "linux") {
        got / 2
    } else {
        got
    })
}

/// Server transport settings. Flow-control windows are sized to the
/// protocol: one frame in flight per stream, so a peer cannot make the
/// relay buffer megabytes it never asked for (quinn's defaults allow
/// 1.25 MB per stream and an unbounded connection window). No path-MTU
/// probing: the clients pay for it on metered data. The relay never pings;
/// clients keep their own connections alive.
fn transport() -> quinn::TransportConfig {
    let frame = (tropa_proto::MAX_FRAME_LEN + 4096) as u32;
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(0u32.into());
    // A subscription holds its stream for as long as it runs, and a
    // handler's client subscribes to hundreds of mailboxes on one
    // connection; the memory budgets and windows bound what streams can
    // make the relay hold, not their number.
    t.max_concurrent_bidi_streams(INITIAL_STREAMS.into());
    t.datagram_receive_buffer_size(None);
    t.stream_receive_window(frame.into());
    t.mtu_discovery_config(None);
    // What quinn may buffer per connection, beyond the relay's own memory
    // budget: 128 KiB received but unread, 128 KiB sent but unacknowledged
    // (room for several deliveries in flight). A peer that stalls holds at
    // most this, so all connections together hold at most
    // `max_connections` x 256 KiB (1 GiB at the default 4 000).
    t.receive_window((128 * 1024u32).into());
    t.send_window(128 * 1024);
    t.max_idle_timeout(Some(
        quinn::VarInt::from_u32(IDLE_TIMEOUT.as_millis() as u32).into(),
    ));
    t
}

/// The rustls configuration both transports use: TLS 1.3 only, ALPN
/// `tropa/1`, no session tickets and no early data.
///
/// # Errors
/// [`TlsConfigError`] if the key does not match or is unsupported.
pub fn rustls_config(
    cert: CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsConfigError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // No session tickets: resumption state would be per-client state (S8).
    tls.send_tls13_tickets = 0;
    tls.max_early_data_size = 0;
    Ok(tls)
}

/// QUIC server configuration from a certificate and its private key (DER).
///
/// # Errors
/// [`TlsConfigError`] if the key does not match or is unsupported.
pub fn server_config(
    cert: CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<quinn::ServerConfig, TlsConfigError> {
    let tls = rustls_config(cert, key)?;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsConfigError::Quic(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(Arc::new(transport()));
    cfg.migration(true);
    Ok(cfg)
}

/// The connection's channel binding (TLS exporter). Both ends compute the same
/// 32 bytes; a signature over it is worthless on any other connection.
///
/// # Errors
/// Only if the handshake has not completed, which quinn rules out for an
/// established connection.
pub fn channel_binding(conn: &quinn::Connection) -> Result<ChannelBinding, TlsConfigError> {
    let mut out = [0u8; BINDING_LEN];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|_| TlsConfigError::Quic("TLS exporter unavailable".into()))?;
    Ok(out)
}

/// The channel binding of a TCP connection's TLS session: the same
/// exporter, label and length as over QUIC ([`channel_binding`]; quinn
/// passes an empty context), so a signed command is bound to this TLS
/// connection exactly as to a QUIC one.
///
/// # Errors
/// Only if the handshake has not completed.
pub fn tcp_channel_binding(
    conn: &rustls::ServerConnection,
) -> Result<ChannelBinding, TlsConfigError> {
    Ok(conn.export_keying_material([0u8; BINDING_LEN], EXPORTER_LABEL, Some(b""))?)
}

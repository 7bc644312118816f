//! An in-process relay on loopback with a real sled store in a temp dir,
//! and helpers for tests that speak the relay protocol directly, over QUIC
//! or by hand over the TCP profile ([`RawTcp`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tropa_proto::relay::{self, ErrorCode};
use tropa_proto::{ENVELOPE_SIZE, RelayAddress};
use tropa_relay::config::Config;
use tropa_relay::identity::RelayIdentity;
use tropa_relay::server::{PeerIps, Served, Server};
use tropa_relay::store::RedbStore;
use tropa_relay_client::{RelayClient, RequestError};
use x25519_dalek::{PublicKey, StaticSecret};

/// A relay served by this test process.
pub struct Relay {
    /// Its address.
    pub address: RelayAddress,
    /// Its metrics endpoint, if configured.
    pub metrics: Option<std::net::SocketAddr>,
    /// Its TCP listener, if `tcp` is on (same port as the address).
    pub tcp: Option<SocketAddr>,
    /// Its data directory.
    pub dir: tempfile::TempDir,
    peers: PeerIps,
    served: Served,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Serves `cfg` (its listen address replaced by 127.0.0.1:0).
    pub async fn start(cfg: Config) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let identity = RelayIdentity::generate().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("store.redb")).unwrap());
        let cfg = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..cfg
        };
        let server = Server::bind(cfg, &identity, store).await.unwrap();
        let address = server.address().unwrap();
        let metrics = server.metrics_addr();
        let tcp = server.tcp_addr();
        let peers = server.peer_ips_handle();
        let served = server.served_handle();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Relay {
            address,
            metrics,
            tcp,
            peers,
            served,
            dir,
            stop: Some(tx),
            task,
        }
    }

    /// The address keys the relay's per-address cap counts right now
    /// (`Server::peer_ips`): which addresses it sees connections from.
    pub fn peer_ips(&self) -> Vec<IpAddr> {
        self.peers.get()
    }

    /// For each connection alive, the mailboxes (recipient ids) it is
    /// subscribed to (`Server::served_handle`).
    pub fn served(&self) -> Vec<Vec<[u8; 24]>> {
        self.served.get()
    }

    /// Its metrics page (it must have been started with `metrics_listen`).
    pub async fn scrape(&self) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(self.metrics.expect("metrics_listen set"))
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        body
    }

    /// A raw connection to its TCP listener from `local` (any loopback
    /// address; the kernel picks one if `None`).
    pub async fn tcp_from(&self, local: Option<IpAddr>) -> Result<RawTcp, BoxError> {
        RawTcp::connect(
            self.tcp.expect("the relay serves TCP"),
            self.address.fingerprint,
            local,
        )
        .await
    }

    /// Shuts it down and returns its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.dir
    }
}

/// A mailbox created through [`mailbox`], with its secrets.
pub struct Mailbox {
    #[allow(missing_docs)]
    pub auth: SigningKey,
    #[allow(missing_docs)]
    pub dh: StaticSecret,
    #[allow(missing_docs)]
    pub rid: [u8; 24],
    #[allow(missing_docs)]
    pub sid: [u8; 24],
    #[allow(missing_docs)]
    pub relay_dh: [u8; 32],
}

/// Creates a mailbox on `c`.
pub async fn mailbox(c: &RelayClient) -> Mailbox {
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = StaticSecret::random_from_rng(&mut rand::rng());
    let m = c
        .create_mailbox(&auth, &PublicKey::from(&dh), None)
        .await
        .unwrap();
    assert_ne!(m.recipient_id, m.sender_id);
    Mailbox {
        auth,
        dh,
        rid: m.recipient_id,
        sid: m.sender_id,
        relay_dh: m.relay_dh_pub,
    }
}

/// A full-size envelope whose bytes depend on `fill`.
pub fn envelope(fill: u8) -> Bytes {
    // Not constant, so that a substring search is meaningful.
    Bytes::from(
        (0..ENVELOPE_SIZE)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(fill))
            .collect::<Vec<_>>(),
    )
}

/// The relay error code of a failed request.
pub fn code(r: Result<(), RequestError>) -> ErrorCode {
    r.unwrap_err().code().expect("relay error code")
}

/// The relay error code in a raw response.
pub fn resp_code(r: &relay::Response) -> Option<ErrorCode> {
    match &r.result {
        Some(relay::response::Result::Error(e)) => ErrorCode::try_from(e.code).ok(),
        _ => None,
    }
}

/// Any error of the hand-driven TCP client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection over the relay's TCP profile driven by hand: TCP, TLS 1.3
/// pinned to the relay's key (a verifier of its own, as a real client's),
/// then HTTP/2 with the profile's settings. For tests that write frames
/// themselves, as [`crate::raw_connection`] is for QUIC.
pub struct RawTcp {
    /// The TLS connection's channel binding, as the relay computes it.
    pub binding: tropa_relay_protocol::crypto::ChannelBinding,
    send: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for RawTcp {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl RawTcp {
    /// Connects to `addr` from `local`, accepting only the key `fingerprint`.
    pub async fn connect(
        addr: SocketAddr,
        fingerprint: tropa_proto::Fingerprint,
        local: Option<IpAddr>,
    ) -> Result<RawTcp, BoxError> {
        use tropa_relay_protocol::tcp;
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(ip) = local {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(pinned_tls(fingerprint)?));
        let name = rustls::pki_types::ServerName::try_from(tropa_relay_client::SERVER_NAME)?;
        let tls = connector.connect(name, stream).await?;
        let binding = tls.get_ref().1.export_keying_material(
            [0u8; tropa_relay_protocol::crypto::BINDING_LEN],
            tropa_relay_protocol::crypto::EXPORTER_LABEL,
            Some(b""),
        )?;
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(tcp::STREAM_WINDOW)
            .initial_connection_window_size(tcp::CLIENT_CONNECTION_WINDOW)
            .max_header_list_size(tcp::MAX_HEADER_LIST)
            .handshake::<_, Bytes>(tls)
            .await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(RawTcp {
            binding,
            send,
            driver,
        })
    }

    /// Opens a stream (`POST /`) and waits for the relay's response head.
    pub async fn open(
        &self,
    ) -> Result<
        (
            tropa_relay_protocol::tcp::H2Writer,
            tropa_relay_protocol::tcp::H2Reader,
        ),
        BoxError,
    > {
        self.open_as("POST", "/").await
    }

    /// Opens a stream with this method and path (the relay accepts only
    /// `POST /`).
    pub async fn open_as(
        &self,
        method: &str,
        path: &str,
    ) -> Result<
        (
            tropa_relay_protocol::tcp::H2Writer,
            tropa_relay_protocol::tcp::H2Reader,
        ),
        BoxError,
    > {
        use tropa_relay_protocol::tcp::{H2Reader, H2Writer};
        let mut send = self.send.clone().ready().await?;
        let head = http::Request::builder().method(method).uri(path).body(())?;
        let (response, stream) = send.send_request(head, false)?;
        let response = tokio::time::timeout(Duration::from_secs(10), response).await??;
        Ok((H2Writer::new(stream), H2Reader::new(response.into_body())))
    }

    /// Sends one request on a new stream and reads its first answer.
    pub async fn request(&self, req: &relay::Request) -> Result<relay::Response, BoxError> {
        use tokio::io::AsyncWriteExt as _;
        use tropa_relay_protocol::frame;
        use tropa_relay_protocol::tcp::{H2Reader, H2Writer};
        let mut send = self.send.clone().ready().await?;
        let head = http::Request::builder().method("POST").uri("/").body(())?;
        let (response, stream) = send.send_request(head, false)?;
        let mut w = H2Writer::new(stream);
        // The relay may answer without reading the request (rate limited,
        // busy) and then reset the stream with NO_ERROR (RFC 9113 §8.1),
        // which fails a write still under way: the answer counts, not the
        // write.
        let _ = frame::write_frame(&mut w, req).await;
        let _ = w.shutdown().await;
        let response = tokio::time::timeout(Duration::from_secs(10), response).await??;
        let mut r = H2Reader::new(response.into_body());
        let resp =
            tokio::time::timeout(Duration::from_secs(10), frame::read_frame(&mut r)).await??;
        Ok(resp)
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.driver.is_finished()
    }
}

/// A TLS 1.3 client configuration that accepts only the relay key with
/// this fingerprint (ALPN `tropa/1`, no SNI), as a real client's.
pub fn pinned_tls(fingerprint: tropa_proto::Fingerprint) -> Result<rustls::ClientConfig, BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedKey {
            fingerprint,
            provider,
        }))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![tropa_proto::ALPN.to_vec()];
    cfg.enable_sni = false;
    Ok(cfg)
}

/// Accepts the certificate whose key has the pinned fingerprint, and checks
/// the handshake signature under it.
#[derive(Debug)]
struct PinnedKey {
    fingerprint: tropa_proto::Fingerprint,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding);
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| bad())?;
        let seen = tropa_proto::Fingerprint::of_spki(&cert.subject_public_key_info());
        if seen == self.fingerprint {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

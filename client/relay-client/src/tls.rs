//! TLS 1.3 and QUIC settings of the client side: the pinned-key verifier
//! (S11), the QUIC client transport profile, and the same TLS over TCP.
//!
//! A client trusts no certificate authority. It accepts a relay if and only if
//! the SHA-256 of the SubjectPublicKeyInfo in the relay's certificate equals
//! the fingerprint in the relay address (or, for a short link, starts with
//! the 16-byte prefix the link carries: [`Pin::Prefix`]), and the TLS 1.3
//! handshake signature verifies under that key. The certificate's names, dates and issuer are
//! irrelevant by design. SNI is disabled so the network does not see a name.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tropa_proto::{ALPN, Fingerprint, FingerprintPrefix};
use tropa_relay_protocol::crypto::{BINDING_LEN, ChannelBinding, EXPORTER_LABEL};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the rustls configuration.
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
}

/// Which relay keys a connection accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// Exactly the key with this fingerprint (a `tropa://` relay address).
    Key(Fingerprint),
    /// A key whose fingerprint starts with these 16 bytes (a short link).
    /// Another key matching would take a second preimage on 128 bits of
    /// SHA-256; the connection then reports the full fingerprint
    /// ([`crate::RelayClient::fingerprint`]).
    Prefix(FingerprintPrefix),
}

impl Pin {
    /// Whether a relay whose key has fingerprint `seen` is accepted.
    pub fn accepts(&self, seen: &Fingerprint) -> bool {
        // Fingerprints are public; a plain comparison leaks nothing secret.
        match self {
            Pin::Key(fp) => seen == fp,
            Pin::Prefix(prefix) => seen.starts_with(prefix),
        }
    }
}

/// The fingerprint of the key in a DER certificate, if it parses.
pub(crate) fn fingerprint_of_cert(der: &CertificateDer<'_>) -> Option<Fingerprint> {
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    Some(Fingerprint::of_spki(&cert.subject_public_key_info()))
}

/// Accepts the relay keys its [`Pin`] names, and notes when it saw another one.
#[derive(Debug)]
struct PinnedKey {
    pin: Pin,
    provider: Arc<CryptoProvider>,
    mismatch: Arc<AtomicBool>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint_of_cert(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        if self.pin.accepts(&seen) {
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatch.store(true, Ordering::Relaxed);
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is enabled; this is unreachable in practice.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Delivery frames a subscription's stream may have in flight.
const FRAMES_PER_STREAM: u32 = 4;

/// Client transport settings: the relay never opens streams towards a
/// client; a receive window for several subscriptions' deliveries at once,
/// and [`FRAMES_PER_STREAM`] per stream, so a busy mailbox has several
/// deliveries in flight (with one, each delivery waited a round trip for
/// the window to reopen: about 1,000 a second at most) while what a relay
/// can make the client buffer stays bounded by the connection's window; no path-MTU probing (it costs kilobytes per
/// connection on metered data, for little gain on 16 KiB envelopes); and a
/// keep-alive below common carrier UDP NAT timeouts.
fn transport() -> quinn::TransportConfig {
    let frame = (tropa_proto::MAX_FRAME_LEN + 4096) as u32;
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(0u32.into());
    t.max_concurrent_bidi_streams(0u32.into());
    t.datagram_receive_buffer_size(None);
    t.stream_receive_window((FRAMES_PER_STREAM * frame).into());
    t.receive_window((16 * frame).into());
    t.send_window(u64::from(4 * frame));
    t.mtu_discovery_config(None);
    // A PING is ~50 bytes, about 12 KB an hour. It also carries the packet
    // a restarted relay answers with a stateless reset. The relay never pings.
    t.keep_alive_interval(Some(Duration::from_secs(15)));
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(90_000).into()));
    t
}

/// QUIC client configuration that accepts only the relay with `fingerprint`.
///
/// # Errors
/// [`TlsConfigError`] if rustls or quinn refuse the configuration.
pub fn client_config(fingerprint: Fingerprint) -> Result<quinn::ClientConfig, TlsConfigError> {
    pinned_config(fingerprint).map(|(cfg, _)| cfg)
}

/// [`client_config`], and a flag that is set if a relay presents another key
/// (so a failed handshake can be told apart from an unreachable relay).
///
/// # Errors
/// [`TlsConfigError`] if rustls or quinn refuse the configuration.
pub fn pinned_config(
    fingerprint: Fingerprint,
) -> Result<(quinn::ClientConfig, Arc<AtomicBool>), TlsConfigError> {
    pin_config(Pin::Key(fingerprint))
}

/// [`pinned_config`] for any [`Pin`], a full fingerprint or a prefix.
///
/// # Errors
/// [`TlsConfigError`] if rustls or quinn refuse the configuration.
pub fn pin_config(pin: Pin) -> Result<(quinn::ClientConfig, Arc<AtomicBool>), TlsConfigError> {
    let (tls, mismatch) = rustls_config(pin)?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsConfigError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(Arc::new(transport()));
    Ok((cfg, mismatch))
}

/// The TLS 1.3 configuration both transports use: the pinned-key verifier,
/// ALPN `tropa/1`, no SNI; and the flag the verifier sets when it sees
/// another key.
fn rustls_config(pin: Pin) -> Result<(rustls::ClientConfig, Arc<AtomicBool>), TlsConfigError> {
    let mismatch = Arc::new(AtomicBool::new(false));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedKey {
            pin,
            provider,
            mismatch: mismatch.clone(),
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_sni = false;
    Ok((tls, mismatch))
}

/// [`pin_config`] for the TCP profile: the same TLS settings over TCP, and
/// no session resumption (the relay issues no tickets; a ticket would link
/// two connections, e.g. over two Tor circuits, to one client).
///
/// # Errors
/// [`TlsConfigError`] if rustls refuses the configuration.
pub fn tcp_config(
    pin: Pin,
) -> Result<(Arc<rustls::ClientConfig>, Arc<AtomicBool>), TlsConfigError> {
    let (mut tls, mismatch) = rustls_config(pin)?;
    tls.resumption = rustls::client::Resumption::disabled();
    Ok((Arc::new(tls), mismatch))
}

/// The channel binding of a TLS connection over TCP: the same exporter,
/// label and length as over QUIC ([`channel_binding`]).
///
/// # Errors
/// Only if the handshake has not completed.
pub fn tcp_channel_binding(
    conn: &rustls::ClientConnection,
) -> Result<ChannelBinding, TlsConfigError> {
    Ok(conn.export_keying_material([0u8; BINDING_LEN], EXPORTER_LABEL, Some(b""))?)
}

/// The connection's channel binding (TLS exporter). Both ends compute the
/// same 32 bytes; a signature over it is worthless on any other connection.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_accepts_its_key_or_its_prefix_only() {
        let fp = Fingerprint([9; 32]);
        let mut tail = fp;
        tail.0[31] ^= 1;
        let mut head = fp;
        head.0[0] ^= 1;
        assert!(Pin::Key(fp).accepts(&fp));
        assert!(
            !Pin::Key(fp).accepts(&tail),
            "a full pin takes all 32 bytes"
        );
        let prefix = Pin::Prefix(fp.prefix());
        assert!(prefix.accepts(&fp) && prefix.accepts(&tail));
        assert!(!prefix.accepts(&head));
    }
}

//! The relay's long-term Ed25519 key and its self-signed certificate.
//!
//! The key is stored as PKCS#8 PEM in `relay.key` (mode 0600). The certificate
//! is derived from it at every start; only the key's SPKI fingerprint matters
//! (S11), so the certificate's names and dates are placeholders.

use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tropa_proto::Fingerprint;

/// File name of the relay key inside the data directory.
pub const KEY_FILE: &str = "relay.key";

/// Why the relay identity could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The key file is not a valid Ed25519 PKCS#8 key.
    #[error("{0}: not a valid relay key")]
    BadKey(String),
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

/// The relay's key pair and certificate.
pub struct RelayIdentity {
    key: rcgen::KeyPair,
    cert: CertificateDer<'static>,
}

impl std::fmt::Debug for RelayIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelayIdentity({})", self.fingerprint())
    }
}

impl RelayIdentity {
    /// A new random identity.
    ///
    /// # Errors
    /// [`IdentityError::Cert`] if key generation fails.
    pub fn generate() -> Result<Self, IdentityError> {
        Self::from_key(rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?)
    }

    fn from_key(key: rcgen::KeyPair) -> Result<Self, IdentityError> {
        let params =
            rcgen::CertificateParams::new(vec![tropa_relay_protocol::SERVER_NAME.to_owned()])?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert: cert.der().clone(),
            key,
        })
    }

    /// Loads the identity from `path`.
    ///
    /// # Errors
    /// [`IdentityError`] if the file is missing or not an Ed25519 key.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let pem = std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let key = rcgen::KeyPair::from_pem(&pem)
            .map_err(|_| IdentityError::BadKey(path.display().to_string()))?;
        if !key.is_compatible(&rcgen::PKCS_ED25519) {
            return Err(IdentityError::BadKey(path.display().to_string()));
        }
        Self::from_key(key)
    }

    /// Writes the key to `path`, readable by the owner only. Refuses to
    /// overwrite an existing key.
    ///
    /// # Errors
    /// [`IdentityError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        use std::io::Write as _;
        let io = |source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(self.key.serialize_pem().as_bytes())
            .map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// SHA-256 of the SubjectPublicKeyInfo: what relay addresses carry.
    pub fn fingerprint(&self) -> Fingerprint {
        use rcgen::PublicKeyData as _;
        Fingerprint::of_spki(&self.key.subject_public_key_info())
    }

    /// Key for QUIC stateless resets, derived from the relay key so that it
    /// survives restarts: a restarted relay can then tell clients at once
    /// that their old connection is gone (RFC 9000 §10.3), instead of
    /// leaving them waiting for an idle timeout.
    pub fn stateless_reset_key(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            self.derive(b"quic stateless-reset key").as_slice(),
        )
    }

    /// Key of the hashed connection-ID generator, stable across restarts for
    /// the same reason: a restarted relay must recognise its old connection
    /// IDs as its own to answer them with a stateless reset.
    pub fn connection_id_key(&self) -> u64 {
        let k = self.derive(b"quic connection-id key");
        let mut b = [0u8; 8];
        b.copy_from_slice(&k[..8]);
        u64::from_le_bytes(b)
    }

    /// A secret derived from the relay key: HKDF-SHA256 with a fixed salt.
    fn derive(&self, label: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
        let der = zeroize::Zeroizing::new(self.key.serialize_der());
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit: expand cannot fail.
        let _ = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"tropa/1 relay-derived"), &der)
            .expand(label, out.as_mut_slice());
        out
    }

    /// The certificate (DER).
    pub fn cert(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// The private key (DER) for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_keeps_fingerprint_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let id = RelayIdentity::generate().unwrap();
        id.save(&path).unwrap();
        assert!(id.save(&path).is_err());
        let back = RelayIdentity::load(&path).unwrap();
        assert_eq!(back.fingerprint(), id.fingerprint());
        // The fingerprint is that of the SPKI inside the certificate.
        let ee = webpki::EndEntityCert::try_from(&back.cert).unwrap();
        assert_eq!(
            Fingerprint::of_spki(&ee.subject_public_key_info()),
            id.fingerprint()
        );
        std::fs::write(dir.path().join("bad"), "garbage").unwrap();
        assert!(matches!(
            RelayIdentity::load(&dir.path().join("bad")),
            Err(IdentityError::BadKey(_))
        ));
    }
}

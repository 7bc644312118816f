//! The relay protocol's own cryptography: recipient-command and deposit
//! signatures, connection binding, and the per-delivery re-encryption (S6).
//!
//! Shared by the relay and the client so both sides compute exactly the same
//! bytes. Nothing here touches end-to-end content: envelopes are opaque.
//! Never reuse a context string for another purpose.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand::Rng as _;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Signature context of recipient commands.
pub const RECIPIENT_CONTEXT: &[u8] = b"tropa/1 recipient-command\0";
/// Signature context of secured deposits.
pub const DEPOSIT_CONTEXT: &[u8] = b"tropa/1 deposit\0";
/// Signature context of `PutLink`.
pub const LINK_PUT_CONTEXT: &[u8] = b"tropa/1 link-put\0";
/// Signature context of `DeleteLink`.
pub const LINK_DELETE_CONTEXT: &[u8] = b"tropa/1 link-delete\0";
/// TLS exporter label for the channel binding (RFC 5705 / RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-tropa/1 channel-binding";
/// Length of the channel binding.
pub const BINDING_LEN: usize = 32;
/// HKDF info for the delivery key shared by the relay and the recipient.
const DELIVERY_INFO: &[u8] = b"tropa/1 delivery-key";
/// HKDF info for the relay's at-rest key of one mailbox.
const AT_REST_INFO: &[u8] = b"tropa/1 at-rest-key";
/// HKDF info for the relay's at-rest key of one short link's data.
const LINK_AT_REST_INFO: &[u8] = b"tropa/1 link-at-rest-key";
/// Nonce length of the delivery and at-rest sealing.
pub const NONCE_LEN: usize = 12;
/// Tag length of ChaCha20-Poly1305.
pub const TAG_LEN: usize = 16;
/// Size of a sealed envelope (delivery or at rest).
pub const SEALED_LEN: usize = NONCE_LEN + tropa_proto::ENVELOPE_SIZE + TAG_LEN;

/// The connection's channel binding from the TLS exporter.
pub type ChannelBinding = [u8; BINDING_LEN];

/// Bytes a recipient signs: context ‖ binding ‖ encoded command.
pub fn recipient_signed_bytes(binding: &ChannelBinding, command: &[u8]) -> Vec<u8> {
    [RECIPIENT_CONTEXT, binding.as_slice(), command].concat()
}

/// Bytes a secured sender signs: context ‖ sender_id ‖ envelope.
pub fn deposit_signed_bytes(sender_id: &[u8], envelope: &[u8]) -> Vec<u8> {
    [DEPOSIT_CONTEXT, sender_id, envelope].concat()
}

/// Bytes a link's owner signs to store it: context ‖ binding ‖ locator ‖
/// ttl_secs (4 bytes, big endian) ‖ data. The relay checks the locator's
/// length (32) first, so the concatenation is unambiguous.
pub fn link_put_signed_bytes(
    binding: &ChannelBinding,
    locator: &[u8],
    ttl_secs: u32,
    data: &[u8],
) -> Vec<u8> {
    [
        LINK_PUT_CONTEXT,
        binding.as_slice(),
        locator,
        &ttl_secs.to_be_bytes(),
        data,
    ]
    .concat()
}

/// Bytes a link's owner signs to delete it: context ‖ binding ‖ locator.
pub fn link_delete_signed_bytes(binding: &ChannelBinding, locator: &[u8]) -> Vec<u8> {
    [LINK_DELETE_CONTEXT, binding.as_slice(), locator].concat()
}

/// Signs a `PutLink` for this connection.
pub fn sign_link_put(
    key: &SigningKey,
    binding: &ChannelBinding,
    locator: &[u8],
    ttl_secs: u32,
    data: &[u8],
) -> [u8; 64] {
    key.sign(&link_put_signed_bytes(binding, locator, ttl_secs, data))
        .to_bytes()
}

/// Signs a `DeleteLink` for this connection.
pub fn sign_link_delete(key: &SigningKey, binding: &ChannelBinding, locator: &[u8]) -> [u8; 64] {
    key.sign(&link_delete_signed_bytes(binding, locator))
        .to_bytes()
}

/// Signs a recipient command for this connection.
pub fn sign_recipient(key: &SigningKey, binding: &ChannelBinding, command: &[u8]) -> [u8; 64] {
    key.sign(&recipient_signed_bytes(binding, command))
        .to_bytes()
}

/// Signs a deposit.
pub fn sign_deposit(key: &SigningKey, sender_id: &[u8], envelope: &[u8]) -> [u8; 64] {
    key.sign(&deposit_signed_bytes(sender_id, envelope))
        .to_bytes()
}

/// Verifies an Ed25519 signature strictly (no malleable or small-order keys).
pub fn verify(public: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    let Ok(public) = <[u8; 32]>::try_from(public) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&public) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(msg, &sig).is_ok()
}

/// A ChaCha20-Poly1305 key used to seal whole envelopes.
pub struct SealingKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// A sealed envelope did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sealed envelope failed authentication")]
pub struct OpenError;

impl SealingKey {
    fn derive(ikm: &[u8], recipient_id: &[u8], info: &[u8]) -> Self {
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 255*32 limit: expand cannot fail.
        let _ = Hkdf::<Sha256>::new(Some(recipient_id), ikm).expand(info, okm.as_mut_slice());
        Self(okm)
    }

    /// The key the relay re-encrypts deliveries under and the recipient opens
    /// them with: HKDF-SHA256(salt = recipient_id, ikm = X25519(relay, recipient)).
    pub fn delivery(secret: &StaticSecret, peer: &PublicKey, recipient_id: &[u8]) -> Self {
        let shared = secret.diffie_hellman(peer);
        Self::derive(shared.as_bytes(), recipient_id, DELIVERY_INFO)
    }

    /// The relay's at-rest key for one mailbox, derived from the mailbox's
    /// relay DH secret: deleting the mailbox record crypto-erases its envelopes.
    pub fn at_rest(relay_secret: &StaticSecret, recipient_id: &[u8]) -> Self {
        Self::derive(relay_secret.as_bytes(), recipient_id, AT_REST_INFO)
    }

    /// The relay's at-rest key for one short link's data, derived from the
    /// link's locator, which the relay keeps only in memory while it serves
    /// a request (it stores the link under a hash of the locator). A copy of
    /// the data directory therefore opens no link data without the link.
    pub fn link_at_rest(locator: &[u8]) -> Self {
        Self::derive(locator, &[], LINK_AT_REST_INFO)
    }

    /// Seals `plain` with a fresh random nonce: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new((&*self.0).into());
        let nonce_arr = Nonce::from(nonce);
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        // Encryption only fails for inputs over 256 GiB.
        match cipher.encrypt(&nonce_arr, Payload { msg: plain, aad }) {
            Ok(ct) => out.extend_from_slice(&ct),
            Err(_) => out.clear(),
        }
        out
    }

    /// Opens what [`seal`](Self::seal) produced.
    ///
    /// # Errors
    /// [`OpenError`] if the input is short or fails authentication.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (nonce, ct) = sealed.split_first_chunk::<NONCE_LEN>().ok_or(OpenError)?;
        let cipher = ChaCha20Poly1305::new((&*self.0).into());
        cipher
            .decrypt(&Nonce::from(*nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_key_agrees_and_seal_is_randomised() {
        let relay = StaticSecret::random_from_rng(&mut rand::rng());
        let recipient = StaticSecret::random_from_rng(&mut rand::rng());
        let rid = [7u8; 24];
        let k_relay = SealingKey::delivery(&relay, &PublicKey::from(&recipient), &rid);
        let k_recipient = SealingKey::delivery(&recipient, &PublicKey::from(&relay), &rid);
        let env = vec![42u8; tropa_proto::ENVELOPE_SIZE];
        let a = k_relay.seal(b"id", &env);
        let b = k_relay.seal(b"id", &env);
        assert_eq!(a.len(), SEALED_LEN);
        assert_ne!(a, b, "two deliveries of one envelope must differ");
        assert_eq!(k_recipient.open(b"id", &a).expect("opens").as_slice(), env);
        assert_eq!(k_recipient.open(b"other", &a), Err(OpenError));
        let mut t = a.clone();
        t[100] ^= 1;
        assert_eq!(k_recipient.open(b"id", &t), Err(OpenError));
        assert_eq!(k_recipient.open(b"id", &a[..5]), Err(OpenError));
        // A different mailbox derives a different key.
        let other = SealingKey::delivery(&recipient, &PublicKey::from(&relay), &[8u8; 24]);
        assert_eq!(other.open(b"id", &a), Err(OpenError));
        // The at-rest key is not the delivery key.
        assert_eq!(
            SealingKey::at_rest(&relay, &rid).open(b"id", &a),
            Err(OpenError)
        );
    }

    #[test]
    fn signatures_bind_context_and_channel() {
        let key = SigningKey::generate(&mut rand::rng());
        let pubk = key.verifying_key().to_bytes();
        let sig = sign_recipient(&key, &[1; 32], b"cmd");
        assert!(verify(
            &pubk,
            &recipient_signed_bytes(&[1; 32], b"cmd"),
            &sig
        ));
        assert!(!verify(
            &pubk,
            &recipient_signed_bytes(&[2; 32], b"cmd"),
            &sig
        ));
        assert!(!verify(
            &pubk,
            &deposit_signed_bytes(&[1; 32], b"cmd"),
            &sig
        ));
        assert!(!verify(&pubk[..31], b"x", &sig));
        // Link commands: bound to the channel, the locator and (for a put)
        // the TTL and the data; never valid as one another.
        let put = sign_link_put(&key, &[1; 32], &[5; 32], 3600, b"data");
        let put_bytes = link_put_signed_bytes(&[1; 32], &[5; 32], 3600, b"data");
        assert!(verify(&pubk, &put_bytes, &put));
        for other in [
            link_put_signed_bytes(&[2; 32], &[5; 32], 3600, b"data"),
            link_put_signed_bytes(&[1; 32], &[6; 32], 3600, b"data"),
            link_put_signed_bytes(&[1; 32], &[5; 32], 3601, b"data"),
            link_put_signed_bytes(&[1; 32], &[5; 32], 3600, b"datb"),
            link_delete_signed_bytes(&[1; 32], &[5; 32]),
        ] {
            assert!(!verify(&pubk, &other, &put));
        }
        let del = sign_link_delete(&key, &[1; 32], &[5; 32]);
        assert!(verify(
            &pubk,
            &link_delete_signed_bytes(&[1; 32], &[5; 32]),
            &del
        ));
        assert!(!verify(
            &pubk,
            &link_delete_signed_bytes(&[2; 32], &[5; 32]),
            &del
        ));
        assert!(!verify(&pubk, b"x", &sig[..63]));
    }
}

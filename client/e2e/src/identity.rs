//! Long-term identity: an Ed25519 signing key and an X25519 agreement key.

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::{Reader, StateError, Writer};
use crate::primitives::x25519_public;

/// Length of an [`IdentityPublic`] in bytes: Ed25519 (32) || X25519 (32).
pub const IDENTITY_PUBLIC_LEN: usize = 64;

/// Tag and version byte of a serialised [`Identity`].
const IDENTITY_STATE_V1: u8 = 0x11;

/// A profile's long-term secret keys. Zeroized on drop; `Debug` shows only the
/// public half.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Identity {
    ed_seed: [u8; 32],
    x_secret: [u8; 32],
    #[zeroize(skip)]
    public: IdentityPublic,
}

/// The public half of an [`Identity`]: what the peer sees, what safety numbers
/// are computed from, and what is bound into every message as associated data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityPublic {
    ed: [u8; 32],
    x: [u8; 32],
}

/// Bytes that are not a valid identity public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid identity public key (64 bytes: Ed25519 point || X25519 key)")]
pub struct InvalidIdentityKey;

/// A known contact presented a different identity key (S10). Never ignore this:
/// show it to the user and require re-verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the contact's identity key has changed: verify the safety number again before trusting it"
)]
pub struct IdentityChanged {
    /// The key now presented (the caller holds the remembered one).
    pub seen: IdentityPublic,
}

impl Identity {
    /// Generates a fresh identity from the caller's CSPRNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut ed_seed = [0u8; 32];
        let mut x_secret = [0u8; 32];
        rng.fill_bytes(&mut ed_seed);
        rng.fill_bytes(&mut x_secret);
        let id = Self::from_secrets(&ed_seed, &x_secret);
        ed_seed.zeroize();
        x_secret.zeroize();
        id
    }

    fn from_secrets(ed_seed: &[u8; 32], x_secret: &[u8; 32]) -> Self {
        let sk = SigningKey::from_bytes(ed_seed);
        let public = IdentityPublic {
            ed: sk.verifying_key().to_bytes(),
            x: x25519_public(x_secret),
        };
        Self {
            ed_seed: *ed_seed,
            x_secret: *x_secret,
            public,
        }
    }

    /// The public half.
    pub fn public(&self) -> IdentityPublic {
        self.public
    }

    /// Serialises the secret keys for the (encrypted) client store:
    /// `0x11 || ed25519 seed (32) || x25519 secret (32)`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(65);
        w.u8(IDENTITY_STATE_V1);
        w.bytes(&self.ed_seed);
        w.bytes(&self.x_secret);
        w.finish()
    }

    /// Loads what [`Identity::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != IDENTITY_STATE_V1 {
            return Err(StateError::BadVersion);
        }
        let ed = Zeroizing::new(r.arr::<32>()?);
        let x = Zeroizing::new(r.arr::<32>()?);
        r.end()?;
        Ok(Self::from_secrets(&ed, &x))
    }

    /// Signs `msg` with the Ed25519 identity key (for callers that need to
    /// prove control of the identity, e.g. multi-device later).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        SigningKey::from_bytes(&self.ed_seed).sign(msg).to_bytes()
    }

    pub(crate) fn x_secret(&self) -> &[u8; 32] {
        &self.x_secret
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl IdentityPublic {
    /// The 64-byte encoding: Ed25519 public key || X25519 public key.
    pub fn to_bytes(&self) -> [u8; IDENTITY_PUBLIC_LEN] {
        let mut out = [0u8; IDENTITY_PUBLIC_LEN];
        out[..32].copy_from_slice(&self.ed);
        out[32..].copy_from_slice(&self.x);
        out
    }

    /// Parses the 64-byte encoding. The Ed25519 half must be a valid point and
    /// the X25519 half must not be a low-order point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidIdentityKey> {
        let arr: [u8; IDENTITY_PUBLIC_LEN] = bytes.try_into().map_err(|_| InvalidIdentityKey)?;
        let mut ed = [0u8; 32];
        let mut x = [0u8; 32];
        ed.copy_from_slice(&arr[..32]);
        x.copy_from_slice(&arr[32..]);
        let vk = VerifyingKey::from_bytes(&ed).map_err(|_| InvalidIdentityKey)?;
        if vk.is_weak() || is_low_order_x25519(&x) {
            return Err(InvalidIdentityKey);
        }
        Ok(Self { ed, x })
    }

    /// An identity key from this crate's own stored state, which was
    /// validated by [`from_bytes`](Self::from_bytes) when it first arrived
    /// and has been authenticated by the store since: not checked again
    /// (the checks cost two scalar multiplications, on every session load).
    pub(crate) fn from_stored(bytes: &[u8; IDENTITY_PUBLIC_LEN]) -> Self {
        let mut ed = [0u8; 32];
        let mut x = [0u8; 32];
        ed.copy_from_slice(&bytes[..32]);
        x.copy_from_slice(&bytes[32..]);
        Self { ed, x }
    }

    /// The Ed25519 verifying key bytes.
    pub fn ed25519(&self) -> &[u8; 32] {
        &self.ed
    }

    /// The X25519 agreement key bytes.
    pub fn x25519(&self) -> &[u8; 32] {
        &self.x
    }

    /// Verifies an Ed25519 signature made with [`Identity::sign`].
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        match VerifyingKey::from_bytes(&self.ed) {
            Ok(vk) => vk
                .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// A point is low-order if multiplying any clamped scalar by it gives zero;
/// testing with one fixed scalar is enough (the cofactor clears it).
fn is_low_order_x25519(x: &[u8; 32]) -> bool {
    let mut probe = [0u8; 32];
    probe[0] = 9;
    crate::primitives::dh(&probe, x).is_none()
}

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public, but still only a short prefix: enough to tell keys apart in logs.
        write!(
            f,
            "IdentityPublic({:02x}{:02x}{:02x}{:02x}..)",
            self.ed[0], self.ed[1], self.ed[2], self.ed[3]
        )
    }
}

/// Checks that the identity a contact presents is the one remembered for it
/// (constant time). A mismatch is [`IdentityChanged`], which the caller must
/// surface to the user (S10).
pub fn verify_peer(known: &IdentityPublic, seen: &IdentityPublic) -> Result<(), IdentityChanged> {
    if bool::from(known.to_bytes().ct_eq(&seen.to_bytes())) {
        Ok(())
    } else {
        Err(IdentityChanged { seen: *seen })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;

    #[test]
    fn round_trip_and_redacted_debug() {
        let mut rng = TestRng::new(b"identity");
        let id = Identity::generate(&mut rng);
        let bytes = id.to_bytes();
        assert_eq!(bytes.len(), 65);
        let back = Identity::from_bytes(&bytes).unwrap();
        assert_eq!(back.public(), id.public());
        let dbg = format!("{id:?}");
        for window in bytes[1..].windows(4) {
            assert!(!dbg.contains(&hex::encode(window)));
        }
        assert!(dbg.contains("redacted"));
        let p = IdentityPublic::from_bytes(&id.public().to_bytes()).unwrap();
        assert_eq!(p, id.public());
    }

    #[test]
    fn bad_state_and_keys_are_refused() {
        let mut rng = TestRng::new(b"identity2");
        let id = Identity::generate(&mut rng);
        let bytes = id.to_bytes();
        assert_eq!(
            Identity::from_bytes(&bytes[..64]).unwrap_err(),
            StateError::Truncated
        );
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(
            Identity::from_bytes(&long).unwrap_err(),
            StateError::TrailingBytes
        );
        let mut v = bytes.to_vec();
        v[0] = 0x12;
        assert_eq!(
            Identity::from_bytes(&v).unwrap_err(),
            StateError::BadVersion
        );
        assert!(IdentityPublic::from_bytes(&[0u8; 63]).is_err());
        let mut p = id.public().to_bytes();
        p[32..].copy_from_slice(&[0u8; 32]);
        assert!(
            IdentityPublic::from_bytes(&p).is_err(),
            "low-order X25519 key refused"
        );
    }

    #[test]
    fn changed_identity_is_an_error() {
        let mut rng = TestRng::new(b"identity3");
        let a = Identity::generate(&mut rng).public();
        let b = Identity::generate(&mut rng).public();
        assert!(verify_peer(&a, &a).is_ok());
        let e = verify_peer(&a, &b).unwrap_err();
        assert_eq!(e.seen, b);
    }

    #[test]
    fn sign_and_verify() {
        let mut rng = TestRng::new(b"identity4");
        let id = Identity::generate(&mut rng);
        let sig = id.sign(b"msg");
        assert!(id.public().verify(b"msg", &sig));
        assert!(!id.public().verify(b"msh", &sig));
    }
}

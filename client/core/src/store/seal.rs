//! Keyed hashing of tree and key names, and sealing of values.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::StoreError;
use super::keyfile::DATA_KEY_LEN;

/// Version byte at the start of every stored value.
pub(crate) const RECORD_VERSION: u8 = 1;
/// Nonce length of a stored value.
const NONCE_LEN: usize = 24;
/// Plaintexts are zero-padded to a multiple of this many bytes.
pub(crate) const PAD_BLOCK: usize = 64;
/// HKDF label of the index (HMAC) key.
const LABEL_INDEX: &[u8] = b"tropa/store/v1/index";
/// HKDF label of the value (AEAD) key.
const LABEL_VALUE: &[u8] = b"tropa/store/v1/value";
/// HMAC domain label for tree names.
const DOMAIN_TREE: &[u8] = b"tropa/store/v1/tree\0";
/// HMAC domain label for keys.
const DOMAIN_KEY: &[u8] = b"tropa/store/v1/key\0";
/// AEAD associated-data label for values.
const DOMAIN_VALUE_AAD: &[u8] = b"tropa/store/v1/value\0";

/// A decrypted `(key, value)` pair.
pub(crate) type SecretPair = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// A 32-byte keyed hash identifying a tree or a key on disk.
pub(crate) type Id = [u8; 32];

/// Keys derived from the data key. Zeroized on drop; never printed.
pub(crate) struct Keys {
    /// 64-byte HMAC-SHA256 key (one SHA-256 block, so keying is infallible).
    index: Zeroizing<[u8; 64]>,
    /// Value cipher (its key is zeroized on drop by the `zeroize` feature).
    value: XChaCha20Poly1305,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    /// Derives the index and value keys from the data key with HKDF-SHA256.
    pub(crate) fn derive(data_key: &[u8; DATA_KEY_LEN]) -> Result<Self, &'static str> {
        let hk = Hkdf::<Sha256>::new(None, data_key);
        let mut index = Zeroizing::new([0u8; 64]);
        hk.expand(LABEL_INDEX, index.as_mut_slice())
            .map_err(|_| "HKDF failed")?;
        let mut value_key = Zeroizing::new([0u8; 32]);
        hk.expand(LABEL_VALUE, value_key.as_mut_slice())
            .map_err(|_| "HKDF failed")?;
        let value = XChaCha20Poly1305::new((&*value_key).into());
        Ok(Self { index, value })
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new((&*self.index).into())
    }

    /// The on-disk name of tree `name`.
    pub(crate) fn tree_id(&self, name: &str) -> Id {
        let mut mac = self.mac();
        mac.update(DOMAIN_TREE);
        mac.update(name.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The on-disk key of `key` in the tree whose id is `tree`.
    pub(crate) fn key_id(&self, tree: &Id, key: &[u8]) -> Id {
        let mut mac = self.mac();
        mac.update(DOMAIN_KEY);
        mac.update(tree);
        mac.update(key);
        mac.finalize().into_bytes().into()
    }

    /// Seals `(key, value)` for storage under `(tree, key_id)`.
    ///
    /// Record: version byte, 24-byte random nonce, XChaCha20-Poly1305 ciphertext of
    /// `key_len u32le || value_len u32le || key || value || zero padding`.
    pub(crate) fn seal(
        &self,
        tree: &Id,
        key_id: &Id,
        key: &[u8],
        value: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let key_len = u32::try_from(key.len()).map_err(|_| StoreError::TooLarge)?;
        let value_len = u32::try_from(value.len()).map_err(|_| StoreError::TooLarge)?;
        let raw = 8usize
            .checked_add(key.len())
            .and_then(|n| n.checked_add(value.len()))
            .ok_or(StoreError::TooLarge)?;
        let padded = raw
            .div_ceil(PAD_BLOCK)
            .checked_mul(PAD_BLOCK)
            .ok_or(StoreError::TooLarge)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(padded));
        plain.extend_from_slice(&key_len.to_le_bytes());
        plain.extend_from_slice(&value_len.to_le_bytes());
        plain.extend_from_slice(key);
        plain.extend_from_slice(value);
        plain.resize(padded, 0);

        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = value_aad(tree, key_id);
        let ct = self
            .value
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::TooLarge)?;
        let mut record = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        record.push(RECORD_VERSION);
        record.extend_from_slice(&nonce);
        record.extend_from_slice(&ct);
        Ok(record)
    }

    /// Opens a record stored under `(tree, key_id)`, returning the original key and
    /// the value. Any modification, or a record moved from another key or tree,
    /// fails with [`StoreError::Tampered`].
    pub(crate) fn open(
        &self,
        tree: &Id,
        key_id: &Id,
        record: &[u8],
    ) -> Result<SecretPair, StoreError> {
        if record.len() < 1 + NONCE_LEN || record[0] != RECORD_VERSION {
            return Err(StoreError::Tampered);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&record[1..1 + NONCE_LEN]);
        let aad = value_aad(tree, key_id);
        let plain = Zeroizing::new(
            self.value
                .decrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: &record[1 + NONCE_LEN..],
                        aad: &aad,
                    },
                )
                .map_err(|_| StoreError::Tampered)?,
        );
        if plain.len() < 8 {
            return Err(StoreError::Corrupt("sealed value too short"));
        }
        let key_len = usize::try_from(u32::from_le_bytes([plain[0], plain[1], plain[2], plain[3]]))
            .map_err(|_| StoreError::Corrupt("sealed value length"))?;
        let value_len =
            usize::try_from(u32::from_le_bytes([plain[4], plain[5], plain[6], plain[7]]))
                .map_err(|_| StoreError::Corrupt("sealed value length"))?;
        let end = 8usize
            .checked_add(key_len)
            .and_then(|n| n.checked_add(value_len))
            .filter(|&n| n <= plain.len())
            .ok_or(StoreError::Corrupt("sealed value lengths out of range"))?;
        let key = Zeroizing::new(plain[8..8 + key_len].to_vec());
        let value = Zeroizing::new(plain[8 + key_len..end].to_vec());
        // Defence in depth: the AEAD already binds key_id, but check that the
        // sealed key really hashes to the slot it was found in.
        let expected = self.key_id(tree, &key);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &key_id[..])) {
            return Err(StoreError::Tampered);
        }
        Ok((key, value))
    }
}

fn value_aad(tree: &Id, key_id: &Id) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOMAIN_VALUE_AAD.len() + 1 + 64);
    aad.extend_from_slice(DOMAIN_VALUE_AAD);
    aad.push(RECORD_VERSION);
    aad.extend_from_slice(tree);
    aad.extend_from_slice(key_id);
    aad
}

//! The key file: Argon2id parameters and two indistinguishable wrapped-key slots.
//! Keys and opening are described in the module documentation of
//! [`crate::store`].
//!
//! # Key file format (version 1), all integers little-endian
//!
//! ```text
//! offset  len   field
//!      0    4   magic "TRPK"
//!      4    1   version = 1
//!      5    3   reserved, zero
//!      8 1080   slot 0 (main)
//!   1088 1080   slot 1 (duress, or random bytes)
//!   2168        end
//!
//! slot:
//!      0    4   Argon2 m_cost in KiB (u32)
//!      4    4   Argon2 t_cost (u32)
//!      8    4   Argon2 p_cost (u32)
//!     12   16   Argon2 salt
//!     28   24   XChaCha20-Poly1305 nonce
//!     52 1040   ciphertext of the 1024-byte payload + 16-byte tag
//!
//! payload (plaintext, always 1024 bytes):
//!      0    1   kind: 1 = main, 2 = duress
//!      1    2   body length n (u16)
//!      3    n   body: main = data key D (n = 32); duress = caller's decoy blob
//!    3+n  ...   zero padding
//! ```
//!
//! The AEAD associated data of slot `i` is the 8-byte header, the byte `i`, then
//! the slot's 12 parameter bytes, so a slot cannot be moved to the other position
//! and its parameters cannot be altered.
//!
//! **Both slots are always present and indistinguishable.** Without a duress
//! passphrase, slot 1 is random salt, nonce and ciphertext with the same parameter
//! fields as slot 0; with one, it is a real sealed payload. Both have the same
//! length, so an observer cannot tell whether a duress passphrase is set.
//! [`Vault::change_passphrase`](super::Vault::change_passphrase) replaces only slot 0 and never touches slot 1 (it
//! cannot re-wrap the duress slot without the duress passphrase, and leaving slot 1
//! alone in every case keeps the set/unset cases identical); [`Vault::set_duress`](super::Vault::set_duress)
//! and [`Vault::clear_duress`](super::Vault::clear_duress) replace only slot 1, both with fresh random-looking
//! bytes, so comparing two snapshots of the key file shows *that* the duress setting
//! was touched but not whether it is now set.
//!

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::Rng;
use zeroize::Zeroizing;

/// Magic bytes at the start of the key file.
pub(crate) const MAGIC: [u8; 4] = *b"TRPK";
/// Current key-file format version.
pub(crate) const VERSION: u8 = 1;
/// Length of the header (magic, version, three reserved zero bytes).
pub(crate) const HEADER_LEN: usize = 8;
/// Length of an Argon2id salt.
pub(crate) const SALT_LEN: usize = 16;
/// Length of an XChaCha20-Poly1305 nonce.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of the fixed-size plaintext sealed in each slot.
pub(crate) const PAYLOAD_LEN: usize = 1024;
/// Bytes of a slot before the ciphertext: three u32 parameters, salt, nonce.
const SLOT_PREFIX_LEN: usize = 12 + SALT_LEN + NONCE_LEN;
/// Length of one slot.
pub(crate) const SLOT_LEN: usize = SLOT_PREFIX_LEN + PAYLOAD_LEN + TAG_LEN;
/// Total length of the key file.
pub(crate) const KEY_FILE_LEN: usize = HEADER_LEN + 2 * SLOT_LEN;
/// Payload kind byte of the main slot.
const KIND_MAIN: u8 = 1;
/// Payload kind byte of the duress slot.
const KIND_DURESS: u8 = 2;
/// Largest decoy blob the duress slot can carry.
pub const MAX_DECOY_LEN: usize = PAYLOAD_LEN - 3;
/// Length of the random data key wrapped by the main slot.
pub(crate) const DATA_KEY_LEN: usize = 32;

/// Largest accepted Argon2 memory cost (1 GiB), so a tampered key file cannot make
/// `open` allocate unbounded memory.
pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
/// Largest accepted Argon2 time cost.
pub const MAX_T_COST: u32 = 64;
/// Largest accepted Argon2 parallelism.
pub const MAX_P_COST: u32 = 16;

/// Argon2id parameters used to derive a slot's wrapping key from a passphrase.
///
/// The [`Default`] (64 MiB, 3 passes, 1 lane) follows the second recommended option
/// of RFC 9106 §4 (64 MiB, t=3) with a single lane, because a cheap Android phone
/// gains little from parallel lanes and Termux may run with few cores. On such a
/// phone one derivation takes roughly 0.3–1 s; `open` always runs two derivations
/// (one per slot, see the module docs), so unlocking costs about 0.6–2 s, which is
/// acceptable for an app that is unlocked once per session. 64 MiB keeps the peak
/// memory well inside what a low-end phone gives a foreground process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory cost in KiB (Argon2 `m`).
    pub m_cost_kib: u32,
    /// Number of passes (Argon2 `t`).
    pub t_cost: u32,
    /// Degree of parallelism (Argon2 `p`).
    pub p_cost: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Stronger parameters for a desktop or laptop (256 MiB, 3 passes, 1
    /// lane): four times the memory an attacker must give every guess,
    /// for an unlock of about a second on a desktop CPU. The desktop app
    /// offers these at profile creation; phones keep [`Default`].
    #[must_use]
    pub const fn desktop() -> Self {
        Self {
            m_cost_kib: 256 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }

    /// Very cheap parameters (64 KiB, 1 pass) for tests only.
    ///
    /// They offer no protection against guessing the passphrase; never use them for
    /// a real profile.
    #[must_use]
    pub const fn insecure_for_tests() -> Self {
        Self {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// Checks the parameters against Argon2's minimums and this module's maximums
    /// ([`MAX_M_COST_KIB`], [`MAX_T_COST`], [`MAX_P_COST`]).
    ///
    /// # Errors
    /// A static description of the first violated bound.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.p_cost < 1 || self.p_cost > MAX_P_COST {
            return Err("parallelism out of range");
        }
        if self.t_cost < 1 || self.t_cost > MAX_T_COST {
            return Err("time cost out of range");
        }
        if self.m_cost_kib > MAX_M_COST_KIB {
            return Err("memory cost too large");
        }
        if self.m_cost_kib < 8 * self.p_cost {
            return Err("memory cost too small");
        }
        Ok(())
    }

    fn to_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[0..4].copy_from_slice(&self.m_cost_kib.to_le_bytes());
        out[4..8].copy_from_slice(&self.t_cost.to_le_bytes());
        out[8..12].copy_from_slice(&self.p_cost.to_le_bytes());
        out
    }

    fn from_bytes(b: &[u8; 12]) -> Self {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            m_cost_kib: word(0),
            t_cost: word(4),
            p_cost: word(8),
        }
    }

    /// Derives a 32-byte wrapping key from `passphrase` and `salt`.
    fn derive(
        &self,
        passphrase: &[u8],
        salt: &[u8; SALT_LEN],
    ) -> Result<Zeroizing<[u8; 32]>, &'static str> {
        self.validate()?;
        #[cfg(test)]
        DERIVATIONS.with(|n| n.set(n.get() + 1));
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| "invalid Argon2 parameters")?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, out.as_mut_slice())
            .map_err(|_| "Argon2 derivation failed")?;
        Ok(out)
    }
}

#[cfg(test)]
thread_local! {
    /// Argon2 derivations made on this thread (tests count unlock costs).
    pub(crate) static DERIVATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// One slot of the key file, as stored.
#[derive(Clone)]
pub(crate) struct Slot {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// What a slot decrypted to.
pub(crate) enum SlotContent {
    /// The main slot: the data key.
    Main(Zeroizing<[u8; DATA_KEY_LEN]>),
    /// The duress slot: the caller's decoy blob, and the wrapping key it was
    /// opened with (so a fresh profile can be sealed without another Argon2
    /// run, which would make a duress unlock measurably slower).
    Duress(Zeroizing<Vec<u8>>, Wrapping),
}

/// A slot's wrapping key, already derived, and what it was derived with.
pub(crate) struct Wrapping {
    kek: Zeroizing<[u8; 32]>,
    salt: [u8; SALT_LEN],
    params: KdfParams,
}

impl Wrapping {
    /// The Argon2 parameters the key was derived with.
    pub(crate) fn params(&self) -> KdfParams {
        self.params
    }
}

impl Slot {
    /// A slot of random bytes, indistinguishable from a sealed one, that carries
    /// `params` in the clear like a real slot.
    pub(crate) fn random(params: KdfParams) -> Self {
        let mut rng = rand::rng();
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        let mut ciphertext = vec![0u8; PAYLOAD_LEN + TAG_LEN];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut nonce);
        rng.fill_bytes(&mut ciphertext);
        Self {
            params,
            salt,
            nonce,
            ciphertext,
        }
    }

    /// Seals the data key under `passphrase` into slot `index` (0).
    pub(crate) fn seal_main(
        passphrase: &[u8],
        params: KdfParams,
        data_key: &[u8; DATA_KEY_LEN],
    ) -> Result<Self, &'static str> {
        Self::seal(0, passphrase, params, KIND_MAIN, data_key)
    }

    /// Seals the data key into slot 0 under an already derived key (the
    /// slot reuses that key's salt and parameters).
    pub(crate) fn seal_main_wrapped(
        wrapping: &Wrapping,
        data_key: &[u8; DATA_KEY_LEN],
    ) -> Result<Self, &'static str> {
        Self::seal_wrapped(0, wrapping, KIND_MAIN, data_key)
    }

    /// Seals a decoy blob under the duress `passphrase` into slot 1.
    pub(crate) fn seal_duress(
        passphrase: &[u8],
        params: KdfParams,
        decoy: &[u8],
    ) -> Result<Self, &'static str> {
        Self::seal(1, passphrase, params, KIND_DURESS, decoy)
    }

    fn seal(
        index: u8,
        passphrase: &[u8],
        params: KdfParams,
        kind: u8,
        body: &[u8],
    ) -> Result<Self, &'static str> {
        let mut salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        let kek = params.derive(passphrase, &salt)?;
        Self::seal_wrapped(index, &Wrapping { kek, salt, params }, kind, body)
    }

    fn seal_wrapped(
        index: u8,
        wrapping: &Wrapping,
        kind: u8,
        body: &[u8],
    ) -> Result<Self, &'static str> {
        if body.len() > MAX_DECOY_LEN {
            return Err("slot payload too large");
        }
        let len = u16::try_from(body.len()).map_err(|_| "slot payload too large")?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let (kek, salt, params) = (&wrapping.kek, wrapping.salt, wrapping.params);
        let mut payload = Zeroizing::new(vec![0u8; PAYLOAD_LEN]);
        payload[0] = kind;
        payload[1..3].copy_from_slice(&len.to_le_bytes());
        payload[3..3 + body.len()].copy_from_slice(body);
        let cipher = XChaCha20Poly1305::new((&**kek).into());
        let aad = slot_aad(index, params);
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &payload,
                    aad: &aad,
                },
            )
            .map_err(|_| "slot encryption failed")?;
        Ok(Self {
            params,
            salt,
            nonce,
            ciphertext,
        })
    }

    /// The Argon2 parameters stored in this slot.
    pub(crate) fn params(&self) -> KdfParams {
        self.params
    }

    /// Derives this slot's key from `passphrase` and tries to open slot `index`.
    ///
    /// Always runs the full Argon2 derivation. `Ok(None)` means the passphrase does
    /// not open this slot (or the slot is random); `Err` means the slot's
    /// parameters are invalid.
    pub(crate) fn try_open(
        &self,
        index: u8,
        passphrase: &[u8],
    ) -> Result<Option<SlotContent>, &'static str> {
        let kek = self.params.derive(passphrase, &self.salt)?;
        let cipher = XChaCha20Poly1305::new((&*kek).into());
        let aad = slot_aad(index, self.params);
        let Ok(plain) = cipher.decrypt(
            &XNonce::from(self.nonce),
            Payload {
                msg: &self.ciphertext,
                aad: &aad,
            },
        ) else {
            return Ok(None);
        };
        let plain = Zeroizing::new(plain);
        if plain.len() != PAYLOAD_LEN {
            return Err("slot payload has the wrong length");
        }
        let len = usize::from(u16::from_le_bytes([plain[1], plain[2]]));
        if len > MAX_DECOY_LEN {
            return Err("slot payload length out of range");
        }
        let body = &plain[3..3 + len];
        match (index, plain[0]) {
            (0, KIND_MAIN) => {
                let key: [u8; DATA_KEY_LEN] = body
                    .try_into()
                    .map_err(|_| "data key has the wrong length")?;
                Ok(Some(SlotContent::Main(Zeroizing::new(key))))
            }
            (1, KIND_DURESS) => Ok(Some(SlotContent::Duress(
                Zeroizing::new(body.to_vec()),
                Wrapping {
                    kek,
                    salt: self.salt,
                    params: self.params,
                },
            ))),
            _ => Err("slot payload has an unexpected kind"),
        }
    }
}

/// Associated data of a slot: the header, the slot index and the slot's parameters.
fn slot_aad(index: u8, params: KdfParams) -> [u8; HEADER_LEN + 1 + 12] {
    let mut aad = [0u8; HEADER_LEN + 1 + 12];
    aad[..HEADER_LEN].copy_from_slice(&header());
    aad[HEADER_LEN] = index;
    aad[HEADER_LEN + 1..].copy_from_slice(&params.to_bytes());
    aad
}

fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4] = VERSION;
    h
}

/// Why a key file could not be parsed.
pub(crate) enum ParseError {
    /// Structurally invalid.
    Corrupt(&'static str),
    /// A version this build does not understand.
    Version(u8),
}

/// The parsed key file: slot 0 is the main slot, slot 1 the duress or random slot.
#[derive(Clone)]
pub(crate) struct KeyFile {
    pub(crate) slots: [Slot; 2],
}

impl KeyFile {
    /// Serializes to exactly [`KEY_FILE_LEN`] bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_FILE_LEN);
        out.extend_from_slice(&header());
        for slot in &self.slots {
            out.extend_from_slice(&slot.params.to_bytes());
            out.extend_from_slice(&slot.salt);
            out.extend_from_slice(&slot.nonce);
            out.extend_from_slice(&slot.ciphertext);
        }
        out
    }

    /// Parses a key file, checking its length, magic, version and parameters.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() < HEADER_LEN || bytes[..4] != MAGIC {
            return Err(ParseError::Corrupt("not a Tropa key file"));
        }
        if bytes[4] != VERSION {
            return Err(ParseError::Version(bytes[4]));
        }
        if bytes.len() != KEY_FILE_LEN {
            return Err(ParseError::Corrupt("key file has the wrong length"));
        }
        if bytes[5..HEADER_LEN] != [0, 0, 0] {
            return Err(ParseError::Corrupt(
                "key file header reserved bytes are not zero",
            ));
        }
        let parse_slot = |raw: &[u8]| -> Result<Slot, ParseError> {
            let mut p = [0u8; 12];
            p.copy_from_slice(&raw[..12]);
            let params = KdfParams::from_bytes(&p);
            params.validate().map_err(ParseError::Corrupt)?;
            let mut salt = [0u8; SALT_LEN];
            salt.copy_from_slice(&raw[12..12 + SALT_LEN]);
            let mut nonce = [0u8; NONCE_LEN];
            nonce.copy_from_slice(&raw[12 + SALT_LEN..SLOT_PREFIX_LEN]);
            Ok(Slot {
                params,
                salt,
                nonce,
                ciphertext: raw[SLOT_PREFIX_LEN..].to_vec(),
            })
        };
        let s0 = parse_slot(&bytes[HEADER_LEN..HEADER_LEN + SLOT_LEN])?;
        let s1 = parse_slot(&bytes[HEADER_LEN + SLOT_LEN..])?;
        Ok(Self { slots: [s0, s1] })
    }
}

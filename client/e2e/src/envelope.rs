//! Fixed-size envelopes and their byte layout (docs/protocol.md §5).

use std::fmt;

pub use tropa_proto::ENVELOPE_SIZE;

use crate::invitation::KEM_CT_LEN;
use crate::primitives::{NONCE_LEN, TAG_LEN};

/// Type byte of the initial (handshake) envelope.
pub const TYPE_INITIAL: u8 = 0x01;
/// Type byte of every other envelope (a ratchet message).
pub const TYPE_RATCHET: u8 = 0x02;

/// Length of a header plaintext: ratchet public key (32) || PN (u32 BE) || N (u32 BE).
pub(crate) const HEADER_LEN: usize = 40;
/// Offset of the joiner's ephemeral key in an initial envelope.
pub(crate) const INITIAL_EK: usize = 1;
/// Offset of the ML-KEM ciphertext in an initial envelope.
pub(crate) const INITIAL_CT: usize = INITIAL_EK + 32;
/// Offset of the encrypted joiner identity in an initial envelope.
pub(crate) const INITIAL_ID: usize = INITIAL_CT + KEM_CT_LEN;
/// Offset of the ratchet message in an initial envelope.
pub(crate) const INITIAL_RATCHET: usize = INITIAL_ID + 64 + TAG_LEN;
/// Offset of the ratchet message in a ratchet envelope.
pub(crate) const RATCHET_RATCHET: usize = 1;
/// Bytes a ratchet message adds before its body: nonce, header, header tag.
pub(crate) const MSG_PREFIX: usize = NONCE_LEN + HEADER_LEN + TAG_LEN;
/// Length of the length prefix of a padded body.
pub(crate) const PAD_LEN_PREFIX: usize = 2;

/// Which kind of envelope some bytes are (by the clear type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// The joiner's first envelope: open it with [`crate::Session::accept`].
    Initial,
    /// A ratchet message: open it with [`crate::Session::open`].
    Ratchet,
}

impl EnvelopeKind {
    /// The kind of `bytes`, or `None` if the size or type byte is wrong.
    pub fn of(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENVELOPE_SIZE {
            return None;
        }
        match bytes[0] {
            TYPE_INITIAL => Some(Self::Initial),
            TYPE_RATCHET => Some(Self::Ratchet),
            _ => None,
        }
    }
}

/// A sealed envelope: always exactly [`ENVELOPE_SIZE`] bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope(pub(crate) Vec<u8>);

impl Envelope {
    /// The envelope bytes (exactly [`ENVELOPE_SIZE`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Takes the bytes out.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
    /// Initial or ratchet.
    pub fn kind(&self) -> EnvelopeKind {
        if self.0[0] == TYPE_INITIAL {
            EnvelopeKind::Initial
        } else {
            EnvelopeKind::Ratchet
        }
    }
}

impl AsRef<[u8]> for Envelope {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Envelope({:?}, {} bytes)", self.kind(), self.0.len())
    }
}

/// Body capacity (padded plaintext length) of a ratchet message starting at `r0`.
pub(crate) const fn body_capacity(r0: usize) -> usize {
    ENVELOPE_SIZE - TAG_LEN - r0 - MSG_PREFIX
}

/// Removes the padding: `u16 BE length || message || zeros`. Every padding
/// byte must be zero and the length must fit, so the encoding is unambiguous.
pub(crate) fn unpad(body: &[u8]) -> Option<&[u8]> {
    if body.len() < PAD_LEN_PREFIX {
        return None;
    }
    let len = u16::from_be_bytes([body[0], body[1]]) as usize;
    let end = PAD_LEN_PREFIX.checked_add(len)?;
    if end > body.len() {
        return None;
    }
    if body[end..].iter().fold(0u8, |acc, b| acc | b) != 0 {
        return None;
    }
    Some(&body[PAD_LEN_PREFIX..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_constants() {
        assert_eq!(INITIAL_RATCHET, 1201);
        assert_eq!(body_capacity(RATCHET_RATCHET), 16299);
        assert_eq!(body_capacity(INITIAL_RATCHET), 15099);
        // The body length always fits the u16 length prefix.
        const { assert!(body_capacity(RATCHET_RATCHET) < u16::MAX as usize) };
    }

    #[test]
    fn padding_is_unambiguous() {
        let mut b = vec![0u8; 10];
        b[1] = 3;
        b[2..5].copy_from_slice(b"abc");
        assert_eq!(unpad(&b), Some(&b"abc"[..]));
        let mut bad = b.clone();
        bad[9] = 1;
        assert_eq!(unpad(&bad), None, "non-zero padding byte");
        let mut bad = b.clone();
        bad[1] = 9;
        assert_eq!(unpad(&bad), None, "length past the end");
        assert_eq!(unpad(&[0u8; 1]), None);
        assert_eq!(unpad(&[0u8, 0]), Some(&b""[..]));
        assert_eq!(EnvelopeKind::of(&b), None);
    }
}

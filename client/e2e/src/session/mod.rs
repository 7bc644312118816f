//! An end-to-end session with one contact: the PQXDH-like handshake that
//! starts it ([`handshake`]), the Double Ratchet with header encryption that
//! carries its messages ([`ratchet`]), and its serialised form for the
//! client's store ([`state`]). Normative description: docs/protocol.md.
//!
//! Every secret here zeroizes on drop, and no `Debug` prints a key. A
//! failed `open` or `seal` leaves the session exactly as it was.

use std::fmt;

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::content::{ContentError, HelloError};
use crate::envelope::ENVELOPE_SIZE;
use crate::identity::IdentityPublic;
use crate::primitives::Key32;

mod handshake;
mod ratchet;
mod state;

// The key schedule, for the test vectors and handshake tests.
#[cfg(test)]
pub(crate) use handshake::{binding_ad, hello_key, root_schedule, transcript};

/// Most message keys one received message may make us skip in one chain.
/// A header asking for more is refused ([`OpenError::TooManySkipped`]).
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys kept in total; the oldest are dropped first.
pub const MAX_SKIPPED_KEYS: usize = 2000;
/// Skipped message keys expire after this many received DH-ratchet steps
/// (i.e. once the peer has changed ratchet key this many more times).
pub const MAX_SKIPPED_AGE_STEPS: u32 = 20;

pub(super) const SESSION_STATE_V1: u8 = 0x31;

/// Why an envelope could not be opened. The session is unchanged after any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not exactly [`ENVELOPE_SIZE`] bytes.
    #[error("an envelope is exactly {ENVELOPE_SIZE} bytes")]
    BadSize,
    /// The type byte is unknown.
    #[error("unknown envelope type")]
    UnknownType,
    /// An initial (handshake) envelope that is not this session's: use `Session::accept`.
    #[error("this is a handshake envelope, not a message for this session")]
    UnexpectedInitial,
    /// No header key of this session opens the header: tampered, from another
    /// session, or too old (its skipped key expired).
    #[error("the message header cannot be decrypted (tampered, foreign or expired)")]
    UnknownHeader,
    /// The header is authentic but the body is not: tampering.
    #[error("the message body was tampered with")]
    Tampered,
    /// This message was already opened (a replay or a redelivery). Safe to drop silently.
    #[error("this message was already processed")]
    AlreadyProcessed,
    /// The header would make us skip more than [`MAX_SKIP`] message keys.
    #[error("too many messages missing in between (more than {MAX_SKIP})")]
    TooManySkipped,
    /// The peer sent an invalid (low-order) ratchet key.
    #[error("the peer's ratchet key is invalid")]
    BadRatchetKey,
    /// The decrypted padding or encoding is malformed.
    #[error("the decrypted message is malformed")]
    Malformed,
    /// The decrypted content breaks a limit or shape rule.
    #[error("the decrypted content is invalid: {0}")]
    BadContent(ContentError),
}

/// Why a message could not be sealed. The session is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The content is too large or malformed.
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// Why the handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The invitation (or its one-time prekey) has expired.
    #[error("the invitation has expired")]
    Expired,
    /// The invitation is our own.
    #[error("this is your own invitation")]
    OwnInvitation,
    /// The pending invitation was created for another identity.
    #[error("the pending invitation belongs to another identity")]
    WrongIdentity,
    /// Not exactly [`ENVELOPE_SIZE`] bytes.
    #[error("an envelope is exactly {ENVELOPE_SIZE} bytes")]
    BadSize,
    /// Not an initial envelope.
    #[error("not a handshake envelope")]
    NotInitial,
    /// The envelope does not decrypt with this invitation's keys (tampered,
    /// or meant for another invitation).
    #[error("the handshake envelope cannot be decrypted with this invitation")]
    Undecryptable,
    /// The joiner's identity key inside the envelope is invalid.
    #[error("the joiner's identity key is invalid")]
    BadIdentityKey,
    /// The initial message has no Hello.
    #[error("the handshake message carries no Hello")]
    MissingHello,
    /// The initial envelope is a contact request to an intake address
    /// (docs/protocol.md §12): open it with [`crate::open_request`].
    #[error("this is a contact request, not a reply to an invitation")]
    ContactRequest,
    /// The Hello is malformed.
    #[error(transparent)]
    Hello(#[from] HelloError),
    /// The first content is invalid.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The embedded first ratchet message failed to open.
    #[error("the handshake message failed: {0}")]
    Open(#[from] OpenError),
    /// The invitation's ML-KEM key is invalid.
    #[error("the invitation's post-quantum key is invalid")]
    BadKemKey,
}

/// The ratchet's small state (everything but the skipped keys). Cloned for
/// every `open` so a failure leaves the session untouched.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Core {
    pub(crate) dhs: Key32,
    pub(crate) dhs_pub: Key32,
    pub(crate) dhr: Option<Key32>,
    pub(crate) rk: Key32,
    pub(crate) cks: Option<Key32>,
    pub(crate) ckr: Option<Key32>,
    pub(crate) hks: Option<Key32>,
    pub(crate) hkr: Option<Key32>,
    pub(crate) nhks: Key32,
    pub(crate) nhkr: Key32,
    pub(crate) prev_hkr: Option<Key32>,
    pub(crate) ns: u32,
    pub(crate) nr: u32,
    pub(crate) pn: u32,
    /// We received a new ratchet key and owe the sending half of the DH
    /// ratchet step; done lazily by the next `seal` (which has an RNG).
    pub(crate) send_step_due: bool,
    pub(crate) recv_steps: u32,
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(super) struct SkippedKey {
    hk: Key32,
    n: u32,
    mk: Key32,
    step: u32,
}

/// The message key of a *tombstone*: a skipped entry whose key was used, kept
/// only because it was the last entry of a retired receiving chain. Without
/// it that chain's header key would be forgotten and a replay of the message
/// would look like a foreign envelope (`UnknownHeader`) instead of
/// `AlreadyProcessed`. Tombstones age out like any skipped key.
pub(super) const TOMBSTONE: Key32 = [0u8; 32];

impl SkippedKey {
    fn is_tombstone(&self) -> bool {
        self.mk == TOMBSTONE
    }
}

/// An end-to-end session with one contact. Zeroized on drop; `Debug` prints no key.
#[derive(Clone)]
pub struct Session {
    core: Core,
    skipped: Vec<SkippedKey>,
    ad: Key32,
    own: IdentityPublic,
    peer: IdentityPublic,
    initial_ek: Option<Key32>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Core zeroizes itself; the vector's elements and spare capacity are wiped here.
        self.skipped.zeroize();
        self.ad.zeroize();
    }
}

impl ZeroizeOnDrop for Session {}

pub(super) fn random32<R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<Key32> {
    let mut k = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(k.as_mut());
    k
}

pub(super) fn arr32(b: &[u8]) -> Key32 {
    let mut a = [0u8; 32];
    a.copy_from_slice(b);
    a
}

impl Session {
    /// The peer's identity key.
    pub fn peer_identity(&self) -> IdentityPublic {
        self.peer
    }

    /// Our own identity key in this session.
    pub fn own_identity(&self) -> IdentityPublic {
        self.own
    }

    /// How many skipped message keys are stored (for diagnostics and tests).
    pub fn skipped_keys(&self) -> usize {
        self.skipped.iter().filter(|e| !e.is_tombstone()).count()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("own", &self.own)
            .field("peer", &self.peer)
            .field("sent", &self.core.ns)
            .field("received", &self.core.nr)
            .field("skipped_keys", &self.skipped.len())
            .field("keys", &"<redacted>")
            .finish()
    }
}

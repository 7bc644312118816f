//! Tropa end-to-end cryptography, sans-IO.
//!
//! This crate does no I/O, reads no clock (time is passed in as unix seconds)
//! and draws randomness only from the caller's [`rand_core::CryptoRng`]. The
//! normative protocol is `docs/protocol.md`; test vectors live in
//! `client/e2e/testdata/`.
//!
//! # API
//!
//! - [`Identity`] — a profile's long-term keys (Ed25519 + X25519):
//!   [`Identity::generate`], [`Identity::public`] → [`IdentityPublic`] (64 bytes,
//!   [`IdentityPublic::to_bytes`] / [`IdentityPublic::from_bytes`]),
//!   [`Identity::to_bytes`] / [`Identity::from_bytes`] for the encrypted store.
//! - Invitations — [`PendingInvitation::create`]`(rng, &identity, `[`InviteParams`]`)`
//!   → `(PendingInvitation, Invitation)`; [`Invitation::to_link`] /
//!   [`Invitation::from_link`] (errors: [`LinkError`]), the bare protobuf
//!   [`Invitation::to_encoded`] / [`Invitation::from_encoded`]; accessors
//!   [`Invitation::relay`], [`Invitation::sender_id`],
//!   [`Invitation::reply_sender_auth`], [`Invitation::inviter`].
//!   [`PendingInvitation::to_bytes`] / [`PendingInvitation::from_bytes`].
//! - Handshake — joiner: [`Session::initiate`]`(rng, &identity, &invitation,
//!   &hello, first: Option<&Content>, now)` → `(Session, Envelope)`; inviter:
//!   [`Session::accept`]`(rng, &identity, &pending, envelope_bytes, now)` →
//!   `(Session, IdentityPublic, Hello, Option<Content>)`. Errors:
//!   [`HandshakeError`]. **The caller deletes the pending invitation after a
//!   successful accept**; a redelivered initial envelope is then recognised by
//!   [`Session::open`] as [`OpenError::AlreadyProcessed`].
//! - Messages — [`Session::seal`]`(rng, &content)` → [`Envelope`] (always
//!   [`ENVELOPE_SIZE`] bytes); [`Session::open`]`(bytes)` → [`Content`] or
//!   [`OpenError`], leaving the session unchanged on error.
//!   [`Session::to_bytes`] / [`Session::from_bytes`], [`Session::peer_identity`].
//! - Content — prost types [`Content`], [`Text`], [`Receipt`], [`Body`]; build them
//!   with [`ContentExt`]: `Content::text(&mut rng, "hi")`, `Content::receipt(..)`.
//!   Limits: [`MAX_CONTENT_LEN`], [`MAX_TEXT_LEN`].
//! - Short links (docs/protocol.md §11) — [`ShortLink`] (`Display` /
//!   `FromStr`, errors [`ShortLinkError`]): [`ShortLink::for_invitation`]`(rng,
//!   `[`LinkKind`]`, &invitation)`, [`ShortLink::locator`]; the invitation is
//!   stored on the relay as [`seal_link_data`]`(rng, link.secret(), kind,
//!   &invitation)` → `[u8; `[`LINK_DATA_SIZE`]`]` and read back with
//!   [`open_link_data`]`(&link, &data)` → [`Invitation`] (errors
//!   [`LinkDataError`]).
//! - Contact requests (docs/protocol.md §12) — requester:
//!   [`seal_request`]`(rng, &identity, &address, &own_invitation, text, now)`
//!   → [`Envelope`]; address owner: [`open_request`]`(&identity, &pending,
//!   envelope, now)` → [`OpenedRequest`] (errors [`RequestError`]).
//!   [`Session::accept`] refuses a request
//!   ([`HandshakeError::ContactRequest`]).
//! - Safety numbers — [`safety_number`]`(&a, &b)` → [`SafetyNumber`]
//!   (`digits()`, `groups()`, `qr_payload()`, `verify_scanned()`), and
//!   [`verify_peer`]`(&known, &seen)` → `Err(`[`IdentityChanged`]`)` when a
//!   known contact's key changed (S10: never accept it silently).
//!
//! Every secret type zeroizes on drop and its `Debug` prints no key bytes.

#![forbid(unsafe_code)]

mod codec;
mod content;
mod envelope;
mod identity;
mod invitation;
mod primitives;
mod request;
mod safety;
mod session;
mod shortlink;

#[cfg(fuzzing)]
pub mod fuzzing;

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod test_rng;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
#[cfg(test)]
mod vectors_links;

pub use codec::StateError;
pub use content::{
    Body, Content, ContentError, ContentExt, Hello, HelloError, MAX_CONTENT_LEN, MAX_HELLO_LEN,
    MAX_RECEIPT_IDS, MAX_TEXT_LEN, MESSAGE_ID_LEN, Receipt, Text,
};
pub use envelope::{ENVELOPE_SIZE, Envelope, EnvelopeKind, TYPE_INITIAL, TYPE_RATCHET};
pub use identity::{
    IDENTITY_PUBLIC_LEN, Identity, IdentityChanged, IdentityPublic, InvalidIdentityKey, verify_peer,
};
pub use invitation::{
    INVITATION_GRACE_SECS, INVITATION_VERSION, Invitation, InviteError, InviteParams, KEM_CT_LEN,
    KEM_KEY_LEN, LINK_PREFIX, LinkError, MAX_LINK_LEN, PendingInvitation,
};
pub use request::{
    MAX_REQUEST_TEXT_LEN, OpenedRequest, REQUEST_ID_LEN, RequestError, open_request, seal_request,
};
pub use safety::{
    SAFETY_NUMBER_DIGITS, SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_VERSION, SAFETY_QR_LEN,
    SafetyNumber, ScanError, safety_number,
};
pub use session::{
    HandshakeError, MAX_SKIP, MAX_SKIPPED_AGE_STEPS, MAX_SKIPPED_KEYS, OpenError, SealError,
    Session,
};
pub use shortlink::{
    FINGERPRINT_PREFIX_LEN, LINK_DATA_SIZE, LINK_SECRET_LEN, LOCATOR_LEN, LinkDataError, LinkKind,
    LinkSecret, MAX_LINK_INVITATION_LEN, MAX_SHORT_LINK_LEN, SHORT_LINK_SCHEME, ShortLink,
    ShortLinkError, open_link_data, seal_link_data,
};

//! Contact requests to a public intake address (docs/protocol.md §12).
//!
//! An intake address is a long-lived [`Invitation`] (with its
//! [`PendingInvitation`], never deleted when used). A request is the
//! initial envelope of the normal handshake made against it, whose
//! `Plaintext` carries a `ContactRequest` (the requester's own fresh
//! one-time invitation and a short first message) instead of a `Hello`.
//! The handshake authenticates the requester's identity and keeps it
//! sealed from the relay (S4); the throwaway session is dropped on both
//! sides. Accepting a request is accepting the embedded invitation with
//! [`crate::Session::initiate`], exactly as for a link, which gives the new
//! contact its own mailboxes: nothing links it to the address (S3).

use std::fmt;

use rand_core::CryptoRng;

use crate::envelope::{ENVELOPE_SIZE, Envelope, INITIAL_CT, INITIAL_EK};
use crate::identity::{Identity, IdentityPublic};
use crate::invitation::{Invitation, LinkError, PendingInvitation};
use crate::primitives::{LABEL_REQUEST_ID, sha256};
use crate::session::{HandshakeError, Session};

/// Longest first message of a contact request, in UTF-8 bytes.
pub const MAX_REQUEST_TEXT_LEN: usize = 1000;
/// Length of a request id.
pub const REQUEST_ID_LEN: usize = 32;

/// A contact request, opened and checked by the address owner.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedRequest {
    /// The requester's identity, authenticated by the handshake.
    pub requester: IdentityPublic,
    /// The requester's one-time invitation (its inviter is `requester`).
    /// Accept the request by accepting it ([`crate::Session::initiate`]).
    pub invitation: Invitation,
    /// The requester's first message (at most [`MAX_REQUEST_TEXT_LEN`] bytes).
    pub text: String,
    /// `SHA-256("tropa/v1/request-id" || EK)`: the same for every delivery
    /// of the same request envelope, so replays and redeliveries can be
    /// recognised. Meaningful only once the request opened.
    pub id: [u8; REQUEST_ID_LEN],
}

// The text is the requester's words: not for logs.
impl fmt::Debug for OpenedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedRequest")
            .field("requester", &self.requester)
            .field("invitation", &self.invitation)
            .field("text_len", &self.text.len())
            .field("id", &hex_prefix(&self.id))
            .finish()
    }
}

fn hex_prefix(id: &[u8]) -> String {
    id.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Why a contact request could not be made or opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The address has expired (for its owner: more than
    /// [`crate::INVITATION_GRACE_SECS`] ago).
    #[error("the address has expired")]
    AddressExpired,
    /// The address is our own (a request to oneself).
    #[error("this is your own address")]
    OwnAddress,
    /// The requester's own invitation (sealing) or the embedded one
    /// (opening) has expired, so the request could never be accepted.
    #[error("the requester's invitation has expired")]
    InvitationExpired,
    /// Sealing: the invitation to embed was not made by the requester's identity.
    #[error("the invitation to send with the request is not yours")]
    ForeignInvitation,
    /// The text is longer than [`MAX_REQUEST_TEXT_LEN`] bytes.
    #[error("the request's message is {len} bytes, at most {max} are allowed")]
    TextTooLong {
        /// Length of the text in bytes.
        len: usize,
        /// [`MAX_REQUEST_TEXT_LEN`].
        max: usize,
    },
    /// The envelope carries a `Hello`: a normal reply to an invitation
    /// (open it with [`crate::Session::accept`]), or a malformed request.
    #[error("this is a reply to an invitation, not a contact request")]
    HelloPresent,
    /// The envelope carries no contact request.
    #[error("the envelope carries no contact request")]
    MissingRequest,
    /// The request also carries content or receipts, which a request never has.
    #[error("the contact request carries unexpected content")]
    UnexpectedContent,
    /// The embedded invitation does not decode or fails its checks.
    #[error("the request's invitation is invalid: {0}")]
    BadInvitation(LinkError),
    /// The embedded invitation was made by someone else than the
    /// authenticated requester: accepting it would contact a third party.
    #[error("the request's invitation belongs to someone else than the requester")]
    InviterMismatch,
    /// The handshake itself failed (size, type, undecryptable, tampered, ...).
    #[error(transparent)]
    Handshake(HandshakeError),
}

impl From<HandshakeError> for RequestError {
    fn from(e: HandshakeError) -> Self {
        match e {
            HandshakeError::Expired => RequestError::AddressExpired,
            HandshakeError::OwnInvitation => RequestError::OwnAddress,
            e => RequestError::Handshake(e),
        }
    }
}

fn check_text(text: &str) -> Result<(), RequestError> {
    if text.len() > MAX_REQUEST_TEXT_LEN {
        return Err(RequestError::TextTooLong {
            len: text.len(),
            max: MAX_REQUEST_TEXT_LEN,
        });
    }
    Ok(())
}

/// Makes a contact request to `address` (an intake address's invitation):
/// an initial envelope to deposit in the address's mailbox
/// (`address.relay()`, `address.sender_id()`), carrying `own_invitation`
/// (a fresh one-time invitation of `identity`, whose pending half the
/// requester keeps) and `text`.
///
/// The requester then waits for a `Hello` on its own invitation, from the
/// address's identity only (`address.inviter()`).
pub fn seal_request<R: CryptoRng + ?Sized>(
    rng: &mut R,
    identity: &Identity,
    address: &Invitation,
    own_invitation: &Invitation,
    text: &str,
    now: u64,
) -> Result<Envelope, RequestError> {
    check_text(text)?;
    if own_invitation.inviter() != identity.public() {
        return Err(RequestError::ForeignInvitation);
    }
    if own_invitation.is_expired(now) {
        return Err(RequestError::InvitationExpired);
    }
    let plaintext = tropa_proto::e2e::Plaintext {
        request: Some(tropa_proto::e2e::ContactRequest {
            invitation: own_invitation.to_encoded(),
            text: text.to_owned(),
        }),
        ..Default::default()
    };
    let (_, envelope, _) = Session::initiate_plaintext(rng, identity, address, &plaintext, now)?;
    Ok(envelope)
}

/// Opens a contact request that arrived in the mailbox of the intake
/// address `pending` (owned by `identity`), and checks it: a request and
/// nothing else, a text within [`MAX_REQUEST_TEXT_LEN`], an embedded
/// invitation that is valid, unexpired at `now` and made by the
/// authenticated requester itself.
///
/// The pending invitation is *not* one-time here: keep it while the
/// address exists. The same envelope opens again with the same
/// [`OpenedRequest::id`]; the caller keeps the ids it has handled.
pub fn open_request(
    identity: &Identity,
    pending: &PendingInvitation,
    envelope: &[u8],
    now: u64,
) -> Result<OpenedRequest, RequestError> {
    let (requester, pt) = Session::open_initial_plaintext(identity, pending, envelope, now)?;
    if pt.hello.is_some() {
        return Err(RequestError::HelloPresent);
    }
    let request = pt.request.ok_or(RequestError::MissingRequest)?;
    if pt.content.is_some() || pt.receipts.is_some() {
        return Err(RequestError::UnexpectedContent);
    }
    check_text(&request.text)?;
    let invitation =
        Invitation::from_encoded(&request.invitation).map_err(RequestError::BadInvitation)?;
    if invitation.inviter() != requester {
        return Err(RequestError::InviterMismatch);
    }
    if invitation.is_expired(now) {
        return Err(RequestError::InvitationExpired);
    }
    Ok(OpenedRequest {
        requester,
        invitation,
        text: request.text,
        id: request_id(envelope),
    })
}

/// `SHA-256("tropa/v1/request-id" || EK)` of an initial envelope of the
/// right size (checked by the caller).
fn request_id(envelope: &[u8]) -> [u8; REQUEST_ID_LEN] {
    debug_assert_eq!(envelope.len(), ENVELOPE_SIZE);
    sha256(&[LABEL_REQUEST_ID, &envelope[INITIAL_EK..INITIAL_CT]])
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

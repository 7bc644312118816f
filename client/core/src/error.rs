//! Errors of the client library, one enum per operation family. Messages
//! never contain passphrases, keys, message text or mailbox IDs.

use tropa_relay::client::{ConnectError, RequestError};

/// Opening or creating a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No profile in the directory.
    #[error("no profile here; create one with `tropa init`")]
    NoProfile,
    /// A profile already exists in the directory.
    #[error("a profile already exists here")]
    Exists,
    /// The passphrase is wrong; nothing was changed.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Another process has the profile open.
    #[error("the profile is in use by another tropa process")]
    Locked,
    /// The profile's stored data is damaged.
    #[error("the profile is damaged: {0}")]
    Corrupt(String),
    /// The name is empty or too long.
    #[error("the name must be 1 to 64 characters")]
    BadName,
    /// The passphrase is empty or the same as the other one.
    #[error("{0}")]
    BadPassphrase(&'static str),
    /// A new passphrase is too easy to guess.
    #[error(transparent)]
    WeakPassphrase(#[from] crate::passphrase::WeakPassphrase),
    /// Storage failed.
    #[error("profile storage: {0}")]
    Storage(String),
}

impl From<crate::store::StoreError> for ProfileError {
    fn from(e: crate::store::StoreError) -> Self {
        ProfileError::Storage(e.to_string())
    }
}

/// Anything that can go wrong in a client operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The profile could not be used.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// No contact has this alias.
    #[error("no contact called {0:?} (see `tropa contacts`)")]
    UnknownContact(String),
    /// The alias is taken by another contact.
    #[error("a contact called {0:?} already exists")]
    AliasTaken(String),
    /// The alias is empty, too long or has control characters.
    #[error("an alias must be 1 to 32 printable characters")]
    BadAlias,
    /// The contact has not completed the handshake yet.
    #[error("{0:?} has not accepted the invitation yet (run `tropa sync` later)")]
    NotEstablished(String),
    /// The invitation link is not valid.
    #[error("invalid invitation link: {0}")]
    BadLink(#[from] tropa_e2e::LinkError),
    /// The invitation has expired.
    #[error("this invitation has expired; ask for a new one")]
    InvitationExpired,
    /// This invitation was already accepted on this device.
    #[error("you already accepted this invitation")]
    InvitationUsed,
    /// The link is one of our own invitations.
    #[error("this is your own invitation; send it to the other person")]
    OwnInvitation,
    /// A known contact presented a different identity key (S10).
    #[error(
        "the identity key of {0:?} has changed: refused. Verify with them in person before doing anything else."
    )]
    IdentityChanged(String),
    /// The message is too long.
    #[error("the message is too long (at most {max} bytes)")]
    TooLong {
        /// Limit in bytes.
        max: usize,
    },
    /// The profile's relay address is invalid.
    #[error("invalid relay address: {0}")]
    BadRelay(#[from] tropa_proto::AddressError),
    /// The relay could not be reached.
    #[error("cannot reach the relay: {0}")]
    Connect(#[from] ConnectError),
    /// The relay refused or failed a request.
    #[error("relay request failed: {0}")]
    Request(#[from] RequestError),
    /// The end-to-end handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] tropa_e2e::HandshakeError),
    /// The safety number text or code does not match.
    #[error("the safety number does not match: {0}")]
    SafetyMismatch(#[from] tropa_e2e::ScanError),
    /// Stored data is damaged.
    #[error("stored data is damaged: {0}")]
    Corrupt(&'static str),
}

impl From<crate::store::StoreError> for ClientError {
    fn from(e: crate::store::StoreError) -> Self {
        ClientError::Profile(e.into())
    }
}

//! Errors of the client library, one enum per operation family. Messages
//! never contain passphrases, keys, message text or mailbox IDs.

use tropa_relay_client::{ConnectError, RequestError};

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
    #[error(
        "the profile is open in another tropa (a `tropa shell`, `chat` or `sync --wait`): use that one, or quit it first"
    )]
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

/// Anything that can go wrong in a client operation. Its `Debug` names the
/// variant only: aliases and relay details stay out of logs and panic
/// messages (Display, which a front end shows its user, has them).
#[derive(thiserror::Error)]
pub enum ClientError {
    /// The profile could not be used.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// No contact has this alias (ignoring case).
    #[error("no contact called {alias:?}{}", did_you_mean(suggestion.as_deref()))]
    UnknownContact {
        /// What was asked for.
        alias: String,
        /// The closest alias, if one is close.
        suggestion: Option<String>,
    },
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
    /// A short link could not be resolved into its invitation.
    #[error(transparent)]
    Link(#[from] crate::client::LinkResolveError),
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
    /// The contact's relay refused our deposits for good: their mailbox for
    /// us is gone (they deleted us, or it expired unused).
    #[error(
        "{0:?} cannot be reached any more: their mailbox is gone from their relay. Ask them for a new invitation; `tropa contacts delete` removes this one"
    )]
    ContactBroken(String),
    /// The inviter's relay refused our reply to an invitation for good: it
    /// was already used by someone else, or it expired. The half-made
    /// contact was removed.
    #[error(
        "the inviter's relay refused your reply: this invitation was already used or has expired, so the contact was not added. Ask for a new one"
    )]
    InvitationRefused,
    /// The message is empty or only whitespace.
    #[error("the message is empty")]
    EmptyText,
    /// The message is too long.
    #[error("the message is too long (at most {max} bytes)")]
    TooLong {
        /// Limit in bytes.
        max: usize,
    },
    /// The profile's relay address is invalid.
    #[error("invalid relay address: {0}")]
    BadRelay(#[from] tropa_proto::AddressError),
    /// A network setting (transport, SOCKS5 proxy, isolation) that does
    /// not parse; the text says what a valid one looks like.
    #[error("{0}")]
    BadSetting(String),
    /// A relay could not be reached, refused, or misbehaved.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The end-to-end handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] tropa_e2e::HandshakeError),
    /// The safety number text or code does not match.
    #[error("the safety number does not match: {0}")]
    SafetyMismatch(#[from] tropa_e2e::ScanError),
    /// Case work refused (the two-evaluator rule, a bad note or name).
    #[error(transparent)]
    Vetting(#[from] crate::client::cases::VettingError),
    /// An intake address or contact request problem.
    #[error(transparent)]
    Intake(#[from] crate::client::IntakeError),
    /// Stored data is damaged.
    #[error("stored data is damaged: {0}")]
    Corrupt(&'static str),
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean {s:?}?"),
        None => " (see `tropa contacts`)".to_owned(),
    }
}

impl std::fmt::Debug for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            ClientError::Profile(e) => {
                return write!(f, "ClientError::Profile({})", profile_kind(e));
            }
            ClientError::Relay(e) => {
                let kind = match e {
                    RelayError::Unreachable { .. } => "Unreachable",
                    RelayError::Proxy { .. } => "Proxy",
                    RelayError::WrongKey => "WrongKey",
                    RelayError::Refused { reason, .. } => {
                        return write!(f, "ClientError::Relay(Refused({reason:?}))");
                    }
                    RelayError::Misbehaved { .. } => "Misbehaved",
                };
                return write!(f, "ClientError::Relay({kind})");
            }
            ClientError::UnknownContact { .. } => "UnknownContact",
            ClientError::AliasTaken(_) => "AliasTaken",
            ClientError::BadAlias => "BadAlias",
            ClientError::NotEstablished(_) => "NotEstablished",
            ClientError::BadLink(_) => "BadLink",
            ClientError::Link(_) => "Link",
            ClientError::InvitationExpired => "InvitationExpired",
            ClientError::InvitationUsed => "InvitationUsed",
            ClientError::OwnInvitation => "OwnInvitation",
            ClientError::IdentityChanged(_) => "IdentityChanged",
            ClientError::ContactBroken(_) => "ContactBroken",
            ClientError::InvitationRefused => "InvitationRefused",
            ClientError::EmptyText => "EmptyText",
            ClientError::TooLong { .. } => "TooLong",
            ClientError::BadRelay(_) => "BadRelay",
            ClientError::BadSetting(_) => "BadSetting",
            ClientError::Handshake(_) => "Handshake",
            ClientError::SafetyMismatch(_) => "SafetyMismatch",
            ClientError::Vetting(_) => "Vetting",
            ClientError::Intake(_) => "Intake",
            ClientError::Corrupt(_) => "Corrupt",
        };
        write!(f, "ClientError::{kind}")
    }
}

fn profile_kind(e: &ProfileError) -> &'static str {
    match e {
        ProfileError::NoProfile => "NoProfile",
        ProfileError::Exists => "Exists",
        ProfileError::WrongPassphrase => "WrongPassphrase",
        ProfileError::Locked => "Locked",
        ProfileError::Corrupt(_) => "Corrupt",
        ProfileError::BadName => "BadName",
        ProfileError::BadPassphrase(_) => "BadPassphrase",
        ProfileError::WeakPassphrase(_) => "WeakPassphrase",
        ProfileError::Storage(_) => "Storage",
    }
}

impl From<crate::store::StoreError> for ClientError {
    fn from(e: crate::store::StoreError) -> Self {
        ClientError::Profile(e.into())
    }
}

/// What went wrong with a relay, in the client's own terms (front ends never
/// see transport types). Messages are plain words; the technical detail is
/// in [`RelayError::detail`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The relay could not be reached: no network, wrong host or port, or
    /// it is down.
    #[error("cannot reach the relay")]
    Unreachable {
        /// What the transport said.
        detail: String,
    },
    /// The SOCKS5 proxy (e.g. Tor) could not be reached, refused our
    /// credentials, or could not reach the relay; or QUIC was asked for
    /// through it. Nothing was sent around it.
    #[error("cannot reach the relay through the SOCKS5 proxy (is it running?)")]
    Proxy {
        /// What the proxy or the connection to it said.
        detail: String,
    },
    /// Whoever answered holds another key than the relay address names: a
    /// wrong address, or someone in the middle (S11).
    #[error(
        "the relay's key does not match the address (wrong address, or someone is in the middle)"
    )]
    WrongKey,
    /// The relay refused the request.
    #[error("the relay refused: {reason}")]
    Refused {
        /// Why, as the relay's error code says.
        reason: Refusal,
        /// The relay's own words.
        detail: String,
    },
    /// The relay broke the protocol (an answer that makes no sense).
    #[error("the relay answered something unexpected")]
    Misbehaved {
        /// What was wrong.
        detail: String,
    },
}

impl RelayError {
    /// The technical detail behind the plain message, for `-v`.
    pub fn detail(&self) -> &str {
        match self {
            RelayError::Unreachable { detail }
            | RelayError::Proxy { detail }
            | RelayError::Refused { detail, .. }
            | RelayError::Misbehaved { detail } => detail,
            RelayError::WrongKey => "the certificate's key hash differs from the address's",
        }
    }

    /// The refusal, if the relay refused.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            RelayError::Refused { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Why a relay refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The mailbox does not exist (any more).
    #[error("no such mailbox")]
    NoMailbox,
    /// A signature or password was not accepted.
    #[error("not authorised")]
    AuthFailed,
    /// The mailbox or the relay is full.
    #[error("full")]
    Quota,
    /// Too many requests, or the relay is busy.
    #[error("busy, try later")]
    RateLimited,
    /// The relay could not store; try later.
    #[error("temporary failure")]
    Internal,
    /// The request was malformed, too large, or of another version.
    #[error("request not understood")]
    Invalid,
}

impl Refusal {
    /// Whether asking again later may succeed (busy, or a hiccup), as
    /// opposed to a refusal that will not change (no such mailbox, not
    /// authorised, full, not understood).
    pub fn is_transient(self) -> bool {
        matches!(self, Refusal::RateLimited | Refusal::Internal)
    }

    /// Whether a deposit refused so will never be accepted: the mailbox is
    /// gone, or takes only another key. (A full mailbox may be drained.)
    pub fn is_permanent(self) -> bool {
        matches!(self, Refusal::NoMailbox | Refusal::AuthFailed)
    }
}

impl From<ConnectError> for RelayError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::WrongKey => RelayError::WrongKey,
            ConnectError::ProxyUnreachable { .. }
            | ConnectError::ProxyAuth { .. }
            | ConnectError::Proxy { .. }
            | ConnectError::QuicThroughSocks5 => RelayError::Proxy {
                detail: e.to_string(),
            },
            other => RelayError::Unreachable {
                detail: other.to_string(),
            },
        }
    }
}

impl From<RequestError> for RelayError {
    fn from(e: RequestError) -> Self {
        use tropa_proto::relay::ErrorCode as C;
        match e {
            // Our request reached the relay too slowly: the link is bad, as
            // when our own request timeout fires. Handled the same way (the
            // connection is dropped and the request retried on a new one),
            // never as a refusal that waits out a backoff.
            RequestError::Relay {
                code: C::TimedOut,
                message,
            } => RelayError::Unreachable {
                detail: format!("the relay gave up waiting for our request: {message}"),
            },
            RequestError::Relay { code, message } => RelayError::Refused {
                reason: match code {
                    // A short link that is gone is as permanent as a
                    // mailbox that is gone.
                    C::NoMailbox | C::NoLink => Refusal::NoMailbox,
                    C::AuthFailed => Refusal::AuthFailed,
                    C::Quota => Refusal::Quota,
                    C::RateLimited => Refusal::RateLimited,
                    C::Internal | C::TimedOut => Refusal::Internal,
                    C::TooLarge | C::Malformed | C::UnsupportedVersion | C::Unspecified => {
                        Refusal::Invalid
                    }
                },
                detail: message,
            },
            RequestError::Unexpected => RelayError::Misbehaved {
                detail: e.to_string(),
            },
            // A frame cut short by a clean end of stream is the relay's
            // doing (a lost connection is an I/O error, not an end).
            RequestError::Read(ref r)
                if matches!(
                    r,
                    tropa_relay_protocol::frame::ReadError::Frame(_)
                        | tropa_relay_protocol::frame::ReadError::Truncated
                ) =>
            {
                RelayError::Misbehaved {
                    detail: e.to_string(),
                }
            }
            other => RelayError::Unreachable {
                detail: other.to_string(),
            },
        }
    }
}

impl From<ConnectError> for ClientError {
    fn from(e: ConnectError) -> Self {
        ClientError::Relay(e.into())
    }
}

impl From<RequestError> for ClientError {
    fn from(e: RequestError) -> Self {
        ClientError::Relay(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay that gave up waiting for our request (a lossy link) is
    /// network trouble: the engine drops the connection and retries on a
    /// new one, where a refusal would wait out the refusal backoff.
    #[test]
    fn a_late_request_is_network_trouble_not_a_refusal() {
        use tropa_proto::relay::ErrorCode as C;
        let late = RelayError::from(RequestError::Relay {
            code: C::TimedOut,
            message: "request timed out".into(),
        });
        assert!(matches!(late, RelayError::Unreachable { .. }), "{late:?}");
        assert_eq!(late.refusal(), None);
        let malformed = RelayError::from(RequestError::Relay {
            code: C::Malformed,
            message: "malformed frame".into(),
        });
        assert_eq!(malformed.refusal(), Some(Refusal::Invalid));
    }

    /// Debug output ends up in logs and panic messages; it names the kind
    /// of error and nothing the user typed or the relay said.
    #[test]
    fn debug_names_the_variant_only() {
        let errors = [
            ClientError::UnknownContact {
                alias: "deserter-karim".into(),
                suggestion: Some("deserter-karim2".into()),
            },
            ClientError::IdentityChanged("deserter-karim".into()),
            ClientError::Relay(RelayError::Unreachable {
                detail: "deserter-karim 203.0.113.7".into(),
            }),
            ClientError::Relay(RelayError::Refused {
                reason: Refusal::Quota,
                detail: "deserter-karim".into(),
            }),
            ClientError::Profile(ProfileError::Storage("deserter-karim".into())),
        ];
        for e in errors {
            let shown = format!("{e:?}");
            assert!(shown.starts_with("ClientError::"), "{shown}");
            assert!(!shown.contains("karim"), "{shown}");
            assert!(!shown.contains("203.0"), "{shown}");
        }
        assert_eq!(
            format!(
                "{:?}",
                ClientError::Relay(RelayError::Refused {
                    reason: Refusal::Quota,
                    detail: String::new()
                })
            ),
            "ClientError::Relay(Refused(Quota))"
        );
    }
}

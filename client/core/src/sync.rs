//! What a sync is asked to do and what it tells: [`SyncOptions`],
//! [`SyncEvent`]s as things happen, and the [`SyncReport`] at the end. The
//! decisions are the [`crate::engine`]'s; [`crate::shell`] runs it on the
//! network; [`crate::SyncHandle`] keeps it running for a front end.

use std::time::Duration;

use crate::client::MessageView;
use crate::error::RelayError;

/// Longest a sync without `wait` may take, even if a relay misbehaves.
pub const ONE_SHOT_LIMIT: Duration = Duration::from_secs(60);
/// Default time before a text without receipt is sent again. Each further
/// resend waits twice as long, up to [`MAX_RESEND_INTERVAL`].
pub const DEFAULT_RESEND_AFTER: Duration = Duration::from_secs(600);
/// Longest wait between two resends of a text without receipt.
pub const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Longest a metered profile holds back a receipt that has no text to ride
/// on, hoping a reply will carry it for free. A held receipt leaves sooner
/// with a text to the same contact, with any run that deposits something
/// else, and at once for a text that arrived twice (its sender is already
/// resending). A one-shot run sends it at the first run after the hold.
///
/// The trade-off is against the sender's resend interval
/// ([`DEFAULT_RESEND_AFTER`], then doubling): a receipt that reaches the
/// sender after it resent costs the resent envelope on top (about 17 KB up
/// for the sender, 17 KB down for us), twice what holding it saved. Holding
/// pays only if the reply comes before the sender resends, so the hold is
/// half the default resend interval, leaving the other half for the time
/// the text waited on the relay before we fetched it. A hold of hours would
/// save a receipt only on replies written hours later, and cost several
/// resends for every message left unanswered in the meantime.
pub const MAX_RECEIPT_HOLD: Duration = Duration::from_secs(300);

/// How a sync runs.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Keep listening this long (None: leave as soon as caught up).
    pub wait: Option<Duration>,
    /// Resend a text that has no receipt after this long.
    pub resend_after: Duration,
    /// First wait after a relay refused a deposit (quota, rate limit);
    /// doubles with each refusal, up to an hour.
    pub refusal_backoff: Duration,
    /// Unused invitations are deleted this long after they expire (a
    /// `Hello` sent just before expiry may still be on its way).
    pub invitation_grace: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            wait: None,
            resend_after: DEFAULT_RESEND_AFTER,
            refusal_backoff: Duration::from_secs(60),
            invitation_grace: Duration::from_secs(tropa_e2e::INVITATION_GRACE_SECS),
        }
    }
}

impl SyncOptions {
    /// Whether the sync keeps listening (and retries relays) instead of
    /// leaving once caught up.
    pub fn is_waiting(&self) -> bool {
        self.wait.is_some()
    }
}

/// Something a front end may want to show as it happens. `Debug` names the
/// event only (its fields carry aliases and message text).
#[derive(Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// A new message arrived.
    Received(MessageView),
    /// A relay accepted a message for the first time (status `sent`).
    Sent {
        /// Contact.
        alias: String,
        /// Message id (hex).
        id: String,
    },
    /// The recipient confirmed a message.
    Delivered {
        /// Contact.
        alias: String,
        /// Message id (hex).
        id: String,
    },
    /// Someone accepted our invitation.
    Joined {
        /// The alias chosen at `invite`.
        alias: String,
    },
    /// An invitation nobody accepted expired; its mailbox was deleted.
    InvitationExpired {
        /// The alias chosen at `invite`.
        alias: String,
    },
    /// An envelope was dropped: tampered, undecryptable or invalid.
    Dropped {
        /// Contact the mailbox belongs to.
        alias: String,
        /// Why.
        reason: String,
    },
    /// A relay refused a deposit for a contact (it stays queued).
    Refused {
        /// The contact.
        alias: String,
        /// Why.
        error: RelayError,
    },
    /// A relay no longer knows one of our mailboxes (expired or deleted).
    MailboxRefused {
        /// The relay (without password).
        relay: String,
        /// Why.
        error: RelayError,
    },
    /// A contact's relay refused our deposits for good (their mailbox for us
    /// is gone): nothing more is sent to them.
    ContactBroken {
        /// The contact.
        alias: String,
    },
    /// A half-made contact was removed: the inviter's relay refused our
    /// reply for good (the invitation was used or expired).
    ContactRemoved {
        /// The alias we had given them.
        alias: String,
    },
    /// A contact request arrived on our intake address (`tropa requests`).
    RequestReceived {
        /// Its short id (hex).
        id: String,
    },
    /// An envelope on our intake address was dropped: not a valid request,
    /// or too many requests are waiting.
    RequestDropped {
        /// Why.
        reason: String,
    },
    /// A relay that could not be reached answers again.
    Reachable {
        /// The relay (without password).
        relay: String,
    },
    /// A relay could not be reached (retried when waiting).
    Unreachable {
        /// The relay (without password).
        relay: String,
        /// Why.
        error: RelayError,
    },
}

impl std::fmt::Debug for SyncEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncEvent::Received(_) => "SyncEvent::Received",
            SyncEvent::Sent { .. } => "SyncEvent::Sent",
            SyncEvent::Delivered { .. } => "SyncEvent::Delivered",
            SyncEvent::Joined { .. } => "SyncEvent::Joined",
            SyncEvent::InvitationExpired { .. } => "SyncEvent::InvitationExpired",
            SyncEvent::Dropped { .. } => "SyncEvent::Dropped",
            SyncEvent::Refused { .. } => "SyncEvent::Refused",
            SyncEvent::MailboxRefused { .. } => "SyncEvent::MailboxRefused",
            SyncEvent::ContactBroken { .. } => "SyncEvent::ContactBroken",
            SyncEvent::ContactRemoved { .. } => "SyncEvent::ContactRemoved",
            SyncEvent::RequestReceived { .. } => "SyncEvent::RequestReceived",
            SyncEvent::RequestDropped { .. } => "SyncEvent::RequestDropped",
            SyncEvent::Reachable { .. } => "SyncEvent::Reachable",
            SyncEvent::Unreachable { .. } => "SyncEvent::Unreachable",
        })
    }
}

/// What a sync did. `Debug` shows counts, not the aliases in `refused`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// New messages stored.
    pub received: usize,
    /// Envelopes accepted by relays (texts, receipts, handshakes).
    pub deposited: usize,
    /// Messages confirmed by their recipient.
    pub delivered: usize,
    /// Contacts that accepted an invitation.
    pub joined: usize,
    /// Envelopes dropped as tampered or invalid.
    pub dropped: usize,
    /// New contact requests on our intake address.
    pub requests: usize,
    /// Envelopes on our intake address dropped: not valid requests, or
    /// too many waiting.
    pub requests_dropped: usize,
    /// Relays that could not be reached (at the end of the run).
    pub unreachable: Vec<String>,
    /// Of those, the ones that answered with another key than their address
    /// names (a wrong address, or someone in the middle).
    pub wrong_key: Vec<String>,
    /// Deposits a relay refused (quota, rate limit, ...), as `alias: reason`;
    /// they stay queued and are retried with backoff.
    pub refused: Vec<String>,
    /// Contacts found broken in this run: their relay refused our deposits
    /// for good.
    pub broken: Vec<String>,
    /// Half-made contacts removed in this run (their invitation was used or
    /// expired).
    pub removed: Vec<String>,
    /// Relays that delivered what they should not have (forged or damaged
    /// deliveries), as `relay: what`.
    pub misbehaving: Vec<String>,
    /// Transport bytes sent.
    pub bytes_sent: u64,
    /// Transport bytes received.
    pub bytes_received: u64,
    /// Every connection made in the run: its relay (address without
    /// password) and what carried it ("quic" or "tcp").
    pub connections: Vec<(String, String)>,
}

impl std::fmt::Debug for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncReport")
            .field("received", &self.received)
            .field("deposited", &self.deposited)
            .field("delivered", &self.delivered)
            .field("joined", &self.joined)
            .field("dropped", &self.dropped)
            .field("requests", &self.requests)
            .field("requests_dropped", &self.requests_dropped)
            .field("unreachable", &self.unreachable.len())
            .field("wrong_key", &self.wrong_key.len())
            .field("refused", &self.refused.len())
            .field("broken", &self.broken.len())
            .field("removed", &self.removed.len())
            .field("misbehaving", &self.misbehaving.len())
            .field("bytes_sent", &self.bytes_sent)
            .field("bytes_received", &self.bytes_received)
            .field("connections", &self.connections.len())
            .finish()
    }
}

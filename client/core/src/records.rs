//! What the client keeps in its encrypted store, one prost message per kind.
//!
//! These are local formats, never sent over the network (wire types live in
//! `tropa-proto`). Every record is sealed by the [`Vault`](crate::store::Vault)
//! before it touches the disk. Secret fields are wiped on drop.

use prost::Message;
use zeroize::Zeroize;

/// Tree names (hashed by the vault before they reach the disk).
pub mod tree {
    /// Key `profile`: [`ProfileRecord`](super::ProfileRecord).
    pub const META: &str = "meta";
    /// Contact id → [`ContactRecord`](super::ContactRecord).
    pub const CONTACTS: &str = "contacts";
    /// Contact id → encoded ratchet session.
    pub const SESSIONS: &str = "sessions";
    /// Recipient id → [`OwnMailbox`](super::OwnMailbox).
    pub const MAILBOXES: &str = "mailboxes";
    /// Invitation id → [`PendingRecord`](super::PendingRecord).
    pub const PENDING: &str = "pending";
    /// Contact id ‖ seq → [`MessageRecord`](super::MessageRecord).
    pub const MESSAGES: &str = "messages";
    /// Contact id ‖ message id → message key (dedup and receipts).
    pub const MESSAGE_IDS: &str = "message-ids";
    /// Outbox id → [`OutboxRecord`](super::OutboxRecord).
    pub const OUTBOX: &str = "outbox";
    /// Digest of a processed envelope → recipient id ‖ envelope id, until acked.
    pub const PROCESSED: &str = "processed";
    /// Contact id ‖ 16-byte message id → since when it is owed (u64 BE
    /// unix seconds; empty in older profiles, and 0 for a duplicate: due
    /// at once). A receipt owed for a text received, stored with the text
    /// and removed in the same write that puts a standalone receipt in the
    /// outbox, or that records the relay's acceptance of a text carrying
    /// it (`OutboxRecord::receipts`): a kill in between loses none.
    pub const RECEIPTS_OWED: &str = "receipts-owed";
    /// Digest of every invitation this profile accepted (one-time use).
    pub const USED_INVITATIONS: &str = "used-invitations";
    /// Key `seq`: the next local sequence number (big-endian u64).
    pub const COUNTERS: &str = "counters";
    /// Contact id → [`CaseRecord`](super::CaseRecord): the handler's case
    /// work on a contact (never sent anywhere).
    pub const CASES: &str = "cases";
    /// Recipient id of its intake mailbox → [`AddressRecord`](super::AddressRecord):
    /// this profile's public intake address (docs/protocol.md §12).
    pub const ADDRESSES: &str = "addresses";
    /// Request id (32 bytes) → [`RequestRecord`](super::RequestRecord): a
    /// contact request waiting for the handler's accept or reject.
    pub const REQUESTS: &str = "requests";
    /// Request id → nothing: a request handled (stored, accepted, rejected
    /// or expired), remembered while the address exists so that the same
    /// envelope delivered again is dropped (it always opens again, with the
    /// same id). Forgotten when the address is deleted.
    pub const REQUEST_IDS: &str = "request-ids";
    /// Contact id → [`RequestOutRecord`](super::RequestOutRecord): a
    /// contact request of ours still to be deposited.
    pub const REQUESTS_OUT: &str = "requests-out";
    /// Invitation id → identity public key (64 bytes): the only identity
    /// whose Hello may complete this pending invitation (one sent with a
    /// contact request: the address's owner, S10).
    pub const EXPECTED_IDENTITIES: &str = "expected-identities";
}

/// The profile itself.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct ProfileRecord {
    /// Display name (never sent anywhere by this version).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The profile's relay (may carry a creation password).
    #[prost(string, tag = "2")]
    pub relay: String,
    /// Encoded [`tropa_e2e::Identity`].
    #[prost(bytes = "vec", tag = "3")]
    pub identity: Vec<u8>,
    /// Unix seconds.
    #[prost(uint64, tag = "4")]
    pub created_at: u64,
    /// Data is metered: receipts with no text to ride on are held back
    /// (`tropa config metered on`; see [`crate::sync::MAX_RECEIPT_HOLD`]).
    #[prost(bool, tag = "5")]
    pub metered: bool,
    /// How to reach relays: "" (auto), "quic" or "tcp"
    /// (`tropa config transport`).
    #[prost(string, tag = "6")]
    pub transport: String,
    /// A SOCKS5 proxy for every connection, `socks5://[user:pass@]host:port`,
    /// or "" for none (`tropa config socks5`).
    #[prost(string, tag = "7")]
    pub socks5: String,
    /// Connection isolation: "" (per contact with a proxy, per profile
    /// without), "profile" or "contact" (`tropa config isolation`).
    #[prost(string, tag = "8")]
    pub isolation: String,
    /// Relays (addresses without password) last reached over TCP under
    /// `auto`: they are tried over TCP first next time. The rest are tried
    /// over QUIC first.
    #[prost(string, repeated, tag = "9")]
    pub tcp_relays: Vec<String>,
    /// More relays for new mailboxes, besides `relay` (`tropa relays add`):
    /// each new invitation or accept picks one of all of them at random.
    #[prost(string, repeated, tag = "10")]
    pub relays: Vec<String>,
}

impl Drop for ProfileRecord {
    fn drop(&mut self) {
        self.identity.zeroize();
        self.name.zeroize();
        self.relay.zeroize();
        self.socks5.zeroize();
        for r in &mut self.relays {
            r.zeroize();
        }
    }
}

/// Contact states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ContactState {
    /// We invited them; their `Hello` has not arrived yet.
    Invited = 0,
    /// The session exists.
    Established = 1,
}

/// A contact.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct ContactRecord {
    /// Random local id (16 bytes); aliases can change, ids do not.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// What this profile calls them.
    #[prost(string, tag = "2")]
    pub alias: String,
    /// Their identity public key (64 bytes); empty while invited.
    #[prost(bytes = "vec", tag = "3")]
    pub identity: Vec<u8>,
    /// State.
    #[prost(enumeration = "ContactState", tag = "4")]
    pub state: i32,
    /// Whether the safety number was confirmed out of band.
    #[prost(bool, tag = "5")]
    pub verified: bool,
    /// Relay of their mailbox for us.
    #[prost(string, tag = "6")]
    pub send_relay: String,
    /// Sender id of their mailbox for us.
    #[prost(bytes = "vec", tag = "7")]
    pub send_sender_id: Vec<u8>,
    /// Our Ed25519 secret that signs deposits into their mailbox.
    #[prost(bytes = "vec", tag = "8")]
    pub send_auth_secret: Vec<u8>,
    /// Our mailbox for them (recipient id).
    #[prost(bytes = "vec", tag = "9")]
    pub recv_mailbox: Vec<u8>,
    /// Disappearing-message timer in seconds (0 = off).
    #[prost(uint32, tag = "10")]
    pub timer_secs: u32,
    /// Envelopes dropped as tampered or undecryptable since the last report.
    #[prost(uint32, tag = "11")]
    pub dropped: u32,
    /// Unix seconds.
    #[prost(uint64, tag = "12")]
    pub created_at: u64,
    /// Their relay refused our deposits for good (their mailbox for us is
    /// gone, or no longer takes our key): nothing more is sent to them.
    #[prost(bool, tag = "13")]
    pub broken: bool,
}

impl Drop for ContactRecord {
    fn drop(&mut self) {
        self.send_auth_secret.zeroize();
        self.alias.zeroize();
    }
}

/// One of our own mailboxes (where we receive).
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct OwnMailbox {
    /// The relay it lives on.
    #[prost(string, tag = "1")]
    pub relay: String,
    /// Recipient id.
    #[prost(bytes = "vec", tag = "2")]
    pub recipient_id: Vec<u8>,
    /// Ed25519 secret that signs recipient commands.
    #[prost(bytes = "vec", tag = "3")]
    pub auth_secret: Vec<u8>,
    /// X25519 secret the deliveries are sealed to.
    #[prost(bytes = "vec", tag = "4")]
    pub dh_secret: Vec<u8>,
    /// The relay's DH key for this mailbox.
    #[prost(bytes = "vec", tag = "5")]
    pub relay_dh_pub: Vec<u8>,
    /// The contact it belongs to.
    #[prost(bytes = "vec", tag = "6")]
    pub contact_id: Vec<u8>,
    /// Set while the mailbox waits for the Hello of this invitation.
    #[prost(bytes = "vec", tag = "7")]
    pub invite_id: Vec<u8>,
    /// A sender key still to `Secure` the mailbox with (retry after failure).
    #[prost(bytes = "vec", tag = "8")]
    pub secure_with: Vec<u8>,
}

impl Drop for OwnMailbox {
    fn drop(&mut self) {
        self.auth_secret.zeroize();
        self.dh_secret.zeroize();
    }
}

/// An invitation waiting for its `Hello`.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct PendingRecord {
    /// Encoded [`tropa_e2e::PendingInvitation`].
    #[prost(bytes = "vec", tag = "1")]
    pub pending: Vec<u8>,
    /// The contact created for it.
    #[prost(bytes = "vec", tag = "2")]
    pub contact_id: Vec<u8>,
    /// The locator of its short link's data on the invitation's relay
    /// (empty: no short link, e.g. an older relay refused the data).
    #[prost(bytes = "vec", tag = "3")]
    pub link_locator: Vec<u8>,
    /// The Ed25519 secret that owns the link data: deletes it once the
    /// invitation is used, cancelled or expired.
    #[prost(bytes = "vec", tag = "4")]
    pub link_owner_secret: Vec<u8>,
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        self.pending.zeroize();
        self.link_owner_secret.zeroize();
    }
}

/// Direction of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Direction {
    /// Received.
    In = 0,
    /// Sent.
    Out = 1,
}

/// Status of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Status {
    /// Outgoing, not yet accepted by the relay.
    Queued = 0,
    /// Outgoing, stored by the relay; no receipt yet.
    Sent = 1,
    /// Outgoing, the recipient's receipt arrived.
    Delivered = 2,
    /// Incoming, not yet shown by `read`.
    Unread = 3,
    /// Incoming, shown.
    Read = 4,
}

/// A message in a conversation.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct MessageRecord {
    /// The end-to-end message id (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// The contact.
    #[prost(bytes = "vec", tag = "2")]
    pub contact_id: Vec<u8>,
    /// In or out.
    #[prost(enumeration = "Direction", tag = "3")]
    pub direction: i32,
    /// The text.
    #[prost(string, tag = "4")]
    pub text: String,
    /// Status.
    #[prost(enumeration = "Status", tag = "5")]
    pub status: i32,
    /// Unix seconds when sent (out) or received (in).
    #[prost(uint64, tag = "6")]
    pub at: u64,
    /// Unix seconds after which it is deleted (0 = never).
    #[prost(uint64, tag = "7")]
    pub expires_at: u64,
    /// Local order.
    #[prost(uint64, tag = "8")]
    pub seq: u64,
    /// When the sender wrote it, by the sender's clock (Unix seconds; 0 if
    /// not given). Shown, never used for order: `seq` orders, so a skewed
    /// clock cannot reorder a conversation.
    #[prost(uint64, tag = "9")]
    pub sent_at: u64,
}

impl Drop for MessageRecord {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

/// Kinds of outbox entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum OutboxKind {
    /// A text: sealed anew at every attempt, kept until its receipt arrives.
    Text = 0,
    /// A receipt: sealed at every attempt, done once the relay accepts it.
    Receipt = 1,
    /// The handshake envelope (already sealed): done once the relay accepts it.
    Handshake = 2,
}

/// Something to deliver.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct OutboxRecord {
    /// Kind.
    #[prost(enumeration = "OutboxKind", tag = "1")]
    pub kind: i32,
    /// The contact.
    #[prost(bytes = "vec", tag = "2")]
    pub contact_id: Vec<u8>,
    /// Encoded `Content` (text, receipt) or the sealed envelope (handshake).
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// Local order: older entries go first.
    #[prost(uint64, tag = "4")]
    pub seq: u64,
    /// Unix seconds of the last accepted deposit (0 = never accepted).
    #[prost(uint64, tag = "5")]
    pub sent_at: u64,
    /// Deposits accepted so far.
    #[prost(uint32, tag = "6")]
    pub attempts: u32,
    /// The envelope of the current attempt, sealed in the same durable batch
    /// that advanced the ratchet; retried byte for byte after a refusal or a
    /// network failure. Empty when the next attempt needs a fresh seal.
    #[prost(bytes = "vec", tag = "7")]
    pub sealed: Vec<u8>,
    /// Unix seconds before which no attempt is made (backoff).
    #[prost(uint64, tag = "8")]
    pub next_try_at: u64,
    /// Consecutive refusals by the relay (for backoff).
    #[prost(uint32, tag = "9")]
    pub failures: u32,
    /// Unix seconds of the last refusal.
    #[prost(uint64, tag = "10")]
    pub refused_at: u64,
    /// A text's piggybacked receipts: the ids (16 bytes each) of messages
    /// from the contact acknowledged by `sealed`, or by the last accepted
    /// attempt. Those receipts stay owed until the relay accepts an attempt
    /// carrying them; a resend carries them again (duplicates are harmless).
    #[prost(bytes = "vec", repeated, tag = "11")]
    pub receipts: Vec<Vec<u8>>,
}

impl OutboxRecord {
    /// A new entry, never attempted.
    pub fn queued(kind: OutboxKind, contact_id: Vec<u8>, payload: Vec<u8>, seq: u64) -> Self {
        Self {
            kind: kind as i32,
            contact_id,
            payload,
            seq,
            sent_at: 0,
            attempts: 0,
            sealed: Vec::new(),
            next_try_at: 0,
            failures: 0,
            refused_at: 0,
            receipts: Vec::new(),
        }
    }
}

/// When a message with a disappearing timer of `secs` (0 = none) seen at `t`
/// is deleted (0 = never).
pub fn expiry(t: u64, secs: u32) -> u64 {
    if secs > 0 { t + u64::from(secs) } else { 0 }
}

impl Drop for OutboxRecord {
    fn drop(&mut self) {
        self.payload.zeroize();
    }
}

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum CaseStatusRecord {
    /// Nothing done yet.
    New = 0,
    /// Being vetted.
    Vetting = 1,
    /// Vetted and cleared (needs two passing evaluators).
    Cleared = 2,
    /// Being relocated (needs the same as cleared).
    Relocating = 3,
    /// Closed.
    Closed = 4,
}

/// The outcome of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum VerdictRecord {
    /// Neither pass nor fail yet.
    Inconclusive = 0,
    /// The evaluator vouches for the person.
    Pass = 1,
    /// The evaluator does not.
    Fail = 2,
}

/// A private note on a case.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct NoteRecord {
    /// Unix seconds.
    #[prost(uint64, tag = "1")]
    pub at: u64,
    /// The note.
    #[prost(string, tag = "2")]
    pub text: String,
}

impl Drop for NoteRecord {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

/// One evaluation in a case's vetting record.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct EvaluationRecord {
    /// Who evaluated (a name the handlers use among themselves).
    #[prost(string, tag = "1")]
    pub evaluator: String,
    /// Unix seconds.
    #[prost(uint64, tag = "2")]
    pub at: u64,
    /// Outcome.
    #[prost(enumeration = "VerdictRecord", tag = "3")]
    pub verdict: i32,
    /// Why.
    #[prost(string, tag = "4")]
    pub comment: String,
}

impl Drop for EvaluationRecord {
    fn drop(&mut self) {
        self.evaluator.zeroize();
        self.comment.zeroize();
    }
}

/// A handler's case work on one contact. Local only: never sent.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct CaseRecord {
    /// Status.
    #[prost(enumeration = "CaseStatusRecord", tag = "1")]
    pub status: i32,
    /// Starred.
    #[prost(bool, tag = "2")]
    pub starred: bool,
    /// Private notes, oldest first.
    #[prost(message, repeated, tag = "3")]
    pub notes: Vec<NoteRecord>,
    /// The vetting record, oldest first.
    #[prost(message, repeated, tag = "4")]
    pub evaluations: Vec<EvaluationRecord>,
    /// Unix seconds of the last change to the case.
    #[prost(uint64, tag = "5")]
    pub updated_at: u64,
    /// Unix seconds when an invitation under this contact's alias came with
    /// another identity key than the one we know (S10); 0 when none, or
    /// once the handler acknowledged it.
    #[prost(uint64, tag = "6")]
    pub identity_alert_at: u64,
}

/// This profile's intake address: a long-lived invitation whose mailbox is
/// an intake mailbox, published as a short link of kind `A`.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct AddressRecord {
    /// Recipient id of its intake mailbox (also the record's key).
    #[prost(bytes = "vec", tag = "1")]
    pub mailbox: Vec<u8>,
    /// The relay of the mailbox and the link data.
    #[prost(string, tag = "2")]
    pub relay: String,
    /// Encoded [`tropa_e2e::PendingInvitation`]: opens requests. Emptied
    /// when the address is deleted (recorded requests then stay sealed).
    #[prost(bytes = "vec", tag = "3")]
    pub pending: Vec<u8>,
    /// Encoded [`tropa_e2e::Invitation`]: sealed again into the link data
    /// at each refresh. Emptied when the address is deleted.
    #[prost(bytes = "vec", tag = "4")]
    pub invitation: Vec<u8>,
    /// The short link's 16-byte secret.
    #[prost(bytes = "vec", tag = "5")]
    pub link_secret: Vec<u8>,
    /// The Ed25519 secret that owns the link data (refresh, delete).
    #[prost(bytes = "vec", tag = "6")]
    pub link_owner_secret: Vec<u8>,
    /// Unix seconds.
    #[prost(uint64, tag = "7")]
    pub created_at: u64,
    /// When the relay last stored the link data (0: not yet).
    #[prost(uint64, tag = "8")]
    pub link_stored_at: u64,
    /// For how long it did (the relay caps it; refreshed at half).
    #[prost(uint64, tag = "9")]
    pub link_ttl_secs: u64,
    /// Deleted by the user: no longer shown or opened; the record stays
    /// until the relay confirmed the deletion of the link and the mailbox.
    #[prost(bool, tag = "10")]
    pub withdrawn: bool,
    /// The relay confirmed the link data's deletion.
    #[prost(bool, tag = "11")]
    pub link_deleted: bool,
    /// Envelopes dropped as invalid requests.
    #[prost(uint32, tag = "12")]
    pub dropped: u32,
    /// Valid requests dropped because the list was full.
    #[prost(uint32, tag = "13")]
    pub overflow: u32,
}

impl Drop for AddressRecord {
    fn drop(&mut self) {
        self.pending.zeroize();
        self.link_secret.zeroize();
        self.link_owner_secret.zeroize();
    }
}

/// A contact request received on the intake address, opened and checked.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct RequestRecord {
    /// The request id (32 bytes; also the record's key).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// The requester's identity public key (64 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub requester: Vec<u8>,
    /// The requester's own one-time invitation (encoded): accepting the
    /// request accepts it.
    #[prost(bytes = "vec", tag = "3")]
    pub invitation: Vec<u8>,
    /// The requester's first message.
    #[prost(string, tag = "4")]
    pub text: String,
    /// Unix seconds.
    #[prost(uint64, tag = "5")]
    pub received_at: u64,
    /// When the requester's invitation expires (then it cannot be accepted).
    #[prost(uint64, tag = "6")]
    pub expires_at: u64,
    /// The first two groups of the safety number with the requester.
    #[prost(string, tag = "7")]
    pub safety_prefix: String,
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.text.zeroize();
        self.invitation.zeroize();
    }
}

/// A contact request of ours, sealed, waiting to be deposited into the
/// address's intake mailbox (unsigned). Retried byte for byte: the same
/// envelope has the same request id, so the owner keeps one.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct RequestOutRecord {
    /// The address's relay.
    #[prost(string, tag = "1")]
    pub relay: String,
    /// The intake mailbox's sender id.
    #[prost(bytes = "vec", tag = "2")]
    pub sender_id: Vec<u8>,
    /// The sealed request envelope.
    #[prost(bytes = "vec", tag = "3")]
    pub envelope: Vec<u8>,
    /// Consecutive refusals (for backoff).
    #[prost(uint32, tag = "4")]
    pub failures: u32,
    /// Unix seconds of the last refusal.
    #[prost(uint64, tag = "5")]
    pub refused_at: u64,
}

// These records hold keys, names and message text, which must never reach
// a log or an error: their Debug names the record and nothing else.
crate::redact::redacted_debug!(ProfileRecord);
crate::redact::redacted_debug!(ContactRecord);
crate::redact::redacted_debug!(OwnMailbox);
crate::redact::redacted_debug!(PendingRecord);
crate::redact::redacted_debug!(MessageRecord);
crate::redact::redacted_debug!(OutboxRecord);
crate::redact::redacted_debug!(NoteRecord);
crate::redact::redacted_debug!(EvaluationRecord);
crate::redact::redacted_debug!(CaseRecord);
crate::redact::redacted_debug!(AddressRecord);
crate::redact::redacted_debug!(RequestRecord);
crate::redact::redacted_debug!(RequestOutRecord);

//! Durable relay state behind a small [`Store`] trait: [`SledStore`] on disk
//! and [`MemoryStore`] for unit tests and simulations.
//!
//! What is stored (S8): per mailbox its IDs, the recipient's public keys, the
//! relay's DH secret for the mailbox, the secured sender key, and
//! hour-resolution timestamps; per envelope its ID, the hour it arrived and
//! the envelope sealed under the mailbox's at-rest key; per short link a
//! hash of its locator, its owner's public key, the hour it expires and its
//! data sealed under a key derived from the locator. Never an IP address,
//! never a finer timestamp, never the deposited bytes or a locator verbatim.
//!
//! Every limit that must hold against concurrent writers (mailbox quota,
//! "the mailbox was not secured meanwhile") is checked inside the write.
//! Durability comes from [`Store::flush`], which the server awaits before
//! answering; no method here flushes on its own.

use prost::Message;
use sha2::{Digest as _, Sha256};
use tropa_proto::{ENVELOPE_ID_LEN, MAILBOX_ID_LEN};

use crate::Hour;

mod memory;
pub mod migrate;
mod redb_store;
mod sled;
#[cfg(test)]
pub(crate) mod tests;

pub use memory::MemoryStore;
pub use redb_store::{RedbStore, stamp_redb_format_for_tests};
pub use sled::{FORMAT_VERSION, SledStore, stamp_format_for_tests};

/// A mailbox's recipient-side ID.
pub type RecipientId = [u8; MAILBOX_ID_LEN];
/// A mailbox's sender-side ID.
pub type SenderId = [u8; MAILBOX_ID_LEN];
/// An envelope ID: per-mailbox sequence number (8 bytes, big endian) ‖ 8 random bytes.
pub type EnvelopeId = [u8; ENVELOPE_ID_LEN];
/// The key a short link is stored under: [`link_id`] of its locator.
pub type LinkId = [u8; 32];

/// Domain separation of [`link_id`].
const LINK_ID_CONTEXT: &[u8] = b"tropa/1 link-id\0";

/// The key a link with this locator is stored under: SHA-256 of a context
/// and the locator. The locator itself never reaches the disk, so the data
/// directory does not hold what a `GetLink` must present, nor the key the
/// data is sealed under at rest.
pub fn link_id(locator: &[u8]) -> LinkId {
    Sha256::new()
        .chain_update(LINK_ID_CONTEXT)
        .chain_update(locator)
        .finalize()
        .into()
}

/// What the relay keeps about a mailbox.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct MailboxRecord {
    /// Ed25519 key that signs recipient commands.
    #[prost(bytes = "vec", tag = "1")]
    pub recipient_auth_pub: Vec<u8>,
    /// Recipient's X25519 key for delivery re-encryption.
    #[prost(bytes = "vec", tag = "2")]
    pub recipient_dh_pub: Vec<u8>,
    /// The relay's X25519 secret for this mailbox.
    #[prost(bytes = "vec", tag = "3")]
    pub relay_dh_secret: Vec<u8>,
    /// Sender-side ID.
    #[prost(bytes = "vec", tag = "4")]
    pub sender_id: Vec<u8>,
    /// Sender key set by `Secure`; empty while the mailbox is open.
    #[prost(bytes = "vec", tag = "5")]
    pub secured_sender: Vec<u8>,
    /// Hour of the last recipient or sender activity (idle expiry).
    #[prost(uint32, tag = "6")]
    pub active_hour: u32,
    /// Next envelope sequence number.
    #[prost(uint64, tag = "7")]
    pub next_seq: u64,
    /// Envelopes currently stored.
    #[prost(uint32, tag = "8")]
    pub count: u32,
    /// Hour the mailbox was created.
    #[prost(uint32, tag = "9")]
    pub created_hour: u32,
    /// Set at creation and cleared by the first signed recipient command: a
    /// mailbox nobody ever subscribed to or secured is deleted once an
    /// invitation made for it would have expired. (Records written before
    /// this field existed decode as `false` and are never treated as fresh.)
    #[prost(bool, tag = "10")]
    pub fresh: bool,
    /// An intake mailbox (a public contact address): unsigned deposits from
    /// anyone, rate-limited per mailbox by the service, never secured, and
    /// the quota of a secured mailbox. Fixed at creation.
    #[prost(bool, tag = "11")]
    pub intake: bool,
}

impl MailboxRecord {
    /// Whether this is an open mailbox in the quota sense: anyone with its
    /// address may deposit (no `Secure` yet) and the small open quotas
    /// apply. An intake mailbox is not open in this sense: it has its own
    /// rate limit and the quota of a secured mailbox.
    pub fn is_open(&self) -> bool {
        self.secured_sender.is_empty() && !self.intake
    }

    /// Whether deposits must be signed by the secured sender key.
    pub fn needs_signature(&self) -> bool {
        !self.secured_sender.is_empty()
    }
}

impl std::fmt::Debug for MailboxRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxRecord")
            .field("secured", &self.needs_signature())
            .field("intake", &self.intake)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Drop for MailboxRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.relay_dh_secret);
    }
}

/// What the relay keeps about a short link (stored under its [`LinkId`]).
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
pub struct LinkRecord {
    /// Ed25519 key that signs puts and deletes of this link.
    #[prost(bytes = "vec", tag = "1")]
    pub owner_auth_pub: Vec<u8>,
    /// The last hour in which the link is served; the sweep removes it after.
    #[prost(uint32, tag = "2")]
    pub expires_hour: u32,
    /// Nonce ‖ ciphertext ‖ tag of the link data under
    /// `SealingKey::link_at_rest(locator)`, with the link ID as associated data.
    #[prost(bytes = "vec", tag = "3")]
    pub sealed: Vec<u8>,
}

impl LinkRecord {
    /// Whether the link has expired by `now` (it is then served to nobody
    /// and replaced by whoever puts it next, even before the sweep).
    pub fn is_expired(&self, now: Hour) -> bool {
        self.expires_hour < now
    }
}

impl std::fmt::Debug for LinkRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkRecord")
            .field("expires_hour", &self.expires_hour)
            .finish_non_exhaustive()
    }
}

/// One stored envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// The envelope's ID.
    pub id: EnvelopeId,
    /// Hour of arrival.
    pub hour: Hour,
    /// Nonce ‖ ciphertext ‖ tag under the mailbox's at-rest key.
    pub sealed: Vec<u8>,
}

impl StoredEnvelope {
    const HEADER: usize = 4 + ENVELOPE_ID_LEN;

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::HEADER + self.sealed.len());
        v.extend_from_slice(&self.hour.to_be_bytes());
        v.extend_from_slice(&self.id);
        v.extend_from_slice(&self.sealed);
        v
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self, StoreError> {
        let (hour, rest) = raw.split_first_chunk::<4>().ok_or(StoreError::Corrupt)?;
        let (id, sealed) = rest
            .split_first_chunk::<ENVELOPE_ID_LEN>()
            .ok_or(StoreError::Corrupt)?;
        Ok(Self {
            id: *id,
            hour: u32::from_be_bytes(*hour),
            sealed: sealed.to_vec(),
        })
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No mailbox with that ID.
    #[error("no such mailbox")]
    NoMailbox,
    /// The mailbox holds its maximum number of envelopes.
    #[error("mailbox is full")]
    Quota,
    /// The relay-wide storage quota (or the share of it that open mailboxes
    /// may use) is reached.
    #[error("relay storage is full")]
    DiskFull,
    /// The mailbox was secured (or re-secured) between the deposit's
    /// signature check and its write; the deposit must be checked again.
    #[error("mailbox security changed during the deposit")]
    SecurityChanged,
    /// The link exists and belongs to another owner key.
    #[error("the link belongs to another key")]
    LinkOwner,
    /// The relay holds its maximum number of links.
    #[error("the relay holds its maximum number of links")]
    TooManyLinks,
    /// A randomly chosen ID already exists (astronomically unlikely).
    #[error("ID collision")]
    Collision,
    /// Stored data does not decode.
    #[error("stored data is corrupt")]
    Corrupt,
    /// The store was written by a newer relay, in a format this one cannot
    /// read: it is left untouched.
    #[error(
        "the store was written by a newer tropa-relay (store format {found}; this one reads \
         format {supported} and older). Run that newer version, or restore a backup made \
         with this one"
    )]
    NewerFormat {
        /// The format the store is in.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// The storage engine failed.
    #[error("storage: {0}")]
    Backend(#[from] ::sled::Error),
    /// redb failed (boxed: its error is large).
    #[error("storage: {0}")]
    Redb(Box<::redb::Error>),
    /// The group commit holding this write failed, so it is not on disk
    /// (the reason was logged once for the whole batch).
    #[error("storage: the commit failed")]
    CommitFailed,
    /// Syncing the store's files to disk failed.
    #[error("storage sync: {0}")]
    Io(std::io::Error),
}

/// Limits and preconditions the store enforces atomically with each write.
#[derive(Clone, Debug)]
pub struct StoreLimits {
    /// Envelopes one secured mailbox may hold now.
    pub mailbox_quota: u32,
    /// Envelopes the whole relay may hold (disk quota / envelope size).
    pub total_quota: u64,
    /// Envelopes one open (not yet secured) mailbox may hold.
    pub open_mailbox_quota: u32,
    /// Envelopes all open mailboxes together may hold.
    pub open_total_quota: u64,
    /// The mailbox's secured sender key as it was when the deposit was
    /// authorised (empty: open); the write fails if it changed since.
    pub secured_as_checked: Vec<u8>,
}

/// What a sweep removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepPolicy {
    /// Envelopes older than this many hours.
    pub ttl_hours: u32,
    /// Mailboxes without activity for this many hours.
    pub idle_hours: u32,
    /// Fresh mailboxes (never subscribed to or secured) this many hours old.
    pub unused_hours: u32,
}

/// What a sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Envelopes older than the TTL, or in a removed mailbox.
    pub expired_envelopes: u64,
    /// Mailboxes idle for longer than the idle limit (with their envelopes).
    pub expired_mailboxes: u64,
    /// Fresh mailboxes nobody ever used.
    pub unused_mailboxes: u64,
    /// Links past their expiry hour.
    pub expired_links: u64,
    /// Records skipped because they do not decode.
    pub corrupt: u64,
}

/// Relay-wide totals, kept as counters so they are cheap to read on every request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Mailboxes.
    pub mailboxes: u64,
    /// Envelopes.
    pub envelopes: u64,
    /// Envelopes in open (not yet secured) mailboxes.
    pub open_envelopes: u64,
    /// Short links (including expired ones the sweep has not removed yet).
    pub links: u64,
}

/// Durable relay state.
pub trait Store: Send + Sync + 'static {
    /// Stores a new mailbox; fails with `Collision` if either ID exists.
    fn create_mailbox(
        &self,
        recipient_id: &RecipientId,
        rec: &MailboxRecord,
    ) -> Result<(), StoreError>;
    /// Looks a mailbox up by its recipient ID.
    fn mailbox(&self, recipient_id: &RecipientId) -> Result<Option<MailboxRecord>, StoreError>;
    /// Looks a mailbox up by its sender ID.
    fn mailbox_by_sender(
        &self,
        sender_id: &SenderId,
    ) -> Result<Option<(RecipientId, MailboxRecord)>, StoreError>;
    /// Sets the secured sender key.
    fn secure(&self, recipient_id: &RecipientId, sender_pub: &[u8]) -> Result<(), StoreError>;
    /// Marks the mailbox active in `hour` and no longer fresh (no write if
    /// nothing changes).
    fn touch(&self, recipient_id: &RecipientId, hour: Hour) -> Result<(), StoreError>;
    /// Deletes a mailbox and all its envelopes.
    fn delete_mailbox(&self, recipient_id: &RecipientId) -> Result<(), StoreError>;
    /// Appends an envelope; `seal` turns the assigned ID into the sealed bytes.
    fn put_envelope(
        &self,
        recipient_id: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError>;
    /// The first envelope of a mailbox whose sequence number is at or above
    /// `from_seq`. Undecodable records are skipped and counted in the
    /// returned number.
    fn next_envelope(
        &self,
        recipient_id: &RecipientId,
        from_seq: u64,
    ) -> Result<(Option<StoredEnvelope>, u64), StoreError>;
    /// Deletes one envelope; `false` if it was not there.
    fn ack(&self, recipient_id: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError>;
    /// Stores a link under `id`, or replaces the one stored there if it has
    /// the same owner key or has expired by `now`. Fails with `LinkOwner`
    /// if a live link of another owner is there, and with `TooManyLinks` if
    /// there is none and the relay holds `max_links` already (both checked
    /// inside the write).
    fn put_link(
        &self,
        id: &LinkId,
        rec: &LinkRecord,
        now: Hour,
        max_links: u64,
    ) -> Result<(), StoreError>;
    /// The link stored under `id`, expired or not.
    fn link(&self, id: &LinkId) -> Result<Option<LinkRecord>, StoreError>;
    /// Deletes the link under `id` if its owner key is still `owner`
    /// (checked inside the write); whether it did.
    fn delete_link(&self, id: &LinkId, owner: &[u8]) -> Result<bool, StoreError>;
    /// Removes expired envelopes, idle or unused mailboxes and expired links.
    fn sweep(&self, now: Hour, policy: &SweepPolicy) -> Result<SweepStats, StoreError>;
    /// Relay-wide totals.
    fn totals(&self) -> Totals;
    /// Makes every completed write durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Applies a batch of queued writes and makes them durable before
    /// returning: one result per op, in order. A refused op (quota, no
    /// mailbox) must not keep a partial write. The default applies each
    /// with the methods above and then [`Store::flush`]es once; if that
    /// fails, no op is confirmed.
    fn apply(&self, ops: &[WriteOp]) -> Vec<Result<Written, StoreError>> {
        let results: Vec<_> = ops.iter().map(|op| apply_op(&mut &*self, op)).collect();
        match self.flush() {
            Ok(()) => results,
            Err(e) => {
                tracing::error!("sync failed; {} writes are not confirmed: {e}", ops.len());
                ops.iter().map(|_| Err(StoreError::CommitFailed)).collect()
            }
        }
    }
}

/// Seals an envelope at rest under its ID (see [`WriteOp::Deposit`]).
pub type Sealer = Box<dyn Fn(&EnvelopeId) -> Vec<u8> + Send>;

/// A write the relay's writer thread commits in a batch with others
/// ([`Store::apply`]): the hot requests, so none of them needs a thread
/// of its own to wait for the disk.
pub enum WriteOp {
    /// Stores an envelope ([`Store::put_envelope`]).
    Deposit {
        /// The mailbox.
        recipient_id: RecipientId,
        /// The hour it arrived.
        hour: Hour,
        /// The quotas, checked inside the write.
        limits: StoreLimits,
        /// Seals the envelope at rest under its ID (runs inside the write,
        /// since the ID's sequence number is only known there).
        seal: Sealer,
    },
    /// A signed recipient command: marks the mailbox used this hour
    /// ([`Store::touch`]), then does `action`.
    Recipient {
        /// The mailbox.
        recipient_id: RecipientId,
        /// The hour now.
        hour: Hour,
        /// What else to write.
        action: RecipientWrite,
    },
}

impl std::fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteOp::Deposit { .. } => f.write_str("Deposit"),
            WriteOp::Recipient { action, .. } => write!(f, "Recipient({action:?})"),
        }
    }
}

/// The write of a [`WriteOp::Recipient`] after the touch.
pub enum RecipientWrite {
    /// Nothing more (a subscription starts).
    Touch,
    /// [`Store::ack`] of each.
    Ack(Vec<EnvelopeId>),
    /// [`Store::secure`] with this sender key.
    Secure(Vec<u8>),
    /// [`Store::delete_mailbox`].
    Delete,
}

impl std::fmt::Debug for RecipientWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecipientWrite::Touch => "Touch",
            RecipientWrite::Ack(_) => "Ack",
            RecipientWrite::Secure(_) => "Secure",
            RecipientWrite::Delete => "Delete",
        })
    }
}

/// What a [`WriteOp`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The envelope was stored under this ID.
    Envelope(EnvelopeId),
    /// How many of the acked envelopes were there.
    Acked(u32),
    /// Done.
    Done,
}

/// The writes a [`WriteOp`] is made of, so that one dispatch
/// ([`apply_op`]) serves every store: a [`Store`]'s own single-write
/// methods (the default [`Store::apply`]) or redb's open transaction.
pub(crate) trait OpWrites {
    /// [`Store::put_envelope`].
    fn put_envelope(
        &mut self,
        rid: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError>;
    /// [`Store::touch`].
    fn touch(&mut self, rid: &RecipientId, hour: Hour) -> Result<(), StoreError>;
    /// [`Store::ack`].
    fn ack(&mut self, rid: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError>;
    /// [`Store::secure`].
    fn secure(&mut self, rid: &RecipientId, sender_pub: &[u8]) -> Result<(), StoreError>;
    /// [`Store::delete_mailbox`].
    fn delete_mailbox(&mut self, rid: &RecipientId) -> Result<(), StoreError>;
}

impl<S: Store + ?Sized> OpWrites for &S {
    fn put_envelope(
        &mut self,
        rid: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError> {
        (**self).put_envelope(rid, hour, limits, seal)
    }

    fn touch(&mut self, rid: &RecipientId, hour: Hour) -> Result<(), StoreError> {
        (**self).touch(rid, hour)
    }

    fn ack(&mut self, rid: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError> {
        (**self).ack(rid, id)
    }

    fn secure(&mut self, rid: &RecipientId, sender_pub: &[u8]) -> Result<(), StoreError> {
        (**self).secure(rid, sender_pub)
    }

    fn delete_mailbox(&mut self, rid: &RecipientId) -> Result<(), StoreError> {
        (**self).delete_mailbox(rid)
    }
}

/// One op, through `w`'s writes.
pub(crate) fn apply_op(w: &mut impl OpWrites, op: &WriteOp) -> Result<Written, StoreError> {
    match op {
        WriteOp::Deposit {
            recipient_id,
            hour,
            limits,
            seal,
        } => w
            .put_envelope(recipient_id, *hour, limits, seal.as_ref())
            .map(Written::Envelope),
        WriteOp::Recipient {
            recipient_id,
            hour,
            action,
        } => {
            w.touch(recipient_id, *hour)?;
            match action {
                RecipientWrite::Touch => Ok(Written::Done),
                RecipientWrite::Ack(ids) => {
                    let mut n = 0;
                    for id in ids {
                        n += u32::from(w.ack(recipient_id, id)?);
                    }
                    Ok(Written::Acked(n))
                }
                RecipientWrite::Secure(key) => w.secure(recipient_id, key).map(|()| Written::Done),
                RecipientWrite::Delete => w.delete_mailbox(recipient_id).map(|()| Written::Done),
            }
        }
    }
}

/// The sequence number inside an envelope ID.
pub fn seq_of(id: &EnvelopeId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[..8]);
    u64::from_be_bytes(b)
}

/// An envelope ID for sequence number `seq` with a fresh random half.
pub(crate) fn new_envelope_id(seq: u64) -> EnvelopeId {
    let mut id = [0u8; ENVELOPE_ID_LEN];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    rand::Rng::fill_bytes(&mut rand::rng(), &mut id[8..]);
    id
}

/// The checks every store makes inside the write of a deposit, in one place
/// so both implementations refuse exactly the same deposits.
pub(crate) fn check_deposit(
    rec: &MailboxRecord,
    limits: &StoreLimits,
    totals: Totals,
) -> Result<(), StoreError> {
    if rec.secured_sender != limits.secured_as_checked {
        return Err(StoreError::SecurityChanged);
    }
    if totals.envelopes >= limits.total_quota {
        return Err(StoreError::DiskFull);
    }
    if rec.is_open() {
        if totals.open_envelopes >= limits.open_total_quota {
            return Err(StoreError::DiskFull);
        }
        if rec.count >= limits.open_mailbox_quota.min(limits.mailbox_quota) {
            return Err(StoreError::Quota);
        }
    } else if rec.count >= limits.mailbox_quota {
        return Err(StoreError::Quota);
    }
    Ok(())
}

/// Whether a link may be written over `existing`: there is none, it has
/// expired, or it has the same owner. One place, so both stores agree.
pub(crate) fn check_put_link(
    existing: Option<&LinkRecord>,
    rec: &LinkRecord,
    now: Hour,
    links: u64,
    max_links: u64,
) -> Result<(), StoreError> {
    match existing {
        Some(old) if !old.is_expired(now) && old.owner_auth_pub != rec.owner_auth_pub => {
            Err(StoreError::LinkOwner)
        }
        Some(_) => Ok(()),
        None if links >= max_links => Err(StoreError::TooManyLinks),
        None => Ok(()),
    }
}

/// Whether the sweep removes this mailbox, and why.
pub(crate) fn sweep_verdict(rec: &MailboxRecord, now: Hour, policy: &SweepPolicy) -> Option<bool> {
    if rec.fresh && rec.created_hour.saturating_add(policy.unused_hours) < now {
        Some(true)
    } else if rec.active_hour.saturating_add(policy.idle_hours) < now {
        Some(false)
    } else {
        None
    }
}

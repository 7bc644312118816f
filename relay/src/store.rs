//! Durable relay state behind a small [`Store`] trait, implemented on sled.
//!
//! What is stored (S8): per mailbox its IDs, the recipient's public keys, the
//! relay's DH secret for the mailbox, the secured sender key, and two
//! hour-resolution timestamps; per envelope its ID, the hour it arrived and
//! the envelope sealed under the mailbox's at-rest key. Never an IP address,
//! never a finer timestamp, never the deposited bytes verbatim.
//!
//! Writes are applied atomically (sled transactions); durability comes from
//! [`Store::flush`], which the server awaits before answering `Accepted`.

use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tropa_proto::{ENVELOPE_ID_LEN, MAILBOX_ID_LEN};

use crate::Hour;

/// A mailbox's recipient-side ID.
pub type RecipientId = [u8; MAILBOX_ID_LEN];
/// A mailbox's sender-side ID.
pub type SenderId = [u8; MAILBOX_ID_LEN];
/// An envelope ID: per-mailbox sequence number (8 bytes, big endian) ‖ 8 random bytes.
pub type EnvelopeId = [u8; ENVELOPE_ID_LEN];

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
}

impl std::fmt::Debug for MailboxRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxRecord")
            .field("secured", &!self.secured_sender.is_empty())
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Drop for MailboxRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.relay_dh_secret);
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

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::HEADER + self.sealed.len());
        v.extend_from_slice(&self.hour.to_be_bytes());
        v.extend_from_slice(&self.id);
        v.extend_from_slice(&self.sealed);
        v
    }

    fn decode(raw: &[u8]) -> Result<Self, StoreError> {
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
    /// The relay-wide storage quota is reached.
    #[error("relay storage is full")]
    DiskFull,
    /// The mailbox was secured (or re-secured) between the deposit's
    /// signature check and its write; the deposit must be checked again.
    #[error("mailbox security changed during the deposit")]
    SecurityChanged,
    /// A randomly chosen ID already exists (astronomically unlikely).
    #[error("ID collision")]
    Collision,
    /// Stored data does not decode.
    #[error("stored data is corrupt")]
    Corrupt,
    /// The storage engine failed.
    #[error("storage: {0}")]
    Backend(#[from] sled::Error),
}

/// Limits and preconditions the store enforces atomically with each write.
#[derive(Clone, Debug)]
pub struct StoreLimits {
    /// Envelopes one mailbox may hold.
    pub mailbox_quota: u32,
    /// Envelopes the whole relay may hold (disk quota / envelope size).
    pub total_quota: u64,
    /// The mailbox's secured sender key as it was when the deposit was
    /// authorised (empty: open); the write fails if it changed since.
    pub secured_as_checked: Vec<u8>,
}

/// What a sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Envelopes older than the TTL.
    pub expired_envelopes: u64,
    /// Mailboxes idle for longer than the idle limit (with their envelopes).
    pub expired_mailboxes: u64,
    /// Records skipped because they do not decode.
    pub corrupt: u64,
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
    /// Marks the mailbox active in `hour` (no write if already so).
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
    /// Up to `max` envelopes of a mailbox with sequence number at or above
    /// `from_seq`, in order.
    fn envelopes(
        &self,
        recipient_id: &RecipientId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<StoredEnvelope>, StoreError>;
    /// Deletes one envelope; `false` if it was not there.
    fn ack(&self, recipient_id: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError>;
    /// Removes expired envelopes and idle mailboxes.
    fn sweep(&self, now: Hour, ttl_hours: u32, idle_hours: u32) -> Result<SweepStats, StoreError>;
    /// Number of envelopes stored relay-wide.
    fn total_envelopes(&self) -> u64;
    /// Number of mailboxes (kept as a counter: cheap enough to check on
    /// every creation).
    fn total_mailboxes(&self) -> u64;
    /// Makes every completed write durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// The sequence number inside an envelope ID.
pub fn seq_of(id: &EnvelopeId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[..8]);
    u64::from_be_bytes(b)
}

fn env_key(recipient_id: &RecipientId, seq: u64) -> [u8; MAILBOX_ID_LEN + 8] {
    let mut k = [0u8; MAILBOX_ID_LEN + 8];
    k[..MAILBOX_ID_LEN].copy_from_slice(recipient_id);
    k[MAILBOX_ID_LEN..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// [`Store`] on sled.
pub struct SledStore {
    db: sled::Db,
    mailboxes: sled::Tree,
    senders: sled::Tree,
    envelopes: sled::Tree,
    total: std::sync::atomic::AtomicU64,
    mailbox_count: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn untx<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Backend(e),
    })
}

fn decode_record(raw: &[u8]) -> Result<MailboxRecord, StoreError> {
    MailboxRecord::decode(raw).map_err(|_| StoreError::Corrupt)
}

impl SledStore {
    /// Opens (or creates) the store in `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled cannot open the directory.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open()?;
        let envelopes = db.open_tree("envelopes")?;
        let total = envelopes.len() as u64;
        let mailboxes = db.open_tree("mailboxes")?;
        // sled's len() walks the tree: count once at start, then keep count.
        let mailbox_count = (mailboxes.len() as u64).into();
        Ok(Self {
            mailboxes,
            mailbox_count,
            senders: db.open_tree("senders")?,
            envelopes,
            total: total.into(),
            db,
        })
    }

    fn remove_envelopes(&self, recipient_id: &RecipientId) -> Result<u64, StoreError> {
        let mut n = 0;
        for kv in self.envelopes.scan_prefix(recipient_id) {
            let (k, _) = kv?;
            if self.envelopes.remove(k)?.is_some() {
                n += 1;
            }
        }
        self.total
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    fn update_mailbox(
        &self,
        recipient_id: &RecipientId,
        f: impl Fn(&mut MailboxRecord) -> bool,
    ) -> Result<(), StoreError> {
        untx(self.mailboxes.transaction(|m| {
            let Some(raw) = m.get(recipient_id)? else {
                return abort(StoreError::NoMailbox);
            };
            let mut rec = decode_record(&raw).or_else(abort)?;
            if f(&mut rec) {
                m.insert(recipient_id.as_slice(), rec.encode_to_vec())?;
            }
            Ok(())
        }))
    }
}

impl Store for SledStore {
    fn create_mailbox(
        &self,
        recipient_id: &RecipientId,
        rec: &MailboxRecord,
    ) -> Result<(), StoreError> {
        untx((&self.mailboxes, &self.senders).transaction(|(m, s)| {
            if m.get(recipient_id)?.is_some() || s.get(&rec.sender_id)?.is_some() {
                return abort(StoreError::Collision);
            }
            m.insert(recipient_id.as_slice(), rec.encode_to_vec())?;
            s.insert(rec.sender_id.as_slice(), recipient_id.as_slice())?;
            Ok(())
        }))?;
        self.mailbox_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn mailbox(&self, recipient_id: &RecipientId) -> Result<Option<MailboxRecord>, StoreError> {
        self.mailboxes
            .get(recipient_id)?
            .map(|raw| decode_record(&raw))
            .transpose()
    }

    fn mailbox_by_sender(
        &self,
        sender_id: &SenderId,
    ) -> Result<Option<(RecipientId, MailboxRecord)>, StoreError> {
        let Some(rid) = self.senders.get(sender_id)? else {
            return Ok(None);
        };
        let rid: RecipientId = rid.as_ref().try_into().map_err(|_| StoreError::Corrupt)?;
        Ok(self.mailbox(&rid)?.map(|rec| (rid, rec)))
    }

    fn secure(&self, recipient_id: &RecipientId, sender_pub: &[u8]) -> Result<(), StoreError> {
        self.update_mailbox(recipient_id, |rec| {
            rec.secured_sender = sender_pub.to_vec();
            true
        })
    }

    fn touch(&self, recipient_id: &RecipientId, hour: Hour) -> Result<(), StoreError> {
        self.update_mailbox(recipient_id, |rec| {
            let changed = rec.active_hour != hour;
            rec.active_hour = hour;
            changed
        })
    }

    fn delete_mailbox(&self, recipient_id: &RecipientId) -> Result<(), StoreError> {
        let Some(rec) = self.mailbox(recipient_id)? else {
            return Err(StoreError::NoMailbox);
        };
        // The record goes first: with it goes the at-rest key, so whatever a
        // crash leaves behind below is already unreadable.
        if self.mailboxes.remove(recipient_id)?.is_some() {
            self.mailbox_count
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.senders.remove(&rec.sender_id)?;
        self.remove_envelopes(recipient_id)?;
        Ok(())
    }

    fn put_envelope(
        &self,
        recipient_id: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError> {
        use std::sync::atomic::Ordering;
        if self.total.load(Ordering::Relaxed) >= limits.total_quota {
            return Err(StoreError::DiskFull);
        }
        let mut tail = [0u8; 8];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut tail);
        let id = untx((&self.mailboxes, &self.envelopes).transaction(|(m, e)| {
            let Some(raw) = m.get(recipient_id)? else {
                return abort(StoreError::NoMailbox);
            };
            let mut rec = decode_record(&raw).or_else(abort)?;
            if rec.secured_sender != limits.secured_as_checked {
                return abort(StoreError::SecurityChanged);
            }
            if rec.count >= limits.mailbox_quota {
                return abort(StoreError::Quota);
            }
            let seq = rec.next_seq;
            let mut id = [0u8; ENVELOPE_ID_LEN];
            id[..8].copy_from_slice(&seq.to_be_bytes());
            id[8..].copy_from_slice(&tail);
            let stored = StoredEnvelope {
                id,
                hour,
                sealed: seal(&id),
            };
            rec.next_seq += 1;
            rec.count += 1;
            rec.active_hour = hour;
            e.insert(&env_key(recipient_id, seq)[..], stored.encode())?;
            m.insert(recipient_id.as_slice(), rec.encode_to_vec())?;
            Ok(id)
        }))?;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    fn envelopes(
        &self,
        recipient_id: &RecipientId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<StoredEnvelope>, StoreError> {
        let start = env_key(recipient_id, from_seq);
        let end = env_key(recipient_id, u64::MAX);
        self.envelopes
            .range(start..=end)
            .take(max)
            .map(|kv| {
                let (_, v) = kv?;
                StoredEnvelope::decode(&v)
            })
            .collect()
    }

    fn ack(&self, recipient_id: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError> {
        let key = env_key(recipient_id, seq_of(id));
        let removed = untx((&self.mailboxes, &self.envelopes).transaction(|(m, e)| {
            let Some(raw) = e.get(&key[..])? else {
                return Ok(false);
            };
            let stored = StoredEnvelope::decode(&raw).or_else(abort)?;
            // The random half must match too: IDs are not guessable.
            if &stored.id != id {
                return Ok(false);
            }
            e.remove(&key[..])?;
            if let Some(raw) = m.get(recipient_id)? {
                let mut rec = decode_record(&raw).or_else(abort)?;
                rec.count = rec.count.saturating_sub(1);
                m.insert(recipient_id.as_slice(), rec.encode_to_vec())?;
            }
            Ok(true)
        }))?;
        if removed {
            self.total
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(removed)
    }

    fn sweep(&self, now: Hour, ttl_hours: u32, idle_hours: u32) -> Result<SweepStats, StoreError> {
        let mut stats = SweepStats::default();
        let mut idle = Vec::new();
        for kv in self.mailboxes.iter() {
            let (rid, raw) = kv?;
            // One corrupt record must not stop expiry for everyone else.
            let Ok(rec) = decode_record(&raw) else {
                stats.corrupt += 1;
                continue;
            };
            if rec.active_hour.saturating_add(idle_hours) < now {
                let rid: RecipientId = rid.as_ref().try_into().map_err(|_| StoreError::Corrupt)?;
                idle.push(rid);
            }
        }
        for rid in idle {
            let n = self.envelopes.scan_prefix(rid).count() as u64;
            self.delete_mailbox(&rid)?;
            stats.expired_mailboxes += 1;
            stats.expired_envelopes += n;
        }
        let mut expired = Vec::new();
        for kv in self.envelopes.iter() {
            let (k, v) = kv?;
            let Ok(stored) = StoredEnvelope::decode(&v) else {
                stats.corrupt += 1;
                continue;
            };
            if stored.hour.saturating_add(ttl_hours) < now
                && let Some(rid) = k.get(..MAILBOX_ID_LEN).and_then(|r| r.try_into().ok())
            {
                expired.push((rid, stored.id));
            }
        }
        for (rid, id) in expired {
            if self.ack(&rid, &id)? {
                stats.expired_envelopes += 1;
            }
        }
        Ok(stats)
    }

    fn total_envelopes(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn total_mailboxes(&self) -> u64 {
        self.mailbox_count
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StoreLimits = StoreLimits {
        mailbox_quota: 3,
        total_quota: 5,
        secured_as_checked: Vec::new(),
    };

    fn record(sender: u8, hour: Hour) -> MailboxRecord {
        MailboxRecord {
            recipient_auth_pub: vec![1; 32],
            recipient_dh_pub: vec![2; 32],
            relay_dh_secret: vec![3; 32],
            sender_id: vec![sender; 24],
            secured_sender: Vec::new(),
            active_hour: hour,
            next_seq: 0,
            count: 0,
        }
    }

    fn put(s: &SledStore, rid: &RecipientId, hour: Hour) -> Result<EnvelopeId, StoreError> {
        s.put_envelope(rid, hour, &LIMITS, &|id| id.to_vec())
    }

    #[test]
    fn create_lookup_secure_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let rid = [9u8; 24];
        s.create_mailbox(&rid, &record(4, 10)).unwrap();
        assert!(matches!(
            s.create_mailbox(&rid, &record(5, 10)),
            Err(StoreError::Collision)
        ));
        assert!(matches!(
            s.create_mailbox(&[8; 24], &record(4, 10)),
            Err(StoreError::Collision)
        ));
        assert_eq!(s.total_mailboxes(), 1, "collisions are not counted");
        let (found, rec) = s.mailbox_by_sender(&[4; 24]).unwrap().unwrap();
        assert_eq!(found, rid);
        assert!(rec.secured_sender.is_empty());
        put(&s, &rid, 10).unwrap();
        s.secure(&rid, &[7; 32]).unwrap();
        assert_eq!(
            s.mailbox(&rid).unwrap().unwrap().secured_sender,
            vec![7; 32]
        );
        // A deposit authorised while the mailbox was open fails once secured.
        assert!(matches!(
            put(&s, &rid, 10),
            Err(StoreError::SecurityChanged)
        ));
        s.delete_mailbox(&rid).unwrap();
        assert!(s.mailbox(&rid).unwrap().is_none());
        assert!(s.mailbox_by_sender(&[4; 24]).unwrap().is_none());
        assert_eq!(s.total_envelopes(), 0);
        assert_eq!(s.total_mailboxes(), 0);
        assert!(matches!(s.delete_mailbox(&rid), Err(StoreError::NoMailbox)));
    }

    #[test]
    fn quotas_order_and_ack() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let (a, b) = ([1u8; 24], [2u8; 24]);
        s.create_mailbox(&a, &record(11, 0)).unwrap();
        s.create_mailbox(&b, &record(12, 0)).unwrap();
        assert!(matches!(put(&s, &[3; 24], 0), Err(StoreError::NoMailbox)));
        let ids: Vec<_> = (0..3).map(|_| put(&s, &a, 0).unwrap()).collect();
        assert!(matches!(put(&s, &a, 0), Err(StoreError::Quota)));
        put(&s, &b, 0).unwrap();
        put(&s, &b, 0).unwrap();
        assert!(matches!(put(&s, &b, 0), Err(StoreError::DiskFull)));
        let listed: Vec<_> = s
            .envelopes(&a, 0, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(listed, ids, "FIFO order");
        assert_eq!(s.envelopes(&a, seq_of(&ids[1]), 100).unwrap().len(), 2);
        // A guessed ID with the right sequence number but wrong random half fails.
        let mut forged = ids[0];
        forged[15] ^= 1;
        assert!(!s.ack(&a, &forged).unwrap());
        assert!(s.ack(&a, &ids[0]).unwrap());
        assert!(!s.ack(&a, &ids[0]).unwrap());
        assert_eq!(s.total_envelopes(), 4);
        put(&s, &a, 0).unwrap();
    }

    #[test]
    fn sweep_expires_by_ttl_and_idleness() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let (a, b) = ([1u8; 24], [2u8; 24]);
        s.create_mailbox(&a, &record(11, 100)).unwrap();
        s.create_mailbox(&b, &record(12, 100)).unwrap();
        put(&s, &a, 100).unwrap();
        put(&s, &a, 105).unwrap();
        // Nothing is older than 10 hours at hour 110.
        assert_eq!(s.sweep(110, 10, 1000).unwrap(), SweepStats::default());
        // At 111 the envelope from hour 100 is past its TTL.
        let st = s.sweep(111, 10, 1000).unwrap();
        assert_eq!(st.expired_envelopes, 1);
        assert_eq!(s.envelopes(&a, 0, 100).unwrap().len(), 1);
        // Mailbox b has been idle since hour 100, a active since 105.
        let st = s.sweep(106, 1000, 5).unwrap();
        assert_eq!(st.expired_mailboxes, 1);
        assert!(s.mailbox(&b).unwrap().is_none());
        assert!(s.mailbox(&a).unwrap().is_some());
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let rid = [5u8; 24];
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.create_mailbox(&rid, &record(6, 0)).unwrap();
            put(&s, &rid, 0).unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.total_envelopes(), 1);
        assert_eq!(s.total_mailboxes(), 1);
        assert_eq!(s.envelopes(&rid, 0, 100).unwrap().len(), 1);
    }
}

//! [`Store`] on sled: four trees (mailboxes by recipient ID, sender ID →
//! recipient ID, envelopes by recipient ID ‖ sequence number, links by link
//! ID), multi-tree transactions for every write that must be atomic, and
//! in-memory counters for the relay-wide totals (rebuilt from the trees at
//! open).

use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tropa_proto::MAILBOX_ID_LEN;

use super::{
    EnvelopeId, LinkId, LinkRecord, MailboxRecord, RecipientId, SenderId, Store, StoreError,
    StoreLimits, StoredEnvelope, SweepPolicy, SweepStats, Totals, check_deposit, check_put_link,
    new_envelope_id, seq_of, sweep_verdict,
};
use crate::Hour;

fn env_key(recipient_id: &RecipientId, seq: u64) -> [u8; MAILBOX_ID_LEN + 8] {
    let mut k = [0u8; MAILBOX_ID_LEN + 8];
    k[..MAILBOX_ID_LEN].copy_from_slice(recipient_id);
    k[MAILBOX_ID_LEN..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// [`Store`] on sled.
pub struct SledStore {
    db: sled::Db,
    /// sled's log file, for the `fdatasync` that sled itself leaves out.
    log: std::fs::File,
    mailboxes: sled::Tree,
    senders: sled::Tree,
    envelopes: sled::Tree,
    links: sled::Tree,
    total: AtomicU64,
    link_count: AtomicU64,
    open_total: AtomicU64,
    mailbox_count: AtomicU64,
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

/// Subtracts without wrapping: a counter that went wrong must not turn
/// into a huge number that refuses every deposit.
fn decrease(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

fn decode_record(raw: &[u8]) -> Result<MailboxRecord, StoreError> {
    MailboxRecord::decode(raw).map_err(|_| StoreError::Corrupt)
}

fn decode_link(raw: &[u8]) -> Result<LinkRecord, StoreError> {
    LinkRecord::decode(raw).map_err(|_| StoreError::Corrupt)
}

/// The store format this build writes and reads. Bump it with any change
/// to the trees or records an older build could misread; an upgrade then
/// converts older stores in `check_format`.
///
/// Format 2 (issue 11) added the `links` tree and intake mailboxes. A
/// format-1 relay would never expire the links (their data must go when
/// they expire) and would treat an intake mailbox as an ordinary open one
/// (securable, no rate limit), so it must not run on a format-2 store.
/// A format-1 store needs no conversion: it has no links, and its records
/// decode as non-intake mailboxes.
pub const FORMAT_VERSION: u32 = 2;
const FORMAT_KEY: &[u8] = b"format";

/// Refuses a store written in a newer format (an upgrade rolled back,
/// or a data directory copied from a newer relay) before anything reads or
/// writes it; stamps a store that has no format yet (new, or from before
/// the stamp, which is format 1).
fn check_format(db: &sled::Db) -> Result<(), StoreError> {
    let meta = db.open_tree("meta")?;
    match meta.get(FORMAT_KEY)? {
        Some(raw) => {
            let found = <[u8; 4]>::try_from(raw.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt)?;
            if found > FORMAT_VERSION {
                return Err(StoreError::NewerFormat {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            if found < FORMAT_VERSION {
                // Older formats read as they are (see FORMAT_VERSION); the
                // new stamp keeps an older relay off the upgraded store.
                meta.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                meta.flush()?;
            }
        }
        None => {
            meta.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
            meta.flush()?;
        }
    }
    Ok(())
}

/// Stamps `path`'s store with format `version` (tests of the refusal).
///
/// # Errors
/// The store cannot be opened.
#[doc(hidden)]
pub fn stamp_format_for_tests(path: &std::path::Path, version: u32) -> Result<(), StoreError> {
    let db = sled::Config::new().path(path).open()?;
    db.open_tree("meta")?
        .insert(FORMAT_KEY, &version.to_be_bytes())?;
    db.flush()?;
    Ok(())
}

/// How long [`open_db`] waits for sled's own file lock.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the database. sled 0.34 holds its file lock until its flusher
/// thread lets go, a moment after the `Db` is dropped, so a store closed
/// and opened again in one process (the store tests did, and failed CI
/// once with "could not acquire lock") may find it locked for a few
/// milliseconds. Waiting is safe; another process holding the lock still
/// fails after [`LOCK_PATIENCE`].
fn open_db(path: &std::path::Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        let res = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open();
        match res {
            // sled 0.34 reports its lock as ErrorKind::Other with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled cannot open the directory.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let db = open_db(path)?;
        check_format(&db)?;
        // sled 0.34 keeps its whole log in this one file.
        let log = std::fs::File::open(path.join("db")).map_err(StoreError::Io)?;
        let envelopes = db.open_tree("envelopes")?;
        let mailboxes = db.open_tree("mailboxes")?;
        let links = db.open_tree("links")?;
        // Walk the trees once at start, then keep counting.
        let total = envelopes.len() as u64;
        let (mut count, mut open) = (0u64, 0u64);
        for kv in mailboxes.iter() {
            let (_, raw) = kv?;
            count += 1;
            if let Ok(rec) = decode_record(&raw)
                && rec.is_open()
            {
                open += u64::from(rec.count);
            }
        }
        Ok(Self {
            mailboxes,
            mailbox_count: count.into(),
            open_total: open.into(),
            senders: db.open_tree("senders")?,
            envelopes,
            link_count: (links.len() as u64).into(),
            links,
            total: total.into(),
            db,
            log,
        })
    }

    /// Every record of the four trees, tree by tree (by name), for moving
    /// the store into redb ([`super::migrate`]).
    pub(crate) fn for_each_record(
        &self,
        mut f: impl FnMut(&'static str, &[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for (name, tree) in [
            ("mailboxes", &self.mailboxes),
            ("senders", &self.senders),
            ("envelopes", &self.envelopes),
            ("links", &self.links),
        ] {
            for kv in tree.iter() {
                let (k, v) = kv?;
                f(name, &k, &v)?;
            }
        }
        Ok(())
    }

    fn remove_envelopes(&self, recipient_id: &RecipientId) -> Result<u64, StoreError> {
        let mut n = 0;
        for kv in self.envelopes.scan_prefix(recipient_id) {
            let (k, _) = kv?;
            if self.envelopes.remove(k)?.is_some() {
                n += 1;
            }
        }
        decrease(&self.total, n);
        Ok(n)
    }

    /// Deletes a mailbox if `doomed` still says so of its current record
    /// (checked in the same transaction that removes it). Returns whether
    /// it was deleted.
    ///
    /// The record and its sender entry go in one transaction, and the
    /// counters follow the record as it was then: an ack or a `Secure`
    /// racing the deletion either happened before it (and is in the record)
    /// or finds no mailbox (and counts nothing). The record goes first: with
    /// it goes the at-rest key, so whatever a crash leaves behind below is
    /// already unreadable.
    fn delete_mailbox_if(
        &self,
        recipient_id: &RecipientId,
        doomed: impl Fn(&MailboxRecord) -> bool,
    ) -> Result<bool, StoreError> {
        let removed = untx((&self.mailboxes, &self.senders).transaction(|(m, s)| {
            let Some(raw) = m.get(recipient_id)? else {
                return Ok(None);
            };
            let rec = decode_record(&raw).or_else(abort)?;
            if !doomed(&rec) {
                return Ok(None);
            }
            m.remove(recipient_id.as_slice())?;
            s.remove(rec.sender_id.as_slice())?;
            Ok(Some(rec))
        }))?;
        let Some(rec) = removed else {
            return Ok(false);
        };
        decrease(&self.mailbox_count, 1);
        if rec.is_open() {
            decrease(&self.open_total, u64::from(rec.count));
        }
        self.remove_envelopes(recipient_id)?;
        Ok(true)
    }

    /// Deletes the link under `id` if `doomed` still says so of its current
    /// record (checked in the same transaction). Returns whether it did.
    fn remove_link_if(
        &self,
        id: &LinkId,
        doomed: impl Fn(&LinkRecord) -> bool,
    ) -> Result<bool, StoreError> {
        let removed = untx(self.links.transaction(|l| {
            let Some(raw) = l.get(id)? else {
                return Ok(false);
            };
            if !doomed(&decode_link(&raw).or_else(abort)?) {
                return Ok(false);
            }
            l.remove(id.as_slice())?;
            Ok(true)
        }))?;
        if removed {
            decrease(&self.link_count, 1);
        }
        Ok(removed)
    }

    /// Applies `f` to the record in one transaction; `f` returns whether to
    /// write it back. Returns the record as it was before.
    fn update_mailbox(
        &self,
        recipient_id: &RecipientId,
        f: impl Fn(&mut MailboxRecord) -> bool,
    ) -> Result<MailboxRecord, StoreError> {
        untx(self.mailboxes.transaction(|m| {
            let Some(raw) = m.get(recipient_id)? else {
                return abort(StoreError::NoMailbox);
            };
            let before = decode_record(&raw).or_else(abort)?;
            let mut rec = before.clone();
            if f(&mut rec) {
                m.insert(recipient_id.as_slice(), rec.encode_to_vec())?;
            }
            Ok(before)
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
        self.mailbox_count.fetch_add(1, Ordering::Relaxed);
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
        let before = self.update_mailbox(recipient_id, |rec| {
            rec.secured_sender = sender_pub.to_vec();
            rec.fresh = false;
            true
        })?;
        if before.is_open() {
            decrease(&self.open_total, u64::from(before.count));
        }
        Ok(())
    }

    fn touch(&self, recipient_id: &RecipientId, hour: Hour) -> Result<(), StoreError> {
        self.update_mailbox(recipient_id, |rec| {
            let changed = rec.active_hour != hour || rec.fresh;
            rec.active_hour = hour;
            rec.fresh = false;
            changed
        })
        .map(|_| ())
    }

    fn delete_mailbox(&self, recipient_id: &RecipientId) -> Result<(), StoreError> {
        self.delete_mailbox_if(recipient_id, |_| true)
            .and_then(|deleted| {
                if deleted {
                    Ok(())
                } else {
                    Err(StoreError::NoMailbox)
                }
            })
    }

    fn put_envelope(
        &self,
        recipient_id: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError> {
        let totals = self.totals();
        let (id, open) = untx((&self.mailboxes, &self.envelopes).transaction(|(m, e)| {
            let Some(raw) = m.get(recipient_id)? else {
                return abort(StoreError::NoMailbox);
            };
            let mut rec = decode_record(&raw).or_else(abort)?;
            check_deposit(&rec, limits, totals).or_else(abort)?;
            let seq = rec.next_seq;
            let id = new_envelope_id(seq);
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
            Ok((id, rec.is_open()))
        }))?;
        self.total.fetch_add(1, Ordering::Relaxed);
        if open {
            self.open_total.fetch_add(1, Ordering::Relaxed);
        }
        Ok(id)
    }

    fn next_envelope(
        &self,
        recipient_id: &RecipientId,
        from_seq: u64,
    ) -> Result<(Option<StoredEnvelope>, u64), StoreError> {
        let start = env_key(recipient_id, from_seq);
        let end = env_key(recipient_id, u64::MAX);
        let mut corrupt = 0;
        for kv in self.envelopes.range(start..=end) {
            let (_, v) = kv?;
            match StoredEnvelope::decode(&v) {
                Ok(env) => return Ok((Some(env), corrupt)),
                Err(_) => corrupt += 1,
            }
        }
        Ok((None, corrupt))
    }

    fn ack(&self, recipient_id: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError> {
        let key = env_key(recipient_id, seq_of(id));
        let removed = untx((&self.mailboxes, &self.envelopes).transaction(|(m, e)| {
            let Some(raw) = e.get(&key[..])? else {
                return Ok(None);
            };
            let stored = StoredEnvelope::decode(&raw).or_else(abort)?;
            // The random half must match too: IDs are not guessable.
            if &stored.id != id {
                return Ok(None);
            }
            e.remove(&key[..])?;
            let mut open = false;
            if let Some(raw) = m.get(recipient_id)? {
                let mut rec = decode_record(&raw).or_else(abort)?;
                rec.count = rec.count.saturating_sub(1);
                open = rec.is_open();
                m.insert(recipient_id.as_slice(), rec.encode_to_vec())?;
            }
            Ok(Some(open))
        }))?;
        let Some(open) = removed else {
            return Ok(false);
        };
        decrease(&self.total, 1);
        if open {
            decrease(&self.open_total, 1);
        }
        Ok(true)
    }

    fn put_link(
        &self,
        id: &LinkId,
        rec: &LinkRecord,
        now: Hour,
        max_links: u64,
    ) -> Result<(), StoreError> {
        let links = self.link_count.load(Ordering::Relaxed);
        let value = rec.encode_to_vec();
        let added = untx(self.links.transaction(|l| {
            // A record that no longer decodes counts as expired: it is
            // overwritten, and not counted again.
            let existing = l.get(id)?.map(|raw| decode_link(&raw).unwrap_or_default());
            check_put_link(existing.as_ref(), rec, now, links, max_links).or_else(abort)?;
            l.insert(id.as_slice(), value.as_slice())?;
            Ok(existing.is_none())
        }))?;
        if added {
            self.link_count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn link(&self, id: &LinkId) -> Result<Option<LinkRecord>, StoreError> {
        self.links.get(id)?.map(|raw| decode_link(&raw)).transpose()
    }

    fn delete_link(&self, id: &LinkId, owner: &[u8]) -> Result<bool, StoreError> {
        self.remove_link_if(id, |l| l.owner_auth_pub == owner)
    }

    fn sweep(&self, now: Hour, policy: &SweepPolicy) -> Result<SweepStats, StoreError> {
        let mut stats = SweepStats::default();
        let mut expired_links = Vec::new();
        for kv in self.links.iter() {
            let (id, raw) = kv?;
            let Ok(link) = decode_link(&raw) else {
                stats.corrupt += 1;
                continue;
            };
            if link.is_expired(now)
                && let Ok(id) = LinkId::try_from(id.as_ref())
            {
                expired_links.push(id);
            }
        }
        for id in expired_links {
            // Re-checked in the deleting transaction: a link refreshed since
            // the scan stays.
            if self.remove_link_if(&id, |l| l.is_expired(now))? {
                stats.expired_links += 1;
            }
        }
        let mut doomed = Vec::new();
        for kv in self.mailboxes.iter() {
            let (rid, raw) = kv?;
            // One corrupt record must not stop expiry for everyone else.
            let Ok(rec) = decode_record(&raw) else {
                stats.corrupt += 1;
                continue;
            };
            if let Some(unused) = sweep_verdict(&rec, now, policy) {
                let rid: RecipientId = rid.as_ref().try_into().map_err(|_| StoreError::Corrupt)?;
                doomed.push((rid, unused));
            }
        }
        for (rid, unused) in doomed {
            let before = self.total.load(Ordering::Relaxed);
            // Re-checked in the deleting transaction: a mailbox used since
            // the scan stays, and one deleted meanwhile is no error.
            if !self.delete_mailbox_if(&rid, |rec| sweep_verdict(rec, now, policy).is_some())? {
                continue;
            }
            if unused {
                stats.unused_mailboxes += 1;
            } else {
                stats.expired_mailboxes += 1;
            }
            stats.expired_envelopes += before.saturating_sub(self.total.load(Ordering::Relaxed));
        }
        let mut expired = Vec::new();
        for kv in self.envelopes.iter() {
            let (k, v) = kv?;
            let Ok(stored) = StoredEnvelope::decode(&v) else {
                stats.corrupt += 1;
                continue;
            };
            if stored.hour.saturating_add(policy.ttl_hours) < now
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

    fn totals(&self) -> Totals {
        Totals {
            mailboxes: self.mailbox_count.load(Ordering::Relaxed),
            envelopes: self.total.load(Ordering::Relaxed),
            open_envelopes: self.open_total.load(Ordering::Relaxed),
            links: self.link_count.load(Ordering::Relaxed),
        }
    }

    /// sled 0.34 writes its log with `pwrite` and `sync_file_range`, which
    /// neither flushes the disk's write cache nor makes the file's new size
    /// durable, so an acknowledged write could be lost to a power cut (its
    /// own background thread calls `fsync` only about every 600 ms). One
    /// `fdatasync` of the log after sled's flush covers both; the relay
    /// calls this once per group commit, not once per request.
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log.sync_data().map_err(StoreError::Io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Issue 15: a store in a newer format (a rolled-back upgrade) is
    /// refused before anything reads or writes it; a store of this format,
    /// or from before the stamp, opens.
    #[test]
    fn a_store_in_a_newer_format_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        drop(SledStore::open(&path).unwrap());
        stamp_format_for_tests(&path, FORMAT_VERSION + 1).unwrap();
        match SledStore::open(&path) {
            Err(StoreError::NewerFormat { found, supported }) => {
                assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
            }
            other => panic!("{:?}", other.err()),
        }
        // Refused means untouched: the stamp is still the newer one.
        assert!(matches!(
            SledStore::open(&path),
            Err(StoreError::NewerFormat { .. })
        ));
        stamp_format_for_tests(&path, FORMAT_VERSION).unwrap();
        assert!(SledStore::open(&path).is_ok());
    }

    /// Issue 11: a format-1 store (no links, no intake mailboxes) opens
    /// as it is and is stamped with the current format, so the older relay
    /// that cannot expire links refuses it from then on.
    #[test]
    fn an_older_store_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        drop(SledStore::open(&path).unwrap());
        stamp_format_for_tests(&path, 1).unwrap();
        drop(SledStore::open(&path).unwrap());
        let db = sled::Config::new().path(&path).open().unwrap();
        let stamp = db.open_tree("meta").unwrap().get(FORMAT_KEY).unwrap();
        assert_eq!(stamp.as_deref(), Some(&FORMAT_VERSION.to_be_bytes()[..]));
    }
}

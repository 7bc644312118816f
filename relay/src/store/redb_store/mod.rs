//! [`Store`] on redb, the relay's default: the same four tables as the sled
//! store (mailboxes by recipient ID, sender ID → recipient ID, envelopes by
//! recipient ID ‖ sequence number, links by link ID) plus `meta`, one
//! redb write transaction per group commit, and in-memory counters for the
//! relay-wide totals (rebuilt from the tables at open).
//!
//! Durability: every write transaction commits with
//! [`redb::Durability::Immediate`], which writes the new pages and the
//! header (with checksums) and then `fdatasync`s the file; a commit that
//! returned is on disk, and a power cut during one leaves the previous
//! commit, which recovery finds by the checksums. [`Store::apply`] puts a
//! whole batch of deposits and acks in one transaction, so one sync covers
//! many requests; [`Store::flush`] has nothing left to do.
//!
//! Writers are serialised (one write transaction at a time, and the
//! counters updated before the next begins), which is what keeps the
//! counters right: each transaction starts from them and stores them back
//! only once it committed. Readers never wait for a writer.

use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use redb::{ReadableDatabase as _, ReadableTable, ReadableTableMetadata as _};
use redb::{TableDefinition, WriteTransaction};
use tropa_proto::MAILBOX_ID_LEN;

use super::{
    EnvelopeId, LinkId, LinkRecord, MailboxRecord, OpWrites, RecipientId, SenderId, Store,
    StoreError, StoreLimits, StoredEnvelope, SweepPolicy, SweepStats, Totals, WriteOp, Written,
    apply_op, sweep_verdict,
};
use crate::Hour;

mod tx;
use tx::Tx;

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
const MAILBOXES: Def = TableDefinition::new("mailboxes");
const SENDERS: Def = TableDefinition::new("senders");
const ENVELOPES: Def = TableDefinition::new("envelopes");
const LINKS: Def = TableDefinition::new("links");
const META: Def = TableDefinition::new("meta");

/// The store format (see [`super::FORMAT_VERSION`]); redb stores start at
/// the sled store's current format, so the two are told apart by file, not
/// by number.
const FORMAT_KEY: &[u8] = b"format";

/// redb's page cache. Envelopes are read once (delivery) and deleted soon
/// after (ack), so a large cache would mostly hold the dead.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Items one sweep transaction deletes at most.
const SWEEP_CHUNK: usize = 1000;

fn db(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb(Box::new(e.into()))
}

fn env_key(recipient_id: &RecipientId, seq: u64) -> [u8; MAILBOX_ID_LEN + 8] {
    let mut k = [0u8; MAILBOX_ID_LEN + 8];
    k[..MAILBOX_ID_LEN].copy_from_slice(recipient_id);
    k[MAILBOX_ID_LEN..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn decode_record(raw: &[u8]) -> Result<MailboxRecord, StoreError> {
    MailboxRecord::decode(raw).map_err(|_| StoreError::Corrupt)
}

fn decode_link(raw: &[u8]) -> Result<LinkRecord, StoreError> {
    LinkRecord::decode(raw).map_err(|_| StoreError::Corrupt)
}

/// The value under `key` in `table` (a transaction's or a reader's),
/// decoded with `decode`.
fn get_decoded<T>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    table
        .get(key)
        .map_err(db)?
        .map(|raw| decode(raw.value()))
        .transpose()
}

/// [`Store`] on redb.
pub struct RedbStore {
    db: redb::Database,
    /// Held from `begin_write` until the counters took the commit's
    /// totals: redb lets the next writer begin as soon as a commit
    /// returns, which is before the counters are updated.
    writer: std::sync::Mutex<()>,
    mailboxes: AtomicU64,
    envelopes: AtomicU64,
    open_envelopes: AtomicU64,
    links: AtomicU64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

/// Stamps the redb store file `path` with format `version` (tests of the
/// refusal of a newer format).
///
/// # Errors
/// The store cannot be opened.
#[doc(hidden)]
pub fn stamp_redb_format_for_tests(path: &std::path::Path, version: u32) -> Result<(), StoreError> {
    let database = redb::Database::create(path).map_err(db)?;
    let write = database.begin_write().map_err(db)?;
    write
        .open_table(META)
        .map_err(db)?
        .insert(FORMAT_KEY, version.to_be_bytes().as_slice())
        .map_err(db)?;
    write.commit().map_err(db)
}

impl RedbStore {
    /// Opens (or creates) the store file `path`.
    ///
    /// # Errors
    /// [`StoreError::Redb`] if redb cannot open or create it (another
    /// relay holds it, or it is damaged), [`StoreError::NewerFormat`] if a
    /// newer relay wrote it.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(db)?;
        let store = Self {
            db,
            writer: std::sync::Mutex::new(()),
            mailboxes: AtomicU64::new(0),
            envelopes: AtomicU64::new(0),
            open_envelopes: AtomicU64::new(0),
            links: AtomicU64::new(0),
        };
        store.check_format()?;
        store.recount()?;
        Ok(store)
    }

    /// Copies raw records into this (new, empty) store: `fill` calls the
    /// sink with each table's name, key and value. Committed every few MiB
    /// without a sync and once durably at the end, so a large store is
    /// never held in memory whole. The caller renames the file into place
    /// only after this returned.
    pub(crate) fn import(
        &self,
        fill: impl FnOnce(
            &mut dyn FnMut(&'static str, &[u8], &[u8]) -> Result<(), StoreError>,
        ) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        const CHUNK_BYTES: usize = 8 * 1024 * 1024;
        let mut write = Some(self.db.begin_write().map_err(db)?);
        let mut pending = 0usize;
        let mut sink = |name: &'static str, k: &[u8], v: &[u8]| -> Result<(), StoreError> {
            let def = match name {
                "mailboxes" => MAILBOXES,
                "senders" => SENDERS,
                "envelopes" => ENVELOPES,
                "links" => LINKS,
                _ => return Err(StoreError::Corrupt),
            };
            let w = match write.as_mut() {
                Some(w) => w,
                None => write.insert(self.db.begin_write().map_err(db)?),
            };
            w.open_table(def).map_err(db)?.insert(k, v).map_err(db)?;
            pending += k.len() + v.len();
            if pending >= CHUNK_BYTES
                && let Some(mut w) = write.take()
            {
                w.set_durability(redb::Durability::None).map_err(db)?;
                w.commit().map_err(db)?;
                pending = 0;
            }
            Ok(())
        };
        fill(&mut sink)?;
        if let Some(w) = write.take() {
            w.commit().map_err(db)?;
        } else {
            // The last chunk was committed without a sync: sync it now.
            self.db.begin_write().map_err(db)?.commit().map_err(db)?;
        }
        self.recount()
    }

    /// Refuses a newer format; stamps a new store (and creates its tables,
    /// so readers never meet a missing one).
    fn check_format(&self) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(db)?;
        {
            let mut meta = write.open_table(META).map_err(db)?;
            let found = meta
                .get(FORMAT_KEY)
                .map_err(db)?
                .map(|raw| {
                    <[u8; 4]>::try_from(raw.value())
                        .map(u32::from_be_bytes)
                        .map_err(|_| StoreError::Corrupt)
                })
                .transpose()?;
            match found {
                Some(found) if found > super::FORMAT_VERSION => {
                    return Err(StoreError::NewerFormat {
                        found,
                        supported: super::FORMAT_VERSION,
                    });
                }
                Some(found) if found == super::FORMAT_VERSION => {}
                _ => {
                    meta.insert(FORMAT_KEY, super::FORMAT_VERSION.to_be_bytes().as_slice())
                        .map_err(db)?;
                }
            }
            for def in [MAILBOXES, SENDERS, ENVELOPES, LINKS] {
                write.open_table(def).map_err(db)?;
            }
        }
        write.commit().map_err(db)
    }

    /// Counts the tables once at open; the counters follow every commit.
    fn recount(&self) -> Result<(), StoreError> {
        let read = self.db.begin_read().map_err(db)?;
        let m = read.open_table(MAILBOXES).map_err(db)?;
        let (mut count, mut open) = (0u64, 0u64);
        for kv in m.iter().map_err(db)? {
            let (_, raw) = kv.map_err(db)?;
            count += 1;
            if let Ok(rec) = decode_record(raw.value())
                && rec.is_open()
            {
                open += u64::from(rec.count);
            }
        }
        let envelopes = read.open_table(ENVELOPES).map_err(db)?.len().map_err(db)?;
        let links = read.open_table(LINKS).map_err(db)?.len().map_err(db)?;
        self.set_totals(Totals {
            mailboxes: count,
            envelopes,
            open_envelopes: open,
            links,
        });
        Ok(())
    }

    fn set_totals(&self, t: Totals) {
        self.mailboxes.store(t.mailboxes, Ordering::Relaxed);
        self.envelopes.store(t.envelopes, Ordering::Relaxed);
        self.open_envelopes
            .store(t.open_envelopes, Ordering::Relaxed);
        self.links.store(t.links, Ordering::Relaxed);
    }

    /// Runs `f` in one write transaction and commits it durably if `f`
    /// succeeded (an error aborts it: nothing of it is written); the
    /// counters take the transaction's totals only if it committed.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let write: WriteTransaction = self.db.begin_write().map_err(db)?;
        // No other writer runs, so the counters are those of the last commit.
        let totals = self.totals();
        let (out, totals) = {
            let mut tx = Tx {
                m: write.open_table(MAILBOXES).map_err(db)?,
                s: write.open_table(SENDERS).map_err(db)?,
                e: write.open_table(ENVELOPES).map_err(db)?,
                l: write.open_table(LINKS).map_err(db)?,
                totals,
            };
            let out = f(&mut tx)?;
            (out, tx.totals)
        };
        write.commit().map_err(db)?;
        self.set_totals(totals);
        Ok(out)
    }

    fn read<T>(
        &self,
        def: Def,
        f: impl FnOnce(&redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let read = self.db.begin_read().map_err(db)?;
        let table = read.open_table(def).map_err(db)?;
        f(&table)
    }

    /// The keys of `def` whose value `pick` selects (sweep scans).
    fn scan<K>(
        &self,
        def: Def,
        stats: &mut SweepStats,
        mut pick: impl FnMut(&[u8], &[u8]) -> Result<Option<K>, StoreError>,
    ) -> Result<Vec<K>, StoreError> {
        self.read(def, |t| {
            let mut out = Vec::new();
            for kv in t.iter().map_err(db)? {
                let (k, v) = kv.map_err(db)?;
                match pick(k.value(), v.value()) {
                    Ok(Some(x)) => out.push(x),
                    Ok(None) => {}
                    // One corrupt record must not stop expiry for the rest.
                    Err(StoreError::Corrupt) => stats.corrupt += 1,
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }
}

impl Store for RedbStore {
    fn create_mailbox(&self, rid: &RecipientId, rec: &MailboxRecord) -> Result<(), StoreError> {
        self.write(|tx| tx.create_mailbox(rid, rec))
    }

    fn mailbox(&self, rid: &RecipientId) -> Result<Option<MailboxRecord>, StoreError> {
        self.read(MAILBOXES, |t| get_decoded(t, rid, decode_record))
    }

    fn mailbox_by_sender(
        &self,
        sender_id: &SenderId,
    ) -> Result<Option<(RecipientId, MailboxRecord)>, StoreError> {
        // One read transaction for both lookups: a consistent pair.
        let read = self.db.begin_read().map_err(db)?;
        let s = read.open_table(SENDERS).map_err(db)?;
        let Some(rid) = s.get(sender_id.as_slice()).map_err(db)? else {
            return Ok(None);
        };
        let rid: RecipientId = rid.value().try_into().map_err(|_| StoreError::Corrupt)?;
        let m = read.open_table(MAILBOXES).map_err(db)?;
        let rec = get_decoded(&m, &rid, decode_record)?;
        Ok(rec.map(|rec| (rid, rec)))
    }

    fn secure(&self, rid: &RecipientId, sender_pub: &[u8]) -> Result<(), StoreError> {
        self.write(|tx| tx.secure(rid, sender_pub))
    }

    fn touch(&self, rid: &RecipientId, hour: Hour) -> Result<(), StoreError> {
        self.write(|tx| tx.touch(rid, hour))
    }

    fn delete_mailbox(&self, rid: &RecipientId) -> Result<(), StoreError> {
        self.write(|tx| OpWrites::delete_mailbox(tx, rid))
    }

    fn put_envelope(
        &self,
        rid: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError> {
        self.write(|tx| tx.put_envelope(rid, hour, limits, seal))
    }

    fn next_envelope(
        &self,
        rid: &RecipientId,
        from_seq: u64,
    ) -> Result<(Option<StoredEnvelope>, u64), StoreError> {
        let (start, end) = (env_key(rid, from_seq), env_key(rid, u64::MAX));
        self.read(ENVELOPES, |t| {
            let mut corrupt = 0;
            for kv in t.range(start.as_slice()..=end.as_slice()).map_err(db)? {
                let (_, v) = kv.map_err(db)?;
                match StoredEnvelope::decode(v.value()) {
                    Ok(env) => return Ok((Some(env), corrupt)),
                    Err(_) => corrupt += 1,
                }
            }
            Ok((None, corrupt))
        })
    }

    fn ack(&self, rid: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError> {
        self.write(|tx| tx.ack(rid, id))
    }

    fn put_link(
        &self,
        id: &LinkId,
        rec: &LinkRecord,
        now: Hour,
        max_links: u64,
    ) -> Result<(), StoreError> {
        self.write(|tx| tx.put_link(id, rec, now, max_links))
    }

    fn link(&self, id: &LinkId) -> Result<Option<LinkRecord>, StoreError> {
        self.read(LINKS, |t| get_decoded(t, id, decode_link))
    }

    fn delete_link(&self, id: &LinkId, owner: &[u8]) -> Result<bool, StoreError> {
        self.write(|tx| tx.remove_link_if(id, |l| l.owner_auth_pub == owner))
    }

    fn sweep(&self, now: Hour, policy: &SweepPolicy) -> Result<SweepStats, StoreError> {
        let mut stats = SweepStats::default();
        let links = self.scan(LINKS, &mut stats, |k, v| {
            let link = decode_link(v)?;
            Ok(link
                .is_expired(now)
                .then(|| LinkId::try_from(k).ok())
                .flatten())
        })?;
        let doomed = self.scan(MAILBOXES, &mut stats, |k, v| {
            let rec = decode_record(v)?;
            let rid = RecipientId::try_from(k).map_err(|_| StoreError::Corrupt)?;
            Ok(sweep_verdict(&rec, now, policy).map(|unused| (rid, unused)))
        })?;
        let expired = self.scan(ENVELOPES, &mut stats, |k, v| {
            let stored = StoredEnvelope::decode(v)?;
            let rid = k.get(..MAILBOX_ID_LEN).and_then(|r| r.try_into().ok());
            Ok(rid
                .filter(|_| stored.hour.saturating_add(policy.ttl_hours) < now)
                .map(|rid: RecipientId| (rid, stored.id)))
        })?;
        // Everything is re-checked in the deleting transactions: a link
        // refreshed or a mailbox used since the scan stays. Transactions
        // of at most SWEEP_CHUNK items, so deposits and acks (which wait
        // for the writer) never wait behind a whole sweep.
        for chunk in links.chunks(SWEEP_CHUNK) {
            self.write(|tx| {
                for id in chunk {
                    if tx.remove_link_if(id, |l| l.is_expired(now))? {
                        stats.expired_links += 1;
                    }
                }
                Ok(())
            })?;
        }
        for chunk in doomed.chunks(SWEEP_CHUNK) {
            self.write(|tx| {
                for (rid, unused) in chunk {
                    let before = tx.totals.envelopes;
                    if !tx
                        .delete_mailbox_if(rid, |rec| sweep_verdict(rec, now, policy).is_some())?
                    {
                        continue;
                    }
                    if *unused {
                        stats.unused_mailboxes += 1;
                    } else {
                        stats.expired_mailboxes += 1;
                    }
                    stats.expired_envelopes += before.saturating_sub(tx.totals.envelopes);
                }
                Ok(())
            })?;
        }
        for chunk in expired.chunks(SWEEP_CHUNK) {
            self.write(|tx| {
                for (rid, id) in chunk {
                    if tx.ack(rid, id)? {
                        stats.expired_envelopes += 1;
                    }
                }
                Ok(())
            })?;
        }
        Ok(stats)
    }

    fn totals(&self) -> Totals {
        Totals {
            mailboxes: self.mailboxes.load(Ordering::Relaxed),
            envelopes: self.envelopes.load(Ordering::Relaxed),
            open_envelopes: self.open_envelopes.load(Ordering::Relaxed),
            links: self.links.load(Ordering::Relaxed),
        }
    }

    /// Every write committed durably already.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// One transaction, one sync, for the whole batch. An op refused for
    /// its own reasons (quota, no mailbox) wrote nothing before it was
    /// refused, and the others keep their writes. A storage error aborts
    /// the transaction, and a failed commit fails every op.
    fn apply(&self, ops: &[WriteOp]) -> Vec<Result<Written, StoreError>> {
        let results = self.write(|tx| {
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                match apply_op(tx, op) {
                    Err(e @ StoreError::Redb(_)) => return Err(e),
                    r => out.push(r),
                }
            }
            Ok(out)
        });
        match results {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("commit failed; {} writes are not confirmed: {e}", ops.len());
                ops.iter().map(|_| Err(StoreError::CommitFailed)).collect()
            }
        }
    }
}

//! One redb write transaction of the relay's store: its open tables, the
//! totals as they stand inside it, and each write the store makes. The
//! caller ([`super::RedbStore`]) begins and commits it; nothing here syncs
//! or touches the counters.

use prost::Message;
use redb::{ReadableTable as _, Table};

use super::{db, decode_link, decode_record, env_key, get_decoded};
use crate::Hour;
use crate::store::{
    EnvelopeId, LinkId, LinkRecord, MailboxRecord, OpWrites, RecipientId, StoreError, StoreLimits,
    StoredEnvelope, Totals, check_deposit, check_put_link, new_envelope_id, seq_of,
};

/// The open tables of one write transaction and the totals as they stand
/// inside it (committed to the counters only if the transaction commits).
pub(super) struct Tx<'t> {
    pub(super) m: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) s: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) e: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) l: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) totals: Totals,
}

impl Tx<'_> {
    fn record(&self, rid: &RecipientId) -> Result<Option<MailboxRecord>, StoreError> {
        get_decoded(&self.m, rid, decode_record)
    }

    fn put_record(&mut self, rid: &RecipientId, rec: &MailboxRecord) -> Result<(), StoreError> {
        self.m
            .insert(rid.as_slice(), rec.encode_to_vec().as_slice())
            .map_err(db)?;
        Ok(())
    }

    pub(super) fn create_mailbox(
        &mut self,
        rid: &RecipientId,
        rec: &MailboxRecord,
    ) -> Result<(), StoreError> {
        if self.m.get(rid.as_slice()).map_err(db)?.is_some()
            || self.s.get(rec.sender_id.as_slice()).map_err(db)?.is_some()
        {
            return Err(StoreError::Collision);
        }
        self.put_record(rid, rec)?;
        self.s
            .insert(rec.sender_id.as_slice(), rid.as_slice())
            .map_err(db)?;
        self.totals.mailboxes += 1;
        Ok(())
    }

    /// Applies `f` to the record; `f` returns whether to write it back.
    /// Returns the record as it was before.
    fn update(
        &mut self,
        rid: &RecipientId,
        f: impl FnOnce(&mut MailboxRecord) -> bool,
    ) -> Result<MailboxRecord, StoreError> {
        let before = self.record(rid)?.ok_or(StoreError::NoMailbox)?;
        let mut rec = before.clone();
        if f(&mut rec) {
            self.put_record(rid, &rec)?;
        }
        Ok(before)
    }

    pub(super) fn secure(
        &mut self,
        rid: &RecipientId,
        sender_pub: &[u8],
    ) -> Result<(), StoreError> {
        let before = self.update(rid, |rec| {
            rec.secured_sender = sender_pub.to_vec();
            rec.fresh = false;
            true
        })?;
        if before.is_open() {
            self.totals.open_envelopes = self
                .totals
                .open_envelopes
                .saturating_sub(u64::from(before.count));
        }
        Ok(())
    }

    pub(super) fn touch(&mut self, rid: &RecipientId, hour: Hour) -> Result<(), StoreError> {
        self.update(rid, |rec| {
            let changed = rec.active_hour != hour || rec.fresh;
            rec.active_hour = hour;
            rec.fresh = false;
            changed
        })
        .map(|_| ())
    }

    /// Deletes a mailbox, its sender entry and its envelopes if `doomed`
    /// says so of its current record; whether it did.
    pub(super) fn delete_mailbox_if(
        &mut self,
        rid: &RecipientId,
        doomed: impl FnOnce(&MailboxRecord) -> bool,
    ) -> Result<bool, StoreError> {
        let Some(rec) = self.record(rid)? else {
            return Ok(false);
        };
        if !doomed(&rec) {
            return Ok(false);
        }
        self.m.remove(rid.as_slice()).map_err(db)?;
        self.s.remove(rec.sender_id.as_slice()).map_err(db)?;
        let (start, end) = (env_key(rid, 0), env_key(rid, u64::MAX));
        let mut removed = 0u64;
        for kv in self
            .e
            .extract_from_if(start.as_slice()..=end.as_slice(), |_, _| true)
            .map_err(db)?
        {
            kv.map_err(db)?;
            removed += 1;
        }
        let t = &mut self.totals;
        t.mailboxes = t.mailboxes.saturating_sub(1);
        t.envelopes = t.envelopes.saturating_sub(removed);
        if rec.is_open() {
            t.open_envelopes = t.open_envelopes.saturating_sub(u64::from(rec.count));
        }
        Ok(true)
    }

    pub(super) fn put_envelope(
        &mut self,
        rid: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError> {
        let mut rec = self.record(rid)?.ok_or(StoreError::NoMailbox)?;
        check_deposit(&rec, limits, self.totals)?;
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
        self.e
            .insert(env_key(rid, seq).as_slice(), stored.encode().as_slice())
            .map_err(db)?;
        self.put_record(rid, &rec)?;
        self.totals.envelopes += 1;
        if rec.is_open() {
            self.totals.open_envelopes += 1;
        }
        Ok(id)
    }

    pub(super) fn ack(&mut self, rid: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError> {
        let key = env_key(rid, seq_of(id));
        let Some(stored) = get_decoded(&self.e, &key, StoredEnvelope::decode)? else {
            return Ok(false);
        };
        // The random half must match too: IDs are not guessable.
        if &stored.id != id {
            return Ok(false);
        }
        // A record that no longer decodes keeps no count to update, and
        // must not keep its envelopes from going (the sweep acks expired
        // ones; an error here would abort its whole transaction).
        let rec = match self.record(rid) {
            Ok(rec) => rec,
            Err(StoreError::Corrupt) => None,
            Err(e) => return Err(e),
        };
        self.e.remove(key.as_slice()).map_err(db)?;
        self.totals.envelopes = self.totals.envelopes.saturating_sub(1);
        if let Some(mut rec) = rec {
            rec.count = rec.count.saturating_sub(1);
            if rec.is_open() {
                self.totals.open_envelopes = self.totals.open_envelopes.saturating_sub(1);
            }
            self.put_record(rid, &rec)?;
        }
        Ok(true)
    }

    pub(super) fn put_link(
        &mut self,
        id: &LinkId,
        rec: &LinkRecord,
        now: Hour,
        max_links: u64,
    ) -> Result<(), StoreError> {
        // A record that no longer decodes counts as expired: it is
        // overwritten, and not counted again.
        let existing = self
            .l
            .get(id.as_slice())
            .map_err(db)?
            .map(|raw| decode_link(raw.value()).unwrap_or_default());
        check_put_link(existing.as_ref(), rec, now, self.totals.links, max_links)?;
        self.l
            .insert(id.as_slice(), rec.encode_to_vec().as_slice())
            .map_err(db)?;
        if existing.is_none() {
            self.totals.links += 1;
        }
        Ok(())
    }

    pub(super) fn remove_link_if(
        &mut self,
        id: &LinkId,
        doomed: impl FnOnce(&LinkRecord) -> bool,
    ) -> Result<bool, StoreError> {
        let Some(link) = get_decoded(&self.l, id, decode_link)? else {
            return Ok(false);
        };
        if !doomed(&link) {
            return Ok(false);
        }
        self.l.remove(id.as_slice()).map_err(db)?;
        self.totals.links = self.totals.links.saturating_sub(1);
        Ok(true)
    }
}

impl OpWrites for Tx<'_> {
    fn put_envelope(
        &mut self,
        rid: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError> {
        Tx::put_envelope(self, rid, hour, limits, seal)
    }

    fn touch(&mut self, rid: &RecipientId, hour: Hour) -> Result<(), StoreError> {
        Tx::touch(self, rid, hour)
    }

    fn ack(&mut self, rid: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError> {
        Tx::ack(self, rid, id)
    }

    fn secure(&mut self, rid: &RecipientId, sender_pub: &[u8]) -> Result<(), StoreError> {
        Tx::secure(self, rid, sender_pub)
    }

    fn delete_mailbox(&mut self, rid: &RecipientId) -> Result<(), StoreError> {
        match self.delete_mailbox_if(rid, |_| true)? {
            true => Ok(()),
            false => Err(StoreError::NoMailbox),
        }
    }
}

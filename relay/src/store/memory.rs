//! [`Store`] in memory: the same semantics as [`super::SledStore`] without a
//! disk, so the service can be unit-tested and simulated deterministically.
//! One mutex around everything keeps every operation atomic. Nothing here
//! survives a drop; `flush` is a no-op.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{
    EnvelopeId, LinkId, LinkRecord, MailboxRecord, RecipientId, SenderId, Store, StoreError,
    StoreLimits, StoredEnvelope, SweepPolicy, SweepStats, Totals, check_deposit, check_put_link,
    new_envelope_id, seq_of, sweep_verdict,
};
use crate::Hour;

#[derive(Default)]
struct State {
    mailboxes: HashMap<RecipientId, MailboxRecord>,
    senders: HashMap<SenderId, RecipientId>,
    envelopes: BTreeMap<(RecipientId, u64), StoredEnvelope>,
    links: HashMap<LinkId, LinkRecord>,
}

impl State {
    fn totals(&self) -> Totals {
        Totals {
            mailboxes: self.mailboxes.len() as u64,
            envelopes: self.envelopes.len() as u64,
            open_envelopes: self
                .mailboxes
                .values()
                .filter(|r| r.is_open())
                .map(|r| u64::from(r.count))
                .sum(),
            links: self.links.len() as u64,
        }
    }

    fn remove_mailbox(&mut self, rid: &RecipientId) -> Option<u64> {
        let rec = self.mailboxes.remove(rid)?;
        if let Ok(sid) = SenderId::try_from(rec.sender_id.as_slice()) {
            self.senders.remove(&sid);
        }
        let keys: Vec<_> = self
            .envelopes
            .range((*rid, 0)..=(*rid, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in &keys {
            self.envelopes.remove(k);
        }
        Some(keys.len() as u64)
    }
}

/// [`Store`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn create_mailbox(
        &self,
        recipient_id: &RecipientId,
        rec: &MailboxRecord,
    ) -> Result<(), StoreError> {
        let sid = SenderId::try_from(rec.sender_id.as_slice()).map_err(|_| StoreError::Corrupt)?;
        let mut s = self.lock();
        if s.mailboxes.contains_key(recipient_id) || s.senders.contains_key(&sid) {
            return Err(StoreError::Collision);
        }
        s.mailboxes.insert(*recipient_id, rec.clone());
        s.senders.insert(sid, *recipient_id);
        Ok(())
    }

    fn mailbox(&self, recipient_id: &RecipientId) -> Result<Option<MailboxRecord>, StoreError> {
        Ok(self.lock().mailboxes.get(recipient_id).cloned())
    }

    fn mailbox_by_sender(
        &self,
        sender_id: &SenderId,
    ) -> Result<Option<(RecipientId, MailboxRecord)>, StoreError> {
        let s = self.lock();
        Ok(s.senders
            .get(sender_id)
            .and_then(|rid| s.mailboxes.get(rid).map(|rec| (*rid, rec.clone()))))
    }

    fn secure(&self, recipient_id: &RecipientId, sender_pub: &[u8]) -> Result<(), StoreError> {
        let mut s = self.lock();
        let rec = s
            .mailboxes
            .get_mut(recipient_id)
            .ok_or(StoreError::NoMailbox)?;
        rec.secured_sender = sender_pub.to_vec();
        rec.fresh = false;
        Ok(())
    }

    fn touch(&self, recipient_id: &RecipientId, hour: Hour) -> Result<(), StoreError> {
        let mut s = self.lock();
        let rec = s
            .mailboxes
            .get_mut(recipient_id)
            .ok_or(StoreError::NoMailbox)?;
        rec.active_hour = hour;
        rec.fresh = false;
        Ok(())
    }

    fn delete_mailbox(&self, recipient_id: &RecipientId) -> Result<(), StoreError> {
        self.lock()
            .remove_mailbox(recipient_id)
            .map(|_| ())
            .ok_or(StoreError::NoMailbox)
    }

    fn put_envelope(
        &self,
        recipient_id: &RecipientId,
        hour: Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError> {
        let mut s = self.lock();
        let totals = s.totals();
        let rec = s
            .mailboxes
            .get_mut(recipient_id)
            .ok_or(StoreError::NoMailbox)?;
        check_deposit(rec, limits, totals)?;
        let seq = rec.next_seq;
        let id = new_envelope_id(seq);
        rec.next_seq += 1;
        rec.count += 1;
        rec.active_hour = hour;
        let stored = StoredEnvelope {
            id,
            hour,
            sealed: seal(&id),
        };
        s.envelopes.insert((*recipient_id, seq), stored);
        Ok(id)
    }

    fn next_envelope(
        &self,
        recipient_id: &RecipientId,
        from_seq: u64,
    ) -> Result<(Option<StoredEnvelope>, u64), StoreError> {
        Ok((
            self.lock()
                .envelopes
                .range((*recipient_id, from_seq)..=(*recipient_id, u64::MAX))
                .map(|(_, e)| e.clone())
                .next(),
            0,
        ))
    }

    fn ack(&self, recipient_id: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let key = (*recipient_id, seq_of(id));
        if s.envelopes.get(&key).is_none_or(|e| &e.id != id) {
            return Ok(false);
        }
        s.envelopes.remove(&key);
        if let Some(rec) = s.mailboxes.get_mut(recipient_id) {
            rec.count = rec.count.saturating_sub(1);
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
        let mut s = self.lock();
        let links = s.links.len() as u64;
        check_put_link(s.links.get(id), rec, now, links, max_links)?;
        s.links.insert(*id, rec.clone());
        Ok(())
    }

    fn link(&self, id: &LinkId) -> Result<Option<LinkRecord>, StoreError> {
        Ok(self.lock().links.get(id).cloned())
    }

    fn delete_link(&self, id: &LinkId, owner: &[u8]) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if s.links.get(id).is_none_or(|l| l.owner_auth_pub != owner) {
            return Ok(false);
        }
        s.links.remove(id);
        Ok(true)
    }

    fn sweep(&self, now: Hour, policy: &SweepPolicy) -> Result<SweepStats, StoreError> {
        let mut s = self.lock();
        let mut stats = SweepStats::default();
        let before = s.links.len();
        s.links.retain(|_, l| !l.is_expired(now));
        stats.expired_links = (before - s.links.len()) as u64;
        let doomed: Vec<_> = s
            .mailboxes
            .iter()
            .filter_map(|(rid, rec)| sweep_verdict(rec, now, policy).map(|u| (*rid, u)))
            .collect();
        for (rid, unused) in doomed {
            stats.expired_envelopes += s.remove_mailbox(&rid).unwrap_or(0);
            if unused {
                stats.unused_mailboxes += 1;
            } else {
                stats.expired_mailboxes += 1;
            }
        }
        let expired: Vec<_> = s
            .envelopes
            .iter()
            .filter(|(_, e)| e.hour.saturating_add(policy.ttl_hours) < now)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            s.envelopes.remove(&k);
            if let Some(rec) = s.mailboxes.get_mut(&k.0) {
                rec.count = rec.count.saturating_sub(1);
            }
            stats.expired_envelopes += 1;
        }
        Ok(stats)
    }

    fn totals(&self) -> Totals {
        self.lock().totals()
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

//! Typed access to a profile's records: the only module that reads or
//! writes the store's trees by name. Everything else asks for contacts,
//! sessions, mailboxes, messages and outbox entries, and changes them
//! through [`Changes`], applied atomically and durably.
//!
//! Records are decoded straight out of zeroizing buffers, and every encoded
//! copy (which holds keys, names or message text) is wiped once the batch
//! has taken it. A record that does not decode is reported as
//! [`ClientError::Corrupt`] naming its kind, never a panic.

use std::sync::{Arc, Mutex};

use prost::Message;
use tropa_e2e::{MESSAGE_ID_LEN, Session};
use zeroize::Zeroizing;

use crate::error::ClientError;
use crate::records::{
    AddressRecord, CaseRecord, ContactRecord, MessageRecord, OutboxRecord, OwnMailbox,
    PendingRecord, ProfileRecord, RequestOutRecord, RequestRecord, tree,
};
use crate::store::{Batch, Kv};

const PROFILE_KEY: &[u8] = b"profile";
const SEQ_KEY: &[u8] = b"seq";

/// A receipt owed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptOwed {
    /// To this contact.
    pub contact_id: Vec<u8>,
    /// For their message with this id.
    pub id: [u8; MESSAGE_ID_LEN],
    /// Since when (unix seconds; 0: due at once).
    pub since: u64,
}

/// Key of a receipt owed: contact id ‖ message id.
fn owed_key(contact_id: &[u8], id: &[u8; MESSAGE_ID_LEN]) -> Vec<u8> {
    [contact_id, id.as_slice()].concat()
}

fn decode<M: Message + Default>(raw: &[u8], what: &'static str) -> Result<M, ClientError> {
    M::decode(raw).map_err(|_| ClientError::Corrupt(what))
}

fn encode<M: Message>(m: &M) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(m.encode_to_vec())
}

/// Key of a message record: contact id ‖ seq (so a contact's messages sort
/// in local order).
fn message_key(contact_id: &[u8], seq: u64) -> Vec<u8> {
    [contact_id, &seq.to_be_bytes()].concat()
}

fn message_id_key(contact_id: &[u8], id: &[u8]) -> Vec<u8> {
    [contact_id, id].concat()
}

/// A profile's records.
pub struct Repo {
    kv: Arc<dyn Kv>,
    /// Serialises read-modify-write of the sequence counter.
    seq: Mutex<()>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Repo(<redacted>)")
    }
}

impl Repo {
    /// The records in `kv`.
    pub fn new(kv: Arc<dyn Kv>) -> Self {
        Self {
            kv,
            seq: Mutex::new(()),
        }
    }

    fn all<M: Message + Default>(
        &self,
        tree: &str,
        what: &'static str,
    ) -> Result<Vec<(Vec<u8>, M)>, ClientError> {
        self.kv
            .iter(tree)?
            .into_iter()
            .map(|(k, v)| Ok((k, decode(&v, what)?)))
            .collect()
    }

    fn one<M: Message + Default>(
        &self,
        tree: &str,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<M>, ClientError> {
        self.kv
            .get(tree, key)?
            .map(|v| decode(&v, what))
            .transpose()
    }

    /// Applies `changes` atomically and durably.
    ///
    /// # Errors
    /// Storage errors; then nothing was applied.
    pub fn apply(&self, changes: Changes) -> Result<(), ClientError> {
        if !changes.batch.is_empty() {
            self.kv.apply(changes.batch)?;
        }
        Ok(())
    }

    /// The profile record.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn profile(&self) -> Result<Option<ProfileRecord>, ClientError> {
        self.one(tree::META, PROFILE_KEY, "profile")
    }

    /// Every contact, in no particular order.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn contacts(&self) -> Result<Vec<ContactRecord>, ClientError> {
        Ok(self
            .all(tree::CONTACTS, "contact")?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// The contact with local id `id`.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn contact(&self, id: &[u8]) -> Result<Option<ContactRecord>, ClientError> {
        self.one(tree::CONTACTS, id, "contact")
    }

    /// The contact called `alias`.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn contact_by_alias(&self, alias: &str) -> Result<Option<ContactRecord>, ClientError> {
        let contacts = self.contacts()?;
        if let Some(i) = contacts.iter().position(|c| c.alias == alias) {
            return Ok(contacts.into_iter().nth(i));
        }
        // Otherwise the one alias equal to it ignoring case: on a phone
        // keyboard "Anna" and "anna" are the same person.
        let folded = alias.to_lowercase();
        let mut same: Vec<ContactRecord> = contacts
            .into_iter()
            .filter(|c| c.alias.to_lowercase() == folded)
            .collect();
        Ok(if same.len() == 1 { same.pop() } else { None })
    }

    /// The error for an alias no contact has, with the closest alias as a
    /// suggestion when one is close (a typo, a missing letter).
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn unknown_contact(&self, alias: &str) -> Result<ClientError, ClientError> {
        let folded = alias.to_lowercase();
        let suggestion = self
            .contacts()?
            .into_iter()
            .map(|c| {
                let d = strsim::levenshtein(&folded, &c.alias.to_lowercase());
                (d, c.alias.clone())
            })
            .filter(|(d, a)| *d <= 2.max(a.chars().count() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, a)| a);
        Ok(ClientError::UnknownContact {
            alias: alias.to_owned(),
            suggestion,
        })
    }

    /// The ratchet session with a contact.
    ///
    /// # Errors
    /// Storage errors or a damaged session.
    pub fn session(&self, contact_id: &[u8]) -> Result<Option<Session>, ClientError> {
        self.kv
            .get(tree::SESSIONS, contact_id)?
            .map(|v| Session::from_bytes(&v).map_err(|_| ClientError::Corrupt("session")))
            .transpose()
    }

    /// Every mailbox of ours.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn mailboxes(&self) -> Result<Vec<OwnMailbox>, ClientError> {
        Ok(self
            .all(tree::MAILBOXES, "mailbox")?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    /// Our mailbox with recipient id `rid`.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn mailbox(&self, rid: &[u8]) -> Result<Option<OwnMailbox>, ClientError> {
        self.one(tree::MAILBOXES, rid, "mailbox")
    }

    /// Every case record, by contact id.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn cases(&self) -> Result<Vec<(Vec<u8>, CaseRecord)>, ClientError> {
        self.all(tree::CASES, "case")
    }

    /// The case record of contact `id` (none until something was recorded).
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn case(&self, id: &[u8]) -> Result<Option<CaseRecord>, ClientError> {
        self.one(tree::CASES, id, "case")
    }

    /// Every pending invitation, by invitation id.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn pending_invitations(&self) -> Result<Vec<(Vec<u8>, PendingRecord)>, ClientError> {
        self.all(tree::PENDING, "invitation")
    }

    /// The pending invitation `invite_id`.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn pending_invitation(
        &self,
        invite_id: &[u8],
    ) -> Result<Option<PendingRecord>, ClientError> {
        self.one(tree::PENDING, invite_id, "invitation")
    }

    /// Every message, in local order.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn messages(&self) -> Result<Vec<MessageRecord>, ClientError> {
        let mut v: Vec<MessageRecord> = self
            .all(tree::MESSAGES, "message")?
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        v.sort_by_key(|m| m.seq);
        Ok(v)
    }

    /// The message of `contact_id` with end-to-end id `id`.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn message_by_id(
        &self,
        contact_id: &[u8],
        id: &[u8],
    ) -> Result<Option<MessageRecord>, ClientError> {
        let Some(key) = self
            .kv
            .get(tree::MESSAGE_IDS, &message_id_key(contact_id, id))?
        else {
            return Ok(None);
        };
        self.one(tree::MESSAGES, &key, "message")
    }

    /// Whether a message with this id was ever stored for the contact (it
    /// may have disappeared since: the id stays, so a resend is not shown
    /// again).
    ///
    /// # Errors
    /// Storage errors.
    pub fn message_seen(&self, contact_id: &[u8], id: &[u8]) -> Result<bool, ClientError> {
        Ok(self
            .kv
            .get(tree::MESSAGE_IDS, &message_id_key(contact_id, id))?
            .is_some())
    }

    /// Every outbox entry with its key, oldest first.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn outbox(&self) -> Result<Vec<(Vec<u8>, OutboxRecord)>, ClientError> {
        let mut v = self.all::<OutboxRecord>(tree::OUTBOX, "outbox entry")?;
        v.sort_by_key(|(_, r)| r.seq);
        Ok(v)
    }

    /// The outbox entry `key`.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn outbox_entry(&self, key: &[u8]) -> Result<Option<OutboxRecord>, ClientError> {
        self.one(tree::OUTBOX, key, "outbox entry")
    }

    /// Whether an envelope with this digest was processed and not yet acked.
    ///
    /// # Errors
    /// Storage errors.
    pub fn processed(&self, digest: &[u8]) -> Result<bool, ClientError> {
        Ok(self.kv.get(tree::PROCESSED, digest)?.is_some())
    }

    /// The receipts owed, by contact.
    ///
    /// # Errors
    /// Storage errors; [`ClientError::Corrupt`] for a key too short to hold
    /// a message id.
    pub fn receipts_owed(&self) -> Result<Vec<ReceiptOwed>, ClientError> {
        self.kv
            .iter(tree::RECEIPTS_OWED)?
            .into_iter()
            .map(|(k, v)| {
                let split = k
                    .len()
                    .checked_sub(MESSAGE_ID_LEN)
                    .ok_or(ClientError::Corrupt("receipt owed"))?;
                let (contact, id) = k.split_at(split);
                let id = id
                    .try_into()
                    .map_err(|_| ClientError::Corrupt("receipt owed"))?;
                // Older profiles stored nothing: owed since long ago.
                let since = <[u8; 8]>::try_from(v.as_slice()).map_or(0, u64::from_be_bytes);
                Ok(ReceiptOwed {
                    contact_id: contact.to_vec(),
                    id,
                    since,
                })
            })
            .collect()
    }

    /// Whether this profile accepted the invitation with this digest.
    ///
    /// # Errors
    /// Storage errors.
    pub fn invitation_used(&self, digest: &[u8]) -> Result<bool, ClientError> {
        Ok(self.kv.get(tree::USED_INVITATIONS, digest)?.is_some())
    }

    /// Whether the one-time notice `name` was shown.
    ///
    /// # Errors
    /// Storage errors.
    pub fn notice_shown(&self, name: &str) -> Result<bool, ClientError> {
        Ok(self.kv.get(tree::META, &notice_key(name))?.is_some())
    }

    /// The next local sequence number, durably reserved.
    ///
    /// # Errors
    /// Storage errors.
    pub fn next_seq(&self) -> Result<u64, ClientError> {
        let _one_at_a_time = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self
            .kv
            .get(tree::COUNTERS, SEQ_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let mut b = Batch::new();
        b.put(tree::COUNTERS, SEQ_KEY, &(cur + 1).to_be_bytes());
        self.kv.apply(b)?;
        Ok(cur)
    }
}

fn notice_key(name: &str) -> Vec<u8> {
    [b"notice/".as_slice(), name.as_bytes()].concat()
}

/// Changes to apply together with [`Repo::apply`]: all or none, in order.
#[derive(Default)]
pub struct Changes {
    batch: Batch,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("ops", &self.batch.len())
            .finish()
    }
}

impl Changes {
    /// No changes yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Sets the profile record.
    pub fn put_profile(&mut self, p: &ProfileRecord) -> &mut Self {
        self.batch.put(tree::META, PROFILE_KEY, &encode(p));
        self
    }

    /// Stores a contact.
    pub fn put_contact(&mut self, c: &ContactRecord) -> &mut Self {
        self.batch.put(tree::CONTACTS, &c.id, &encode(c));
        self
    }

    /// Deletes a contact (its session and case work too).
    pub fn remove_contact(&mut self, id: &[u8]) -> &mut Self {
        self.batch
            .remove(tree::CONTACTS, id)
            .remove(tree::SESSIONS, id)
            .remove(tree::CASES, id);
        self
    }

    /// Stores the case record of contact `id`.
    pub fn put_case(&mut self, id: &[u8], c: &CaseRecord) -> &mut Self {
        self.batch.put(tree::CASES, id, &encode(c));
        self
    }

    /// Stores a contact's ratchet session.
    pub fn put_session(&mut self, contact_id: &[u8], s: &Session) -> &mut Self {
        self.batch.put(tree::SESSIONS, contact_id, &s.to_bytes());
        self
    }

    /// Stores one of our mailboxes.
    pub fn put_mailbox(&mut self, m: &OwnMailbox) -> &mut Self {
        self.batch.put(tree::MAILBOXES, &m.recipient_id, &encode(m));
        self
    }

    /// Forgets one of our mailboxes.
    pub fn remove_mailbox(&mut self, rid: &[u8]) -> &mut Self {
        self.batch.remove(tree::MAILBOXES, rid);
        self
    }

    /// Stores a pending invitation.
    pub fn put_pending_invitation(&mut self, invite_id: &[u8], p: &PendingRecord) -> &mut Self {
        self.batch.put(tree::PENDING, invite_id, &encode(p));
        self
    }

    /// Forgets a pending invitation (its one-time secrets with it).
    pub fn remove_pending_invitation(&mut self, invite_id: &[u8]) -> &mut Self {
        self.batch.remove(tree::PENDING, invite_id);
        self
    }

    /// Stores a message (new or updated) and its id index.
    pub fn put_message(&mut self, m: &MessageRecord) -> &mut Self {
        let key = message_key(&m.contact_id, m.seq);
        self.batch.put(tree::MESSAGES, &key, &encode(m)).put(
            tree::MESSAGE_IDS,
            &message_id_key(&m.contact_id, &m.id),
            &key,
        );
        self
    }

    /// Deletes a message's text; its id stays known, so a resend of it is
    /// recognised and not shown again.
    pub fn remove_message(&mut self, m: &MessageRecord) -> &mut Self {
        self.batch
            .remove(tree::MESSAGES, &message_key(&m.contact_id, m.seq));
        self
    }

    /// Stores an outbox entry.
    pub fn put_outbox(&mut self, key: &[u8], r: &OutboxRecord) -> &mut Self {
        self.batch.put(tree::OUTBOX, key, &encode(r));
        self
    }

    /// Removes an outbox entry.
    pub fn remove_outbox(&mut self, key: &[u8]) -> &mut Self {
        self.batch.remove(tree::OUTBOX, key);
        self
    }

    /// Notes an envelope as processed (until its ack is confirmed).
    pub fn mark_processed(&mut self, digest: &[u8]) -> &mut Self {
        self.batch.put(tree::PROCESSED, digest, &[]);
        self
    }

    /// Forgets a processed envelope (its ack was confirmed).
    pub fn forget_processed(&mut self, digest: &[u8]) -> &mut Self {
        self.batch.remove(tree::PROCESSED, digest);
        self
    }

    /// Notes a receipt owed to `contact_id` for message `id`, since `since`
    /// (unix seconds; 0: due at once).
    pub fn owe_receipt(
        &mut self,
        contact_id: &[u8],
        id: &[u8; MESSAGE_ID_LEN],
        since: u64,
    ) -> &mut Self {
        self.batch.put(
            tree::RECEIPTS_OWED,
            &owed_key(contact_id, id),
            &since.to_be_bytes(),
        );
        self
    }

    /// Forgets a receipt owed (it is in the outbox now, or the relay
    /// accepted a text carrying it).
    pub fn settle_receipt(&mut self, contact_id: &[u8], id: &[u8; MESSAGE_ID_LEN]) -> &mut Self {
        self.batch
            .remove(tree::RECEIPTS_OWED, &owed_key(contact_id, id));
        self
    }

    /// Notes an invitation as accepted by this profile.
    pub fn mark_invitation_used(&mut self, digest: &[u8]) -> &mut Self {
        self.batch.put(tree::USED_INVITATIONS, digest, &[]);
        self
    }

    /// Notes a one-time notice as shown.
    pub fn mark_notice(&mut self, name: &str) -> &mut Self {
        self.batch.put(tree::META, &notice_key(name), &[]);
        self
    }
}

/// Intake addresses and contact requests (see `engine::intake`).
impl Repo {
    /// Every intake address record (the active one, and deleted ones whose
    /// deletion the relay has not confirmed yet).
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn addresses(&self) -> Result<Vec<AddressRecord>, ClientError> {
        Ok(self
            .all(tree::ADDRESSES, "address")?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// The intake address whose mailbox is `rid`.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn address(&self, rid: &[u8]) -> Result<Option<AddressRecord>, ClientError> {
        self.one(tree::ADDRESSES, rid, "address")
    }

    /// The profile's intake address, unless deleted.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn active_address(&self) -> Result<Option<AddressRecord>, ClientError> {
        Ok(self.addresses()?.into_iter().find(|a| !a.withdrawn))
    }

    /// Every contact request waiting, in no particular order.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn requests(&self) -> Result<Vec<RequestRecord>, ClientError> {
        Ok(self
            .all(tree::REQUESTS, "request")?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Whether a request with this id was handled (and is still remembered).
    ///
    /// # Errors
    /// Storage errors.
    pub fn request_handled(&self, id: &[u8]) -> Result<bool, ClientError> {
        Ok(self.kv.get(tree::REQUEST_IDS, id)?.is_some())
    }

    /// The ids of the requests handled while the address exists.
    ///
    /// # Errors
    /// Storage errors.
    pub fn request_ids(&self) -> Result<Vec<Vec<u8>>, ClientError> {
        Ok(self
            .kv
            .iter(tree::REQUEST_IDS)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Our contact requests still to deposit, by contact id.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn requests_out(&self) -> Result<Vec<(Vec<u8>, RequestOutRecord)>, ClientError> {
        self.all(tree::REQUESTS_OUT, "request to send")
    }

    /// Our contact request for contact `contact_id`, if still to deposit.
    ///
    /// # Errors
    /// Storage errors or a damaged record.
    pub fn request_out(&self, contact_id: &[u8]) -> Result<Option<RequestOutRecord>, ClientError> {
        self.one(tree::REQUESTS_OUT, contact_id, "request to send")
    }

    /// The only identity (64 bytes) whose Hello may complete pending
    /// invitation `invite_id`, if it has one.
    ///
    /// # Errors
    /// Storage errors.
    pub fn expected_identity(&self, invite_id: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self
            .kv
            .get(tree::EXPECTED_IDENTITIES, invite_id)?
            .map(|v| v.to_vec()))
    }

    /// The invitation ids that have an expected identity.
    ///
    /// # Errors
    /// Storage errors.
    pub fn expected_identity_ids(&self) -> Result<Vec<Vec<u8>>, ClientError> {
        Ok(self
            .kv
            .iter(tree::EXPECTED_IDENTITIES)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }
}

/// Intake addresses and contact requests.
impl Changes {
    /// Stores an intake address record.
    pub fn put_address(&mut self, a: &AddressRecord) -> &mut Self {
        self.batch.put(tree::ADDRESSES, &a.mailbox, &encode(a));
        self
    }

    /// Forgets an intake address record.
    pub fn remove_address(&mut self, rid: &[u8]) -> &mut Self {
        self.batch.remove(tree::ADDRESSES, rid);
        self
    }

    /// Stores a contact request, and remembers its id.
    pub fn put_request(&mut self, r: &RequestRecord) -> &mut Self {
        self.batch
            .put(tree::REQUESTS, &r.id, &encode(r))
            .put(tree::REQUEST_IDS, &r.id, &[]);
        self
    }

    /// Deletes a contact request (its id stays remembered).
    pub fn remove_request(&mut self, id: &[u8]) -> &mut Self {
        self.batch.remove(tree::REQUESTS, id);
        self
    }

    /// Forgets a handled request's id.
    pub fn forget_request_id(&mut self, id: &[u8]) -> &mut Self {
        self.batch.remove(tree::REQUEST_IDS, id);
        self
    }

    /// Stores a contact request of ours to deposit.
    pub fn put_request_out(&mut self, contact_id: &[u8], r: &RequestOutRecord) -> &mut Self {
        self.batch.put(tree::REQUESTS_OUT, contact_id, &encode(r));
        self
    }

    /// Forgets a contact request of ours (deposited, or given up).
    pub fn remove_request_out(&mut self, contact_id: &[u8]) -> &mut Self {
        self.batch.remove(tree::REQUESTS_OUT, contact_id);
        self
    }

    /// Accepts a Hello on pending invitation `invite_id` only from `identity`.
    pub fn expect_identity(&mut self, invite_id: &[u8], identity: &[u8]) -> &mut Self {
        self.batch
            .put(tree::EXPECTED_IDENTITIES, invite_id, identity);
        self
    }

    /// Forgets the expected identity of pending invitation `invite_id`.
    pub fn forget_expected_identity(&mut self, invite_id: &[u8]) -> &mut Self {
        self.batch.remove(tree::EXPECTED_IDENTITIES, invite_id);
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::records::{Direction, Status};
    use crate::store::MemoryKv;

    #[test]
    fn messages_sort_by_seq_and_ids_outlive_text() {
        let repo = Repo::new(Arc::new(MemoryKv::new()));
        let m = |seq, id: u8| MessageRecord {
            id: vec![id; 16],
            contact_id: vec![1; 16],
            direction: Direction::In as i32,
            text: format!("text {seq}"),
            status: Status::Unread as i32,
            at: 0,
            expires_at: 0,
            seq,
            sent_at: 0,
        };
        let mut c = Changes::new();
        c.put_message(&m(2, 0xb)).put_message(&m(1, 0xa));
        repo.apply(c).unwrap();
        let seqs: Vec<u64> = repo.messages().unwrap().iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 2]);
        let mut c = Changes::new();
        c.remove_message(&m(1, 0xa));
        repo.apply(c).unwrap();
        assert_eq!(repo.messages().unwrap().len(), 1);
        assert!(repo.message_seen(&[1; 16], &[0xa; 16]).unwrap());
        assert!(repo.message_by_id(&[1; 16], &[0xa; 16]).unwrap().is_none());
        assert_eq!(repo.next_seq().unwrap(), 0);
        assert_eq!(repo.next_seq().unwrap(), 1);
    }

    #[test]
    fn a_damaged_record_is_a_typed_error() {
        let kv = Arc::new(MemoryKv::new());
        let mut b = Batch::new();
        b.put(tree::CONTACTS, b"x", &[0xff, 0xff, 0xff]);
        kv.apply(b).unwrap();
        let repo = Repo::new(kv);
        assert!(matches!(
            repo.contacts(),
            Err(ClientError::Corrupt("contact"))
        ));
    }
}

//! What front ends show of a profile: contacts with their counts, messages
//! with their status, safety numbers, and the small changes made from those
//! screens (read, verified, timers). Reads and writes go through the
//! repository; nothing here talks to a relay.

use tropa_e2e::{IdentityPublic, safety_number};

use super::Client;
use crate::error::ClientError;
use crate::records::{ContactState, Direction, Status};
use crate::redact::redacted_debug;
use crate::repo::Changes;
use crate::shell::now;

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    /// Outgoing, not yet accepted by a relay.
    Queued,
    /// Outgoing, stored by the recipient's relay; no receipt yet.
    Sent,
    /// Outgoing, the recipient's device confirmed it.
    Delivered,
    /// Incoming, not yet read.
    Unread,
    /// Incoming, read.
    Read,
}

impl MessageStatus {
    fn of(s: i32) -> Self {
        match Status::try_from(s) {
            Ok(Status::Queued) => MessageStatus::Queued,
            Ok(Status::Sent) => MessageStatus::Sent,
            Ok(Status::Delivered) => MessageStatus::Delivered,
            Ok(Status::Unread) | Err(_) => MessageStatus::Unread,
            Ok(Status::Read) => MessageStatus::Read,
        }
    }

    /// The word front ends show: `queued`, `sent`, `delivered`, `unread`, `read`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Unread => "unread",
            MessageStatus::Read => "read",
        }
    }
}

/// A contact as front ends show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ContactInfo {
    /// Alias.
    pub alias: String,
    /// Whether the handshake completed.
    pub established: bool,
    /// Whether the safety number was confirmed.
    pub verified: bool,
    /// Unread incoming messages.
    pub unread: usize,
    /// Outgoing messages without receipt yet.
    pub pending: usize,
    /// Disappearing-message timer (0 = off).
    pub timer_secs: u32,
    /// Envelopes dropped as tampered since the last `read`.
    pub dropped: u32,
    /// Their relay refused our deposits for good (their mailbox is gone):
    /// nothing can be sent to them any more.
    pub broken: bool,
    /// For an invitation nobody accepted yet: when it expires (Unix
    /// seconds); 0 otherwise.
    pub invitation_expires_at: u64,
    /// The relay (`host:port`) of our mailbox for this contact: where
    /// their messages to us wait. "" if there is none.
    pub relay: String,
}

/// A message as front ends show it.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageView {
    /// Hex of the 16-byte message id.
    pub id: String,
    /// The contact's alias.
    pub alias: String,
    /// Received or sent.
    pub incoming: bool,
    /// The text.
    pub text: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// Unix seconds: when it was queued (out) or received (in), by this
    /// device's clock.
    pub at: u64,
    /// Unix seconds: when the sender wrote it, by the sender's clock (0 if
    /// not given). Messages are ordered by arrival, never by this.
    pub sent_at: u64,
    /// Unix seconds after which it disappears (0: never).
    pub expires_at: u64,
}

impl Drop for MessageView {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.text);
        zeroize::Zeroize::zeroize(&mut self.alias);
    }
}

/// A contact's safety number.
#[derive(Clone)]
pub struct SafetyView {
    /// 12 groups of 5 digits.
    pub groups: Vec<String>,
    /// Payload for a QR code.
    pub qr_payload: Vec<u8>,
    /// Whether it was confirmed before.
    pub verified: bool,
}

// Aliases and message text are what a seized log or crash report must never
// show.
redacted_debug!(ContactInfo: established, verified, unread, pending, broken);
redacted_debug!(MessageView: id, incoming, status);
redacted_debug!(SafetyView: verified);

/// What front ends see of a stored message (`contacts`: id → alias).
pub(super) fn message_view(
    m: &crate::records::MessageRecord,
    contacts: &std::collections::HashMap<Vec<u8>, String>,
) -> MessageView {
    MessageView {
        id: hex::encode(&m.id),
        alias: contacts.get(&m.contact_id).cloned().unwrap_or_default(),
        incoming: m.direction == Direction::In as i32,
        text: m.text.clone(),
        status: MessageStatus::of(m.status),
        at: m.at,
        sent_at: m.sent_at,
        expires_at: m.expires_at,
    }
}

impl Client {
    pub(super) fn contact_by_alias(
        &self,
        alias: &str,
    ) -> Result<crate::records::ContactRecord, ClientError> {
        match self.repo.contact_by_alias(alias)? {
            Some(c) => Ok(c),
            None => Err(self.repo.unknown_contact(alias)?),
        }
    }

    /// All contacts, sorted by alias.
    ///
    /// # Errors
    /// Storage errors.
    pub fn contacts(&self) -> Result<Vec<ContactInfo>, ClientError> {
        let msgs = self.repo.messages()?;
        self.contacts_of(&msgs)
    }

    /// [`contacts`](Self::contacts) counted from `msgs` (every message of
    /// the profile), for callers that need the messages too.
    pub(super) fn contacts_of(
        &self,
        msgs: &[crate::records::MessageRecord],
    ) -> Result<Vec<ContactInfo>, ClientError> {
        let invitations: Vec<(Vec<u8>, u64)> = self
            .repo
            .pending_invitations()?
            .into_iter()
            .filter_map(|(_, p)| {
                let expires = tropa_e2e::PendingInvitation::from_bytes(&p.pending)
                    .ok()?
                    .expires_at();
                Some((p.contact_id.clone(), expires))
            })
            .collect();
        // One pass over the messages, not one per contact: a handler's
        // profile holds hundreds of contacts and tens of thousands of
        // messages.
        let tallies = super::cases::tally(msgs, now());
        let relays: std::collections::HashMap<Vec<u8>, String> = self
            .repo
            .mailboxes()?
            .into_iter()
            .filter_map(|mb| {
                let a = mb.relay.parse::<tropa_proto::RelayAddress>().ok()?;
                Some((mb.contact_id.clone(), format!("{}:{}", a.host, a.port)))
            })
            .collect();
        let mut out: Vec<ContactInfo> = self
            .repo
            .contacts()?
            .into_iter()
            .map(|c| {
                let t = tallies.get(c.id.as_slice()).copied().unwrap_or_default();
                ContactInfo {
                    unread: t.unread,
                    pending: t.pending,
                    alias: c.alias.clone(),
                    established: c.state == ContactState::Established as i32,
                    verified: c.verified,
                    timer_secs: c.timer_secs,
                    dropped: c.dropped,
                    broken: c.broken,
                    invitation_expires_at: invitations
                        .iter()
                        .find(|(id, _)| *id == c.id)
                        .map_or(0, |(_, at)| *at),
                    relay: relays.get(&c.id).cloned().unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.alias.cmp(&b.alias));
        Ok(out)
    }

    /// The contact called `alias` (ignoring case).
    ///
    /// # Errors
    /// Unknown contact (with a suggestion), storage.
    pub fn contact(&self, alias: &str) -> Result<ContactInfo, ClientError> {
        let c = self.contact_by_alias(alias)?;
        self.contacts()?
            .into_iter()
            .find(|i| i.alias == c.alias)
            .ok_or(ClientError::Corrupt("contact list"))
    }

    /// Messages with `alias` (or with everyone), oldest first.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn messages(&self, alias: Option<&str>) -> Result<Vec<MessageView>, ClientError> {
        let contacts: std::collections::HashMap<Vec<u8>, String> = self
            .repo
            .contacts()?
            .into_iter()
            .map(|c| (c.id.clone(), c.alias.clone()))
            .collect();
        let only = alias.map(|a| self.contact_by_alias(a)).transpose()?;
        let t = now();
        Ok(self
            .repo
            .messages()?
            .into_iter()
            .filter(|m| only.as_ref().is_none_or(|c| c.id == m.contact_id))
            .filter(|m| m.expires_at == 0 || m.expires_at > t)
            .map(|m| message_view(&m, &contacts))
            .collect())
    }

    /// Marks the incoming messages of `alias` (or all) as read and resets
    /// the dropped-envelope counters shown to the user.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn mark_read(&self, alias: Option<&str>) -> Result<(), ClientError> {
        let only = alias.map(|a| self.contact_by_alias(a)).transpose()?;
        let mut changes = Changes::new();
        for mut m in self.repo.messages()? {
            if m.status == Status::Unread as i32
                && only.as_ref().is_none_or(|c| c.id == m.contact_id)
            {
                m.status = Status::Read as i32;
                changes.put_message(&m);
            }
        }
        for mut c in self.repo.contacts()? {
            if c.dropped > 0 && only.as_ref().is_none_or(|o| o.id == c.id) {
                c.dropped = 0;
                changes.put_contact(&c);
            }
        }
        self.repo.apply(changes)
    }

    /// Marks the messages of `alias` with these ids (hex, as in
    /// [`MessageView::id`]) as read, without reading every message of the
    /// profile (a desk knows which ones are unread). Unknown ids are
    /// skipped. Unlike [`mark_read`](Self::mark_read) it leaves the contact
    /// record alone (its dropped-envelope counter): the sync engine may be
    /// writing that record at the same moment.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn mark_read_ids(&self, alias: &str, ids: &[String]) -> Result<(), ClientError> {
        let c = self.contact_by_alias(alias)?;
        let mut changes = Changes::new();
        for id in ids {
            let Ok(raw) = hex::decode(id) else { continue };
            if let Some(mut m) = self.repo.message_by_id(&c.id, &raw)?
                && m.status == Status::Unread as i32
            {
                m.status = Status::Read as i32;
                changes.put_message(&m);
            }
        }
        self.repo.apply(changes)
    }

    /// The safety number with `alias`.
    ///
    /// # Errors
    /// Unknown or not-yet-established contact.
    pub fn safety(&self, alias: &str) -> Result<SafetyView, ClientError> {
        let c = self.contact_by_alias(alias)?;
        let peer = IdentityPublic::from_bytes(&c.identity)
            .map_err(|_| ClientError::NotEstablished(alias.to_owned()))?;
        let sn = safety_number(&self.identity.public(), &peer);
        Ok(SafetyView {
            groups: sn.groups().into_iter().map(str::to_owned).collect(),
            qr_payload: sn.qr_payload(),
            verified: c.verified,
        })
    }

    /// Marks `alias` as verified. With `typed` (the digits the other person
    /// reads out, spaces allowed) it is checked first and refused on mismatch.
    ///
    /// # Errors
    /// Unknown contact, mismatch.
    pub fn confirm_verified(&self, alias: &str, typed: Option<&str>) -> Result<(), ClientError> {
        let mut c = self.contact_by_alias(alias)?;
        let peer = IdentityPublic::from_bytes(&c.identity)
            .map_err(|_| ClientError::NotEstablished(alias.to_owned()))?;
        if let Some(t) = typed {
            safety_number(&self.identity.public(), &peer).verify_digits(t)?;
        }
        c.verified = true;
        let mut changes = Changes::new();
        changes.put_contact(&c);
        self.repo.apply(changes)
    }

    /// Renames a contact (aliases are local: the contact never learns it).
    ///
    /// # Errors
    /// Unknown contact, a bad or taken new alias, storage.
    pub fn rename_contact(&self, alias: &str, new_alias: &str) -> Result<(), ClientError> {
        super::check_alias(new_alias)?;
        let mut c = self.contact_by_alias(alias)?;
        if let Some(other) = self.repo.contact_by_alias(new_alias)?
            && other.id != c.id
        {
            return Err(ClientError::AliasTaken(new_alias.to_owned()));
        }
        c.alias = new_alias.to_owned();
        let mut changes = Changes::new();
        changes.put_contact(&c);
        self.repo.apply(changes)
    }

    /// Sets the disappearing-message timer for messages sent to `alias`
    /// (0 turns it off). Each message carries its timer, so the recipient
    /// deletes it too.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn set_timer(&self, alias: &str, secs: u32) -> Result<(), ClientError> {
        let mut c = self.contact_by_alias(alias)?;
        c.timer_secs = secs;
        let mut changes = Changes::new();
        changes.put_contact(&c);
        self.repo.apply(changes)
    }
}

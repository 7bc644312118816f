//! Receiving: subscription events, deliveries (decrypt, deduplicate, store,
//! ack), Hellos that complete our invitations, and receipts.
//!
//! Order of effects for a delivery, so a crash at any point loses nothing
//! and shows nothing twice: decrypt → one durable batch with the message,
//! the new ratchet state and the envelope's digest → ack → forget the
//! digest once the relay confirms.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use sha2::{Digest as _, Sha256};
use tropa_e2e::{Body, Content, OpenError, PendingInvitation, Session};
use tropa_relay_client::Delivery;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::links::RelayKey;
use super::setup::AcceptState;
use super::{Engine, MailboxId, Op, Request, SubEvent};
use tropa_relay_protocol::crypto::SealingKey;

use crate::client::{MessageStatus, MessageView};
use crate::error::{ClientError, Refusal, RelayError};
use crate::records::{
    ContactRecord, ContactState, Direction, MessageRecord, OwnMailbox, Status, expiry,
};
use crate::repo::{Changes, ReceiptOwed};
use crate::sync::SyncEvent;

/// Context of the digest of a processed envelope.
const DIGEST_CONTEXT: &[u8] = b"tropa/1 processed-envelope\0";

fn digest(rid: &[u8], plain: &[u8]) -> Vec<u8> {
    Sha256::new()
        .chain_update(DIGEST_CONTEXT)
        .chain_update(rid)
        .chain_update(plain)
        .finalize()
        .to_vec()
}

/// Whether an envelope that fails to open in an established session was
/// forged or misrouted on the way. Not: what the contact's own client
/// sealed so (too many skipped messages, a bad ratchet key, malformed or
/// invalid content behind an authentic body), nor a handshake resent into
/// the invitation's mailbox, which is now this session's.
fn forged(e: &OpenError) -> bool {
    matches!(
        e,
        OpenError::BadSize
            | OpenError::UnknownType
            | OpenError::UnknownHeader
            | OpenError::Tampered
    )
}

impl Engine {
    pub(super) fn on_subscription(
        &mut self,
        key: &RelayKey,
        mailbox: MailboxId,
        event: SubEvent,
    ) -> Result<(), ClientError> {
        match event {
            SubEvent::Started => self.set_sub(key, mailbox, Some(false)),
            SubEvent::Idle => {
                self.set_sub(key, mailbox, Some(true));
                self.queue_receipts()?;
                self.flush_outbox()?;
            }
            SubEvent::Delivery(d) => {
                self.on_delivery(key, mailbox, &d)?;
            }
            SubEvent::Refused(e) if e.refusal().is_some_and(Refusal::is_transient) => {
                self.retry_sub(key, mailbox);
            }
            SubEvent::Refused(e) if e.refusal().is_some() => {
                // The relay no longer knows this mailbox (expired or
                // deleted): nothing will arrive there; report it.
                self.set_sub(key, mailbox, None);
                self.emit(SyncEvent::MailboxRefused {
                    relay: key.as_str().to_owned(),
                    error: e,
                });
            }
            SubEvent::Refused(e) | SubEvent::Ended(e) => self.mark_down(key, e)?,
        }
        Ok(())
    }

    /// Sends the acks that the relay refused as busy before and whose wait
    /// is over.
    pub(super) fn reack_due(&mut self) -> Result<(), ClientError> {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.busy_acks)
            .into_iter()
            .partition(|(at, ..)| *at <= now);
        self.busy_acks = later;
        for (_, mailbox, envelope_id, digest) in due {
            if let Some(mb) = self.repo.mailbox(&mailbox)? {
                let d = Delivery {
                    envelope_id,
                    sealed: bytes::Bytes::new(),
                };
                self.ack(&mb, mailbox, &d, digest)?;
            }
        }
        Ok(())
    }

    fn ack(
        &mut self,
        mb: &OwnMailbox,
        mailbox: MailboxId,
        d: &Delivery,
        digest: Vec<u8>,
    ) -> Result<(), ClientError> {
        let auth = self.mailbox_key(mb)?;
        let Ok(address) = mb.relay.parse() else {
            return Err(ClientError::Corrupt("mailbox relay"));
        };
        self.request(
            &address,
            Op::Ack {
                digest,
                mailbox,
                envelope_id: d.envelope_id,
            },
            Request::Ack {
                mailbox,
                auth,
                envelope_id: d.envelope_id,
            },
            false,
        )
    }

    fn on_delivery(
        &mut self,
        key: &RelayKey,
        mailbox: MailboxId,
        d: &Delivery,
    ) -> Result<(), ClientError> {
        let Some(mb) = self.repo.mailbox(&mailbox)? else {
            return Ok(());
        };
        if self.acked.contains(&(mailbox, d.envelope_id)) {
            // An honest relay deletes an envelope before it confirms the
            // ack, and a subscription made after that cannot see it: this
            // is a replay. Already processed; ack it again, show nothing.
            self.report_misbehaving(
                key,
                "delivered an envelope again after confirming its deletion",
            );
            return self.ack(&mb, mailbox, d, Vec::new());
        }
        let opened = self
            .delivery_key(&mb, mailbox)?
            .open(&d.envelope_id, &d.sealed);
        let Ok(plain) = opened else {
            // Not sealed for us by the relay: corrupt or forged. Drop it,
            // and ack it so it does not come back.
            self.drop_envelope(&mb, "the relay's delivery did not authenticate")?;
            self.report_misbehaving(key, "delivered an envelope that does not authenticate");
            return self.ack(&mb, mailbox, d, digest(&mailbox, &d.sealed));
        };
        let digest = digest(&mailbox, &plain);
        if self.repo.processed(&digest)? {
            // Redelivered after a crash or a lost ack: already stored.
            return self.ack(&mb, mailbox, d, digest);
        }
        let mut changes = Changes::new();
        changes.mark_processed(&digest);
        if self.is_intake(&mailbox)? {
            // A contact request to our address (see `intake`).
            self.on_request(&mailbox, &plain, changes)?;
        } else if mb.invite_id.is_empty() {
            self.on_message(key, &mb, &plain, changes)?;
        } else {
            self.on_hello(mb.clone(), &plain, changes)?;
        }
        self.ack(&mb, mailbox, d, digest)
    }

    /// The key the relay seals this mailbox's deliveries with (S6).
    fn delivery_key(
        &mut self,
        mb: &OwnMailbox,
        mailbox: MailboxId,
    ) -> Result<&SealingKey, ClientError> {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.delivery_keys.entry(mailbox)
        {
            let dh: Zeroizing<[u8; 32]> = Zeroizing::new(
                mb.dh_secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| ClientError::Corrupt("mailbox key"))?,
            );
            let relay_dh: [u8; 32] = mb
                .relay_dh_pub
                .as_slice()
                .try_into()
                .map_err(|_| ClientError::Corrupt("mailbox key"))?;
            slot.insert(SealingKey::delivery(
                &StaticSecret::from(*dh),
                &x25519_dalek::PublicKey::from(relay_dh),
                &mailbox,
            ));
        }
        self.delivery_keys
            .get(&mailbox)
            .ok_or(ClientError::Corrupt("mailbox key"))
    }

    /// Names `key` in the report as misbehaving: `what` is our own words,
    /// never anything the relay sent.
    pub(super) fn report_misbehaving(&mut self, key: &RelayKey, what: &str) {
        let why = format!("{key}: {what}");
        if !self.report.misbehaving.contains(&why) {
            self.report.misbehaving.push(why);
        }
    }

    fn drop_envelope(&mut self, mb: &OwnMailbox, reason: &str) -> Result<(), ClientError> {
        let mut alias = String::new();
        if let Some(mut c) = self.repo.contact(&mb.contact_id)? {
            c.dropped += 1;
            alias.clone_from(&c.alias);
            let mut changes = Changes::new();
            changes.put_contact(&c);
            self.repo.apply(changes)?;
        }
        self.report.dropped += 1;
        self.emit(SyncEvent::Dropped {
            alias,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    fn on_hello(
        &mut self,
        mut mb: OwnMailbox,
        plain: &[u8],
        changes: Changes,
    ) -> Result<(), ClientError> {
        let Some(pending_rec) = self.repo.pending_invitation(&mb.invite_id)? else {
            self.repo.apply(changes)?;
            return self.drop_envelope(&mb, "invitation already used");
        };
        let pending = PendingInvitation::from_bytes(&pending_rec.pending)
            .map_err(|_| ClientError::Corrupt("invitation"))?;
        let accepted = Session::accept(&mut self.rng, &self.identity, &pending, plain, self.now);
        let (session, joiner, hello, _first) = match accepted {
            Ok(a) => a,
            Err(e) => {
                self.repo.apply(changes)?;
                return self.drop_envelope(&mb, &format!("invalid handshake: {e}"));
            }
        };
        if !self.hello_expected(&mb.invite_id, &joiner)? {
            // S10: our invitation went with a contact request to an
            // address; only that address's owner may answer it. The
            // invitation stays open for them.
            self.repo.apply(changes)?;
            return self.drop_envelope(
                &mb,
                "a reply from another identity than the address you wrote to: refused",
            );
        }
        let Some(mut contact) = self.repo.contact(&pending_rec.contact_id)? else {
            return self.repo.apply(changes);
        };
        contact.identity = joiner.to_bytes().to_vec();
        contact.state = ContactState::Established as i32;
        contact.send_relay = hello.reply_relay.to_string();
        contact.send_sender_id.clone_from(&hello.reply_sender_id);
        mb.secure_with = hello.sender_auth.to_vec();
        let invite_id = std::mem::take(&mut mb.invite_id);
        let mut changes = changes;
        changes
            .put_contact(&contact)
            .put_session(&contact.id, &session)
            .put_mailbox(&mb)
            // One-time: the prekey is gone with this batch.
            .remove_pending_invitation(&invite_id);
        self.repo.apply(changes)?;
        self.report.joined += 1;
        self.emit(SyncEvent::Joined {
            alias: contact.alias.clone(),
        });
        // The short link's data is of no more use: deleted, best effort
        // (the relay drops it at its expiry otherwise).
        self.delete_used_link(&pending_rec, &mb.relay)?;
        // Only the joiner may deposit here from now on.
        self.send_pending_secure(&mb, None)
    }

    /// Sends the `Secure` a mailbox still owes, if any; `then` continues an
    /// accept once it is confirmed.
    pub(super) fn send_pending_secure(
        &mut self,
        mb: &OwnMailbox,
        then: Option<Box<AcceptState>>,
    ) -> Result<(), ClientError> {
        let Ok(sender) = <[u8; 32]>::try_from(mb.secure_with.as_slice()) else {
            return Ok(());
        };
        let urgent = then.is_some();
        let auth = self.mailbox_key(mb)?;
        let mailbox = MailboxId::try_from(mb.recipient_id.as_slice())
            .map_err(|_| ClientError::Corrupt("mailbox id"))?;
        let address = mb
            .relay
            .parse()
            .map_err(|_| ClientError::Corrupt("mailbox relay"))?;
        self.request(
            &address,
            Op::Secure { mailbox, then },
            Request::Secure {
                mailbox,
                auth,
                sender,
            },
            urgent,
        )
    }

    pub(super) fn on_secured(
        &mut self,
        mailbox: MailboxId,
        then: Option<Box<AcceptState>>,
        result: Result<super::Reply, RelayError>,
    ) -> Result<(), ClientError> {
        if let Some(state) = then {
            return self.accept_secured(state, result);
        }
        if result.is_ok()
            && let Some(mut mb) = self.repo.mailbox(&mailbox)?
        {
            mb.secure_with.clear();
            let mut changes = Changes::new();
            changes.put_mailbox(&mb);
            self.repo.apply(changes)?;
        }
        // On failure the mailbox keeps `secure_with`: the next connection
        // to its relay sends it again.
        Ok(())
    }

    fn on_message(
        &mut self,
        key: &RelayKey,
        mb: &OwnMailbox,
        plain: &[u8],
        mut changes: Changes,
    ) -> Result<(), ClientError> {
        let Some(contact) = self.repo.contact(&mb.contact_id)? else {
            return self.repo.apply(changes);
        };
        let Some(mut session) = self.repo.session(&contact.id)? else {
            self.repo.apply(changes)?;
            return self.drop_envelope(mb, "no session with this contact");
        };
        let (content, receipts) = match session.open_with_receipts(plain) {
            Ok(c) => c,
            Err(OpenError::AlreadyProcessed) => return self.repo.apply(changes),
            Err(e) => {
                self.repo.apply(changes)?;
                if forged(&e) && mb.secure_with.is_empty() {
                    // Our mailbox is secured: only the contact's key may
                    // deposit here, and what the contact seals opens.
                    self.report_misbehaving(
                        key,
                        "delivered an envelope that fails end-to-end decryption \
                         (forged, or another mailbox's)",
                    );
                }
                return self.drop_envelope(mb, &e.to_string());
            }
        };
        changes.put_session(&contact.id, &session);
        // Receipts carried along with a text (or a receipt) mean what a
        // receipt of their own would: settled in the same write.
        let mut ids: Vec<Vec<u8>> = receipts.iter().map(|id| id.to_vec()).collect();
        if let Some(Body::Receipt(r)) = &content.body {
            ids.extend(r.ids.iter().cloned());
        }
        ids.sort_unstable();
        ids.dedup();
        let delivered = self.take_receipts(&contact, &ids, &mut changes)?;
        match content.body {
            Some(Body::Text(text)) => self.on_text(&contact, &content.id, text, changes)?,
            Some(Body::Receipt(_)) | None => self.repo.apply(changes)?,
        }
        self.report.delivered += delivered.len();
        for id in delivered {
            self.emit(SyncEvent::Delivered {
                alias: contact.alias.clone(),
                id,
            });
        }
        Ok(())
    }

    fn on_text(
        &mut self,
        contact: &ContactRecord,
        id: &[u8],
        text: tropa_e2e::Text,
        mut changes: Changes,
    ) -> Result<(), ClientError> {
        let id: [u8; 16] = id
            .try_into()
            .map_err(|_| ClientError::Corrupt("message id"))?;
        // Receipt again even for a duplicate: the first receipt may be lost.
        // Owed in the same write that stores the text, so a kill before the
        // batch's receipts are queued loses none. A duplicate is a resend:
        // its sender waits for the receipt already, so it is due at once,
        // even on a metered profile.
        let seen = self.repo.message_seen(&contact.id, &id)?;
        changes.owe_receipt(&contact.id, &id, if seen { 0 } else { self.now });
        if seen {
            return self.repo.apply(changes);
        }
        let seq = self.repo.next_seq()?;
        let rec = MessageRecord {
            id: id.to_vec(),
            contact_id: contact.id.clone(),
            direction: Direction::In as i32,
            text: text.text.clone(),
            status: Status::Unread as i32,
            at: self.now,
            expires_at: expiry(self.now, text.expire_after_secs),
            seq,
            sent_at: text.sent_at,
        };
        changes.put_message(&rec);
        self.repo.apply(changes)?;
        self.report.received += 1;
        self.emit(SyncEvent::Received(MessageView {
            id: hex::encode(id),
            alias: contact.alias.clone(),
            incoming: true,
            text: text.text,
            status: MessageStatus::Unread,
            at: self.now,
            sent_at: text.sent_at,
            expires_at: rec.expires_at,
        }));
        Ok(())
    }

    /// Adds to `changes` what receipts for `ids` settle (our texts
    /// delivered, their outbox entries done) and returns the ids (hex) of
    /// the texts newly delivered, to report once `changes` is applied.
    fn take_receipts(
        &mut self,
        contact: &ContactRecord,
        ids: &[Vec<u8>],
        changes: &mut Changes,
    ) -> Result<Vec<String>, ClientError> {
        let mut delivered = Vec::new();
        for id in ids {
            let Some(mut m) = self.repo.message_by_id(&contact.id, id)? else {
                if self.repo.message_seen(&contact.id, id)? {
                    // Disappeared already; its outbox entry too.
                    changes.remove_outbox(id);
                }
                continue;
            };
            changes.remove_outbox(id);
            if m.direction == Direction::Out as i32 && m.status != Status::Delivered as i32 {
                m.status = Status::Delivered as i32;
                changes.put_message(&m);
                delivered.push(hex::encode(id));
            }
        }
        Ok(delivered)
    }

    /// Moves the receipts owed that have no text to ride on into the
    /// outbox (one envelope per contact for up to `MAX_RECEIPT_IDS` ids),
    /// each batch in one write with forgetting the receipts it carries, so
    /// they leave with the next flush and none is lost or queued twice.
    ///
    /// Left owed: receipts a waiting sealed text carries, receipts to a
    /// contact with a text that the next flush seals (they ride on it), and
    /// on a metered profile receipts held back (see
    /// [`crate::sync::MAX_RECEIPT_HOLD`]).
    pub(super) fn queue_receipts(&mut self) -> Result<(), ClientError> {
        let owed = self.repo.receipts_owed()?;
        if owed.is_empty() {
            return Ok(());
        }
        let outbox = self.repo.outbox()?;
        let carried = super::send::carried_receipts(&outbox, &[]);
        let rides: BTreeSet<&[u8]> = outbox
            .iter()
            .filter(|(key, r)| self.will_carry_receipts(key, r))
            .map(|(_, r)| r.contact_id.as_slice())
            .collect();
        let mut free: BTreeMap<Vec<u8>, Vec<ReceiptOwed>> = BTreeMap::new();
        for o in owed {
            if !rides.contains(o.contact_id.as_slice())
                && !carried.contains(&(o.contact_id.clone(), o.id.to_vec()))
            {
                free.entry(o.contact_id.clone()).or_default().push(o);
            }
        }
        if free.is_empty() {
            return Ok(());
        }
        let hold = if self.metered()? {
            Some((
                self.sends_anything(),
                self.now
                    .saturating_sub(crate::sync::MAX_RECEIPT_HOLD.as_secs()),
            ))
        } else {
            None
        };
        for (contact_id, list) in free {
            if let Some((sending, cutoff)) = hold {
                // Held until this run sends to this contact's scope anyway,
                // or until the oldest has waited long enough.
                let release = (sending && self.in_scope(&contact_id))
                    || list.iter().any(|o| o.since <= cutoff);
                if !release {
                    continue;
                }
            }
            let ids: Vec<[u8; tropa_e2e::MESSAGE_ID_LEN]> = list.iter().map(|o| o.id).collect();
            for chunk in ids.chunks(tropa_e2e::MAX_RECEIPT_IDS) {
                let content = <Content as tropa_e2e::ContentExt>::receipt(&mut self.rng, chunk)
                    .map_err(|_| ClientError::Corrupt("receipt"))?;
                let rec = crate::records::OutboxRecord::queued(
                    crate::records::OutboxKind::Receipt,
                    contact_id.clone(),
                    content.encode_to_vec(),
                    self.repo.next_seq()?,
                );
                let mut changes = Changes::new();
                changes.put_outbox(&content.id, &rec);
                for id in chunk {
                    changes.settle_receipt(&contact_id, id);
                }
                self.repo.apply(changes)?;
            }
        }
        Ok(())
    }
}

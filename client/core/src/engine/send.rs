//! Sending: the outbox, oldest first, one deposit in flight per contact so
//! their order holds. Every deposit goes this way, the Hello of an accepted
//! invitation included.
//!
//! A text or receipt is sealed in the same durable batch that advances the
//! ratchet, before anything leaves: a ratchet key is never used twice, and a
//! refused or lost deposit is retried with the same bytes. A text stays
//! until its receipt arrives and is sent again, as a new ratchet message
//! with the same id, after `resend_after` (doubling, capped).
//!
//! A text carries the receipts owed to its contact (`Plaintext.receipts`):
//! which ones is recorded with the sealed envelope, in the same batch
//! (`OutboxRecord::receipts`), and they stay owed until the relay accepts
//! that envelope. Until then no other envelope takes them; if the text
//! leaves the outbox unsent (its own receipt came, it disappeared), they
//! are free again. So a receipt is forgotten only once an envelope carrying
//! it is on the relay, and a kill at any point loses none: at worst it is
//! sent twice, which the recipient ignores.

use std::collections::BTreeSet;

use bytes::Bytes;
use prost::Message as _;
use tropa_e2e::{Content, ContentExt as _, MESSAGE_ID_LEN};
use tropa_proto::RelayAddress;

use super::links::RelayKey;
use super::{Engine, Op, Outcome, Reply, Request};
use crate::error::{ClientError, RelayError};
use crate::records::{
    ContactRecord, ContactState, Direction, MessageRecord, OutboxKind, OutboxRecord, Status, expiry,
};
use crate::repo::Changes;
use crate::sync::SyncEvent;

/// Longest wait after repeated refusals of a deposit, seconds.
const MAX_REFUSAL_BACKOFF: u64 = 3600;

impl Engine {
    /// Queues a text for `alias` (durably, with the message shown as
    /// queued).
    pub(super) fn queue_text(&mut self, alias: &str, text: &str) -> Result<Outcome, ClientError> {
        let Some(c) = self.repo.contact_by_alias(alias)? else {
            return Err(self.repo.unknown_contact(alias)?);
        };
        if c.state != ContactState::Established as i32 {
            return Err(ClientError::NotEstablished(alias.to_owned()));
        }
        if c.broken {
            return Err(ClientError::ContactBroken(alias.to_owned()));
        }
        if text.trim().is_empty() {
            return Err(ClientError::EmptyText);
        }
        let mut content =
            Content::text_expiring(&mut self.rng, text, c.timer_secs).map_err(|_| {
                ClientError::TooLong {
                    max: tropa_e2e::MAX_TEXT_LEN,
                }
            })?;
        if let Some(tropa_e2e::Body::Text(t)) = &mut content.body {
            t.sent_at = self.now;
        }
        let seq = self.repo.next_seq()?;
        let msg = MessageRecord {
            id: content.id.clone(),
            contact_id: c.id.clone(),
            direction: Direction::Out as i32,
            text: text.to_owned(),
            status: Status::Queued as i32,
            at: self.now,
            expires_at: expiry(self.now, c.timer_secs),
            seq,
            sent_at: self.now,
        };
        let out =
            OutboxRecord::queued(OutboxKind::Text, c.id.clone(), content.encode_to_vec(), seq);
        let mut changes = Changes::new();
        changes.put_message(&msg).put_outbox(&content.id, &out);
        self.repo.apply(changes)?;
        Ok(Outcome::Queued {
            id: hex::encode(&content.id),
        })
    }

    fn is_due(&self, key: &[u8], r: &OutboxRecord) -> bool {
        // A run that does not wait tries a refused entry once; later runs
        // (or a waiting one, after the backoff) try again.
        if !self.opts.is_waiting() && self.refused_now.contains(key) {
            return false;
        }
        if r.failures > 0 {
            let wait = (self.opts.refusal_backoff.as_secs() << (r.failures - 1).min(8))
                .min(MAX_REFUSAL_BACKOFF);
            self.now >= r.refused_at.saturating_add(wait)
        } else if r.kind == OutboxKind::Text as i32 && r.attempts > 0 {
            // Sent, no receipt yet. The time stored at the deposit follows
            // that run's `resend_after`; a run asked for a shorter one
            // (`sync --resend-after 0`) resends sooner.
            let sooner = r.sent_at.saturating_add(self.resend_interval(r.attempts));
            self.now >= r.next_try_at.min(sooner)
        } else {
            self.now >= r.next_try_at
        }
    }

    /// How long after its last deposit a text accepted `attempts` times is
    /// sent again if no receipt comes: `resend_after`, then twice as long
    /// each time, capped.
    fn resend_interval(&self, attempts: u32) -> u64 {
        let base = self.opts.resend_after.as_secs();
        let factor = 1u64 << attempts.saturating_sub(1).min(16);
        base.saturating_mul(factor)
            .min(crate::sync::MAX_RESEND_INTERVAL.as_secs())
    }

    /// When a text accepted `attempts` times (now) is sent again.
    fn resend_at(&self, attempts: u32) -> u64 {
        self.now.saturating_add(self.resend_interval(attempts))
    }

    /// Deposits every due outbox entry in scope, oldest first; a contact
    /// with a deposit in flight, or whose relay is not up, waits (and its
    /// relay is connected).
    pub(super) fn flush_outbox(&mut self) -> Result<(), ClientError> {
        let mut blocked: Vec<Vec<u8>> = self.sending.iter().cloned().collect();
        for (key, mut r) in self.repo.outbox()? {
            if blocked.contains(&r.contact_id) || !self.in_scope(&r.contact_id) {
                continue;
            }
            if !self.is_due(&key, &r) {
                // Waiting for its receipt or its backoff; later entries of
                // the contact go ahead.
                continue;
            }
            let Some(contact) = self.repo.contact(&r.contact_id)? else {
                // The contact is gone: so is the point of sending.
                let mut changes = Changes::new();
                changes.remove_outbox(&key);
                self.repo.apply(changes)?;
                continue;
            };
            if contact.state != ContactState::Established as i32 || contact.broken {
                continue;
            }
            let Ok(address) = contact.send_relay.parse::<RelayAddress>() else {
                continue;
            };
            blocked.push(r.contact_id.clone());
            let link = RelayKey::on(&address, self.contact_group(&r.contact_id));
            if !self.ensure_link(&link, &address) {
                continue;
            }
            if r.sealed.is_empty() {
                match OutboxKind::try_from(r.kind) {
                    Ok(OutboxKind::Handshake) => r.sealed.clone_from(&r.payload),
                    _ => {
                        if !self.seal_into(&contact, &key, &mut r)? {
                            let mut changes = Changes::new();
                            changes.remove_outbox(&key);
                            self.repo.apply(changes)?;
                            continue;
                        }
                    }
                }
            }
            self.sending.insert(r.contact_id.clone());
            let id = self.new_op(
                link.clone(),
                Op::Deposit {
                    key: key.clone(),
                    contact_id: r.contact_id.clone(),
                },
            );
            let signer = self.deposit_key(&contact);
            self.out.push(super::Action::Request {
                op: id,
                relay: link,
                request: Request::Deposit {
                    sender_id: contact.send_sender_id.clone(),
                    envelope: Bytes::copy_from_slice(&r.sealed),
                    signer,
                },
            });
        }
        Ok(())
    }

    /// Seals the entry's content with the contact's session and stores the
    /// advanced session and the sealed envelope in one durable batch; a
    /// text carries the receipts owed to the contact (see the module docs).
    /// Returns `false` if the entry cannot be sealed (then it is useless).
    fn seal_into(
        &mut self,
        contact: &ContactRecord,
        key: &[u8],
        r: &mut OutboxRecord,
    ) -> Result<bool, ClientError> {
        let Some(mut session) = self.repo.session(&contact.id)? else {
            return Ok(false);
        };
        let Ok(content) = Content::decode(r.payload.as_slice()) else {
            return Ok(false);
        };
        let receipts = if r.kind == OutboxKind::Text as i32 {
            self.receipts_to_carry(&contact.id, key, r)?
        } else {
            Vec::new()
        };
        let Ok((env, n)) = session.seal_with_receipts(&mut self.rng, &content, &receipts) else {
            return Ok(false);
        };
        r.sealed = env.as_bytes().to_vec();
        r.receipts = receipts[..n].iter().map(|id| id.to_vec()).collect();
        let mut changes = Changes::new();
        changes
            .put_session(&contact.id, &session)
            .put_outbox(key, r);
        self.repo.apply(changes)?;
        Ok(true)
    }

    pub(super) fn on_deposited(
        &mut self,
        key: &[u8],
        contact_id: &[u8],
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        self.sending.remove(contact_id);
        let hello = self.hellos.remove(key);
        let Some(mut r) = self.repo.outbox_entry(key)? else {
            return self.flush_outbox();
        };
        let contact = self.repo.contact(contact_id)?;
        let alias = contact
            .as_ref()
            .map(|c| c.alias.clone())
            .unwrap_or_default();
        match result {
            Ok(_) => {
                self.report.deposited += 1;
                let mut changes = Changes::new();
                if r.kind == OutboxKind::Text as i32 {
                    // The receipts it carried are on the relay now. (Kept
                    // in `r.receipts`: a resend carries them again.)
                    for id in &r.receipts {
                        if let Ok(id) = <[u8; MESSAGE_ID_LEN]>::try_from(id.as_slice()) {
                            changes.settle_receipt(contact_id, &id);
                        }
                    }
                    r.attempts += 1;
                    r.sent_at = self.now;
                    r.failures = 0;
                    // A resend is a new ratchet message with the same id.
                    r.sealed.clear();
                    r.next_try_at = self.resend_at(r.attempts);
                    changes.put_outbox(key, &r);
                    if let Some(mut m) = self.repo.message_by_id(contact_id, key)?
                        && m.status == Status::Queued as i32
                    {
                        m.status = Status::Sent as i32;
                        changes.put_message(&m);
                        self.emit(SyncEvent::Sent {
                            alias: alias.clone(),
                            id: hex::encode(key),
                        });
                    }
                } else {
                    changes.remove_outbox(key);
                }
                self.repo.apply(changes)?;
                if self.metered()? {
                    // This run sends: held receipts may go along now.
                    self.queue_receipts()?;
                }
                if let Some((ticket, alias)) = hello {
                    self.complete(
                        ticket,
                        Ok(Outcome::Accepted {
                            alias,
                            delivered: true,
                        }),
                    );
                }
            }
            Err(e) if e.refusal().is_some_and(crate::error::Refusal::is_permanent) => {
                let is_hello = r.kind == OutboxKind::Handshake as i32;
                self.on_refused_for_good(contact_id, is_hello)?;
                if let Some((ticket, _)) = hello {
                    self.complete(
                        ticket,
                        if is_hello {
                            Err(ClientError::InvitationRefused)
                        } else {
                            Err(ClientError::ContactBroken(alias))
                        },
                    );
                }
            }
            Err(e) if e.refusal().is_some() => {
                // Refused (quota, rate limit, ...): keep the sealed
                // envelope and retry it later, without burning ratchet
                // keys on every attempt.
                r.failures += 1;
                r.refused_at = self.now;
                self.refused_now.insert(key.to_vec());
                let mut changes = Changes::new();
                changes.put_outbox(key, &r);
                self.repo.apply(changes)?;
                let why = format!("{alias}: {e}");
                if !self.report.refused.contains(&why) {
                    self.report.refused.push(why);
                }
                self.emit(SyncEvent::Refused {
                    alias: alias.clone(),
                    error: e,
                });
                if let Some((ticket, alias)) = hello {
                    self.complete(
                        ticket,
                        Ok(Outcome::Accepted {
                            alias,
                            delivered: false,
                        }),
                    );
                }
            }
            Err(_) => {
                // Network trouble (the link is already marked down): retry
                // the same bytes once the relay is back.
                if let Some((ticket, alias)) = hello {
                    self.complete(
                        ticket,
                        Ok(Outcome::Accepted {
                            alias,
                            delivered: false,
                        }),
                    );
                }
            }
        }
        self.flush_outbox()
    }
}

/// The receipts carried by sealed envelopes still waiting in `outbox` (not
/// yet accepted by a relay), other than entry `except`'s, as (contact id,
/// message id).
pub(super) fn carried_receipts(
    outbox: &[(Vec<u8>, OutboxRecord)],
    except: &[u8],
) -> BTreeSet<(Vec<u8>, Vec<u8>)> {
    outbox
        .iter()
        .filter(|(key, r)| !r.sealed.is_empty() && key.as_slice() != except)
        .flat_map(|(_, r)| {
            r.receipts
                .iter()
                .map(|id| (r.contact_id.clone(), id.clone()))
        })
        .collect()
}

impl Engine {
    /// Whether the profile is on metered data (its receipts may wait).
    pub(super) fn metered(&self) -> Result<bool, ClientError> {
        Ok(self.repo.profile()?.is_some_and(|p| p.metered))
    }

    /// Whether this run deposits something (or did already).
    pub(super) fn sends_anything(&self) -> bool {
        self.report.deposited > 0
            || self
                .ops
                .values()
                .any(|(_, op)| matches!(op, Op::Deposit { .. }))
    }

    /// Whether outbox entry `key` is a text that the next flush seals anew
    /// (new, or due for a resend), so the receipts owed to its contact can
    /// ride on it instead of taking an envelope of their own.
    pub(super) fn will_carry_receipts(&self, key: &[u8], r: &OutboxRecord) -> bool {
        r.kind == OutboxKind::Text as i32
            && r.sealed.is_empty()
            && (r.attempts == 0 || self.is_due(key, r))
    }

    /// The receipts text `key` for `contact_id` carries: every receipt owed
    /// to the contact that no other waiting envelope carries (oldest
    /// first), then the ones its last accepted attempt carried (a resend
    /// may need them again: that attempt may be lost). `seal_with_receipts`
    /// takes as many as fit.
    fn receipts_to_carry(
        &self,
        contact_id: &[u8],
        key: &[u8],
        r: &OutboxRecord,
    ) -> Result<Vec<[u8; MESSAGE_ID_LEN]>, ClientError> {
        let carried = carried_receipts(&self.repo.outbox()?, key);
        let mut owed: Vec<_> = self
            .repo
            .receipts_owed()?
            .into_iter()
            .filter(|o| {
                o.contact_id == contact_id
                    && !carried.contains(&(o.contact_id.clone(), o.id.to_vec()))
            })
            .collect();
        owed.sort_by_key(|o| o.since);
        let mut ids: Vec<[u8; MESSAGE_ID_LEN]> = owed.into_iter().map(|o| o.id).collect();
        for id in &r.receipts {
            if let Ok(id) = <[u8; MESSAGE_ID_LEN]>::try_from(id.as_slice())
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids.truncate(tropa_e2e::MAX_RECEIPT_IDS);
        Ok(ids)
    }
}

//! The requester's side: a contact request to an organisation's address,
//! made durably with our own one-time invitation and deposited unsigned,
//! retried byte for byte; and the rule that only the address's owner may
//! answer it (S10).

use bytes::Bytes;
use tropa_e2e::{IdentityPublic, Invitation, RequestError, seal_request};
use tropa_proto::RelayAddress;
use x25519_dalek::PublicKey;
use zeroize::Zeroize as _;

use super::super::{Engine, Op, Outcome, Reply, Request, Ticket};
use super::{IntakeOp, MAX_REQUEST_BACKOFF, MailboxKeys, NewRequest, misbehaved, random16};
use crate::client::{IntakeError, check_alias};
use crate::error::{ClientError, Refusal, RelayError};
use crate::records::{ContactRecord, ContactState, PendingRecord, RequestOutRecord};
use crate::repo::Changes;
use crate::sync::SyncEvent;

impl Engine {
    // ----- requester ------------------------------------------------------

    pub(in crate::engine) fn check_request(
        &self,
        address: &str,
        alias: &str,
        text: &str,
    ) -> Result<Invitation, ClientError> {
        check_alias(alias)?;
        let inv = Invitation::from_link(address)?;
        if inv.is_expired(self.now) {
            return Err(IntakeError::AddressExpired.into());
        }
        if inv.inviter() == self.identity.public() {
            return Err(IntakeError::OwnAddress.into());
        }
        if text.trim().is_empty() {
            return Err(ClientError::EmptyText);
        }
        if text.len() > tropa_e2e::MAX_REQUEST_TEXT_LEN {
            return Err(ClientError::TooLong {
                max: tropa_e2e::MAX_REQUEST_TEXT_LEN,
            });
        }
        if self.repo.contact_by_alias(alias)?.is_some() {
            return Err(ClientError::AliasTaken(alias.to_owned()));
        }
        Ok(inv)
    }

    /// Sends a contact request to the address `address` (its invitation as
    /// a long link), calling its owner `alias`.
    pub(in crate::engine) fn send_request(
        &mut self,
        ticket: Ticket,
        address: &str,
        alias: &str,
        text: &str,
    ) -> Result<(), ClientError> {
        let inv = match self.check_request(address, alias, text) {
            Ok(inv) => inv,
            Err(e) => {
                self.complete(ticket, Err(e));
                return Ok(());
            }
        };
        let keys = MailboxKeys::generate(&mut self.rng);
        let request = Request::Create {
            auth: keys.auth.clone(),
            dh: PublicKey::from(&keys.dh),
            password: self.relay.password.clone(),
        };
        let relay = self.relay.clone();
        let new = NewRequest {
            ticket,
            alias: alias.to_owned(),
            text: text.to_owned(),
            address: inv,
            keys,
        };
        self.request(
            &relay,
            Op::Intake(IntakeOp::RequestMailbox(Box::new(new))),
            request,
            true,
        )
    }

    /// Our mailbox for the reply exists: make our invitation, seal the
    /// request, keep everything in one batch, then deposit.
    pub(in crate::engine) fn request_mailbox_created(
        &mut self,
        new: NewRequest,
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        let NewRequest {
            ticket,
            alias,
            mut text,
            address,
            keys,
        } = new;
        let created = match result {
            Ok(Reply::Created(c)) => c,
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(_) => misbehaved("mailbox"),
                };
                text.zeroize();
                self.complete(ticket, Err(ClientError::Relay(e)));
                return Ok(());
            }
        };
        let relay = self.relay.clone();
        let made = self.make_invitation(&relay, &created, crate::client::INVITE_TTL_SECS);
        let Ok((reply_sender, pending, own_invitation)) = made else {
            self.complete(ticket, Err(ClientError::Corrupt("invitation parameters")));
            return Ok(());
        };
        let sealed = seal_request(
            &mut self.rng,
            &self.identity,
            &address,
            &own_invitation,
            &text,
            self.now,
        );
        text.zeroize();
        let envelope = match sealed {
            Ok(env) => env,
            Err(e) => {
                let e = match e {
                    RequestError::TextTooLong { max, .. } => ClientError::TooLong { max },
                    RequestError::AddressExpired => IntakeError::AddressExpired.into(),
                    RequestError::OwnAddress => IntakeError::OwnAddress.into(),
                    _ => ClientError::Corrupt("contact request"),
                };
                self.complete(ticket, Err(e));
                return Ok(());
            }
        };
        let contact_id = random16(&mut self.rng);
        let mut contact = ContactRecord::default();
        contact.id.clone_from(&contact_id);
        contact.alias.clone_from(&alias);
        contact.state = ContactState::Invited as i32;
        contact.send_auth_secret = reply_sender.to_bytes().to_vec();
        contact.recv_mailbox = created.recipient_id.to_vec();
        contact.created_at = self.now;
        let invite_id = pending.id();
        let mut own = keys.record(&self.relay, &created);
        own.contact_id.clone_from(&contact_id);
        own.invite_id = invite_id.to_vec();
        let mut prec = PendingRecord::default();
        prec.pending = pending.to_bytes().to_vec();
        prec.contact_id.clone_from(&contact_id);
        let out = RequestOutRecord {
            relay: address.relay().to_string(),
            sender_id: address.sender_id().to_vec(),
            envelope: envelope.as_bytes().to_vec(),
            failures: 0,
            refused_at: 0,
        };
        let mut c = Changes::new();
        c.put_contact(&contact)
            .put_mailbox(&own)
            .put_pending_invitation(&invite_id, &prec)
            .expect_identity(&invite_id, &address.inviter().to_bytes())
            .put_request_out(&contact_id, &out);
        self.repo.apply(c)?;
        self.listen(&own)?;
        self.add_to_scope(&contact_id);
        self.intake.sending.insert(contact_id, ticket);
        self.flush_requests()
    }

    /// Whether a request deposit for `contact_id` is in flight.
    pub(in crate::engine) fn request_in_flight(&self, contact_id: &[u8]) -> bool {
        self.ops.values().any(|(_, op)| {
            matches!(op, Op::Intake(IntakeOp::Deposit { contact_id: c }) if c == contact_id)
        })
    }

    /// Deposits every request of ours that is due, in scope and not in
    /// flight.
    pub(in crate::engine) fn flush_requests(&mut self) -> Result<(), ClientError> {
        for (contact_id, r) in self.repo.requests_out()? {
            if !self.in_scope(&contact_id) || self.request_in_flight(&contact_id) {
                continue;
            }
            if self.repo.contact(&contact_id)?.is_none() {
                // Cancelled or expired: nothing to ask for any more.
                let mut c = Changes::new();
                c.remove_request_out(&contact_id);
                self.repo.apply(c)?;
                continue;
            }
            let waiting = self.intake.sending.contains_key(&contact_id);
            if !waiting {
                if !self.opts.is_waiting() && self.intake.tried.contains(&contact_id) {
                    continue;
                }
                if r.failures > 0 {
                    let wait = (self.opts.refusal_backoff.as_secs() << (r.failures - 1).min(8))
                        .min(MAX_REQUEST_BACKOFF);
                    if self.now < r.refused_at.saturating_add(wait) {
                        continue;
                    }
                }
            }
            let Ok(relay) = r.relay.parse::<RelayAddress>() else {
                continue;
            };
            self.request(
                &relay,
                Op::Intake(IntakeOp::Deposit {
                    contact_id: contact_id.clone(),
                }),
                Request::Deposit {
                    sender_id: r.sender_id.clone(),
                    envelope: Bytes::copy_from_slice(&r.envelope),
                    // An intake mailbox takes unsigned deposits only.
                    signer: None,
                },
                waiting,
            )?;
        }
        Ok(())
    }

    pub(in crate::engine) fn on_request_deposited(
        &mut self,
        contact_id: &[u8],
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        let ticket = self.intake.sending.remove(contact_id);
        let alias = self
            .repo
            .contact(contact_id)?
            .map(|c| c.alias.clone())
            .unwrap_or_default();
        let outcome = |delivered| {
            Ok(Outcome::RequestSent {
                alias: alias.clone(),
                delivered,
            })
        };
        match result {
            Ok(_) => {
                self.report.deposited += 1;
                let mut c = Changes::new();
                c.remove_request_out(contact_id);
                self.repo.apply(c)?;
                if let Some(t) = ticket {
                    self.complete(t, outcome(true));
                }
            }
            Err(e) if e.refusal().is_some_and(Refusal::is_permanent) => {
                // The address's mailbox is gone: the address was deleted
                // (or expired). Our half-made contact goes.
                let mut c = Changes::new();
                c.remove_request_out(contact_id);
                self.repo.apply(c)?;
                if let Some(alias) = self.forget_contact(contact_id)? {
                    self.report.removed.push(alias.clone());
                    self.emit(SyncEvent::ContactRemoved { alias });
                }
                if let Some(t) = ticket {
                    self.complete(t, Err(IntakeError::AddressGone.into()));
                }
            }
            Err(e) => {
                self.intake.tried.insert(contact_id.to_vec());
                if e.refusal().is_some()
                    && let Some(mut r) = self.repo.request_out(contact_id)?
                {
                    // Rate-limited (the address takes so many requests an
                    // hour), full, busy: the same bytes again later.
                    r.failures = r.failures.saturating_add(1);
                    r.refused_at = self.now;
                    let mut c = Changes::new();
                    c.put_request_out(contact_id, &r);
                    self.repo.apply(c)?;
                    let why = format!("{alias}: {e}");
                    if !self.report.refused.contains(&why) {
                        self.report.refused.push(why);
                    }
                    self.emit(SyncEvent::Refused {
                        alias: alias.clone(),
                        error: e,
                    });
                }
                if let Some(t) = ticket {
                    self.complete(t, outcome(false));
                }
            }
        }
        Ok(())
    }

    /// Whether a Hello on pending invitation `invite_id` from `joiner` may
    /// complete it: an invitation sent with a contact request takes the
    /// address's owner only (S10).
    pub(in crate::engine) fn hello_expected(
        &self,
        invite_id: &[u8],
        joiner: &IdentityPublic,
    ) -> Result<bool, ClientError> {
        Ok(match self.repo.expected_identity(invite_id)? {
            None => true,
            Some(id) => id.as_slice() == joiner.to_bytes().as_slice(),
        })
    }
}

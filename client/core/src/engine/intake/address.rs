//! The owner's address: made (an intake mailbox, then the link data, then
//! the records), its link data put again before the relay drops it, and
//! deleted (secrets at once, the relay's copies when it confirms).

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tropa_e2e::{
    Invitation, InviteParams, LinkKind, LinkSecret, PendingInvitation, ShortLink, seal_link_data,
};
use tropa_proto::RelayAddress;
use x25519_dalek::PublicKey;
use zeroize::Zeroize as _;

use super::super::{Engine, MailboxId, Op, Outcome, Reply, Request, Ticket};
use super::{
    ADDRESS_TTL_SECS, IntakeOp, MailboxKeys, NewAddress, Part, Withdrawal, address_link, gone,
    misbehaved,
};
use crate::client::{IntakeError, signing_key};
use crate::error::{ClientError, Refusal, RelayError};
use crate::records::AddressRecord;
use crate::repo::Changes;

impl Engine {
    // ----- owner: the address -------------------------------------------

    pub(in crate::engine) fn create_address(&mut self, ticket: Ticket) -> Result<(), ClientError> {
        if self.intake.creating || self.repo.active_address()?.is_some() {
            self.complete(ticket, Err(IntakeError::AddressExists.into()));
            return Ok(());
        }
        self.intake.creating = true;
        let keys = MailboxKeys::generate(&mut self.rng);
        let request = Request::CreateIntake {
            auth: keys.auth.clone(),
            dh: PublicKey::from(&keys.dh),
            password: self.relay.password.clone(),
        };
        let relay = self.relay.clone();
        self.request(
            &relay,
            Op::Intake(IntakeOp::AddressMailbox { ticket, keys }),
            request,
            true,
        )
    }

    pub(in crate::engine) fn fail_create(&mut self, ticket: Ticket, e: RelayError) {
        self.intake.creating = false;
        let e = match e.refusal() {
            // An older relay does not know intake mailboxes or links.
            Some(Refusal::Invalid) => IntakeError::RelayTooOld.into(),
            _ => ClientError::Relay(e),
        };
        self.complete(ticket, Err(e));
    }

    pub(in crate::engine) fn address_mailbox_created(
        &mut self,
        ticket: Ticket,
        keys: &MailboxKeys,
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        let created = match result {
            Ok(Reply::Created(c)) => c,
            Ok(_) => {
                self.fail_create(ticket, misbehaved("mailbox"));
                return Ok(());
            }
            Err(e) => {
                self.fail_create(ticket, e);
                return Ok(());
            }
        };
        // Requests need no reply mailbox on the address's side: this key
        // only fills the invitation's field.
        let unused_reply_key = SigningKey::generate(&mut self.rng);
        let made = PendingInvitation::create(
            &mut self.rng,
            &self.identity,
            InviteParams {
                relay: self.relay.without_password(),
                sender_id: created.sender_id.to_vec(),
                reply_sender_auth: unused_reply_key.verifying_key().to_bytes(),
                now: self.now,
                ttl_secs: ADDRESS_TTL_SECS,
            },
        );
        let Ok((pending, invitation)) = made else {
            self.intake.creating = false;
            self.complete(ticket, Err(ClientError::Corrupt("address parameters")));
            return Ok(());
        };
        let secret = LinkSecret::generate(&mut self.rng);
        let link = ShortLink::new(LinkKind::Address, &self.relay, secret);
        let Ok(data) = seal_link_data(&mut self.rng, link.secret(), LinkKind::Address, &invitation)
        else {
            self.intake.creating = false;
            self.complete(ticket, Err(ClientError::Corrupt("address too large")));
            return Ok(());
        };
        let owner = SigningKey::generate(&mut self.rng);
        let mut rec = AddressRecord::default();
        rec.mailbox = created.recipient_id.to_vec();
        rec.relay = self.relay.to_string();
        rec.pending = pending.to_bytes().to_vec();
        rec.invitation = invitation.to_encoded();
        rec.link_secret = link.secret().as_bytes().to_vec();
        rec.link_owner_secret = owner.to_bytes().to_vec();
        rec.created_at = self.now;
        let own = keys.record(&self.relay, &created);
        let request = Request::PutLink {
            locator: link.locator(),
            data: Bytes::copy_from_slice(&data),
            owner,
            ttl_secs: u32::try_from(ADDRESS_TTL_SECS).unwrap_or(u32::MAX),
            password: self.relay.password.clone(),
        };
        let relay = self.relay.clone();
        let new = NewAddress {
            ticket,
            rec,
            own,
            link: link.to_string(),
        };
        self.request(
            &relay,
            Op::Intake(IntakeOp::AddressLink(Box::new(new))),
            request,
            true,
        )
    }

    /// The relay has the new address's link data: keep the address (only
    /// now, so an address is never shown that nobody can reach).
    pub(in crate::engine) fn address_link_stored(
        &mut self,
        new: NewAddress,
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        let NewAddress {
            ticket,
            mut rec,
            own,
            link,
        } = new;
        let ttl = match result {
            Ok(Reply::LinkStored(ttl)) => ttl,
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(_) => misbehaved("link"),
                };
                // The new mailbox is of no use: delete it (best effort; an
                // unused one expires on its own).
                if let (Ok(relay), Some(auth), Ok(rid)) = (
                    own.relay.parse::<RelayAddress>(),
                    signing_key(&own.auth_secret),
                    MailboxId::try_from(own.recipient_id.as_slice()),
                ) {
                    self.request(
                        &relay,
                        Op::Delete,
                        Request::Delete { mailbox: rid, auth },
                        false,
                    )?;
                }
                self.fail_create(ticket, e);
                return Ok(());
            }
        };
        rec.link_stored_at = self.now;
        rec.link_ttl_secs = ttl.as_secs();
        let mut c = Changes::new();
        c.put_address(&rec).put_mailbox(&own);
        self.repo.apply(c)?;
        self.intake.creating = false;
        self.listen(&own)?;
        self.complete(ticket, Ok(Outcome::AddressCreated { link }));
        Ok(())
    }

    /// Puts the address's link data again once half of its time on the
    /// relay has passed (or if it was never stored).
    pub(in crate::engine) fn refresh_address_link(&mut self) -> Result<(), ClientError> {
        if self.intake.refreshing {
            return Ok(());
        }
        let Some(rec) = self.repo.active_address()? else {
            return Ok(());
        };
        let due = rec.link_stored_at == 0
            || self.now >= rec.link_stored_at.saturating_add(rec.link_ttl_secs / 2);
        if !due {
            return Ok(());
        }
        let link = address_link(&rec)?;
        let invitation = Invitation::from_encoded(&rec.invitation)
            .map_err(|_| ClientError::Corrupt("address invitation"))?;
        let data = seal_link_data(&mut self.rng, link.secret(), LinkKind::Address, &invitation)
            .map_err(|_| ClientError::Corrupt("address invitation"))?;
        let owner =
            signing_key(&rec.link_owner_secret).ok_or(ClientError::Corrupt("address link"))?;
        let relay: RelayAddress = rec
            .relay
            .parse()
            .map_err(|_| ClientError::Corrupt("address relay"))?;
        self.intake.refreshing = true;
        let request = Request::PutLink {
            locator: link.locator(),
            data: Bytes::copy_from_slice(&data),
            owner,
            ttl_secs: u32::try_from(ADDRESS_TTL_SECS).unwrap_or(u32::MAX),
            password: relay.password.clone(),
        };
        self.request(
            &relay,
            Op::Intake(IntakeOp::Refresh {
                mailbox: rec.mailbox.clone(),
            }),
            request,
            false,
        )
    }

    pub(in crate::engine) fn delete_address(&mut self, ticket: Ticket) -> Result<(), ClientError> {
        let Some(mut rec) = self.repo.active_address()? else {
            self.complete(ticket, Err(IntakeError::NoAddress.into()));
            return Ok(());
        };
        // First what must go at once: the secrets that open requests, and
        // the requests waiting. The relay's copies go next.
        rec.withdrawn = true;
        rec.pending.zeroize();
        rec.pending.clear();
        rec.invitation.clear();
        let mut c = Changes::new();
        c.put_address(&rec);
        for r in self.repo.requests()? {
            c.remove_request(&r.id);
        }
        for id in self.repo.request_ids()? {
            c.forget_request_id(&id);
        }
        self.repo.apply(c)?;
        self.withdraw(&rec, Some(ticket))
    }

    /// Asks the relay to delete what is left of a deleted address.
    pub(in crate::engine) fn withdraw(
        &mut self,
        rec: &AddressRecord,
        ticket: Option<Ticket>,
    ) -> Result<(), ClientError> {
        if self.intake.withdrawing.contains_key(&rec.mailbox) {
            if let Some(t) = ticket {
                self.complete(t, Ok(Outcome::AddressDeleted { confirmed: false }));
            }
            return Ok(());
        }
        let relay: RelayAddress = rec
            .relay
            .parse()
            .map_err(|_| ClientError::Corrupt("address relay"))?;
        let mailbox = self.repo.mailbox(&rec.mailbox)?;
        let mut parts = Vec::new();
        if !rec.link_deleted
            && let (Ok(link), Some(owner)) =
                (address_link(rec), signing_key(&rec.link_owner_secret))
        {
            parts.push((
                Part::Link,
                Request::DeleteLink {
                    locator: link.locator(),
                    owner,
                },
            ));
        }
        if let Some(mb) = &mailbox
            && let Ok(rid) = MailboxId::try_from(mb.recipient_id.as_slice())
        {
            let auth = self.mailbox_key(mb)?;
            // No longer listened to: what the relay says about it now is
            // the deletion's business.
            if let Some((key, _)) = self.mailbox_link(mb)? {
                self.set_sub(&key, rid, None);
            }
            parts.push((Part::Mailbox, Request::Delete { mailbox: rid, auth }));
        }
        if parts.is_empty() {
            let mut c = Changes::new();
            c.remove_address(&rec.mailbox);
            self.repo.apply(c)?;
            if let Some(t) = ticket {
                self.complete(t, Ok(Outcome::AddressDeleted { confirmed: true }));
            }
            return Ok(());
        }
        self.intake.withdrawing.insert(
            rec.mailbox.clone(),
            Withdrawal {
                ticket,
                waiting: u8::try_from(parts.len()).unwrap_or(2),
                confirmed: true,
            },
        );
        for (part, request) in parts {
            let op = Op::Intake(IntakeOp::Withdraw {
                mailbox: rec.mailbox.clone(),
                part,
            });
            self.request(&relay, op, request, ticket.is_some())?;
        }
        Ok(())
    }

    pub(in crate::engine) fn on_withdrawn(
        &mut self,
        mailbox: &[u8],
        part: Part,
        result: &Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        let done = match result {
            Ok(_) => true,
            Err(e) => gone(e, part),
        };
        if done && let Some(mut rec) = self.repo.address(mailbox)? {
            let mut c = Changes::new();
            let mailbox_left = match part {
                Part::Link => {
                    rec.link_deleted = true;
                    self.repo.mailbox(mailbox)?.is_some()
                }
                Part::Mailbox => {
                    c.remove_mailbox(mailbox);
                    false
                }
            };
            if rec.link_deleted && !mailbox_left {
                c.remove_address(mailbox);
            } else {
                c.put_address(&rec);
            }
            self.repo.apply(c)?;
        }
        let Some(w) = self.intake.withdrawing.get_mut(mailbox) else {
            return Ok(());
        };
        w.waiting = w.waiting.saturating_sub(1);
        w.confirmed &= done;
        if w.waiting == 0
            && let Some(w) = self.intake.withdrawing.remove(mailbox)
            && let Some(ticket) = w.ticket
        {
            self.complete(
                ticket,
                Ok(Outcome::AddressDeleted {
                    confirmed: w.confirmed,
                }),
            );
        }
        Ok(())
    }
}

//! Making and accepting invitations, and forgetting those nobody used.
//!
//! Invite: create a mailbox on our relay → make the invitation and its
//! short link, store the link data on the relay (`PutLink`, owned by a
//! fresh key) → store the one-time secrets, the link's locator and owner
//! key, a placeholder contact and the mailbox → both links. A relay that
//! does not store link data (older) gets the long link only. The link data
//! is deleted (`DeleteLink`) once the invitation is used, cancelled or
//! expired. Accept: create our reply mailbox → secure it for the inviter →
//! start the session and queue the Hello in the outbox, which delivers it
//! like any other envelope. (A short link is resolved into its invitation
//! before it gets here: [`crate::client::shortlinks`].) The link data's
//! life on the relay is in [`invite_link`].

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};
use tropa_e2e::{
    Hello, IdentityPublic, Invitation, InviteParams, LinkKind, PendingInvitation, Session,
    ShortLink, seal_link_data,
};
use tropa_proto::{LINK_LOCATOR_LEN, RelayAddress};
use tropa_relay_client::CreatedMailbox;
use x25519_dalek::{PublicKey, StaticSecret};

use super::links::RelayKey;
use super::{Engine, MailboxId, Mode, Op, Outcome, Reply, Request, Ticket};
use crate::client::{check_alias, signing_key};
use crate::error::{ClientError, Refusal, RelayError};
use crate::records::{
    ContactRecord, ContactState, OutboxKind, OutboxRecord, OwnMailbox, PendingRecord,
};
use crate::repo::Changes;
use crate::sync::SyncEvent;

mod invite_link;
pub(super) use invite_link::LinkFor;

/// Fresh keys for a new mailbox of ours.
pub(super) struct NewMailbox {
    auth: SigningKey,
    dh: StaticSecret,
    /// The relay it is made on (one of the profile's, chosen at random).
    relay: RelayAddress,
}

impl NewMailbox {
    fn generate(rng: &mut rand::rngs::StdRng, relay: RelayAddress) -> Self {
        Self {
            auth: SigningKey::generate(rng),
            dh: StaticSecret::random_from_rng(rng),
            relay,
        }
    }

    fn request(&self) -> Request {
        Request::Create {
            auth: self.auth.clone(),
            dh: PublicKey::from(&self.dh),
            password: self.relay.password.clone(),
        }
    }

    fn record(&self, created: &CreatedMailbox, contact_id: &[u8], invite_id: &[u8]) -> OwnMailbox {
        OwnMailbox {
            relay: self.relay.to_string(),
            recipient_id: created.recipient_id.to_vec(),
            auth_secret: self.auth.to_bytes().to_vec(),
            dh_secret: self.dh.to_bytes().to_vec(),
            relay_dh_pub: created.relay_dh_pub.to_vec(),
            contact_id: contact_id.to_vec(),
            invite_id: invite_id.to_vec(),
            secure_with: Vec::new(),
        }
    }
}

/// What a mailbox is being created for. (Few are ever in flight, so the
/// size of a variant does not matter.)
#[allow(clippy::large_enum_variant)]
pub(super) enum CreateFor {
    Invite {
        ticket: Ticket,
        alias: String,
        ttl_secs: u64,
        keys: NewMailbox,
    },
    Accept(Box<AcceptState>),
}

/// An accept in progress.
pub(super) struct AcceptState {
    ticket: Ticket,
    alias: String,
    invitation: Invitation,
    used_key: Vec<u8>,
    keys: NewMailbox,
    created: Option<CreatedMailbox>,
}

fn random16(rng: &mut rand::rngs::StdRng) -> [u8; 16] {
    let mut b = [0u8; 16];
    rand::Rng::fill_bytes(rng, &mut b);
    b
}

impl Engine {
    fn unused_alias(&self) -> Result<String, ClientError> {
        let taken: Vec<String> = self
            .repo
            .contacts()?
            .into_iter()
            .map(|c| c.alias.clone())
            .collect();
        Ok((1..)
            .map(|i| format!("contact{i}"))
            .find(|a| !taken.contains(a))
            .unwrap_or_else(|| "contact".into()))
    }

    pub(super) fn invite(
        &mut self,
        ticket: Ticket,
        alias: Option<String>,
        ttl_secs: u64,
    ) -> Result<(), ClientError> {
        let alias = match alias {
            Some(a) => {
                if let Err(e) = check_alias(&a) {
                    self.complete(ticket, Err(e));
                    return Ok(());
                }
                if self.repo.contact_by_alias(&a)?.is_some() {
                    self.complete(ticket, Err(ClientError::AliasTaken(a)));
                    return Ok(());
                }
                a
            }
            None => self.unused_alias()?,
        };
        let relay = self.pick_relay()?;
        let keys = NewMailbox::generate(&mut self.rng, relay.clone());
        let request = keys.request();
        self.request(
            &relay,
            Op::Create(CreateFor::Invite {
                ticket,
                alias,
                ttl_secs,
                keys,
            }),
            request,
            true,
        )
    }

    /// S10: someone offered another identity key under a contact's alias.
    /// The refusal is also written on the contact's case, so the handler
    /// sees a blocking warning there until they acknowledge it, not only
    /// an error that scrolls away.
    fn raise_identity_alert(&mut self, alias: &str) -> Result<(), ClientError> {
        let Some(c) = self.repo.contact_by_alias(alias)? else {
            return Ok(());
        };
        let mut case = self.repo.case(&c.id)?.unwrap_or_default();
        case.identity_alert_at = self.now;
        case.updated_at = self.now;
        let mut changes = Changes::new();
        changes.put_case(&c.id, &case);
        self.repo.apply(changes)
    }

    /// Checks an invitation link before anything is created for it.
    fn check_link(&self, link: &str, alias: &str) -> Result<(Invitation, Vec<u8>), ClientError> {
        check_alias(alias)?;
        if ShortLink::is_short_link(link) {
            // The engine does no I/O of its own: a short link's data is
            // fetched by the front end first (`invitation_link`).
            return Err(crate::client::LinkResolveError::NotResolved.into());
        }
        let inv = Invitation::from_link(link)?;
        if inv.is_expired(self.now) {
            return Err(ClientError::InvitationExpired);
        }
        if inv.inviter() == self.identity.public() {
            return Err(ClientError::OwnInvitation);
        }
        // One-time: a second accept of the same link would create a session
        // the inviter never completes.
        let used_key = Sha256::digest(inv.to_link().as_bytes()).to_vec();
        if self.repo.invitation_used(&used_key)? {
            return Err(ClientError::InvitationUsed);
        }
        if let Some(c) = self.repo.contact_by_alias(alias)? {
            if !c.identity.is_empty() {
                let known = IdentityPublic::from_bytes(&c.identity)
                    .map_err(|_| ClientError::Corrupt("contact identity"))?;
                // S10: a different key under a known name is refused, loudly.
                tropa_e2e::verify_peer(&known, &inv.inviter())
                    .map_err(|_| ClientError::IdentityChanged(alias.to_owned()))?;
            }
            return Err(ClientError::AliasTaken(alias.to_owned()));
        }
        Ok((inv, used_key))
    }

    pub(super) fn accept(
        &mut self,
        ticket: Ticket,
        link: &str,
        alias: &str,
    ) -> Result<(), ClientError> {
        let (invitation, used_key) = match self.check_link(link, alias) {
            Ok(ok) => ok,
            Err(e) => {
                if let ClientError::IdentityChanged(_) = e {
                    self.raise_identity_alert(alias)?;
                }
                self.complete(ticket, Err(e));
                return Ok(());
            }
        };
        let relay = self.pick_relay()?;
        let keys = NewMailbox::generate(&mut self.rng, relay.clone());
        let request = keys.request();
        self.request(
            &relay,
            Op::Create(CreateFor::Accept(Box::new(AcceptState {
                ticket,
                alias: alias.to_owned(),
                invitation,
                used_key,
                keys,
                created: None,
            }))),
            request,
            true,
        )
    }

    pub(super) fn on_created(
        &mut self,
        for_: CreateFor,
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        let created = match result {
            Ok(Reply::Created(c)) => c,
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(_) => RelayError::Misbehaved {
                        detail: "no mailbox in the answer".into(),
                    },
                };
                let ticket = match &for_ {
                    CreateFor::Invite { ticket, .. } => *ticket,
                    CreateFor::Accept(state) => state.ticket,
                };
                self.complete(ticket, Err(ClientError::Relay(e)));
                return Ok(());
            }
        };
        match for_ {
            CreateFor::Invite {
                ticket,
                alias,
                ttl_secs,
                keys,
            } => self.finish_invite(ticket, alias, ttl_secs, keys, created),
            CreateFor::Accept(mut state) => {
                let mailbox = created.recipient_id;
                let sender = *state.invitation.reply_sender_auth();
                let auth = state.keys.auth.clone();
                state.created = Some(created);
                let relay = state.keys.relay.clone();
                // Only the inviter may deposit into our reply mailbox.
                self.request(
                    &relay,
                    Op::Secure {
                        mailbox,
                        then: Some(state),
                    },
                    Request::Secure {
                        mailbox,
                        auth,
                        sender,
                    },
                    true,
                )
            }
        }
    }

    /// A one-time invitation to our new mailbox `created` on `relay`, with
    /// the key the joiner must secure its reply mailbox with. Shared by
    /// `tropa invite` and a contact request (which carries one).
    pub(super) fn make_invitation(
        &mut self,
        relay: &RelayAddress,
        created: &CreatedMailbox,
        ttl_secs: u64,
    ) -> Result<(SigningKey, PendingInvitation, Invitation), tropa_e2e::InviteError> {
        let reply_sender = SigningKey::generate(&mut self.rng);
        let (pending, invitation) = PendingInvitation::create(
            &mut self.rng,
            &self.identity,
            InviteParams {
                relay: relay.without_password(),
                sender_id: created.sender_id.to_vec(),
                reply_sender_auth: reply_sender.verifying_key().to_bytes(),
                now: self.now,
                ttl_secs,
            },
        )?;
        Ok((reply_sender, pending, invitation))
    }

    /// The relay a new mailbox of an invitation or an accept goes on: one
    /// of the profile's relays at random, so that no one relay holds a
    /// handler's whole caseload (S3). A relay whose address no longer
    /// parses is skipped; the profile's main relay is always a candidate.
    pub(super) fn pick_relay(&mut self) -> Result<RelayAddress, ClientError> {
        let mut all = vec![self.relay.clone()];
        if let Some(rec) = self.repo.profile()? {
            for r in &rec.relays {
                if let Ok(a) = r.parse::<RelayAddress>()
                    && !all.iter().any(|x| RelayKey::of(x) == RelayKey::of(&a))
                {
                    all.push(a);
                }
            }
        }
        let i = rand::RngExt::random_range(&mut self.rng, 0..all.len());
        Ok(all.swap_remove(i))
    }

    /// A new mailbox of ours: a running sync listens to it at once.
    pub(super) fn listen(&mut self, mb: &OwnMailbox) -> Result<(), ClientError> {
        if self.mode != Mode::Sync {
            return Ok(());
        }
        let Some((key, address)) = self.mailbox_link(mb)? else {
            return Ok(());
        };
        if !self.is_up(&key) {
            // Under isolation its connection may not exist yet: once up,
            // it subscribes to every mailbox of its group.
            self.ensure_link(&key, &address);
            return Ok(());
        }
        let rid = MailboxId::try_from(mb.recipient_id.as_slice())
            .map_err(|_| ClientError::Corrupt("mailbox id"))?;
        let auth = self.mailbox_key(mb)?;
        self.set_sub(&key, rid, Some(false));
        self.out.push(super::Action::Subscribe {
            relay: key,
            mailbox: rid,
            auth,
        });
        Ok(())
    }

    /// The reply mailbox of an accept is secured: start the session and
    /// queue the Hello.
    pub(super) fn accept_secured(
        &mut self,
        state: Box<AcceptState>,
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        let AcceptState {
            ticket,
            alias,
            invitation: inv,
            used_key,
            keys,
            created,
        } = *state;
        if let Err(e) = result {
            self.complete(ticket, Err(ClientError::Relay(e)));
            return Ok(());
        }
        let Some(created) = created else {
            return Ok(());
        };
        let sender_key = SigningKey::generate(&mut self.rng);
        let hello = Hello {
            reply_relay: keys.relay.without_password(),
            reply_sender_id: created.sender_id.to_vec(),
            sender_auth: sender_key.verifying_key().to_bytes(),
        };
        let started =
            Session::initiate(&mut self.rng, &self.identity, &inv, &hello, None, self.now);
        let (session, envelope) = match started {
            Ok(s) => s,
            Err(e) => {
                self.complete(ticket, Err(e.into()));
                return Ok(());
            }
        };
        let contact_id = random16(&mut self.rng).to_vec();
        let contact = ContactRecord {
            id: contact_id.clone(),
            alias: alias.clone(),
            identity: inv.inviter().to_bytes().to_vec(),
            state: ContactState::Established as i32,
            verified: false,
            send_relay: inv.relay().to_string(),
            send_sender_id: inv.sender_id().to_vec(),
            send_auth_secret: sender_key.to_bytes().to_vec(),
            recv_mailbox: created.recipient_id.to_vec(),
            timer_secs: 0,
            dropped: 0,
            created_at: self.now,
            broken: false,
        };
        let own = keys.record(&created, &contact_id, &[]);
        let outbox_key = random16(&mut self.rng).to_vec();
        let outbox = OutboxRecord::queued(
            OutboxKind::Handshake,
            contact_id.clone(),
            envelope.as_bytes().to_vec(),
            self.repo.next_seq()?,
        );
        let mut changes = Changes::new();
        changes
            .mark_invitation_used(&used_key)
            .put_contact(&contact)
            .put_session(&contact_id, &session)
            .put_mailbox(&own)
            .put_outbox(&outbox_key, &outbox);
        self.repo.apply(changes)?;
        self.listen(&own)?;
        self.add_to_scope(&contact_id);
        self.hellos.insert(outbox_key, (ticket, alias));
        self.flush_outbox()?;
        self.settle_hellos()
    }

    /// Accepts whose Hello cannot leave now (the inviter's relay is down)
    /// are complete: the Hello stays queued for a later sync.
    pub(super) fn settle_hellos(&mut self) -> Result<(), ClientError> {
        let waiting: Vec<Vec<u8>> = self.hellos.keys().cloned().collect();
        for key in waiting {
            let Some(r) = self.repo.outbox_entry(&key)? else {
                continue;
            };
            if self.sending.contains(&r.contact_id) {
                continue;
            }
            let down = self
                .repo
                .contact(&r.contact_id)?
                .and_then(|c| c.send_relay.parse::<RelayAddress>().ok())
                .is_none_or(|a| self.is_down(&RelayKey::on(&a, self.contact_group(&r.contact_id))));
            if down && let Some((ticket, alias)) = self.hellos.remove(&key) {
                self.complete(
                    ticket,
                    Ok(Outcome::Accepted {
                        alias,
                        delivered: false,
                    }),
                );
            }
        }
        Ok(())
    }

    /// Deletes invitations that expired unused (past the grace period): their
    /// one-time secrets, the placeholder contact and, best effort, the
    /// relay mailbox.
    pub(super) fn expire_invitations(&mut self) -> Result<(), ClientError> {
        self.last_expiry_check = self.now;
        if self.mode != Mode::Sync {
            return Ok(());
        }
        let grace = self.opts.invitation_grace.as_secs();
        for (invite_id, rec) in self.repo.pending_invitations()? {
            let expired = PendingInvitation::from_bytes(&rec.pending)
                .map(|p| p.expires_at().saturating_add(grace) < self.now)
                .unwrap_or(true);
            if !expired {
                continue;
            }
            let mailbox = self
                .repo
                .mailboxes()?
                .into_iter()
                .find(|m| m.invite_id == invite_id);
            let alias = self
                .repo
                .contact(&rec.contact_id)?
                .map(|c| c.alias.clone())
                .unwrap_or_default();
            let link = mailbox
                .as_ref()
                .and_then(|mb| Self::link_to_delete(&rec, &mb.relay));
            let mut changes = Changes::new();
            changes
                .remove_pending_invitation(&invite_id)
                .remove_contact(&rec.contact_id);
            if let Some(mb) = &mailbox {
                changes.remove_mailbox(&mb.recipient_id);
            }
            self.repo.apply(changes)?;
            // Usually gone already: the relay keeps it no longer than the
            // invitation plus the grace period.
            self.delete_links(link.into_iter().collect())?;
            if let Some(mb) = mailbox
                && let Ok(address) = mb.relay.parse::<RelayAddress>()
                && let Some(auth) = signing_key(&mb.auth_secret)
                && let Ok(rid) = MailboxId::try_from(mb.recipient_id.as_slice())
            {
                // Best effort: an undeleted mailbox expires as unused.
                self.request(
                    &address,
                    Op::Delete,
                    Request::Delete { mailbox: rid, auth },
                    false,
                )?;
            }
            self.emit(SyncEvent::InvitationExpired { alias });
        }
        Ok(())
    }
}

//! An invitation's link data on the relay: storing it once the invitation's
//! mailbox exists (`PutLink`, owned by a fresh key), keeping the short link
//! and the one-time secrets once the relay has it, and deleting it
//! (`DeleteLink`) when the invitation is used, cancelled or expired. It
//! must never keep the link's secret anywhere but the pending invitation.

use super::*;

/// An invitation whose link data is being stored: everything written once
/// the relay has it (or refused it as an older relay would).
pub(in crate::engine) struct LinkFor {
    ticket: Ticket,
    alias: String,
    keys: NewMailbox,
    created: CreatedMailbox,
    pending: PendingInvitation,
    invitation: Invitation,
    reply_sender: SigningKey,
    link: ShortLink,
    owner: SigningKey,
}

/// Link data of ours to delete: where, and with which key.
pub(in crate::engine) struct LinkToDelete {
    relay: RelayAddress,
    locator: [u8; LINK_LOCATOR_LEN],
    owner: SigningKey,
}

impl Engine {
    pub(super) fn finish_invite(
        &mut self,
        ticket: Ticket,
        alias: String,
        ttl_secs: u64,
        keys: NewMailbox,
        created: CreatedMailbox,
    ) -> Result<(), ClientError> {
        let made = self.make_invitation(&keys.relay, &created, ttl_secs);
        let Ok((reply_sender, pending, invitation)) = made else {
            self.complete(ticket, Err(ClientError::Corrupt("invitation parameters")));
            return Ok(());
        };
        let link = ShortLink::for_invitation(&mut self.rng, LinkKind::Invite, &invitation);
        let Ok(data) = seal_link_data(&mut self.rng, link.secret(), LinkKind::Invite, &invitation)
        else {
            self.complete(ticket, Err(ClientError::Corrupt("invitation too large")));
            return Ok(());
        };
        let owner = SigningKey::generate(&mut self.rng);
        // Kept until the invitation can no longer be used (its Hello is
        // still accepted during the grace period); the relay rounds up to
        // whole hours and may cap it, and a deletion ends it earlier.
        let link_ttl = ttl_secs.saturating_add(self.opts.invitation_grace.as_secs());
        let request = Request::PutLink {
            locator: link.locator(),
            data: Bytes::copy_from_slice(&data),
            owner: owner.clone(),
            ttl_secs: u32::try_from(link_ttl).unwrap_or(u32::MAX),
            password: keys.relay.password.clone(),
        };
        let relay = keys.relay.clone();
        let for_ = LinkFor {
            ticket,
            alias,
            keys,
            created,
            pending,
            invitation,
            reply_sender,
            link,
            owner,
        };
        self.request(&relay, Op::PutLink(Box::new(for_)), request, true)
    }

    /// The relay answered the `PutLink` of a new invitation: keep it and
    /// give both links; without link data (an older relay refuses the
    /// request as not understood), the long link only. Any other failure
    /// fails the invitation, and its new mailbox is deleted (best effort).
    pub(in crate::engine) fn on_link_stored(
        &mut self,
        for_: LinkFor,
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        let LinkFor {
            ticket,
            alias,
            keys,
            created,
            pending,
            invitation,
            reply_sender,
            link,
            owner,
        } = for_;
        let short = match result {
            Ok(Reply::LinkStored(_)) => true,
            Err(RelayError::Refused {
                reason: Refusal::Invalid,
                ..
            }) => false,
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(_) => RelayError::Misbehaved {
                        detail: "no link stored in the answer".into(),
                    },
                };
                let relay = keys.relay.clone();
                self.request(
                    &relay,
                    Op::Delete,
                    Request::Delete {
                        mailbox: created.recipient_id,
                        auth: keys.auth.clone(),
                    },
                    false,
                )?;
                self.complete(ticket, Err(ClientError::Relay(e)));
                return Ok(());
            }
        };
        let contact_id = random16(&mut self.rng).to_vec();
        let contact = ContactRecord {
            id: contact_id.clone(),
            alias: alias.clone(),
            identity: Vec::new(),
            state: ContactState::Invited as i32,
            verified: false,
            send_relay: String::new(),
            send_sender_id: Vec::new(),
            send_auth_secret: reply_sender.to_bytes().to_vec(),
            recv_mailbox: created.recipient_id.to_vec(),
            timer_secs: 0,
            dropped: 0,
            created_at: self.now,
            broken: false,
        };
        let own = keys.record(&created, &contact_id, &pending.id());
        let (link_locator, link_owner_secret) = if short {
            (link.locator().to_vec(), owner.to_bytes().to_vec())
        } else {
            (Vec::new(), Vec::new())
        };
        let mut changes = Changes::new();
        changes
            .put_contact(&contact)
            .put_mailbox(&own)
            .put_pending_invitation(
                &pending.id(),
                &PendingRecord {
                    pending: pending.to_bytes().to_vec(),
                    contact_id,
                    link_locator,
                    link_owner_secret,
                },
            );
        self.repo.apply(changes)?;
        self.listen(&own)?;
        self.complete(
            ticket,
            Ok(Outcome::Invited {
                link: invitation.to_link(),
                short: short.then(|| link.to_string()),
                alias,
            }),
        );
        Ok(())
    }

    /// The link data of a pending invitation, if it has any, on `relay`
    /// (where its mailbox is: both were made there together).
    pub(super) fn link_to_delete(rec: &PendingRecord, relay: &str) -> Option<LinkToDelete> {
        Some(LinkToDelete {
            relay: relay.parse().ok()?,
            locator: rec.link_locator.as_slice().try_into().ok()?,
            owner: signing_key(&rec.link_owner_secret)?,
        })
    }

    /// The link data of the invitations still open for a contact.
    pub(in crate::engine) fn links_of_contact(
        &self,
        contact_id: &[u8],
    ) -> Result<Vec<LinkToDelete>, ClientError> {
        let mailboxes = self.repo.mailboxes()?;
        let mut out = Vec::new();
        for (invite_id, rec) in self.repo.pending_invitations()? {
            if rec.contact_id != contact_id {
                continue;
            }
            if let Some(mb) = mailboxes.iter().find(|m| m.invite_id == invite_id)
                && let Some(l) = Self::link_to_delete(&rec, &mb.relay)
            {
                out.push(l);
            }
        }
        Ok(out)
    }

    /// Deletes link data on its relay, best effort: a relay that is down or
    /// refuses leaves it there until its time to live runs out (the
    /// invitation's own validity plus the grace period), after which the
    /// relay drops it unasked. What it holds is sealed under a key only
    /// the link carries, and the invitation it holds is single-use anyway.
    pub(in crate::engine) fn delete_links(
        &mut self,
        links: Vec<LinkToDelete>,
    ) -> Result<(), ClientError> {
        for l in links {
            self.request(
                &l.relay,
                Op::Delete,
                Request::DeleteLink {
                    locator: l.locator,
                    owner: l.owner,
                },
                false,
            )?;
        }
        Ok(())
    }

    /// The invitation of `rec` was used (its Hello arrived on a mailbox on
    /// `relay`): its link data goes, best effort (see [`Self::delete_links`]).
    pub(in crate::engine) fn delete_used_link(
        &mut self,
        rec: &PendingRecord,
        relay: &str,
    ) -> Result<(), ClientError> {
        let links = Self::link_to_delete(rec, relay).into_iter().collect();
        self.delete_links(links)
    }
}

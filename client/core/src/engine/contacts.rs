//! Forgetting contacts: one the user deletes, an invitation the user
//! cancels or that expired unused, and a half-made contact whose Hello the
//! inviter's relay refused for good (the link was used or expired). All of
//! a contact's records go in one durable batch; our mailboxes for them are
//! deleted on their relays best effort (one left behind expires unused).
//!
//! Also where a contact whose relay refuses our deposits for good is marked
//! broken, so nothing more is sent to them and nothing else is held up.

use super::{Engine, MailboxId, Op, Request};
use crate::client::signing_key;
use crate::error::ClientError;
use crate::repo::Changes;
use crate::sync::SyncEvent;

impl Engine {
    /// Removes a contact and everything of theirs: session, messages,
    /// outbox, pending invitation, our mailboxes for them. Returns their
    /// alias, or `None` if there was no such contact.
    pub(super) fn forget_contact(
        &mut self,
        contact_id: &[u8],
    ) -> Result<Option<String>, ClientError> {
        let Some(contact) = self.repo.contact(contact_id)? else {
            return Ok(None);
        };
        let mut changes = Changes::new();
        changes.remove_contact(contact_id);
        for m in self.repo.messages()? {
            if m.contact_id == contact_id {
                changes.remove_message(&m);
            }
        }
        for (key, r) in self.repo.outbox()? {
            if r.contact_id == contact_id {
                changes.remove_outbox(&key);
            }
        }
        for (invite_id, p) in self.repo.pending_invitations()? {
            if p.contact_id == contact_id {
                changes.remove_pending_invitation(&invite_id);
            }
        }
        let mailboxes: Vec<_> = self
            .repo
            .mailboxes()?
            .into_iter()
            .filter(|m| m.contact_id == contact_id)
            .collect();
        for mb in &mailboxes {
            changes.remove_mailbox(&mb.recipient_id);
        }
        self.repo.apply(changes)?;
        self.sending.remove(contact_id);
        for mb in mailboxes {
            if let Some((key, address)) = self.mailbox_link(&mb)?
                && let Some(auth) = signing_key(&mb.auth_secret)
                && let Ok(rid) = MailboxId::try_from(mb.recipient_id.as_slice())
            {
                self.set_sub(&key, rid, None);
                // The record is gone already: name its group here.
                self.request_on(
                    Some(key.group().clone()),
                    &address,
                    Op::Delete,
                    Request::Delete { mailbox: rid, auth },
                    false,
                )?;
            }
        }
        Ok(Some(contact.alias.clone()))
    }

    /// Their relay refused a deposit for good. A Hello: the invitation was
    /// used or expired, so the half-made contact goes. Anything else: the
    /// contact is marked broken; what is queued for them stays (nothing is
    /// lost) but is not sent again.
    pub(super) fn on_refused_for_good(
        &mut self,
        contact_id: &[u8],
        hello: bool,
    ) -> Result<(), ClientError> {
        if hello {
            if let Some(alias) = self.forget_contact(contact_id)? {
                self.report.removed.push(alias.clone());
                self.emit(SyncEvent::ContactRemoved { alias });
            }
            return Ok(());
        }
        let Some(mut c) = self.repo.contact(contact_id)? else {
            return Ok(());
        };
        if !c.broken {
            c.broken = true;
            let mut changes = Changes::new();
            changes.put_contact(&c);
            self.repo.apply(changes)?;
            self.report.broken.push(c.alias.clone());
            self.emit(SyncEvent::ContactBroken {
                alias: c.alias.clone(),
            });
        }
        Ok(())
    }
}

//! Relay connections as the engine sees them: connecting, up (with its
//! subscriptions), or down until a backoff runs out. Requests for a relay
//! that is still connecting wait here; a relay that goes down fails them.

use std::collections::BTreeMap;

use tropa_proto::RelayAddress;
use tropa_relay_client::Transport;

use super::{Action, Engine, MailboxId, Mode, Op, OpId, Request};
use crate::error::{ClientError, RelayError};
use crate::records::OwnMailbox;
use crate::sync::SyncEvent;

/// First reconnect delay in seconds; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: u64 = 1;
/// Longest reconnect delay in seconds.
const MAX_BACKOFF: u64 = 60;

/// Which connection to a relay something travels on. With connection
/// isolation (DESIGN S3) every contact's mailboxes and deposits get a
/// connection of their own, so the relay cannot link two contacts of one
/// person by their sharing a connection; without it, one connection per
/// relay carries everything ([`Group::Profile`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// Everything of the profile on this relay (no isolation).
    Profile,
    /// One contact's incoming mailboxes and deposits to it (by local id).
    Contact(Vec<u8>),
    /// A mailbox that belongs to no contact yet (a pending invitation, an
    /// intake address), by recipient id.
    Mailbox(MailboxId),
    /// One request that belongs to nobody yet (creating a mailbox, storing
    /// link data), by its op id: a connection of its own.
    Once(OpId),
}

/// How a profile spreads its traffic over connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// One connection per relay for everything (the cheapest).
    #[default]
    Profile,
    /// One connection per contact per relay (see [`Group`]).
    Contact,
}

/// A connection: the relay, named by its address without the creation
/// password, and the [`Group`] it carries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayKey {
    relay: String,
    group: Group,
}

impl RelayKey {
    /// The profile-wide connection to `address`.
    pub fn of(address: &RelayAddress) -> Self {
        Self::on(address, Group::Profile)
    }

    /// The connection to `address` that carries `group`.
    pub fn on(address: &RelayAddress, group: Group) -> Self {
        RelayKey {
            relay: address.without_password().to_string(),
            group,
        }
    }

    /// The relay's address as text, without the password.
    pub fn as_str(&self) -> &str {
        &self.relay
    }

    /// What this connection carries.
    pub fn group(&self) -> &Group {
        &self.group
    }
}

impl std::fmt::Display for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.relay)
    }
}

enum State {
    Connecting,
    Up,
    Down { retry_at: u64 },
}

#[derive(PartialEq, Eq)]
enum Sub {
    /// Asked for, no answer yet.
    Requested,
    /// Running; `idle` once everything stored was delivered.
    Live { idle: bool },
    /// The relay was busy (rate limit, memory, a storage hiccup): ask
    /// again at this time.
    Retry { at: u64 },
}

/// Seconds before a request the relay refused as busy is sent again.
pub(super) const BUSY_RETRY: u64 = 2;

pub(super) struct Link {
    address: RelayAddress,
    state: State,
    subs: BTreeMap<MailboxId, Sub>,
    /// Requests waiting for the connection.
    queued: Vec<(OpId, Request)>,
    /// The backoff of the last failure, kept across a reconnection.
    backoff: u64,
}

impl Link {
    /// Nothing pending: not connecting, nothing queued, every subscription
    /// caught up (or the link is down, which settles everything on it).
    pub(super) fn settled(&self) -> bool {
        match self.state {
            State::Connecting => false,
            State::Down { .. } => true,
            State::Up => {
                self.queued.is_empty() && self.subs.values().all(|s| *s == Sub::Live { idle: true })
            }
        }
    }
}

impl Engine {
    /// Makes sure the connection `key` to `address` exists or is being
    /// made. Returns whether it is up. A relay that is down stays down until
    /// its backoff runs out (only a waiting run retries it, on a tick).
    pub(super) fn ensure_link(&mut self, key: &RelayKey, address: &RelayAddress) -> bool {
        let key = key.clone();
        match self.links.get(&key).map(|l| &l.state) {
            Some(State::Up) => true,
            Some(State::Connecting | State::Down { .. }) => false,
            None => {
                self.links.insert(
                    key.clone(),
                    Link {
                        address: address.clone(),
                        state: State::Connecting,
                        subs: BTreeMap::new(),
                        queued: Vec::new(),
                        backoff: 0,
                    },
                );
                let prefer = self.preferred_transport(&key);
                self.out.push(Action::Connect {
                    relay: key,
                    address: address.clone(),
                    prefer,
                });
                false
            }
        }
    }

    /// Whether `key` is up.
    pub(super) fn is_up(&self, key: &RelayKey) -> bool {
        matches!(self.links.get(key).map(|l| &l.state), Some(State::Up))
    }

    /// Whether `key` is known to be down.
    pub(super) fn is_down(&self, key: &RelayKey) -> bool {
        matches!(
            self.links.get(key).map(|l| &l.state),
            Some(State::Down { .. })
        )
    }

    /// Sends `request` to the relay at `address` once connected, and
    /// remembers `op` for its answer. On a relay known to be down it fails
    /// at once, unless it is `urgent` (a user is waiting for it): then the
    /// relay is tried again now, whatever its backoff. The connection is
    /// the one of the group the request belongs to ([`Engine::group_of`]).
    pub(super) fn request(
        &mut self,
        address: &RelayAddress,
        op: Op,
        request: Request,
        urgent: bool,
    ) -> Result<(), ClientError> {
        let group = self.group_of(&op, &request)?;
        self.request_on(group, address, op, request, urgent)
    }

    /// [`request`](Self::request) on the connection of `group`.
    pub(super) fn request_on(
        &mut self,
        group: Option<Group>,
        address: &RelayAddress,
        op: Op,
        request: Request,
        urgent: bool,
    ) -> Result<(), ClientError> {
        // A request of nobody's gets a connection of its own: the op id
        // it is about to be given names it.
        let group = group.unwrap_or(Group::Once(self.next_op + 1));
        let key = RelayKey::on(address, group);
        let id = self.new_op(key.clone(), op);
        if self.is_down(&key) {
            if urgent && let Some(link) = self.links.get_mut(&key) {
                link.state = State::Connecting;
                let prefer = self.preferred_transport(&key);
                self.out.push(Action::Connect {
                    relay: key.clone(),
                    address: address.clone(),
                    prefer,
                });
            } else {
                let error = RelayError::Unreachable {
                    detail: "the relay is down; retried later".into(),
                };
                return self.on_done(id, Err(error));
            }
        }
        if self.ensure_link(&key, address) {
            self.out.push(Action::Request {
                op: id,
                relay: key,
                request,
            });
        } else if let Some(link) = self.links.get_mut(&key) {
            link.queued.push((id, request));
        }
        Ok(())
    }

    /// The group of a request: `None` for one that belongs to nobody yet
    /// (it gets a connection of its own under isolation).
    fn group_of(&self, op: &Op, request: &Request) -> Result<Option<Group>, ClientError> {
        if self.isolation == Isolation::Profile {
            return Ok(Some(Group::Profile));
        }
        let mailbox = match (op, request) {
            (Op::Deposit { contact_id, .. }, _) => {
                return Ok(Some(Group::Contact(contact_id.clone())));
            }
            (Op::Ack { mailbox, .. } | Op::Secure { mailbox, .. }, _)
            | (_, Request::Delete { mailbox, .. }) => *mailbox,
            _ => return Ok(None),
        };
        Ok(match self.repo.mailbox(&mailbox)? {
            Some(mb) => Some(self.mailbox_group(&mb)?),
            None => None,
        })
    }

    /// The group of one of our mailboxes.
    pub(super) fn mailbox_group(&self, mb: &OwnMailbox) -> Result<Group, ClientError> {
        if self.isolation == Isolation::Profile {
            return Ok(Group::Profile);
        }
        if !mb.contact_id.is_empty() {
            return Ok(Group::Contact(mb.contact_id.clone()));
        }
        let rid = MailboxId::try_from(mb.recipient_id.as_slice())
            .map_err(|_| ClientError::Corrupt("mailbox id"))?;
        Ok(Group::Mailbox(rid))
    }

    /// The group of deposits to a contact.
    pub(super) fn contact_group(&self, contact_id: &[u8]) -> Group {
        match self.isolation {
            Isolation::Profile => Group::Profile,
            Isolation::Contact => Group::Contact(contact_id.to_vec()),
        }
    }

    /// The connection one of our mailboxes is listened to on, and its
    /// relay (`None` for a record whose relay does not parse).
    pub(super) fn mailbox_link(
        &self,
        mb: &OwnMailbox,
    ) -> Result<Option<(RelayKey, RelayAddress)>, ClientError> {
        let Ok(address) = mb.relay.parse::<RelayAddress>() else {
            return Ok(None);
        };
        Ok(Some((
            RelayKey::on(&address, self.mailbox_group(mb)?),
            address,
        )))
    }

    pub(super) fn on_connected(
        &mut self,
        key: &RelayKey,
        transport: Transport,
    ) -> Result<(), ClientError> {
        if !self.links.contains_key(key) {
            // Not asked for (any more): let it go.
            self.out.push(Action::Disconnect { relay: key.clone() });
            return Ok(());
        }
        self.report
            .connections
            .push((key.as_str().to_owned(), transport.to_string()));
        self.remember_transport(key, transport)?;
        let Some(link) = self.links.get_mut(key) else {
            // Not asked for (any more): let it go.
            self.out.push(Action::Disconnect { relay: key.clone() });
            return Ok(());
        };
        link.state = State::Up;
        link.backoff = 0;
        for (op, request) in std::mem::take(&mut link.queued) {
            self.out.push(Action::Request {
                op,
                relay: key.clone(),
                request,
            });
        }
        let was_down = self.report.unreachable.iter().any(|u| u == key.as_str());
        self.report.unreachable.retain(|u| u != key.as_str());
        if was_down {
            self.emit(SyncEvent::Reachable {
                relay: key.as_str().to_owned(),
            });
        }
        if self.mode == Mode::Sync {
            self.subscribe_all(key)?;
        }
        self.flush_outbox()
    }

    /// Subscribes to every mailbox of ours on `key`, and sends the `Secure`
    /// any of them still owes.
    fn subscribe_all(&mut self, key: &RelayKey) -> Result<(), ClientError> {
        for mb in self.repo.mailboxes()? {
            if self.mailbox_link(&mb)?.is_none_or(|(k, _)| k != *key) {
                continue;
            }
            let Ok(rid) = MailboxId::try_from(mb.recipient_id.as_slice()) else {
                return Err(ClientError::Corrupt("mailbox id"));
            };
            let auth = self.mailbox_key(&mb)?;
            self.send_pending_secure(&mb, None)?;
            if let Some(link) = self.links.get_mut(key) {
                link.subs.insert(rid, Sub::Requested);
            }
            self.out.push(Action::Subscribe {
                relay: key.clone(),
                mailbox: rid,
                auth,
            });
        }
        Ok(())
    }

    pub(super) fn on_connect_failed(
        &mut self,
        key: &RelayKey,
        error: RelayError,
    ) -> Result<(), ClientError> {
        self.mark_down(key, error)
    }

    /// The relay is unreachable or misbehaving: close, fail what waits for
    /// it, report it, and back off.
    pub(super) fn mark_down(
        &mut self,
        key: &RelayKey,
        error: RelayError,
    ) -> Result<(), ClientError> {
        if matches!(error, RelayError::Misbehaved { .. }) {
            // Our words only: the detail holds what the relay sent.
            self.report_misbehaving(key, "sent an answer that breaks the protocol");
        }
        // Receipts owed for texts already stored and acked are only in
        // memory until an Idle or a tick queues them. A link that goes down
        // settles it, so a one-shot run may end right after this: queue
        // them now, or the sender shows `sent` until it resends, minutes on.
        self.queue_receipts()?;
        let now = self.now;
        let Some(link) = self.links.get_mut(key) else {
            return Ok(());
        };
        if matches!(link.state, State::Down { .. }) {
            return Ok(());
        }
        if matches!(link.state, State::Up) {
            self.out.push(Action::Disconnect { relay: key.clone() });
        }
        let backoff = (link.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        link.backoff = backoff;
        link.state = State::Down {
            retry_at: now + backoff,
        };
        link.subs.clear();
        let queued = std::mem::take(&mut link.queued);
        if !self.report.unreachable.iter().any(|u| u == key.as_str()) {
            self.report.unreachable.push(key.as_str().to_owned());
        }
        if error == RelayError::WrongKey && !self.report.wrong_key.iter().any(|u| u == key.as_str())
        {
            self.report.wrong_key.push(key.as_str().to_owned());
        }
        self.emit(SyncEvent::Unreachable {
            relay: key.as_str().to_owned(),
            error: error.clone(),
        });
        for (op, _) in queued {
            self.on_done(op, Err(error.clone()))?;
        }
        self.settle_hellos()
    }

    /// Closes and forgets connection `key` (if up; one still connecting is
    /// let go when it comes up: see [`Engine::on_connected`]).
    pub(super) fn forget_link(&mut self, key: &RelayKey) {
        if let Some(link) = self.links.remove(key)
            && matches!(link.state, State::Up)
        {
            self.out.push(Action::Disconnect { relay: key.clone() });
        }
    }

    /// Starts connecting again to relays whose backoff ran out.
    pub(super) fn reconnect_due(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        for (key, link) in &mut self.links {
            if let State::Down { retry_at, .. } = link.state
                && retry_at <= now
            {
                link.state = State::Connecting;
                due.push((key.clone(), link.address.clone()));
            }
        }
        for (relay, address) in due {
            let prefer = self.preferred_transport(&relay);
            self.out.push(Action::Connect {
                relay,
                address,
                prefer,
            });
        }
    }

    /// What reached `key`'s relay last time (remembered in the profile).
    fn preferred_transport(&self, key: &RelayKey) -> Option<Transport> {
        let rec = self.repo.profile().ok().flatten()?;
        rec.tcp_relays
            .iter()
            .any(|r| r == key.as_str())
            .then_some(Transport::Tcp)
    }

    /// Remembers what reached `key`'s relay, so that the next run tries it
    /// first (a network that blocks UDP stays blocked: trying QUIC first
    /// every time would cost the fallback's delay every time).
    fn remember_transport(
        &mut self,
        key: &RelayKey,
        transport: Transport,
    ) -> Result<(), ClientError> {
        let Some(mut rec) = self.repo.profile()? else {
            return Ok(());
        };
        let known = rec.tcp_relays.iter().any(|r| r == key.as_str());
        match transport {
            Transport::Tcp if !known => rec.tcp_relays.push(key.as_str().to_owned()),
            Transport::Quic if known => rec.tcp_relays.retain(|r| r != key.as_str()),
            _ => return Ok(()),
        }
        let mut changes = crate::repo::Changes::new();
        changes.put_profile(&rec);
        self.repo.apply(changes)
    }

    /// The relay was busy when asked for this subscription: ask again soon.
    pub(super) fn retry_sub(&mut self, key: &RelayKey, mailbox: MailboxId) {
        let at = self.now + BUSY_RETRY;
        if let Some(link) = self.links.get_mut(key) {
            link.subs.insert(mailbox, Sub::Retry { at });
        }
    }

    /// Subscribes again where the relay was busy before and the wait is over.
    pub(super) fn resubscribe_due(&mut self) -> Result<(), ClientError> {
        let now = self.now;
        let mut due = Vec::new();
        for (key, link) in &self.links {
            if !matches!(link.state, State::Up) {
                continue;
            }
            for (rid, sub) in &link.subs {
                if matches!(sub, Sub::Retry { at } if *at <= now) {
                    due.push((key.clone(), *rid));
                }
            }
        }
        for (key, rid) in due {
            let Some(mb) = self.repo.mailbox(&rid)? else {
                self.set_sub(&key, rid, None);
                continue;
            };
            let auth = self.mailbox_key(&mb)?;
            if let Some(link) = self.links.get_mut(&key) {
                link.subs.insert(rid, Sub::Requested);
            }
            self.out.push(Action::Subscribe {
                relay: key,
                mailbox: rid,
                auth,
            });
        }
        Ok(())
    }

    /// A subscription changed state.
    pub(super) fn set_sub(&mut self, key: &RelayKey, mailbox: MailboxId, live: Option<bool>) {
        if let Some(link) = self.links.get_mut(key) {
            match live {
                Some(idle) => {
                    link.subs.insert(mailbox, Sub::Live { idle });
                }
                None => {
                    link.subs.remove(&mailbox);
                }
            }
        }
    }
}

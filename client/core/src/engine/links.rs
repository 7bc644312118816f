//! Relay connections as the engine sees them: connecting, up (with its
//! subscriptions), or down until a backoff runs out. Requests for a relay
//! that is still connecting wait here; a relay that goes down fails them.

use std::collections::BTreeMap;

use tropa_proto::RelayAddress;

use super::{Action, Engine, MailboxId, Mode, Op, OpId, Request};
use crate::error::{ClientError, RelayError};
use crate::sync::SyncEvent;

/// First reconnect delay in seconds; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: u64 = 1;
/// Longest reconnect delay in seconds.
const MAX_BACKOFF: u64 = 60;

/// A relay, named by its address without the creation password.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayKey(String);

impl RelayKey {
    /// The key of `address`.
    pub fn of(address: &RelayAddress) -> Self {
        RelayKey(address.without_password().to_string())
    }

    /// The address as text, without the password.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
    /// Makes sure a connection to `address` exists or is being made.
    /// Returns whether it is up. A relay that is down stays down until its
    /// backoff runs out (only a waiting run retries it, on a tick).
    pub(super) fn ensure_link(&mut self, address: &RelayAddress) -> bool {
        let key = RelayKey::of(address);
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
                self.out.push(Action::Connect {
                    relay: key,
                    address: address.clone(),
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
    /// relay is tried again now, whatever its backoff.
    pub(super) fn request(
        &mut self,
        address: &RelayAddress,
        op: Op,
        request: Request,
        urgent: bool,
    ) -> Result<(), ClientError> {
        let key = RelayKey::of(address);
        let id = self.new_op(key.clone(), op);
        if self.is_down(&key) {
            if urgent && let Some(link) = self.links.get_mut(&key) {
                link.state = State::Connecting;
                self.out.push(Action::Connect {
                    relay: key.clone(),
                    address: address.clone(),
                });
            } else {
                let error = RelayError::Unreachable {
                    detail: "the relay is down; retried later".into(),
                };
                return self.on_done(id, Err(error));
            }
        }
        if self.ensure_link(address) {
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

    pub(super) fn on_connected(&mut self, key: &RelayKey) -> Result<(), ClientError> {
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
            let Ok(address) = mb.relay.parse::<RelayAddress>() else {
                continue;
            };
            let Ok(rid) = MailboxId::try_from(mb.recipient_id.as_slice()) else {
                return Err(ClientError::Corrupt("mailbox id"));
            };
            if RelayKey::of(&address) != *key {
                continue;
            }
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

    /// Starts connecting again to relays whose backoff ran out.
    pub(super) fn reconnect_due(&mut self) {
        let now = self.now;
        for (key, link) in &mut self.links {
            if let State::Down { retry_at, .. } = link.state
                && retry_at <= now
            {
                link.state = State::Connecting;
                self.out.push(Action::Connect {
                    relay: key.clone(),
                    address: link.address.clone(),
                });
            }
        }
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

//! The sync engine: every decision about receiving and delivering, as a
//! deterministic state machine in the quinn-proto style. [`Engine::handle`]
//! takes an [`Input`] (a delivery, a request's result, a command, the time
//! passing) and the current time, and returns [`Action`]s for a shell to
//! carry out (connect, subscribe, send a request, emit an event, complete a
//! command). The shell ([`crate::shell`]) owns the sockets; the simulation
//! tests are another shell, with relays in memory.
//!
//! It never touches the network and never reads a clock. Its durable state
//! is the profile, which it reads and writes through the [`Repo`]
//! synchronously; its volatile state (links, requests in flight) may be
//! lost at any moment without losing a message or a receipt (S13):
//!
//! - receiving: decrypt → store the message, the new ratchet state, the
//!   receipt owed and the envelope's digest in one durable batch → ack →
//!   forget the digest; the receipts owed ride on the next text to their
//!   contact (forgotten in the write that records that the relay accepted
//!   it), or leave in batches, each queued in the outbox in the write that
//!   forgets them (on a metered profile after a hold). A
//!   redelivered envelope (crash before the ack) is recognised by its
//!   digest and acked silently, never reported as tampering;
//! - sending: a text stays in the outbox until the recipient's receipt
//!   arrives, is sealed in the same durable batch that advances the
//!   ratchet, and is retried byte for byte after a refusal; after a
//!   timeout it is sent again as a new ratchet message with the same id,
//!   and the recipient drops duplicates by id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tropa_e2e::Identity;
use tropa_proto::RelayAddress;
use tropa_relay_client::{CreatedMailbox, Delivery, Transport};
use x25519_dalek::PublicKey;

use crate::error::{ClientError, RelayError};
use crate::repo::Repo;
use crate::sync::{SyncEvent, SyncOptions, SyncReport};

mod contacts;
mod intake;
mod links;
mod receive;
mod send;
mod setup;
#[cfg(test)]
mod tests;

pub(crate) use intake::address_link;
pub use intake::{ADDRESS_TTL_SECS, MAX_REQUESTS};
pub use links::{Group, Isolation, RelayKey};

/// A mailbox's recipient-side ID.
pub type MailboxId = [u8; tropa_proto::MAILBOX_ID_LEN];
/// Names one request the engine asked for, to match its result.
pub type OpId = u64;
/// Names one command, to match its completion.
pub type Ticket = u64;

/// What the engine works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Receive on every mailbox and deliver everything due.
    Sync,
    /// Deliver what is due for these contacts (local ids), and nothing else:
    /// no subscriptions, no other relays. Commands add the contacts they
    /// queue something for (empty: only carry out commands).
    Deliver(BTreeSet<Vec<u8>>),
}

/// Something that happened, for the engine to decide on.
pub enum Input {
    /// Begin: expire invitations, connect where needed, deliver what is due.
    Start,
    /// Time passed (the shell sends this about once a second).
    Tick,
    /// The shell is about to stop: keep what must not be lost.
    Stop,
    /// A connection to `relay` is ready.
    Connected {
        /// The relay.
        relay: RelayKey,
        /// What carries it.
        transport: Transport,
    },
    /// Connecting to `relay` failed.
    ConnectFailed {
        /// The relay.
        relay: RelayKey,
        /// Why.
        error: RelayError,
    },
    /// Something happened on a subscription.
    Subscription {
        /// The relay.
        relay: RelayKey,
        /// The mailbox.
        mailbox: MailboxId,
        /// What.
        event: SubEvent,
    },
    /// A request finished.
    Done {
        /// Which one.
        op: OpId,
        /// Its result.
        result: Result<Reply, RelayError>,
    },
    /// A front end asks for something.
    Command {
        /// Names it in the [`Action::Complete`] that answers it.
        ticket: Ticket,
        /// What.
        command: Command,
    },
}

/// What happened on a subscription.
pub enum SubEvent {
    /// The relay accepted the subscription.
    Started,
    /// The relay refused it, or it could not be sent.
    Refused(RelayError),
    /// An envelope arrived.
    Delivery(Delivery),
    /// Everything stored has been delivered.
    Idle,
    /// The stream ended (the connection is probably gone).
    Ended(RelayError),
}

/// A successful answer to a request.
pub enum Reply {
    /// A mailbox was created.
    Created(CreatedMailbox),
    /// Done (deposit accepted, ack, secure or delete confirmed).
    Done,
    /// Link data was stored, for this long (whole hours, capped by the relay).
    LinkStored(std::time::Duration),
}

/// A request for the shell to send on a relay connection.
pub enum Request {
    /// `CreateMailbox`.
    Create {
        /// Signs the new mailbox's recipient commands.
        auth: SigningKey,
        /// Deliveries are sealed to this key.
        dh: PublicKey,
        /// The relay's creation password, if any.
        password: Option<String>,
    },
    /// `CreateMailbox` with `intake`: the mailbox of an intake address.
    CreateIntake {
        /// Signs the new mailbox's recipient commands.
        auth: SigningKey,
        /// Deliveries are sealed to this key.
        dh: PublicKey,
        /// The relay's creation password, if any.
        password: Option<String>,
    },
    /// `Deposit`.
    Deposit {
        /// The mailbox's sender ID.
        sender_id: Vec<u8>,
        /// The sealed envelope.
        envelope: Bytes,
        /// Signs the deposit once the mailbox is secured.
        signer: Option<SigningKey>,
    },
    /// `Ack`.
    Ack {
        /// The mailbox.
        mailbox: MailboxId,
        /// Its recipient key.
        auth: SigningKey,
        /// The envelope.
        envelope_id: [u8; tropa_proto::ENVELOPE_ID_LEN],
    },
    /// `Secure`.
    Secure {
        /// The mailbox.
        mailbox: MailboxId,
        /// Its recipient key.
        auth: SigningKey,
        /// Only deposits signed by this key are accepted from now on.
        sender: [u8; 32],
    },
    /// `DeleteMailbox`.
    Delete {
        /// The mailbox.
        mailbox: MailboxId,
        /// Its recipient key.
        auth: SigningKey,
    },
    /// `PutLink`: store (or, with the same owner, refresh) a short link's
    /// data. Answered [`Reply::LinkStored`].
    PutLink {
        /// Where the data goes (derived from the link's secret).
        locator: [u8; tropa_proto::LINK_LOCATOR_LEN],
        /// The sealed link data, exactly `LINK_DATA_SIZE` bytes.
        data: Bytes,
        /// Owns the data: only this key can replace or delete it.
        owner: SigningKey,
        /// How long the relay should keep it.
        ttl_secs: u32,
        /// The relay's creation password, if any (a new link is a creation).
        password: Option<String>,
    },
    /// `DeleteLink`, signed by the data's owner key.
    DeleteLink {
        /// The link data's locator.
        locator: [u8; tropa_proto::LINK_LOCATOR_LEN],
        /// Its owner key.
        owner: SigningKey,
    },
}

/// Something for the shell to do.
pub enum Action {
    /// Open a connection.
    Connect {
        /// The relay, as the engine names it.
        relay: RelayKey,
        /// Its full address (with the pinned key and any password).
        address: RelayAddress,
        /// The transport that reached this relay last time, to try first
        /// (`auto` only; `None`: QUIC first).
        prefer: Option<Transport>,
    },
    /// Close a connection (and its subscriptions).
    Disconnect {
        /// The relay.
        relay: RelayKey,
    },
    /// Subscribe to a mailbox on a connected relay.
    Subscribe {
        /// The relay.
        relay: RelayKey,
        /// The mailbox.
        mailbox: MailboxId,
        /// Its recipient key.
        auth: SigningKey,
    },
    /// Send a request on a connected relay; answer with [`Input::Done`].
    Request {
        /// Names it in the answer.
        op: OpId,
        /// The relay.
        relay: RelayKey,
        /// What.
        request: Request,
    },
    /// Tell the front end.
    Emit(SyncEvent),
    /// A command finished.
    Complete {
        /// The command's ticket.
        ticket: Ticket,
        /// Its result.
        result: Result<Outcome, ClientError>,
    },
}

/// A front end's request.
#[derive(Clone)]
pub enum Command {
    /// Queue a text for a contact and deliver it.
    Send {
        /// The contact.
        alias: String,
        /// The text.
        text: String,
    },
    /// Make a one-time invitation.
    Invite {
        /// What to call whoever accepts (`None`: a free `contactN`).
        alias: Option<String>,
        /// How long the link stays valid.
        ttl_secs: u64,
    },
    /// Accept an invitation link.
    Accept {
        /// The link.
        link: String,
        /// What to call the inviter.
        alias: String,
    },
    /// Delete a contact, or cancel an invitation not yet accepted: its
    /// records go, and our mailboxes for it are deleted on the relay.
    Forget {
        /// The contact.
        alias: String,
    },
    /// Create this profile's intake address (one per profile).
    CreateAddress,
    /// Delete the intake address: it takes no more requests, its waiting
    /// requests go; contacts made through it stay.
    DeleteAddress,
    /// Accept a contact request and call the requester `alias`.
    AcceptRequest {
        /// The request's id (hex), or a unique prefix of it.
        id: String,
        /// What to call the requester.
        alias: String,
    },
    /// Send a contact request to an intake address.
    SendRequest {
        /// The address's invitation, as a long `tropa:invite#` link (a
        /// front end resolves the `TROPA:A/...` link first).
        address: String,
        /// What to call the address's owner.
        alias: String,
        /// The first message.
        text: String,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Send { .. } => "Command::Send(<redacted>)",
            Command::Invite { .. } => "Command::Invite(<redacted>)",
            Command::Accept { .. } => "Command::Accept(<redacted>)",
            Command::Forget { .. } => "Command::Forget(<redacted>)",
            Command::CreateAddress => "Command::CreateAddress",
            Command::DeleteAddress => "Command::DeleteAddress",
            Command::AcceptRequest { .. } => "Command::AcceptRequest(<redacted>)",
            Command::SendRequest { .. } => "Command::SendRequest(<redacted>)",
        })
    }
}

/// What a command achieved.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The text is durably queued (delivery follows).
    Queued {
        /// Its message id (hex).
        id: String,
    },
    /// An invitation was made.
    Invited {
        /// The long `tropa:invite#` link (always accepted).
        link: String,
        /// The short `TROPA:I/...` link (docs/protocol.md §11), or `None`
        /// if the relay does not store link data (an older relay): then
        /// only the long link works.
        short: Option<String>,
        /// The alias whoever accepts gets.
        alias: String,
    },
    /// A contact (or invitation) was deleted.
    Forgotten,
    /// The intake address exists.
    AddressCreated {
        /// Its short `TROPA:A/...` link.
        link: String,
    },
    /// The intake address was deleted.
    AddressDeleted {
        /// The relay confirmed that its link and mailbox are gone (else a
        /// later sync asks again).
        confirmed: bool,
    },
    /// A contact request was queued durably.
    RequestSent {
        /// What we call the address's owner.
        alias: String,
        /// Whether the address's relay has it already (else a later sync
        /// delivers it).
        delivered: bool,
    },
    /// An invitation was accepted.
    Accepted {
        /// The inviter's alias.
        alias: String,
        /// Whether the handshake reached the inviter's relay already (else
        /// it stays queued and a later sync delivers it).
        delivered: bool,
    },
}

/// The links of a new invitation.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteLinks {
    /// The short `TROPA:I/HOST:PORT/FP/SECRET` link, or `None` if the relay
    /// does not store link data (an older relay): give the long one then.
    pub short: Option<String>,
    /// The long `tropa:invite#...` link (about 1,900 characters).
    pub long: String,
    /// The alias whoever accepts gets.
    pub alias: String,
}

impl InviteLinks {
    /// The link to give: the short one if there is one, else the long one.
    pub fn link(&self) -> &str {
        self.short.as_deref().unwrap_or(&self.long)
    }
}

impl std::fmt::Debug for InviteLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteLinks")
            .field("short", &self.short.is_some())
            .finish_non_exhaustive()
    }
}

fn unexpected() -> ClientError {
    ClientError::Corrupt("unexpected outcome")
}

impl Outcome {
    /// The message id of [`Command::Send`]'s outcome.
    ///
    /// # Errors
    /// Any other outcome (a bug).
    pub fn into_queued(self) -> Result<String, ClientError> {
        match self {
            Outcome::Queued { id } => Ok(id),
            _ => Err(unexpected()),
        }
    }

    /// The long link and alias of [`Command::Invite`]'s outcome (see
    /// [`into_invite_links`](Self::into_invite_links) for the short link).
    ///
    /// # Errors
    /// Any other outcome (a bug).
    pub fn into_invited(self) -> Result<(String, String), ClientError> {
        match self {
            Outcome::Invited { link, alias, .. } => Ok((link, alias)),
            _ => Err(unexpected()),
        }
    }

    /// Both links and the alias of [`Command::Invite`]'s outcome.
    ///
    /// # Errors
    /// Any other outcome (a bug).
    pub fn into_invite_links(self) -> Result<InviteLinks, ClientError> {
        match self {
            Outcome::Invited { link, short, alias } => Ok(InviteLinks {
                short,
                long: link,
                alias,
            }),
            _ => Err(unexpected()),
        }
    }

    /// Whether the handshake of [`Command::Accept`] was delivered.
    ///
    /// # Errors
    /// Any other outcome (a bug).
    pub fn into_accepted(self) -> Result<bool, ClientError> {
        match self {
            Outcome::Accepted { delivered, .. } => Ok(delivered),
            _ => Err(unexpected()),
        }
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Queued { .. } => f.write_str("Outcome::Queued"),
            Outcome::Forgotten => f.write_str("Outcome::Forgotten"),
            Outcome::AddressCreated { .. } => f.write_str("Outcome::AddressCreated(<redacted>)"),
            Outcome::AddressDeleted { confirmed } => f
                .debug_struct("Outcome::AddressDeleted")
                .field("confirmed", confirmed)
                .finish(),
            Outcome::RequestSent { delivered, .. } => f
                .debug_struct("Outcome::RequestSent")
                .field("delivered", delivered)
                .finish_non_exhaustive(),
            Outcome::Invited { .. } => f.write_str("Outcome::Invited(<redacted>)"),
            Outcome::Accepted { delivered, .. } => f
                .debug_struct("Outcome::Accepted")
                .field("delivered", delivered)
                .finish_non_exhaustive(),
        }
    }
}

/// Why the engine is waiting for a request. (Tens are in flight at most,
/// so the size of a variant does not matter.)
#[allow(clippy::large_enum_variant)]
enum Op {
    /// A mailbox for a command (see [`setup`]).
    Create(setup::CreateFor),
    /// An outbox entry.
    Deposit { key: Vec<u8>, contact_id: Vec<u8> },
    /// A processed envelope; the digest is forgotten once acked.
    Ack {
        digest: Vec<u8>,
        mailbox: MailboxId,
        envelope_id: [u8; tropa_proto::ENVELOPE_ID_LEN],
    },
    /// A mailbox's pending `Secure`, cleared once confirmed.
    Secure {
        mailbox: MailboxId,
        then: Option<Box<setup::AcceptState>>,
    },
    /// Best effort: nothing to do either way.
    Delete,
    /// An invitation's link data (see [`setup`]).
    PutLink(Box<setup::LinkFor>),
    /// Intake addresses and contact requests (see [`intake`]).
    Intake(intake::IntakeOp),
}

/// The sync engine. See the module docs.
pub struct Engine {
    repo: Arc<Repo>,
    identity: Identity,
    relay: RelayAddress,
    opts: SyncOptions,
    mode: Mode,
    rng: StdRng,
    now: u64,
    /// How traffic is spread over connections.
    isolation: Isolation,
    links: BTreeMap<RelayKey, links::Link>,
    /// Requests in flight: which relay, and what for.
    ops: BTreeMap<OpId, (RelayKey, Op)>,
    next_op: OpId,
    /// Contacts with a deposit in flight: one at a time keeps their order.
    sending: BTreeSet<Vec<u8>>,
    /// Outbox entries a relay refused during this run.
    refused_now: BTreeSet<Vec<u8>>,
    /// Commands still running.
    tickets: BTreeSet<Ticket>,
    /// Acks the relay refused as busy: when to send them again.
    busy_acks: Vec<(u64, MailboxId, [u8; tropa_proto::ENVELOPE_ID_LEN], Vec<u8>)>,
    /// Envelopes whose deletion the relay confirmed in this run: one
    /// delivered again is a replay.
    acked: BTreeSet<(MailboxId, [u8; tropa_proto::ENVELOPE_ID_LEN])>,
    /// Accepts waiting for their Hello's deposit, by outbox key.
    hellos: BTreeMap<Vec<u8>, (Ticket, String)>,
    last_expiry_check: u64,
    /// Keys derived from stored secrets, kept for the engine's life (each
    /// derivation costs a scalar multiplication or a Diffie-Hellman): the
    /// signing keys of our mailboxes and of our deposits per contact, and
    /// the delivery keys of our mailboxes. All zeroize on drop.
    auth_keys: BTreeMap<Vec<u8>, SigningKey>,
    delivery_keys: BTreeMap<MailboxId, tropa_relay_protocol::crypto::SealingKey>,
    report: SyncReport,
    out: Vec<Action>,
    /// Addresses and contact requests in progress.
    intake: intake::IntakeState,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.mode)
            .field("links", &self.links.len())
            .field("ops", &self.ops.len())
            .finish_non_exhaustive()
    }
}

/// What an engine needs to start.
pub struct EngineConfig {
    /// The profile's records.
    pub repo: Arc<Repo>,
    /// The profile's identity.
    pub identity: Identity,
    /// The profile's relay (new mailboxes go there).
    pub relay: RelayAddress,
    /// How to run.
    pub opts: SyncOptions,
    /// What to work on.
    pub mode: Mode,
    /// Seeds the engine's random numbers (message ids, keys, nonces);
    /// fixed only in simulations.
    pub seed: [u8; 32],
    /// One connection per relay, or one per contact (S3).
    pub isolation: Isolation,
}

impl Engine {
    /// A fresh engine: no links, nothing in flight.
    pub fn new(c: EngineConfig) -> Self {
        Self {
            repo: c.repo,
            identity: c.identity,
            relay: c.relay,
            opts: c.opts,
            mode: c.mode,
            rng: StdRng::from_seed(c.seed),
            now: 0,
            isolation: c.isolation,
            links: BTreeMap::new(),
            ops: BTreeMap::new(),
            next_op: 0,
            sending: BTreeSet::new(),
            refused_now: BTreeSet::new(),
            tickets: BTreeSet::new(),
            busy_acks: Vec::new(),
            acked: BTreeSet::new(),
            hellos: BTreeMap::new(),
            last_expiry_check: 0,
            auth_keys: BTreeMap::new(),
            delivery_keys: BTreeMap::new(),
            report: SyncReport::default(),
            out: Vec::new(),
            intake: intake::IntakeState::default(),
        }
    }

    /// Decides what to do about `input` at `now` (unix seconds).
    ///
    /// # Errors
    /// Only storage errors (a damaged or unwritable profile); everything
    /// that goes wrong with relays is handled, reported and retried.
    pub fn handle(&mut self, input: Input, now: u64) -> Result<Vec<Action>, ClientError> {
        self.now = self.now.max(now);
        match input {
            Input::Start => self.start()?,
            Input::Tick => self.tick()?,
            Input::Stop => self.queue_receipts()?,
            Input::Connected { relay, transport } => self.on_connected(&relay, transport)?,
            Input::ConnectFailed { relay, error } => self.on_connect_failed(&relay, error)?,
            Input::Subscription {
                relay,
                mailbox,
                event,
            } => self.on_subscription(&relay, mailbox, event)?,
            Input::Done { op, result } => self.on_done(op, result)?,
            Input::Command { ticket, command } => self.on_command(ticket, command)?,
        }
        Ok(std::mem::take(&mut self.out))
    }

    /// Whether a run that does not wait (a one-shot sync, a send) has
    /// nothing left to do: no connection being made, no subscription that
    /// has not caught up, no request in flight, no command running.
    pub fn finished(&self) -> bool {
        !self.opts.is_waiting()
            && self.tickets.is_empty()
            && self.ops.is_empty()
            && self.busy_acks.is_empty()
            && self.links.values().all(links::Link::settled)
    }

    /// Whether requests are in flight (their results still matter).
    pub fn requests_in_flight(&self) -> bool {
        !self.ops.is_empty()
    }

    /// What this run did so far.
    pub fn report(&self) -> &SyncReport {
        &self.report
    }

    /// Adds bytes a connection carried to the report.
    pub fn count_traffic(&mut self, sent: u64, received: u64) {
        self.report.bytes_sent += sent;
        self.report.bytes_received += received;
    }

    /// The signing key of one of our mailboxes (its recipient commands).
    fn mailbox_key(&mut self, mb: &crate::records::OwnMailbox) -> Result<SigningKey, ClientError> {
        self.cached_key(b"m", &mb.recipient_id, &mb.auth_secret)
            .ok_or(ClientError::Corrupt("mailbox key"))
    }

    /// The key that signs our deposits for a contact.
    fn deposit_key(&mut self, c: &crate::records::ContactRecord) -> Option<SigningKey> {
        self.cached_key(b"c", &c.id, &c.send_auth_secret)
    }

    fn cached_key(&mut self, kind: &[u8], id: &[u8], secret: &[u8]) -> Option<SigningKey> {
        let name = [kind, id].concat();
        if let Some(k) = self.auth_keys.get(&name) {
            return Some(k.clone());
        }
        let k = crate::client::signing_key(secret)?;
        self.auth_keys.insert(name, k.clone());
        Some(k)
    }

    fn emit(&mut self, ev: SyncEvent) {
        self.out.push(Action::Emit(ev));
    }

    fn complete(&mut self, ticket: Ticket, result: Result<Outcome, ClientError>) {
        self.tickets.remove(&ticket);
        self.settle_request_accept(ticket, &result);
        self.out.push(Action::Complete { ticket, result });
    }

    fn new_op(&mut self, relay: RelayKey, op: Op) -> OpId {
        self.next_op += 1;
        self.ops.insert(self.next_op, (relay, op));
        self.next_op
    }

    fn in_scope(&self, contact_id: &[u8]) -> bool {
        match &self.mode {
            Mode::Sync => true,
            Mode::Deliver(set) => set.contains(contact_id),
        }
    }

    /// Puts a contact in scope (for [`Mode::Deliver`]; everything is in
    /// scope of [`Mode::Sync`]).
    fn add_to_scope(&mut self, contact_id: &[u8]) {
        if let Mode::Deliver(set) = &mut self.mode {
            set.insert(contact_id.to_vec());
        }
    }

    fn start(&mut self) -> Result<(), ClientError> {
        self.expire_invitations()?;
        if self.mode == Mode::Sync {
            for mb in self.repo.mailboxes()? {
                if let Some((key, address)) = self.mailbox_link(&mb)? {
                    self.ensure_link(&key, &address);
                }
            }
            if !self.opts.is_waiting() {
                // A one-shot sync also checks the profile's own relay, even
                // with no mailbox there yet (a new profile): a wrong address
                // must not pass as "0 new".
                // (Under isolation, only when no mailbox's connection goes
                // there already: an extra connection would carry nothing.)
                let own = self.relay.clone();
                let key = RelayKey::of(&own);
                if !self.links.keys().any(|k| k.as_str() == key.as_str()) {
                    self.ensure_link(&key, &own);
                }
            }
        }
        self.intake_housekeeping()?;
        self.flush_requests()?;
        self.flush_outbox()
    }

    fn tick(&mut self) -> Result<(), ClientError> {
        self.resubscribe_due()?;
        self.reack_due()?;
        if self.opts.is_waiting() {
            self.reconnect_due();
            if self.now >= self.last_expiry_check + 3600 {
                self.expire_invitations()?;
            }
        }
        self.queue_receipts()?;
        self.intake_housekeeping()?;
        self.flush_requests()?;
        self.flush_outbox()
    }

    fn on_done(&mut self, op: OpId, result: Result<Reply, RelayError>) -> Result<(), ClientError> {
        let Some((relay, what)) = self.ops.remove(&op) else {
            return Ok(());
        };
        if let Err(e) = &result
            && e.refusal().is_none()
        {
            // The connection is gone (or the relay talks nonsense): close
            // it and reconnect later, whatever the request was.
            self.mark_down(&relay, e.clone())?;
        }
        if matches!(relay.group(), links::Group::Once(_)) {
            // A connection made for this one request: done with it, so it
            // neither stays open (a Tor circuit, a slot at the relay) nor
            // is reconnected later with nothing to carry.
            self.forget_link(&relay);
        }
        match what {
            Op::Create(for_) => self.on_created(for_, result),
            Op::Deposit { key, contact_id } => self.on_deposited(&key, &contact_id, result),
            Op::Ack {
                digest,
                mailbox,
                envelope_id,
            } => match result {
                Ok(_) => {
                    self.acked.insert((mailbox, envelope_id));
                    let mut c = crate::repo::Changes::new();
                    c.forget_processed(&digest);
                    self.repo.apply(c)
                }
                Err(e) if e.refusal().is_some_and(crate::error::Refusal::is_transient) => {
                    // Busy: ack again soon, or the envelope stays on the
                    // relay (and comes back) for nothing.
                    self.busy_acks.push((
                        self.now + links::BUSY_RETRY,
                        mailbox,
                        envelope_id,
                        digest,
                    ));
                    Ok(())
                }
                // Gone, or the connection dropped: the envelope comes back
                // with the next subscription and is acked then.
                Err(_) => Ok(()),
            },
            Op::Secure { mailbox, then } => self.on_secured(mailbox, then, result),
            Op::Delete => Ok(()),
            Op::PutLink(for_) => self.on_link_stored(*for_, result),
            Op::Intake(op) => self.on_intake_done(op, result),
        }
    }

    fn on_command(&mut self, ticket: Ticket, command: Command) -> Result<(), ClientError> {
        self.tickets.insert(ticket);
        match command {
            Command::Send { alias, text } => {
                let result = self.queue_text(&alias, &text);
                if result.is_ok()
                    && let Some(c) = self.repo.contact_by_alias(&alias)?
                {
                    self.add_to_scope(&c.id);
                }
                self.complete(ticket, result);
                self.flush_outbox()
            }
            Command::Invite { alias, ttl_secs } => self.invite(ticket, alias, ttl_secs),
            Command::Accept { link, alias } => self.accept(ticket, &link, &alias),
            Command::CreateAddress => self.create_address(ticket),
            Command::DeleteAddress => self.delete_address(ticket),
            Command::AcceptRequest { id, alias } => self.accept_request(ticket, &id, &alias),
            Command::SendRequest {
                address,
                alias,
                text,
            } => self.send_request(ticket, &address, &alias, &text),
            Command::Forget { alias } => {
                let result = match self.repo.contact_by_alias(&alias)? {
                    Some(c) => {
                        // A cancelled invitation's link data goes too.
                        let links = self.links_of_contact(&c.id)?;
                        let result = self.forget_contact(&c.id).map(|_| Outcome::Forgotten);
                        if result.is_ok() {
                            self.delete_links(links)?;
                        }
                        result
                    }
                    None => Err(self.repo.unknown_contact(&alias)?),
                };
                self.complete(ticket, result);
                Ok(())
            }
        }
    }
}

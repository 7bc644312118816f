//! The mailbox service: every decision of the relay protocol, without I/O.
//!
//! [`Service::handle`] takes one decoded request, the connection it came on
//! ([`Peer`]) and the time ([`Now`]), and returns what to answer and what the
//! async shell must do: make the store durable before answering, wake the
//! mailbox's subscribers, or start a subscription. [`Service::next_delivery`]
//! is the delivery cursor: it yields one sealed delivery at a time, skipping
//! envelopes that no longer open, so the shell only ever holds one frame per
//! subscription.
//!
//! It also stores, serves and deletes short links' data (`PutLink`,
//! `GetLink`, `DeleteLink`), and rate-limits deposits into intake
//! mailboxes per mailbox.
//!
//! It never touches sockets or clocks, never logs identifiers, and never
//! tells an unauthenticated party whether a mailbox exists (recipient
//! commands for unknown mailboxes fail exactly like bad signatures).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prost::Message;
use rand::Rng as _;
use subtle::ConstantTimeEq;
use tropa_proto::relay::{
    self, ErrorCode, RecipientCommand, Request, Response, recipient_command::Action, request,
    response,
};
use tropa_proto::{ENVELOPE_ID_LEN, ENVELOPE_SIZE, MAILBOX_ID_LEN, MAX_ACK_IDS, PROTOCOL_VERSION};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::Hour;
use crate::crypto::{self, ChannelBinding, SealingKey};
use crate::limits::{RateLimiter, pressure_quota};
use crate::metrics::Metrics;
use crate::store::{
    EnvelopeId, MailboxRecord, RecipientId, RecipientWrite, Store, StoreError, StoreLimits,
    WriteOp, Written,
};

/// Addresses whose creation budget is tracked at once; beyond this, new
/// addresses are refused until the table has been pruned (fail closed).
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// Intake mailboxes whose deposit budget is tracked at once (under 100
/// bytes each); beyond this, deposits into intake mailboxes not in the table
/// are refused until it has room again (fail closed). An entry is forgotten
/// once its bucket has refilled: 20 minutes after a whole burst at the
/// defaults (10 at 30 an hour).
pub const MAX_TRACKED_INTAKE: usize = 100_000;

/// Relay-wide limits and policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Envelopes one secured mailbox may hold while the relay is at most
    /// half full (beyond that, see [`pressure_quota`]).
    pub mailbox_quota: u32,
    /// Envelopes one open (not yet secured) mailbox may hold.
    pub open_mailbox_quota: u32,
    /// Mailboxes the relay may hold.
    pub max_mailboxes: u64,
    /// Envelopes the relay may hold in total.
    pub total_quota: u64,
    /// Envelopes all open mailboxes together may hold.
    pub open_total_quota: u64,
    /// Password required for `CreateMailbox`, if any.
    pub creation_password: Option<String>,
    /// Mailboxes one address (IPv6: one /64) may create per hour on average.
    pub creations_per_hour: u32,
    /// Mailboxes one address may create in a burst.
    pub creation_burst_per_address: u32,
    /// Mailboxes one connection may create in a burst.
    pub creation_burst_per_connection: u32,
    /// Links the relay may hold.
    pub max_links: u64,
    /// Hours a link may live at most (a longer `ttl_secs` is cut to this).
    pub max_link_ttl_hours: u32,
    /// Deposits one intake mailbox takes per hour on average.
    pub intake_deposits_per_hour: u32,
    /// Deposits one intake mailbox takes in a burst.
    pub intake_deposit_burst: u32,
    /// Intake mailboxes whose deposit budget is tracked at once
    /// ([`MAX_TRACKED_INTAKE`]; smaller in tests).
    pub max_tracked_intake: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            mailbox_quota: 1000,
            open_mailbox_quota: 8,
            max_mailboxes: 250_000,
            total_quota: 512 * 1024,
            open_total_quota: 512 * 1024 / 20,
            creation_password: None,
            creations_per_hour: 30,
            creation_burst_per_address: 32,
            creation_burst_per_connection: 8,
            max_links: 100_000,
            max_link_ttl_hours: 90 * 24,
            intake_deposits_per_hour: 30,
            intake_deposit_burst: 10,
            max_tracked_intake: MAX_TRACKED_INTAKE,
        }
    }
}

/// The time, as the service sees it: the stored hour (S8) and a monotonic
/// instant for rate limits.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Hours since the Unix epoch.
    pub hour: Hour,
    /// Monotonic time.
    pub instant: Instant,
}

impl Now {
    /// The current time.
    pub fn current() -> Self {
        Self {
            hour: crate::current_hour(),
            instant: Instant::now(),
        }
    }
}

/// The connection a request arrived on: its channel binding, the key its
/// address is counted under (never stored, never logged) and its own
/// creation budget.
pub struct Peer {
    binding: ChannelBinding,
    address: IpAddr,
    creations: Mutex<RateLimiter>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Peer(<redacted>)")
    }
}

/// What the shell must do after [`Service::handle`].
#[derive(Debug)]
pub enum Outcome {
    /// Send `response` and finish the stream.
    Reply {
        /// The answer.
        response: Response,
        /// The store must be durable before the answer goes out; if making
        /// it durable fails, answer [`internal_error`] instead.
        durable: bool,
        /// Wake this mailbox's subscriptions once durable.
        wake: Option<RecipientId>,
    },
    /// Queue `op` for the store's next group commit ([`Store::apply`]),
    /// then answer what [`Service::finish`] makes of its result. No
    /// thread waits for the disk on the way.
    Write {
        /// The write.
        op: WriteOp,
        /// How to answer once it is durable.
        then: Then,
    },
    /// Send [`ok`] and keep the stream open for deliveries of this mailbox
    /// (see [`Service::next_delivery`]); queue `touch` (the mailbox was
    /// used this hour), if it changes anything, without waiting for it.
    Subscribe {
        /// The subscription.
        sub: Subscription,
        /// The mailbox's activity mark, if it is not set for this hour yet.
        touch: Option<WriteOp>,
    },
}

/// How to answer a [`Outcome::Write`] (see [`Service::finish`]).
#[derive(Debug, Clone, Copy)]
pub enum Then {
    /// `Accepted`, and wake this mailbox's subscriptions.
    Deposit(RecipientId),
    /// `Ok` with `acked` = this many envelope IDs (each acknowledged
    /// whether it was still there or not).
    Ack(u32),
    /// `Ok`.
    Done,
}

impl Outcome {
    fn reply(response: Response) -> Self {
        Outcome::Reply {
            response,
            durable: false,
            wake: None,
        }
    }

    fn durable(response: Response) -> Self {
        Outcome::Reply {
            response,
            durable: true,
            wake: None,
        }
    }
}

/// A started subscription: which mailbox and how to seal its deliveries.
pub struct Subscription {
    /// The mailbox.
    pub recipient_id: RecipientId,
    delivery_key: SealingKey,
    at_rest_key: SealingKey,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription(<redacted>)")
    }
}

/// One delivery frame and where the cursor goes next.
#[derive(Debug)]
pub struct Delivery {
    /// The frame to write.
    pub frame: Response,
    /// The sequence number to ask for after this frame was written.
    pub next_seq: u64,
}

/// Builds an error response.
pub fn error(code: ErrorCode, message: &str) -> Response {
    Response {
        result: Some(response::Result::Error(relay::Error {
            code: code as i32,
            message: message.to_owned(),
        })),
    }
}

/// The generic success response (also the first frame of a subscription).
pub fn ok() -> Response {
    Response {
        result: Some(response::Result::Ok(relay::Ok::default())),
    }
}

/// The frame that tells a subscriber everything stored has been delivered.
pub fn idle() -> Response {
    Response {
        result: Some(response::Result::Idle(relay::Idle {})),
    }
}

/// The answer when the store could not be made durable.
pub fn internal_error() -> Response {
    error(ErrorCode::Internal, "could not store, try again")
}

/// The answer when the relay has no memory to spare for a request.
pub fn busy() -> Response {
    error(ErrorCode::RateLimited, "relay busy, try again shortly")
}

fn auth_failed() -> Response {
    error(ErrorCode::AuthFailed, "authentication failed")
}

fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::NoMailbox => error(ErrorCode::NoMailbox, "no such mailbox"),
        StoreError::Quota => error(ErrorCode::Quota, "mailbox is full"),
        StoreError::DiskFull => error(ErrorCode::Quota, "relay storage is full"),
        StoreError::SecurityChanged => error(ErrorCode::AuthFailed, "deposit signature invalid"),
        StoreError::LinkOwner => auth_failed(),
        StoreError::TooManyLinks => {
            error(ErrorCode::Quota, "relay holds its maximum number of links")
        }
        StoreError::Collision
        | StoreError::Corrupt
        | StoreError::NewerFormat { .. }
        | StoreError::Backend(_)
        | StoreError::Redb(_)
        | StoreError::CommitFailed
        | StoreError::Io(_) => error(ErrorCode::Internal, "relay storage error, try again later"),
    }
}

fn key32(raw: &[u8]) -> Option<[u8; 32]> {
    raw.try_into().ok()
}

/// A valid Ed25519 public key, or `None`.
fn ed25519_key(raw: &[u8]) -> Option<[u8; 32]> {
    key32(raw).filter(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_ok())
}

fn check_password(want: Option<&String>, given: &str) -> Result<(), Response> {
    if let Some(want) = want {
        let ok: bool = want.as_bytes().ct_eq(given.as_bytes()).into();
        if !ok {
            return Err(error(
                ErrorCode::AuthFailed,
                "wrong mailbox creation password",
            ));
        }
    }
    Ok(())
}

/// The mailbox service.
pub struct Service {
    store: Arc<dyn Store>,
    policy: Policy,
    metrics: Arc<Metrics>,
    /// Creation budgets per address key, in memory only. An entry whose
    /// bucket has refilled carries no information and is pruned.
    creations: Mutex<HashMap<IpAddr, RateLimiter>>,
    /// Deposit budgets per intake mailbox, in memory only, pruned the same
    /// way and bounded by [`Policy::max_tracked_intake`].
    intake: Mutex<HashMap<RecipientId, RateLimiter>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// A service over `store`.
    pub fn new(store: Arc<dyn Store>, policy: Policy, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            policy,
            metrics,
            creations: Mutex::new(HashMap::new()),
            intake: Mutex::new(HashMap::new()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The state of a new connection whose address counts as `address` (see
    /// [`crate::limits::ip_key`]).
    pub fn peer(&self, binding: ChannelBinding, address: IpAddr, now: Now) -> Peer {
        Peer {
            binding,
            address,
            creations: Mutex::new(RateLimiter::per_hour(
                self.policy.creations_per_hour,
                self.policy.creation_burst_per_connection,
                now.instant,
            )),
        }
    }

    /// Forgets creation and intake budgets that have refilled completely.
    pub fn prune(&self, now: Now) {
        let mut map = self.creations.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, bucket| !bucket.is_full(now.instant));
        drop(map);
        let mut map = self.intake.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, bucket| !bucket.is_full(now.instant));
    }

    /// Intake budgets tracked now (for tests of the bound).
    pub fn tracked_intake(&self) -> usize {
        self.intake.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether [`Service::handle`] only reads the store for this request
    /// (its writes, if any, come back as [`Outcome::Write`] or in
    /// [`Outcome::Subscribe`]), so the shell may run it on an async worker.
    pub fn reads_only(req: &Request) -> bool {
        matches!(
            req.command,
            Some(request::Command::Deposit(_) | request::Command::Signed(_))
        )
    }

    /// Decides what to do with one request.
    pub fn handle(&self, req: Request, peer: &Peer, now: Now) -> Outcome {
        if req.version != PROTOCOL_VERSION {
            return Outcome::reply(error(
                ErrorCode::UnsupportedVersion,
                "unsupported protocol version",
            ));
        }
        match req.command {
            None => Outcome::reply(error(ErrorCode::Malformed, "unknown or missing command")),
            Some(request::Command::CreateMailbox(c)) => self.create(&c, peer, now),
            Some(request::Command::Deposit(d)) => self.deposit(&d, now),
            Some(request::Command::Signed(s)) => self.recipient(&s, &peer.binding, now.hour),
            Some(request::Command::PutLink(p)) => self.put_link(&p, peer, now),
            Some(request::Command::GetLink(g)) => self.get_link(&g, now.hour),
            Some(request::Command::DeleteLink(d)) => self.delete_link(&d, &peer.binding),
        }
    }

    /// Whether the intake mailbox `rid` may take one more deposit now.
    fn may_deposit_intake(&self, rid: &RecipientId, now: Instant) -> bool {
        let mut map = self.intake.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.policy.max_tracked_intake && !map.contains_key(rid) {
            map.retain(|_, bucket| !bucket.is_full(now));
            if map.len() >= self.policy.max_tracked_intake {
                return false;
            }
        }
        map.entry(*rid)
            .or_insert_with(|| {
                RateLimiter::per_hour(
                    self.policy.intake_deposits_per_hour,
                    self.policy.intake_deposit_burst,
                    now,
                )
            })
            .try_take(now)
    }

    /// Whether `peer` may create one more mailbox now (per connection and
    /// per address).
    fn may_create(&self, peer: &Peer, now: Now) -> bool {
        let mut conn = peer.creations.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.creations.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED_ADDRESSES && !map.contains_key(&peer.address) {
            map.retain(|_, bucket| !bucket.is_full(now.instant));
            if map.len() >= MAX_TRACKED_ADDRESSES {
                return false;
            }
        }
        let per_address = map.entry(peer.address).or_insert_with(|| {
            RateLimiter::per_hour(
                self.policy.creations_per_hour,
                self.policy.creation_burst_per_address,
                now.instant,
            )
        });
        // Check both before taking from either, so a refusal costs nothing.
        let mut probe_conn = conn.clone();
        let mut probe_addr = per_address.clone();
        if probe_conn.try_take(now.instant) && probe_addr.try_take(now.instant) {
            *conn = probe_conn;
            *per_address = probe_addr;
            true
        } else {
            false
        }
    }

    fn create(&self, c: &relay::CreateMailbox, peer: &Peer, now: Now) -> Outcome {
        if let Err(refused) = check_password(self.policy.creation_password.as_ref(), &c.password) {
            return Outcome::reply(refused);
        }
        let (Some(auth), Some(dh)) = (key32(&c.recipient_auth_pub), key32(&c.recipient_dh_pub))
        else {
            return Outcome::reply(error(ErrorCode::Malformed, "keys must be 32 bytes"));
        };
        if ed25519_dalek::VerifyingKey::from_bytes(&auth).is_err() {
            return Outcome::reply(error(ErrorCode::Malformed, "invalid Ed25519 key"));
        }
        if self.store.totals().mailboxes >= self.policy.max_mailboxes {
            return Outcome::reply(error(
                ErrorCode::Quota,
                "relay holds its maximum number of mailboxes",
            ));
        }
        if !self.may_create(peer, now) {
            self.metrics.inc(&self.metrics.creations_refused);
            return Outcome::reply(error(
                ErrorCode::RateLimited,
                "too many new mailboxes from this network; try again later",
            ));
        }
        let mut rng = rand::rng();
        let relay_secret = StaticSecret::random_from_rng(&mut rng);
        let mut recipient_id = [0u8; MAILBOX_ID_LEN];
        let mut sender_id = [0u8; MAILBOX_ID_LEN];
        rng.fill_bytes(&mut recipient_id);
        rng.fill_bytes(&mut sender_id);
        let rec = MailboxRecord {
            recipient_auth_pub: auth.to_vec(),
            recipient_dh_pub: dh.to_vec(),
            relay_dh_secret: relay_secret.to_bytes().to_vec(),
            sender_id: sender_id.to_vec(),
            secured_sender: Vec::new(),
            active_hour: now.hour,
            next_seq: 0,
            count: 0,
            created_hour: now.hour,
            fresh: true,
            intake: c.intake,
        };
        if let Err(e) = self.store.create_mailbox(&recipient_id, &rec) {
            return Outcome::reply(store_error(&e));
        }
        self.metrics.inc(&self.metrics.mailboxes_created);
        // A new mailbox must survive a crash once its creator has the IDs.
        Outcome::durable(Response {
            result: Some(response::Result::Created(relay::MailboxCreated {
                recipient_id: recipient_id.to_vec().into(),
                sender_id: sender_id.to_vec().into(),
                relay_dh_pub: PublicKey::from(&relay_secret).to_bytes().to_vec().into(),
            })),
        })
    }

    fn deposit(&self, d: &relay::Deposit, now: Now) -> Outcome {
        if d.envelope.len() > ENVELOPE_SIZE {
            return Outcome::reply(error(ErrorCode::TooLarge, "envelope too large"));
        }
        if d.envelope.len() != ENVELOPE_SIZE {
            return Outcome::reply(error(ErrorCode::Malformed, "envelope has the wrong size"));
        }
        let Ok(sender_id) = <[u8; MAILBOX_ID_LEN]>::try_from(d.sender_id.as_ref()) else {
            return Outcome::reply(store_error(&StoreError::NoMailbox));
        };
        let (rid, rec) = match self.store.mailbox_by_sender(&sender_id) {
            Ok(Some(found)) => found,
            Ok(None) => return Outcome::reply(store_error(&StoreError::NoMailbox)),
            Err(e) => return Outcome::reply(store_error(&e)),
        };
        if rec.needs_signature() {
            let signed = crypto::deposit_signed_bytes(&d.sender_id, &d.envelope);
            if !crypto::verify(&rec.secured_sender, &signed, &d.signature) {
                return Outcome::reply(error(ErrorCode::AuthFailed, "deposit signature invalid"));
            }
        }
        // Anyone may deposit into an intake mailbox: what bounds a flood of
        // one address is its own budget, on top of the per-connection rate
        // and the mailbox quota, so its owner never has more to process.
        if rec.intake && !self.may_deposit_intake(&rid, now.instant) {
            self.metrics.inc(&self.metrics.intake_refused);
            return Outcome::reply(error(
                ErrorCode::RateLimited,
                "this address takes no more requests now; try again later",
            ));
        }
        let Some(secret) = key32(&rec.relay_dh_secret) else {
            return Outcome::reply(store_error(&StoreError::Corrupt));
        };
        let at_rest = SealingKey::at_rest(&StaticSecret::from(secret), &rid);
        let totals = self.store.totals();
        let limits = StoreLimits {
            mailbox_quota: pressure_quota(
                self.policy.mailbox_quota,
                totals.envelopes,
                self.policy.total_quota,
                totals.mailboxes,
            ),
            total_quota: self.policy.total_quota,
            open_mailbox_quota: self.policy.open_mailbox_quota,
            open_total_quota: self.policy.open_total_quota,
            // Re-checked inside the write: a `Secure` that lands between the
            // signature check above and the write must not let this through.
            secured_as_checked: rec.secured_sender.clone(),
        };
        let envelope = d.envelope.clone();
        Outcome::Write {
            op: WriteOp::Deposit {
                recipient_id: rid,
                hour: now.hour,
                limits,
                seal: Box::new(move |id: &EnvelopeId| at_rest.seal(id, &envelope)),
            },
            then: Then::Deposit(rid),
        }
    }

    /// The answer to an [`Outcome::Write`] once the store applied it (and
    /// made it durable, if it succeeded), and the mailbox whose
    /// subscriptions to wake.
    pub fn finish(
        &self,
        then: Then,
        result: Result<Written, StoreError>,
    ) -> (Response, Option<RecipientId>) {
        match (then, result) {
            (Then::Deposit(rid), Ok(_)) => {
                self.metrics.inc(&self.metrics.deposits);
                (accepted(), Some(rid))
            }
            (Then::Ack(n), Ok(_)) => {
                self.metrics.add(&self.metrics.acks, u64::from(n));
                let acked = Response {
                    result: Some(response::Result::Ok(relay::Ok { acked: n })),
                };
                (acked, None)
            }
            (Then::Done, Ok(_)) => (ok(), None),
            (_, Err(e)) => {
                if matches!(e, StoreError::Quota | StoreError::DiskFull) {
                    self.metrics.inc(&self.metrics.quota_refusals);
                }
                (store_error(&e), None)
            }
        }
    }

    /// Carries out an [`Outcome::Write`] (and a subscription's touch) on
    /// the calling thread, as the server's commit thread would, and
    /// returns the reply: for tests and simulations, which have no server.
    pub fn settle(&self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Write { op, then } => {
                let result = self
                    .store
                    .apply(std::slice::from_ref(&op))
                    .pop()
                    .unwrap_or(Err(StoreError::CommitFailed));
                let (response, wake) = self.finish(then, result);
                Outcome::Reply {
                    response,
                    durable: true,
                    wake,
                }
            }
            Outcome::Subscribe { sub, touch } => {
                if let Some(touch) = &touch {
                    let _ = self.store.apply(std::slice::from_ref(touch));
                }
                Outcome::Subscribe { sub, touch }
            }
            reply => reply,
        }
    }

    fn recipient(&self, s: &relay::SignedCommand, binding: &ChannelBinding, now: Hour) -> Outcome {
        let Ok(cmd) = RecipientCommand::decode(s.command.as_ref()) else {
            return Outcome::reply(error(ErrorCode::Malformed, "malformed recipient command"));
        };
        let Ok(rid) = RecipientId::try_from(cmd.recipient_id.as_ref()) else {
            return Outcome::reply(auth_failed());
        };
        let rec = match self.store.mailbox(&rid) {
            Ok(Some(rec)) => rec,
            // Unknown mailbox and bad signature are indistinguishable.
            Ok(None) => return Outcome::reply(auth_failed()),
            Err(e) => return Outcome::reply(store_error(&e)),
        };
        let signed = crypto::recipient_signed_bytes(binding, &s.command);
        if !crypto::verify(&rec.recipient_auth_pub, &signed, &s.signature) {
            self.metrics.inc(&self.metrics.auth_failures);
            return Outcome::reply(auth_failed());
        }
        let write = |action| WriteOp::Recipient {
            recipient_id: rid,
            hour: now,
            action,
        };
        let (action, then) = match cmd.action {
            None => return Outcome::reply(error(ErrorCode::Malformed, "unknown action")),
            Some(Action::Subscribe(_)) => {
                // Most subscriptions come within the hour of the last one:
                // nothing to write then (no commit, no queued job).
                let stale = rec.active_hour != now || rec.fresh;
                return self.subscribe(rid, &rec, stale.then(|| write(RecipientWrite::Touch)));
            }
            Some(Action::Ack(a)) => {
                if a.more_ids.len() >= MAX_ACK_IDS {
                    return Outcome::reply(error(ErrorCode::Malformed, "too many envelope ids"));
                }
                let ids: Result<Vec<EnvelopeId>, _> = std::iter::once(&a.envelope_id)
                    .chain(&a.more_ids)
                    .map(|id| <[u8; ENVELOPE_ID_LEN]>::try_from(id.as_ref()))
                    .collect();
                let Ok(ids) = ids else {
                    return Outcome::reply(error(ErrorCode::Malformed, "bad envelope id"));
                };
                let n = u32::try_from(ids.len()).unwrap_or(u32::MAX);
                // Acking twice is harmless: the client retries after losses.
                (RecipientWrite::Ack(ids), Then::Ack(n))
            }
            // An intake mailbox takes requests from anyone for as long as
            // it exists: securing it would silently stop them all.
            Some(Action::Secure(_)) if rec.intake => {
                return Outcome::reply(error(
                    ErrorCode::Malformed,
                    "an intake mailbox cannot be secured",
                ));
            }
            Some(Action::Secure(sec)) => match ed25519_key(&sec.sender_auth_pub) {
                Some(k) => (RecipientWrite::Secure(k.to_vec()), Then::Done),
                None => return Outcome::reply(error(ErrorCode::Malformed, "invalid sender key")),
            },
            Some(Action::Delete(_)) => (RecipientWrite::Delete, Then::Done),
        };
        Outcome::Write {
            op: write(action),
            then,
        }
    }

    fn subscribe(&self, rid: RecipientId, rec: &MailboxRecord, touch: Option<WriteOp>) -> Outcome {
        let (Some(secret), Some(peer)) =
            (key32(&rec.relay_dh_secret), key32(&rec.recipient_dh_pub))
        else {
            return Outcome::reply(store_error(&StoreError::Corrupt));
        };
        let secret = StaticSecret::from(secret);
        Outcome::Subscribe {
            sub: Subscription {
                recipient_id: rid,
                delivery_key: SealingKey::delivery(&secret, &PublicKey::from(peer), &rid),
                at_rest_key: SealingKey::at_rest(&secret, &rid),
            },
            touch,
        }
    }

    /// The next delivery of a subscription at or after sequence number
    /// `from_seq`, or `None` once everything stored has been delivered.
    ///
    /// Each frame is sealed afresh (S6: fresh nonce, key shared only with
    /// the recipient, so its bytes match neither the deposit, nor the
    /// stored form, nor any earlier delivery). Stored envelopes that do not
    /// decode or open are skipped and counted, so one damaged record never
    /// blocks a mailbox.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be read.
    pub fn next_delivery(
        &self,
        sub: &Subscription,
        mut from_seq: u64,
    ) -> Result<Option<Delivery>, StoreError> {
        loop {
            let (found, corrupt) = self.store.next_envelope(&sub.recipient_id, from_seq)?;
            for _ in 0..corrupt {
                self.metrics.inc(&self.metrics.corrupt_envelopes);
            }
            let Some(env) = found else {
                return Ok(None);
            };
            from_seq = crate::store::seq_of(&env.id).saturating_add(1);
            let Ok(plain) = sub.at_rest_key.open(&env.id, &env.sealed) else {
                self.metrics.inc(&self.metrics.corrupt_envelopes);
                continue;
            };
            self.metrics.inc(&self.metrics.deliveries);
            return Ok(Some(Delivery {
                frame: Response {
                    result: Some(response::Result::Delivery(relay::Delivery {
                        envelope_id: env.id.to_vec().into(),
                        sealed: sub.delivery_key.seal(&env.id, &plain).into(),
                    })),
                },
                next_seq: from_seq,
            }));
        }
    }
}

/// The `Accepted` response.
pub fn accepted() -> Response {
    Response {
        result: Some(response::Result::Accepted(relay::Accepted {})),
    }
}

mod links;
#[cfg(test)]
mod tests;

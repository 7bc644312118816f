//! The sync engine: connects to every relay the profile receives on or sends
//! to, subscribes to its mailboxes, turns deliveries into stored messages,
//! and delivers the outbox (S13: a text stays queued until the recipient's
//! end-to-end receipt arrives and is resent after a timeout; the recipient
//! drops duplicates by message id).
//!
//! Order of effects on receipt, so a crash at any point loses nothing and
//! shows nothing twice: decrypt → store message, new ratchet state and the
//! envelope's digest in one durable batch → ack at the relay → forget the
//! digest. A redelivered envelope (crash before the ack) is recognised by its
//! digest and acked silently, never reported as tampering.
//!
//! Idle costs no data: the engine waits on subscription streams and local
//! timers; it never polls a relay.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tropa_e2e::{Body, Content, ContentExt as _, OpenError, PendingInvitation, Session};
use tropa_proto::RelayAddress;
use tropa_relay_client::{Delivery, Event, RelayClient};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::client::{Client, MessageView, message_key, now, signing_key};
use crate::error::ClientError;
use crate::records::{
    ContactRecord, ContactState, Direction, MessageRecord, OutboxKind, OutboxRecord, OwnMailbox,
    PendingRecord, Status, expiry, tree,
};
use crate::store::Batch;

/// Longest a sync without `--wait` may take, even if a relay misbehaves.
const ONE_SHOT_LIMIT: Duration = Duration::from_secs(60);
/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Default time before a text without receipt is sent again. Each further
/// resend waits twice as long, up to [`MAX_RESEND_INTERVAL`].
pub const DEFAULT_RESEND_AFTER: Duration = Duration::from_secs(600);
/// Longest wait between two resends of a text without receipt.
pub const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Longest wait after repeated refusals of a deposit.
const MAX_REFUSAL_BACKOFF: u64 = 3600;
const DIGEST_CONTEXT: &[u8] = b"tropa/1 processed-envelope\0";
/// Subscription events read ahead of the engine, all mailboxes together.
const DELIVERY_BACKLOG: usize = 8;

/// How a sync runs.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Keep listening this long (None: leave as soon as caught up).
    pub wait: Option<Duration>,
    /// Resend a text that has no receipt after this long.
    pub resend_after: Duration,
    /// First wait after a relay refused a deposit (quota, rate limit);
    /// doubles with each refusal, up to an hour.
    pub refusal_backoff: Duration,
    /// Unused invitations are deleted this long after they expire (a
    /// `Hello` sent just before expiry may still be on its way).
    pub invitation_grace: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            wait: None,
            resend_after: DEFAULT_RESEND_AFTER,
            refusal_backoff: Duration::from_secs(60),
            invitation_grace: Duration::from_secs(tropa_e2e::INVITATION_GRACE_SECS),
        }
    }
}

/// Something a front end may want to show as it happens. `Debug` names the
/// event only (its fields carry aliases and message text).
#[derive(Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// A new message arrived.
    Received(MessageView),
    /// The recipient confirmed a message.
    Delivered {
        /// Contact.
        alias: String,
        /// Message id (hex).
        id: String,
    },
    /// Someone accepted our invitation.
    Joined {
        /// The alias chosen at `invite`.
        alias: String,
    },
    /// An invitation nobody accepted expired; its mailbox was deleted.
    InvitationExpired {
        /// The alias chosen at `invite`.
        alias: String,
    },
    /// An envelope was dropped: tampered, undecryptable or invalid.
    Dropped {
        /// Contact the mailbox belongs to.
        alias: String,
        /// Why.
        reason: String,
    },
    /// A relay could not be reached (will be retried when waiting).
    Unreachable {
        /// The relay (without password).
        relay: String,
        /// The error.
        error: String,
    },
}

/// What a sync did. `Debug` shows counts, not the aliases in `refused`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// New messages stored.
    pub received: usize,
    /// Envelopes accepted by relays (texts, receipts, handshakes).
    pub deposited: usize,
    /// Messages confirmed by their recipient.
    pub delivered: usize,
    /// Contacts that accepted an invitation.
    pub joined: usize,
    /// Envelopes dropped as tampered or invalid.
    pub dropped: usize,
    /// Relays that could not be reached.
    pub unreachable: Vec<String>,
    /// Deposits a relay refused (quota, rate limit, ...), as `alias: reason`;
    /// they stay queued and are retried with backoff.
    pub refused: Vec<String>,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
}

/// A request from an interactive front end during a waiting sync.
#[derive(Clone)]
pub enum Command {
    /// Queue and send a text.
    Send {
        /// Contact.
        alias: String,
        /// Text.
        text: String,
    },
}

impl std::fmt::Debug for SyncEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncEvent::Received(_) => "SyncEvent::Received",
            SyncEvent::Delivered { .. } => "SyncEvent::Delivered",
            SyncEvent::Joined { .. } => "SyncEvent::Joined",
            SyncEvent::InvitationExpired { .. } => "SyncEvent::InvitationExpired",
            SyncEvent::Dropped { .. } => "SyncEvent::Dropped",
            SyncEvent::Unreachable { .. } => "SyncEvent::Unreachable",
        })
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Send { .. } => f.write_str("Command::Send(<redacted>)"),
        }
    }
}

impl std::fmt::Debug for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncReport")
            .field("received", &self.received)
            .field("deposited", &self.deposited)
            .field("delivered", &self.delivered)
            .field("joined", &self.joined)
            .field("dropped", &self.dropped)
            .field("unreachable", &self.unreachable.len())
            .field("refused", &self.refused.len())
            .field("bytes_sent", &self.bytes_sent)
            .field("bytes_received", &self.bytes_received)
            .finish()
    }
}

enum SubMsg {
    Event(Event),
    Closed(String),
}

struct Link {
    client: Arc<RelayClient>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

struct Down {
    next_try: Instant,
    backoff: Duration,
}

fn relay_key(addr: &str) -> Option<(String, RelayAddress)> {
    let a: RelayAddress = addr.parse().ok()?;
    Some((a.without_password().to_string(), a))
}

struct Engine<'a> {
    c: &'a mut Client,
    opts: SyncOptions,
    links: HashMap<String, Link>,
    down: HashMap<String, Down>,
    tx: mpsc::Sender<(Vec<u8>, String, SubMsg)>,
    rx: mpsc::Receiver<(Vec<u8>, String, SubMsg)>,
    idle_pending: HashSet<Vec<u8>>,
    report: SyncReport,
    events: Option<&'a mpsc::UnboundedSender<SyncEvent>>,
    receipts: HashMap<Vec<u8>, Vec<[u8; 16]>>,
    /// Outbox entries a relay refused during this sync.
    refused_now: HashSet<Vec<u8>>,
    /// Whether this sync keeps listening (`wait`).
    waiting: bool,
}

impl Client {
    /// Receives and sends until caught up (or for `opts.wait`), reporting
    /// events as they happen. Relays that cannot be reached are reported and
    /// skipped; when waiting they are retried with exponential backoff.
    ///
    /// # Errors
    /// Storage errors only; network trouble is reported, not fatal.
    pub async fn sync(
        &mut self,
        opts: SyncOptions,
        events: Option<&mpsc::UnboundedSender<SyncEvent>>,
        mut commands: Option<&mut mpsc::UnboundedReceiver<Command>>,
    ) -> Result<SyncReport, ClientError> {
        // Bounded: subscription readers stop reading while the engine is
        // behind, and QUIC flow control then stops the relay (backpressure).
        let (tx, rx) = mpsc::channel(DELIVERY_BACKLOG);
        let waiting = opts.wait.is_some();
        let deadline = Instant::now() + opts.wait.unwrap_or(ONE_SHOT_LIMIT);
        let mut e = Engine {
            c: self,
            opts,
            links: HashMap::new(),
            down: HashMap::new(),
            tx,
            rx,
            idle_pending: HashSet::new(),
            report: SyncReport::default(),
            events,
            receipts: HashMap::new(),
            refused_now: HashSet::new(),
            waiting,
        };
        e.expire_invitations().await?;
        e.connect_all().await?;
        e.flush_outbox().await?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !waiting && e.idle_pending.is_empty() && !e.has_due_work()? {
                break;
            }
            tokio::select! {
                msg = e.rx.recv() => {
                    let Some((rid, relay, msg)) = msg else { break };
                    e.on_sub_msg(rid, relay, msg).await?;
                    // Handle everything already queued before sending receipts.
                    while let Ok((rid, relay, msg)) = e.rx.try_recv() {
                        e.on_sub_msg(rid, relay, msg).await?;
                    }
                    e.queue_receipts()?;
                    e.flush_outbox().await?;
                }
                cmd = async {
                    match commands.as_mut() {
                        Some(c) => c.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match cmd {
                        Some(Command::Send { alias, text }) => {
                            if let Err(err) = e.c.queue_text(&alias, &text) {
                                e.emit(SyncEvent::Dropped { alias, reason: err.to_string() });
                            }
                            e.flush_outbox().await?;
                        }
                        None => commands = None,
                    }
                }
                _ = tick.tick() => {
                    if waiting {
                        e.reconnect_due().await?;
                        e.retry_secures().await?;
                    }
                    e.flush_outbox().await?;
                }
                () = tokio::time::sleep_until(deadline.into()) => break,
            }
        }
        e.finish().await;
        Ok(e.report)
    }
}

impl Engine<'_> {
    fn emit(&self, ev: SyncEvent) {
        if let Some(tx) = self.events {
            let _ = tx.send(ev);
        }
    }

    fn mailboxes(&self) -> Result<Vec<OwnMailbox>, ClientError> {
        self.c
            .vault
            .iter(tree::MAILBOXES)?
            .into_iter()
            .map(|(_, v)| {
                OwnMailbox::decode(v.as_slice()).map_err(|_| ClientError::Corrupt("mailbox"))
            })
            .collect()
    }

    fn outbox(&self) -> Result<Vec<(Vec<u8>, OutboxRecord)>, ClientError> {
        let mut v = self
            .c
            .vault
            .iter(tree::OUTBOX)?
            .into_iter()
            .map(|(k, v)| {
                OutboxRecord::decode(v.as_slice())
                    .map(|r| (k, r))
                    .map_err(|_| ClientError::Corrupt("outbox"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        v.sort_by_key(|(_, r)| r.seq);
        Ok(v)
    }

    fn is_due(&self, key: &[u8], r: &OutboxRecord, t: u64) -> bool {
        // A one-shot sync tries a refused entry once; later syncs (or a
        // waiting one, after the backoff) try again.
        if !self.waiting && self.refused_now.contains(key) {
            return false;
        }
        if r.failures > 0 {
            let wait = (self.opts.refusal_backoff.as_secs() << (r.failures - 1).min(8))
                .min(MAX_REFUSAL_BACKOFF);
            t >= r.refused_at.saturating_add(wait)
        } else {
            t >= r.next_try_at
        }
    }

    /// When a text accepted `attempts` times is sent again if no receipt
    /// comes: `resend_after`, then twice as long each time, capped.
    fn resend_at(&self, attempts: u32, t: u64) -> u64 {
        let base = self.opts.resend_after.as_secs();
        let factor = 1u64 << attempts.saturating_sub(1).min(16);
        t + base
            .saturating_mul(factor)
            .min(MAX_RESEND_INTERVAL.as_secs())
    }

    /// Whether anything in the outbox should go out now to a reachable relay.
    fn has_due_work(&self) -> Result<bool, ClientError> {
        let t = now();
        for (key, r) in self.outbox()? {
            if !self.is_due(&key, &r, t) {
                continue;
            }
            let Some(c) = self.c.contact(&r.contact_id)? else {
                continue;
            };
            if c.state != ContactState::Established as i32 {
                continue;
            }
            if let Some((key, _)) = relay_key(&c.send_relay)
                && !self.down.contains_key(&key)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn connect_all(&mut self) -> Result<(), ClientError> {
        let mut relays: Vec<String> = self
            .mailboxes()?
            .into_iter()
            .map(|m| m.relay.clone())
            .collect();
        for (_, r) in self.outbox()? {
            if let Some(c) = self.c.contact(&r.contact_id)?
                && !c.send_relay.is_empty()
            {
                relays.push(c.send_relay.clone());
            }
        }
        let mut seen = HashSet::new();
        for r in relays {
            if let Some((key, addr)) = relay_key(&r)
                && seen.insert(key.clone())
            {
                self.link(&key, &addr).await?;
            }
        }
        Ok(())
    }

    async fn reconnect_due(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        let due: Vec<String> = self
            .down
            .iter()
            .filter(|(_, d)| d.next_try <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some((key, addr)) = relay_key(&key) {
                self.link(&key, &addr).await?;
            }
        }
        Ok(())
    }

    fn mark_down(&mut self, key: &str, error: String) {
        if let Some(link) = self.links.remove(key) {
            let (s, r) = link.client.traffic();
            self.report.bytes_sent += s;
            self.report.bytes_received += r;
            for h in link.readers {
                h.abort();
            }
        }
        let backoff = self
            .down
            .get(key)
            .map_or(MIN_BACKOFF, |d| (d.backoff * 2).min(MAX_BACKOFF));
        self.down.insert(
            key.to_owned(),
            Down {
                next_try: Instant::now() + backoff,
                backoff,
            },
        );
        if !self.report.unreachable.iter().any(|u| u == key) {
            self.report.unreachable.push(key.to_owned());
        }
        self.emit(SyncEvent::Unreachable {
            relay: key.to_owned(),
            error,
        });
    }

    /// The connection to `key`, connecting and subscribing if needed.
    async fn link(
        &mut self,
        key: &str,
        addr: &RelayAddress,
    ) -> Result<Option<Arc<RelayClient>>, ClientError> {
        if let Some(l) = self.links.get(key) {
            if !l.client.is_closed() {
                return Ok(Some(l.client.clone()));
            }
            self.mark_down(key, "connection lost".into());
        }
        if let Some(d) = self.down.get(key)
            && d.next_try > Instant::now()
        {
            return Ok(None);
        }
        let client = match RelayClient::connect(addr).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                self.mark_down(key, e.to_string());
                return Ok(None);
            }
        };
        self.down.remove(key);
        self.report.unreachable.retain(|u| u != key);
        let mut readers = Vec::new();
        for mut mb in self.mailboxes()? {
            if relay_key(&mb.relay).is_none_or(|(k, _)| k != key) {
                continue;
            }
            let Some(auth) = signing_key(&mb.auth_secret) else {
                return Err(ClientError::Corrupt("mailbox key"));
            };
            self.secure_pending(&client, &mut mb).await?;
            match client.subscribe(&auth, &mb.recipient_id).await {
                Ok(sub) => {
                    let rid = mb.recipient_id.clone();
                    let relay = key.to_owned();
                    self.idle_pending.insert(rid.clone());
                    readers.push(tokio::spawn(sub.forward(self.tx.clone(), move |ev| {
                        let msg = match ev {
                            Ok(Some(ev)) => SubMsg::Event(ev),
                            Ok(None) => SubMsg::Closed("relay ended the subscription".into()),
                            Err(e) => SubMsg::Closed(e.to_string()),
                        };
                        (rid.clone(), relay.clone(), msg)
                    })));
                }
                Err(e) if e.code().is_some() => {
                    // The relay no longer knows this mailbox (expired or
                    // deleted): nothing will arrive there; report it once.
                    self.emit(SyncEvent::Unreachable {
                        relay: key.to_owned(),
                        error: format!("a mailbox was refused: {e}"),
                    });
                }
                Err(e) => {
                    for h in readers {
                        h.abort();
                    }
                    self.links.remove(key);
                    self.mark_down(key, e.to_string());
                    return Ok(None);
                }
            }
        }
        self.links.insert(
            key.to_owned(),
            Link {
                client: client.clone(),
                readers,
            },
        );
        Ok(Some(client))
    }

    async fn on_sub_msg(
        &mut self,
        rid: Vec<u8>,
        relay: String,
        msg: SubMsg,
    ) -> Result<(), ClientError> {
        match msg {
            SubMsg::Event(Event::Idle) => {
                self.idle_pending.remove(&rid);
            }
            SubMsg::Event(Event::Delivery(d)) => self.on_delivery(&rid, &relay, &d).await?,
            SubMsg::Closed(err) => {
                self.idle_pending.remove(&rid);
                if self.links.contains_key(&relay) {
                    self.mark_down(&relay, err);
                }
            }
        }
        Ok(())
    }

    async fn ack(
        &mut self,
        relay: &str,
        mb: &OwnMailbox,
        d: &Delivery,
        digest: &[u8],
    ) -> Result<(), ClientError> {
        let Some(link) = self.links.get(relay).map(|l| l.client.clone()) else {
            return Ok(());
        };
        let Some(auth) = signing_key(&mb.auth_secret) else {
            return Err(ClientError::Corrupt("mailbox key"));
        };
        if link
            .ack(&auth, &mb.recipient_id, &d.envelope_id)
            .await
            .is_ok()
        {
            self.c.vault.remove(tree::PROCESSED, digest)?;
        }
        Ok(())
    }

    fn alias_of(&self, contact_id: &[u8]) -> Result<String, ClientError> {
        Ok(self
            .c
            .contact(contact_id)?
            .map_or_else(String::new, |c| c.alias.clone()))
    }

    async fn on_delivery(
        &mut self,
        rid: &[u8],
        relay: &str,
        d: &Delivery,
    ) -> Result<(), ClientError> {
        let Some(raw) = self.c.vault.get(tree::MAILBOXES, rid)? else {
            return Ok(());
        };
        let mb = OwnMailbox::decode(raw.as_slice()).map_err(|_| ClientError::Corrupt("mailbox"))?;
        let dh: Zeroizing<[u8; 32]> = Zeroizing::new(
            mb.dh_secret
                .as_slice()
                .try_into()
                .map_err(|_| ClientError::Corrupt("mailbox key"))?,
        );
        let relay_dh: [u8; 32] = mb
            .relay_dh_pub
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::Corrupt("mailbox key"))?;
        let digest_of = |plain: &[u8]| -> Vec<u8> {
            Sha256::new()
                .chain_update(DIGEST_CONTEXT)
                .chain_update(rid)
                .chain_update(plain)
                .finalize()
                .to_vec()
        };
        let plain = match d.open(&StaticSecret::from(*dh), &relay_dh, rid) {
            Ok(p) => p,
            Err(_) => {
                // Not sealed for us by the relay: corrupt or forged; drop it.
                let digest = digest_of(&d.sealed);
                self.drop_envelope(&mb, "the relay's delivery did not authenticate")?;
                return self.ack(relay, &mb, d, &digest).await;
            }
        };
        let digest = digest_of(&plain);
        if self.c.vault.get(tree::PROCESSED, &digest)?.is_some() {
            // Redelivered after a crash or a lost ack: already stored, just ack.
            return self.ack(relay, &mb, d, &digest).await;
        }
        let mut batch = Batch::new();
        batch.put(tree::PROCESSED, &digest, &[]);
        if mb.invite_id.is_empty() {
            self.on_message(&mb, &plain, batch)?;
        } else {
            self.on_hello(relay, mb.clone(), &plain, batch).await?;
        }
        self.ack(relay, &mb, d, &digest).await
    }

    fn drop_envelope(&mut self, mb: &OwnMailbox, reason: &str) -> Result<(), ClientError> {
        let mut batch = Batch::new();
        if let Some(mut c) = self.c.contact(&mb.contact_id)? {
            c.dropped += 1;
            batch.put(tree::CONTACTS, &c.id.clone(), &c.encode_to_vec());
        }
        self.c.vault.apply(batch)?;
        self.report.dropped += 1;
        let alias = self.alias_of(&mb.contact_id)?;
        self.emit(SyncEvent::Dropped {
            alias,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    async fn on_hello(
        &mut self,
        relay: &str,
        mut mb: OwnMailbox,
        plain: &[u8],
        mut batch: Batch,
    ) -> Result<(), ClientError> {
        let Some(raw) = self.c.vault.get(tree::PENDING, &mb.invite_id)? else {
            self.c.vault.apply(batch)?;
            return self.drop_envelope(&mb, "invitation already used");
        };
        let pending_rec = PendingRecord::decode(raw.as_slice())
            .map_err(|_| ClientError::Corrupt("invitation"))?;
        let pending = PendingInvitation::from_bytes(&pending_rec.pending)
            .map_err(|_| ClientError::Corrupt("invitation"))?;
        let accepted = Session::accept(&mut rand::rng(), &self.c.identity, &pending, plain, now());
        let (session, joiner, hello, _first) = match accepted {
            Ok(a) => a,
            Err(e) => {
                self.c.vault.apply(batch)?;
                return self.drop_envelope(&mb, &format!("invalid handshake: {e}"));
            }
        };
        let Some(mut contact) = self.c.contact(&pending_rec.contact_id)? else {
            self.c.vault.apply(batch)?;
            return Ok(());
        };
        contact.identity = joiner.to_bytes().to_vec();
        contact.state = ContactState::Established as i32;
        contact.send_relay = hello.reply_relay.to_string();
        contact.send_sender_id = hello.reply_sender_id.clone();
        mb.secure_with = hello.sender_auth.to_vec();
        let invite_id = std::mem::take(&mut mb.invite_id);
        batch
            .put(
                tree::CONTACTS,
                &contact.id.clone(),
                &contact.encode_to_vec(),
            )
            .put(tree::SESSIONS, &contact.id.clone(), &session.to_bytes())
            .put(
                tree::MAILBOXES,
                &mb.recipient_id.clone(),
                &mb.encode_to_vec(),
            )
            // One-time: the prekey is gone with this batch.
            .remove(tree::PENDING, &invite_id);
        self.c.vault.apply(batch)?;
        self.report.joined += 1;
        self.emit(SyncEvent::Joined {
            alias: contact.alias.clone(),
        });
        // Only the joiner may deposit here from now on.
        if let Some(link) = self.links.get(relay).map(|l| l.client.clone()) {
            self.secure_pending(&link, &mut mb).await?;
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        mb: &OwnMailbox,
        plain: &[u8],
        mut batch: Batch,
    ) -> Result<(), ClientError> {
        let Some(contact) = self.c.contact(&mb.contact_id)? else {
            self.c.vault.apply(batch)?;
            return Ok(());
        };
        let Some(mut session) = self.c.session(&contact.id)? else {
            self.c.vault.apply(batch)?;
            return self.drop_envelope(mb, "no session with this contact");
        };
        let content = match session.open(plain) {
            Ok(c) => c,
            Err(OpenError::AlreadyProcessed) => {
                self.c.vault.apply(batch)?;
                return Ok(());
            }
            Err(e) => {
                self.c.vault.apply(batch)?;
                return self.drop_envelope(mb, &e.to_string());
            }
        };
        batch.put(tree::SESSIONS, &contact.id, &session.to_bytes());
        let mut event = None;
        match content.body {
            Some(Body::Text(text)) => {
                let id: [u8; 16] = content
                    .id
                    .as_slice()
                    .try_into()
                    .map_err(|_| ClientError::Corrupt("message id"))?;
                let idkey = [contact.id.as_slice(), &id].concat();
                // Receipt again even for a duplicate: the first receipt may be lost.
                self.receipts
                    .entry(contact.id.clone())
                    .or_default()
                    .push(id);
                if self.c.vault.get(tree::MESSAGE_IDS, &idkey)?.is_none() {
                    let t = now();
                    let seq = self.c.next_seq()?;
                    let rec = MessageRecord {
                        id: id.to_vec(),
                        contact_id: contact.id.clone(),
                        direction: Direction::In as i32,
                        text: text.text.clone(),
                        status: Status::Unread as i32,
                        at: t,
                        expires_at: expiry(t, text.expire_after_secs),
                        seq,
                    };
                    let key = message_key(&contact.id, seq);
                    batch.put(tree::MESSAGES, &key, &rec.encode_to_vec()).put(
                        tree::MESSAGE_IDS,
                        &idkey,
                        &key,
                    );
                    self.report.received += 1;
                    event = Some(SyncEvent::Received(MessageView {
                        id: hex::encode(id),
                        alias: contact.alias.clone(),
                        incoming: true,
                        text: text.text.clone(),
                        status: "unread",
                        at: t,
                    }));
                }
                self.c.vault.apply(batch)?;
            }
            Some(Body::Receipt(r)) => {
                let mut delivered = Vec::new();
                for id in &r.ids {
                    let idkey = [contact.id.as_slice(), id].concat();
                    let Some(key) = self.c.vault.get(tree::MESSAGE_IDS, &idkey)? else {
                        continue;
                    };
                    batch.remove(tree::OUTBOX, id);
                    if let Some(raw) = self.c.vault.get(tree::MESSAGES, &key)? {
                        let mut m = MessageRecord::decode(raw.as_slice())
                            .map_err(|_| ClientError::Corrupt("message"))?;
                        if m.direction == Direction::Out as i32
                            && m.status != Status::Delivered as i32
                        {
                            m.status = Status::Delivered as i32;
                            batch.put(tree::MESSAGES, &key, &m.encode_to_vec());
                            delivered.push(hex::encode(id));
                        }
                    }
                }
                self.c.vault.apply(batch)?;
                self.report.delivered += delivered.len();
                for id in delivered {
                    self.emit(SyncEvent::Delivered {
                        alias: contact.alias.clone(),
                        id,
                    });
                }
            }
            None => self.c.vault.apply(batch)?,
        }
        if let Some(ev) = event {
            self.emit(ev);
        }
        Ok(())
    }

    fn queue_receipts(&mut self) -> Result<(), ClientError> {
        let pending = std::mem::take(&mut self.receipts);
        for (contact_id, ids) in pending {
            for chunk in ids.chunks(tropa_e2e::MAX_RECEIPT_IDS) {
                let content = Content::receipt(&mut rand::rng(), chunk)
                    .map_err(|_| ClientError::Corrupt("receipt"))?;
                let rec = OutboxRecord::queued(
                    OutboxKind::Receipt,
                    contact_id.clone(),
                    content.encode_to_vec(),
                    self.c.next_seq()?,
                );
                self.c
                    .vault
                    .put(tree::OUTBOX, &content.id, &rec.encode_to_vec())?;
            }
        }
        Ok(())
    }

    /// Deposits every due outbox entry, oldest first; once one entry of a
    /// contact fails, later ones of that contact wait (order is kept).
    async fn flush_outbox(&mut self) -> Result<(), ClientError> {
        let t = now();
        let mut blocked: HashSet<Vec<u8>> = HashSet::new();
        for (key, mut r) in self.outbox()? {
            if blocked.contains(&r.contact_id) || !self.is_due(&key, &r, t) {
                continue;
            }
            let Some(contact) = self.c.contact(&r.contact_id)? else {
                // The contact is gone: so is the point of sending.
                self.c.vault.remove(tree::OUTBOX, &key)?;
                continue;
            };
            if contact.state != ContactState::Established as i32 {
                continue;
            }
            let Some((rkey, addr)) = relay_key(&contact.send_relay) else {
                continue;
            };
            let Some(link) = self.link(&rkey, &addr).await? else {
                blocked.insert(r.contact_id.clone());
                continue;
            };
            let kind = OutboxKind::try_from(r.kind).unwrap_or(OutboxKind::Text);
            if r.sealed.is_empty() {
                match kind {
                    OutboxKind::Handshake => r.sealed = r.payload.clone(),
                    OutboxKind::Text | OutboxKind::Receipt => {
                        if !self.seal_into(&contact, &key, &mut r)? {
                            self.c.vault.remove(tree::OUTBOX, &key)?;
                            continue;
                        }
                    }
                }
            }
            let signer = signing_key(&contact.send_auth_secret);
            let envelope = bytes::Bytes::copy_from_slice(&r.sealed);
            match link
                .deposit(&contact.send_sender_id, envelope, signer.as_ref())
                .await
            {
                Ok(()) => {
                    self.report.deposited += 1;
                    if kind == OutboxKind::Text {
                        r.attempts += 1;
                        r.sent_at = t;
                        r.failures = 0;
                        // A resend is a new ratchet message with the same id.
                        r.sealed.clear();
                        r.next_try_at = self.resend_at(r.attempts, t);
                        let mut batch = Batch::new();
                        batch.put(tree::OUTBOX, &key, &r.encode_to_vec());
                        self.mark_sent(&contact, &key, &mut batch)?;
                        self.c.vault.apply(batch)?;
                    } else {
                        self.c.vault.remove(tree::OUTBOX, &key)?;
                    }
                }
                Err(e) => {
                    blocked.insert(r.contact_id.clone());
                    if e.code().is_none() {
                        // Network trouble: retry the same bytes once the
                        // relay is back (the link's own backoff applies).
                        self.mark_down(&rkey, e.to_string());
                    } else {
                        // Refused (quota, rate limit, ...): keep the sealed
                        // envelope and retry it later, without burning
                        // ratchet keys on every attempt.
                        r.failures += 1;
                        r.refused_at = t;
                        self.refused_now.insert(key.clone());
                        self.c.vault.put(tree::OUTBOX, &key, &r.encode_to_vec())?;
                        let why = format!("{}: {e}", contact.alias);
                        if !self.report.refused.contains(&why) {
                            self.report.refused.push(why.clone());
                        }
                        self.emit(SyncEvent::Unreachable {
                            relay: rkey.clone(),
                            error: format!("delivery to {} refused: {e}", contact.alias),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn mark_sent(
        &self,
        contact: &ContactRecord,
        id: &[u8],
        batch: &mut Batch,
    ) -> Result<(), ClientError> {
        let idkey = [contact.id.as_slice(), id].concat();
        if let Some(key) = self.c.vault.get(tree::MESSAGE_IDS, &idkey)?
            && let Some(raw) = self.c.vault.get(tree::MESSAGES, &key)?
        {
            let mut m = MessageRecord::decode(raw.as_slice())
                .map_err(|_| ClientError::Corrupt("message"))?;
            if m.status == Status::Queued as i32 {
                m.status = Status::Sent as i32;
                batch.put(tree::MESSAGES, &key, &m.encode_to_vec());
            }
        }
        Ok(())
    }

    /// Seals the entry's content with the contact's session and stores the
    /// advanced session and the sealed envelope in one durable batch, before
    /// anything leaves: a ratchet key is never used twice, and a retry sends
    /// the same bytes. Returns `false` if the entry cannot be sealed.
    fn seal_into(
        &mut self,
        contact: &ContactRecord,
        key: &[u8],
        r: &mut OutboxRecord,
    ) -> Result<bool, ClientError> {
        let Some(mut session) = self.c.session(&contact.id)? else {
            return Ok(false);
        };
        let Ok(content) = Content::decode(r.payload.as_slice()) else {
            return Ok(false);
        };
        let Ok(env) = session.seal(&mut rand::rng(), &content) else {
            return Ok(false);
        };
        r.sealed = env.as_bytes().to_vec();
        let mut batch = Batch::new();
        batch
            .put(tree::SESSIONS, &contact.id, &session.to_bytes())
            .put(tree::OUTBOX, key, &r.encode_to_vec());
        self.c.vault.apply(batch)?;
        Ok(true)
    }

    /// Deletes invitations that expired unused: their one-time secrets, the
    /// contact placeholder and (if the relay is reachable) the mailbox.
    async fn expire_invitations(&mut self) -> Result<(), ClientError> {
        let t = now();
        for (invite_id, raw) in self.c.vault.iter(tree::PENDING)? {
            let Ok(rec) = PendingRecord::decode(raw.as_slice()) else {
                continue;
            };
            let expired = PendingInvitation::from_bytes(&rec.pending)
                .map(|p| {
                    p.expires_at()
                        .saturating_add(self.opts.invitation_grace.as_secs())
                        < t
                })
                .unwrap_or(true);
            if !expired {
                continue;
            }
            let mailbox = self
                .mailboxes()?
                .into_iter()
                .find(|m| m.invite_id == invite_id);
            let alias = self.alias_of(&rec.contact_id)?;
            let mut batch = Batch::new();
            batch
                .remove(tree::PENDING, &invite_id)
                .remove(tree::CONTACTS, &rec.contact_id);
            if let Some(mb) = &mailbox {
                batch.remove(tree::MAILBOXES, &mb.recipient_id);
            }
            self.c.vault.apply(batch)?;
            if let Some(mb) = mailbox
                && let Some((key, addr)) = relay_key(&mb.relay)
                && let Some(link) = self.link(&key, &addr).await?
                && let Some(auth) = signing_key(&mb.auth_secret)
            {
                // Best effort: an undeleted mailbox expires for idleness.
                let _ = link.delete(&auth, &mb.recipient_id).await;
            }
            self.emit(SyncEvent::InvitationExpired { alias });
        }
        Ok(())
    }

    /// Retries `Secure` for mailboxes whose first attempt failed, so a
    /// mailbox never stays open longer than necessary.
    async fn retry_secures(&mut self) -> Result<(), ClientError> {
        for mut mb in self.mailboxes()? {
            if mb.secure_with.is_empty() {
                continue;
            }
            let Some((key, _)) = relay_key(&mb.relay) else {
                continue;
            };
            if let Some(link) = self.links.get(&key).map(|l| l.client.clone()) {
                self.secure_pending(&link, &mut mb).await?;
            }
        }
        Ok(())
    }

    /// Sends the `Secure` a mailbox still owes (if any) and, once the relay
    /// confirms, forgets it. A failure is left for the next attempt.
    async fn secure_pending(
        &self,
        link: &RelayClient,
        mb: &mut OwnMailbox,
    ) -> Result<(), ClientError> {
        let (Ok(sender), Some(auth)) = (
            <[u8; 32]>::try_from(mb.secure_with.as_slice()),
            signing_key(&mb.auth_secret),
        ) else {
            return Ok(());
        };
        if link.secure(&auth, &mb.recipient_id, &sender).await.is_ok() {
            mb.secure_with.clear();
            self.c.vault.put(
                tree::MAILBOXES,
                &mb.recipient_id.clone(),
                &mb.encode_to_vec(),
            )?;
        }
        Ok(())
    }

    async fn finish(&mut self) {
        for (_, link) in self.links.drain() {
            let (s, r) = link.client.traffic();
            self.report.bytes_sent += s;
            self.report.bytes_received += r;
            for h in link.readers {
                h.abort();
            }
            if let Ok(c) = Arc::try_unwrap(link.client) {
                c.close().await;
            }
        }
    }
}

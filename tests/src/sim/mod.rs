//! A deterministic simulation of two clients and their relays, for S13.
//!
//! Two real sync engines (in-memory profiles) talk to real relay services
//! (in-memory stores) through the relay client's own request builders; the
//! "network" is this module, driven by a seeded RNG. It loses requests and
//! answers, redelivers and reorders envelopes, crashes clients before they
//! ack, restarts relays, and expires stored envelopes. Afterwards, with the
//! faults switched off, it lets everything settle and checks that every
//! message was shown exactly once, that resending stopped once receipts
//! arrived, and that both profiles still work.
//!
//! Every choice comes from the seed, and neither the engines nor this
//! module iterate over anything ordered by random bytes, so a seed always
//! replays the same schedule (a trace digest checks that).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};
use tropa_client::engine::{
    Action, Command, Engine, Input, MailboxId, Mode, Outcome, RelayKey, Reply, Request, SubEvent,
};
use tropa_client::store::MemoryKv;
use tropa_client::{Client, MessageStatus, RelayError, SyncEvent, SyncOptions};
use tropa_proto::RelayAddress;
use tropa_relay::metrics::Metrics;
use tropa_relay::service::{Now, Outcome as Served, Peer, Policy, Service, Subscription};
use tropa_relay::store::{MemoryStore, Store as _, SweepPolicy};
use tropa_relay_client::requests;

pub(crate) const START: u64 = 1_750_000_000;

/// How a schedule went, for the checks and for a failing seed's report.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Texts each side queued, by message id.
    pub sent: [Vec<String>; 2],
    /// How often each side was shown each message id.
    pub shown: [BTreeMap<String, u32>; 2],
    /// Faults injected.
    pub faults: u32,
    /// Steps taken.
    pub steps: u32,
    /// Envelopes deposited and delivered (each a 16 KiB seal and open or two).
    pub envelopes: u32,
    /// Digest of the sequence of choices.
    pub trace: [u8; 32],
}

struct SimRelay {
    address: RelayAddress,
    key: RelayKey,
    service: Service,
    store: Arc<MemoryStore>,
    hour: u32,
}

struct SimSub {
    relay: usize,
    mailbox: MailboxId,
    sub: Subscription,
    cursor: u64,
    idle_told: bool,
}

struct Conn {
    relay: usize,
    peer: Peer,
    binding: [u8; 32],
}

struct Node {
    client: Client,
    engine: Option<Engine>,
    actions: Vec<Action>,
    inbox: Vec<Input>,
    conns: Vec<(RelayKey, Conn)>,
    subs: Vec<SimSub>,
    outcomes: Vec<Result<Outcome, tropa_client::ClientError>>,
    address: IpAddr,
    boots: u64,
}

/// One schedule.
pub struct Sim {
    rng: StdRng,
    seed: u64,
    now: u64,
    base: Instant,
    relays: Vec<SimRelay>,
    nodes: [Node; 2],
    faults_on: bool,
    next_ticket: u64,
    trace: Sha256,
    out: Outcomes,
    opts: SyncOptions,
    debug: bool,
}

fn relay_address(i: usize) -> RelayAddress {
    let fp = tropa_proto::Fingerprint([u8::try_from(i + 1).unwrap_or(0); 32]);
    format!("tropa://{fp}@127.0.0.1:{}", 47_900 + i)
        .parse()
        .expect("valid address")
}

fn lost() -> RelayError {
    RelayError::Unreachable {
        detail: "lost in the simulated network".into(),
    }
}

mod network;
mod trace;

impl Sim {
    /// A schedule for `seed`: two relays when the seed says so (the two
    /// directions of the conversation then live on different relays).
    pub fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let two_relays = rng.random_bool(0.5);
        let relays: Vec<SimRelay> = (0..if two_relays { 2 } else { 1 })
            .map(|i| {
                let store = Arc::new(MemoryStore::new());
                let address = relay_address(i);
                SimRelay {
                    key: RelayKey::of(&address),
                    address,
                    service: Service::new(
                        store.clone(),
                        Policy::default(),
                        Arc::new(Metrics::default()),
                    ),
                    store,
                    hour: u32::try_from(START / 3600).unwrap_or(0),
                }
            })
            .collect();
        let node = |i: usize, relay: &RelayAddress| Node {
            client: Client::in_memory(Arc::new(MemoryKv::new()), &format!("node{i}"), relay)
                .expect("in-memory profile"),
            engine: None,
            actions: Vec::new(),
            inbox: Vec::new(),
            conns: Vec::new(),
            subs: Vec::new(),
            outcomes: Vec::new(),
            address: IpAddr::from([127, 0, 0, u8::try_from(i + 2).unwrap_or(2)]),
            boots: 0,
        };
        let nodes = [
            node(0, &relays[0].address),
            node(1, &relays[relays.len() - 1].address),
        ];
        Sim {
            rng,
            seed,
            now: START,
            base: Instant::now(),
            relays,
            nodes,
            faults_on: true,
            next_ticket: 0,
            trace: Sha256::new(),
            out: Outcomes::default(),
            opts: SyncOptions {
                wait: Some(Duration::MAX),
                resend_after: Duration::from_secs(120),
                refusal_backoff: Duration::from_secs(10),
                ..SyncOptions::default()
            },
            debug: std::env::var("TROPA_SIM_TRACE").is_ok_and(|v| v == seed.to_string()),
        }
    }

    fn note(&mut self, what: &str, n: usize) {
        self.trace.update(what.as_bytes());
        self.trace.update(n.to_be_bytes());
        if self.debug && what != "step" {
            eprintln!("  [{}] {what} {n}", self.now - START);
        }
    }

    fn service_now(&self, relay: usize) -> Now {
        Now {
            hour: self.relays[relay].hour,
            instant: self.base + Duration::from_secs(self.now - START),
        }
    }

    fn relay_index(&self, key: &RelayKey) -> Option<usize> {
        self.relays.iter().position(|r| r.key == *key)
    }

    /// Boots (or reboots, after a crash) a node's engine.
    fn boot(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.boots += 1;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.seed.to_be_bytes());
        seed[8] = u8::try_from(n).unwrap_or(0);
        seed[9..17].copy_from_slice(&node.boots.to_be_bytes());
        let engine = node
            .client
            .engine_seeded(Mode::Sync, self.opts.clone(), seed);
        node.engine = Some(engine);
        self.feed(n, Input::Start);
    }

    /// Hands `input` to a node's engine and queues the actions it returns.
    /// Events and command results reach the front end at once (no network
    /// in between), so they are taken here; the rest waits to be carried out.
    fn feed(&mut self, n: usize, input: Input) {
        let now = self.now;
        self.debug_input(n, &input);
        let Some(engine) = self.nodes[n].engine.as_mut() else {
            return;
        };
        let actions = engine
            .handle(input, now)
            .expect("no storage errors in memory");
        for a in &actions {
            self.debug_action(n, a);
        }
        for a in actions {
            match a {
                Action::Emit(SyncEvent::Received(m)) => {
                    *self.out.shown[n].entry(m.id.clone()).or_default() += 1;
                }
                Action::Emit(_) => {}
                Action::Complete { result, .. } => self.nodes[n].outcomes.push(result),
                other => self.nodes[n].actions.push(other),
            }
        }
    }

    fn command(&mut self, n: usize, command: Command) {
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.feed(n, Input::Command { ticket, command });
    }

    /// One step: a random choice among what can happen now.
    fn step(&mut self, allow_new_texts: bool) -> bool {
        let mut choices: Vec<(u32, usize)> = Vec::new();
        for n in 0..2 {
            let node = &self.nodes[n];
            if node.engine.is_none() {
                continue;
            }
            if !node.actions.is_empty() {
                choices.push((0, n));
            }
            if !node.inbox.is_empty() {
                choices.push((1, n));
            }
            if (0..node.subs.len()).any(|s| self.can_push(n, s)) {
                choices.push((2, n));
            }
        }
        let busy = !choices.is_empty();
        for n in 0..2 {
            if self.nodes[n].engine.is_none() {
                choices.push((3, n));
            } else {
                choices.push((4, n));
                if allow_new_texts {
                    choices.push((5, n));
                }
            }
        }
        if self.faults_on {
            choices.push((6, 0));
            choices.push((7, self.rng.random_range(0..self.relays.len())));
            choices.push((8, self.rng.random_range(0..self.relays.len())));
        }
        let pick = if busy && !self.faults_on {
            // Settling: prefer progress over time passing.
            let progress: Vec<_> = choices.iter().filter(|(k, _)| *k <= 3).copied().collect();
            progress[self.rng.random_range(0..progress.len())]
        } else {
            choices[self.rng.random_range(0..choices.len())]
        };
        let (kind, n) = pick;
        self.note("step", usize::try_from(kind).unwrap_or(0) * 16 + n);
        self.out.steps += 1;
        match kind {
            // A shell carries actions out in order; what comes back (the
            // inbox) arrives in any order across streams.
            0 => self.act(n, 0),
            1 => {
                // Any input may come next, but one subscription's events
                // come in the order of its stream.
                let inbox = &self.nodes[n].inbox;
                let mut i = self.rng.random_range(0..inbox.len());
                if let Input::Subscription { relay, mailbox, .. } = &inbox[i] {
                    i = inbox
                        .iter()
                        .position(|x| {
                            matches!(x, Input::Subscription { relay: r, mailbox: m, .. } if r == relay && m == mailbox)
                        })
                        .unwrap_or(i);
                }
                let input = self.nodes[n].inbox.remove(i);
                self.feed(n, input);
            }
            2 => {
                let ready: Vec<usize> = (0..self.nodes[n].subs.len())
                    .filter(|&s| self.can_push(n, s))
                    .collect();
                let s = ready[self.rng.random_range(0..ready.len())];
                self.push(n, s);
            }
            3 => self.boot(n),
            4 => {
                self.now += self
                    .rng
                    .random_range(1..=if self.faults_on { 90 } else { 600 });
                self.feed(n, Input::Tick);
            }
            5 => {
                if self.rng.random_bool(0.3) {
                    let text = format!("message {} from {n}", self.out.sent[n].len());
                    self.command(
                        n,
                        Command::Send {
                            alias: "peer".into(),
                            text,
                        },
                    );
                    if let Some(Ok(Outcome::Queued { id })) = self.nodes[n].outcomes.pop() {
                        self.out.sent[n].push(id);
                    }
                }
            }
            6 => {
                let victim = self.rng.random_range(0..2);
                if self.fault(0.3) {
                    self.note("crash", victim);
                    self.crash(victim);
                }
            }
            7 => {
                if self.fault(0.2) {
                    self.note("relay restart", n);
                    self.restart_relay(n);
                }
            }
            _ => {
                // Only once both ends are connected: a Hello has no receipt
                // to bring it back, and a real relay keeps it for 21 days,
                // three times an invitation's life.
                if self.established(0) && self.fault(0.05) {
                    self.note("expire", n);
                    self.expire(n);
                }
            }
        }
        busy
    }

    /// Runs until node `n`'s latest command completed (booting it if needed).
    fn until_complete(
        &mut self,
        n: usize,
        limit: u32,
    ) -> Option<Result<Outcome, tropa_client::ClientError>> {
        for _ in 0..limit {
            if let Some(r) = self.nodes[n].outcomes.pop() {
                return Some(r);
            }
            // A crashed node does not finish its command.
            self.nodes[n].engine.as_ref()?;
            self.step(false);
        }
        None
    }

    /// Makes the two nodes contacts: node 0 invites, node 1 accepts, each
    /// retried until it works. Faults apply to the first ten attempts of
    /// each; a schedule that is all storm then gets a quiet moment.
    fn handshake(&mut self) {
        self.boot(0);
        self.boot(1);
        let mut link = None;
        for attempt in 0..50 {
            self.faults_on = attempt < 10;
            if self.nodes[0].engine.is_none() {
                self.boot(0);
            }
            self.command(
                0,
                Command::Invite {
                    alias: Some("peer".into()),
                    ttl_secs: 7 * 24 * 3600,
                },
            );
            if let Some(Ok(Outcome::Invited { link: l, .. })) = self.until_complete(0, 2_000) {
                link = Some(l);
                break;
            }
        }
        let link = link.expect("an invitation within 50 tries");
        for attempt in 0..50 {
            self.faults_on = attempt < 10;
            if self.nodes[1].engine.is_none() {
                self.boot(1);
            }
            self.command(
                1,
                Command::Accept {
                    link: link.clone(),
                    alias: "peer".into(),
                },
            );
            match self.until_complete(1, 2_000) {
                Some(Ok(Outcome::Accepted { .. }))
                | Some(Err(tropa_client::ClientError::InvitationUsed)) => {
                    self.faults_on = true;
                    return;
                }
                _ => {}
            }
        }
        panic!("seed {}: no accept within 50 tries", self.seed);
    }

    fn established(&self, n: usize) -> bool {
        self.nodes[n]
            .client
            .contacts()
            .map(|c| c.iter().any(|c| c.alias == "peer" && c.established))
            .unwrap_or(false)
    }

    fn settled(&self) -> bool {
        (0..2).all(|n| {
            let node = &self.nodes[n];
            let mine = node.client.messages(Some("peer")).unwrap_or_default();
            let delivered = self.out.sent[n].iter().all(|id| {
                mine.iter()
                    .any(|m| &m.id == id && m.status == MessageStatus::Delivered)
            });
            let received = self.out.sent[1 - n]
                .iter()
                .all(|id| self.out.shown[n].contains_key(id));
            delivered && received && node.engine.is_some()
        })
    }

    /// Runs the schedule: handshake, `steps` random steps with faults and
    /// new texts, then settling without faults. Returns what happened.
    ///
    /// # Panics
    /// When a property fails (the caller reports the seed).
    pub fn run(mut self, steps: u32) -> Outcomes {
        self.handshake();
        for _ in 0..steps {
            self.step(self.established(1));
        }
        self.faults_on = false;
        for n in 0..2 {
            if self.nodes[n].engine.is_none() {
                self.boot(n);
            }
        }
        let mut settled = false;
        for i in 0..20_000 {
            // Checking reads both profiles: not at every step.
            if i % 8 == 0 && self.settled() {
                settled = true;
                break;
            }
            self.step(false);
        }
        self.check(settled);
        self.out.trace = self.trace.clone().finalize().into();
        self.out
    }

    fn check(&self, settled: bool) {
        let seed = self.seed;
        for n in 0..2 {
            let other = 1 - n;
            for (id, times) in &self.out.shown[n] {
                assert!(
                    self.out.sent[other].contains(id),
                    "seed {seed}: node {n} was shown a message nobody sent"
                );
                assert_eq!(
                    *times, 1,
                    "seed {seed}: node {n} was shown a message {times} times"
                );
            }
            let stored = self.nodes[n]
                .client
                .messages(Some("peer"))
                .expect("profile readable");
            for id in &self.out.sent[other] {
                let copies = stored.iter().filter(|m| &m.id == id && m.incoming).count();
                assert!(
                    copies <= 1,
                    "seed {seed}: node {n} stored a message {copies} times"
                );
            }
            let c = self.nodes[n].client.contacts().expect("contacts readable");
            assert!(
                c.iter().all(|c| c.dropped == 0),
                "seed {seed}: node {n} dropped an envelope as tampered"
            );
        }
        assert!(settled, "seed {seed}: not settled: {:?}", self.out);
        for n in 0..2 {
            // Resending stopped: nothing of ours is waiting for a receipt.
            let c = self.nodes[n].client.contacts().expect("contacts readable");
            assert!(
                c.iter().all(|c| c.pending == 0),
                "seed {seed}: node {n} still has unconfirmed texts"
            );
        }
    }
}

//! A hostile client: it floods a relay with what a broken or malicious
//! client can send, every kind bounded in count and in time. The kinds are
//! malformed, oversized and truncated frames; streams opened and then
//! abandoned; readers that never read; deposit floods, valid and invalid;
//! mailbox-creation floods; and recipient commands with bad signatures.
//!
//! `tropa-bench attack` runs it as a process of its own. The `attack`
//! scenario uses it, and so does tests/tests/hostile_client.rs (which
//! asserts on the relay meanwhile). The attacker never runs on the honest
//! clients' runtime.
//!
//! Every attacking connection comes from a loopback address of its own,
//! 127.0.0.2 to 127.0.0.254 in turn, as an attacker with many addresses
//! would connect. The relay's per-address limits (128 connections, 32
//! mailbox creations) then apply as they would on the internet, and the
//! attack reaches the per-connection defences behind them on a relay with
//! default limits. A connection makes at most [`PER_CONNECTION`] requests,
//! which is within the default request burst of 200. Then its worker
//! reconnects from the next address.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use rand::Rng as _;
use tokio::task::JoinSet;
use tropa_proto::relay::{self, ErrorCode, Request, recipient_command::Action, request, response};
use tropa_proto::{ENVELOPE_SIZE, MAILBOX_ID_LEN, MAX_FRAME_LEN, PROTOCOL_VERSION, RelayAddress};
use tropa_relay_client::{RelayClient, requests};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::BenchError;

/// Requests per attacking connection before it reconnects. This stays
/// within the relay's default burst (200), so that the requests reach the
/// relay's handlers and are not all answered by the rate limiter.
pub const PER_CONNECTION: usize = 150;
/// Requests a flooding connection keeps in flight.
pub const IN_FLIGHT: usize = 32;
/// Streams an abandoning connection opens before it reconnects.
pub const ABANDONED_PER_CONNECTION: usize = 1000;

/// What the attack sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Undecodable bodies, unknown fields, wrong versions, bad key lengths.
    Malformed,
    /// Length prefixes above `MAX_FRAME_LEN`.
    Oversized,
    /// Frames that end before their announced length.
    Truncated,
    /// Streams opened, given a byte or two, then reset or dropped.
    Abandoned,
    /// Requests whose answers are never read, on connections with
    /// almost no receive window.
    Slowloris,
    /// Signed 16 KiB deposits into the attacker's own secured mailboxes.
    DepositValid,
    /// Deposits to unknown mailboxes, with bad or missing signatures, or of
    /// the wrong size.
    DepositInvalid,
    /// `CreateMailbox` as fast as the relay answers.
    Create,
    /// Recipient commands whose signatures do not verify.
    BadSignature,
}

impl Kind {
    /// Every kind, in the order they are printed.
    fn all() -> &'static [Kind] {
        <Kind as clap::ValueEnum>::value_variants()
    }

    /// Its name, on the command line and in the printed counts.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(String::new, |p| p.get_name().to_owned())
    }
}

/// The honest mailbox the attack aims at (it knows both IDs, as if they
/// had leaked; it never has the keys).
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The mailbox's sender ID.
    pub sender_id: [u8; MAILBOX_ID_LEN],
    /// The mailbox's recipient ID.
    pub recipient_id: [u8; MAILBOX_ID_LEN],
}

/// How hard and how long to attack.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The relay.
    pub address: RelayAddress,
    /// How long the attack lasts at most.
    pub duration: Duration,
    /// Connections at once per flooding kind.
    pub workers: usize,
    /// Slowloris connections at once. Each holds up to 1024 streams.
    pub slow: usize,
    /// Frames (or streams) per kind at most.
    pub cap: u64,
    /// Frames (or streams) per second per kind at most; 0: as fast as the
    /// relay answers.
    pub rate: u64,
    /// Valid deposits at most (they are what fills the relay's store).
    pub deposit_cap: u64,
    /// The kinds to send (all if empty).
    pub kinds: Vec<Kind>,
    /// The honest mailbox to aim at, if any.
    pub target: Option<Target>,
}

/// What one kind sent, and what came back.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
}

struct Attack {
    plan: Plan,
    started: Instant,
    deadline: Instant,
    /// Set when the attack is called off before its deadline.
    stopped: AtomicBool,
    tallies: Vec<Tally>,
    next_source: AtomicUsize,
}

impl Attack {
    fn tally(&self, kind: Kind) -> &Tally {
        &self.tallies[kind as usize]
    }

    /// Whether the time is up (or the attack was called off).
    fn ended(&self) -> bool {
        Instant::now() >= self.deadline || self.stopped.load(Ordering::Relaxed)
    }

    fn cap(&self, kind: Kind) -> u64 {
        match kind {
            Kind::DepositValid => self.plan.cap.min(self.plan.deposit_cap),
            _ => self.plan.cap,
        }
    }

    /// Counts one more frame of `kind`, unless its cap or the end is reached.
    fn take(&self, kind: Kind) -> bool {
        !self.ended() && self.tally(kind).sent.fetch_add(1, Ordering::Relaxed) < self.cap(kind)
    }

    /// Waits until `kind` may send its next frame under `plan.rate`.
    async fn pace(&self, kind: Kind) {
        if self.plan.rate == 0 {
            return;
        }
        let sent = self.tally(kind).sent.load(Ordering::Relaxed);
        let due = self.started + Duration::from_secs_f64(sent as f64 / self.plan.rate as f64);
        tokio::time::sleep_until(due.min(self.deadline).into()).await;
    }

    fn over(&self, kind: Kind) -> bool {
        self.ended() || self.tally(kind).sent.load(Ordering::Relaxed) >= self.cap(kind)
    }

    fn outcome(&self, kind: Kind, what: &'static str) {
        self.outcomes(kind, what, 1);
    }

    fn outcomes(&self, kind: Kind, what: &'static str, n: u64) {
        if let Ok(mut m) = self.tally(kind).outcomes.lock() {
            *m.entry(what).or_default() += n;
        }
    }

    /// The next attacking address: 127.0.0.2 to 127.0.0.254, in turn.
    fn source(&self) -> SocketAddr {
        let n = self.next_source.fetch_add(1, Ordering::Relaxed) % 253;
        let last = u8::try_from(n + 2).unwrap_or(2);
        SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0))
    }

    /// Prints one line per kind: `attack KIND sent=N OUTCOME=N ...`.
    fn report(&self) -> String {
        let mut out = String::new();
        for &kind in Kind::all() {
            let t = self.tally(kind);
            let sent = t.sent.load(Ordering::Relaxed).min(self.cap(kind));
            out.push_str(&format!("attack {} sent={sent}", kind.name()));
            if let Ok(m) = t.outcomes.lock() {
                for (what, n) in m.iter() {
                    out.push_str(&format!(" {what}={n}"));
                }
            }
            out.push('\n');
        }
        out
    }
}

fn label(r: &relay::Response) -> &'static str {
    match &r.result {
        Some(response::Result::Error(e)) => {
            ErrorCode::try_from(e.code).map_or("UNKNOWN_ERROR", |c| c.as_str_name())
        }
        Some(response::Result::Ok(_)) => "OK",
        Some(response::Result::Created(_)) => "CREATED",
        Some(response::Result::Accepted(_)) => "ACCEPTED",
        Some(response::Result::Delivery(_)) => "DELIVERY",
        Some(response::Result::Idle(_)) => "IDLE",
        Some(response::Result::LinkData(_)) => "LINK_DATA",
        Some(response::Result::LinkStored(_)) => "LINK_STORED",
        None => "EMPTY",
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

fn frame(req: &Request) -> Vec<u8> {
    tropa_proto::framing::encode(req).unwrap_or_default()
}

/// A frame with `body` as it is behind a correct length prefix.
fn prefixed(body: &[u8]) -> Vec<u8> {
    let mut f = u32::try_from(body.len())
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec();
    f.extend_from_slice(body);
    f
}

fn envelope() -> Bytes {
    Bytes::from(vec![0x6bu8; ENVELOPE_SIZE])
}

/// What a flooding connection owns, for the kinds that need it.
struct Owned {
    auth: SigningKey,
    ids: Option<tropa_relay_client::CreatedMailbox>,
    sender: SigningKey,
}

/// The `i`-th frame a connection of `kind` sends.
fn build(kind: Kind, i: usize, c: &RelayClient, own: &Owned, target: Option<Target>) -> Vec<u8> {
    let target_sender = target.map_or_else(random, |t| t.sender_id);
    let target_rid = target.map_or_else(random, |t| t.recipient_id);
    match kind {
        Kind::Malformed => match i % 6 {
            0 => prefixed(&random::<48>()[..1 + i % 48]),
            1 => {
                // A well-formed request with an unknown field only.
                let mut f = frame(&Request {
                    version: PROTOCOL_VERSION,
                    command: None,
                });
                f.extend_from_slice(&[0xf8, 0x06, 0x01]);
                let len = u32::try_from(f.len() - 4).unwrap_or(0);
                f[..4].copy_from_slice(&len.to_be_bytes());
                f
            }
            2 => frame(&Request {
                version: 9,
                command: Some(request::Command::Deposit(relay::Deposit::default())),
            }),
            3 => frame(&Request {
                version: PROTOCOL_VERSION,
                command: Some(request::Command::CreateMailbox(relay::CreateMailbox {
                    recipient_auth_pub: Bytes::from_static(b"short"),
                    ..Default::default()
                })),
            }),
            4 => prefixed(&[]),
            _ => prefixed(&random::<1024>()),
        },
        Kind::Oversized => {
            let over = u32::try_from(MAX_FRAME_LEN)
                .unwrap_or(u32::MAX)
                .saturating_add(1);
            let len = match i % 3 {
                0 => over,
                1 => u32::MAX,
                _ => over.saturating_add(rand::rng().next_u32() % (1 << 24)),
            };
            let mut f = len.to_be_bytes().to_vec();
            f.extend_from_slice(&random::<64>());
            f
        }
        Kind::Truncated => {
            let whole = frame(&requests::deposit(&target_sender, envelope(), None));
            // Cut anywhere, the length prefix included.
            let cut = (i * 7919) % whole.len();
            whole[..cut].to_vec()
        }
        Kind::DepositValid => match &own.ids {
            Some(ids) => frame(&requests::deposit(
                &ids.sender_id,
                envelope(),
                Some(&own.sender),
            )),
            None => Vec::new(),
        },
        Kind::DepositInvalid => match i % 5 {
            0 => frame(&requests::deposit(&random::<24>(), envelope(), None)),
            // The target is secured: a wrong key and no signature both fail.
            1 => frame(&requests::deposit(
                &target_sender,
                envelope(),
                Some(&own.sender),
            )),
            2 => frame(&requests::deposit(&target_sender, envelope(), None)),
            3 => frame(&requests::deposit(
                &target_sender,
                Bytes::from_static(&[1; 100]),
                None,
            )),
            _ => frame(&requests::deposit(
                &target_sender,
                Bytes::from(vec![2u8; ENVELOPE_SIZE + 1]),
                None,
            )),
        },
        Kind::Create => {
            let dh = StaticSecret::random_from_rng(&mut rand::rng());
            frame(&requests::create(&own.auth, &PublicKey::from(&dh), None))
        }
        Kind::BadSignature => {
            let binding = c.binding();
            let ack = Action::Ack(relay::Ack {
                envelope_id: Bytes::copy_from_slice(&random::<16>()),
                more_ids: Vec::new(),
            });
            let mut req = match i % 5 {
                // Signed by a key that is not the mailbox's.
                0 => requests::subscribe(binding, &own.auth, &target_rid),
                // Signed for another connection.
                1 => requests::delete(&random::<32>(), &own.auth, &target_rid),
                2 => requests::signed(binding, &own.auth, &random::<24>(), ack),
                // Signature bytes replaced below.
                _ => requests::signed(binding, &own.auth, &target_rid, ack),
            };
            if let Some(request::Command::Signed(s)) = &mut req.command {
                match i % 5 {
                    3 => s.signature = Bytes::copy_from_slice(&random::<64>()),
                    4 => s.signature = Bytes::copy_from_slice(&random::<63>()),
                    _ => {}
                }
            }
            frame(&req)
        }
        Kind::Abandoned | Kind::Slowloris => Vec::new(),
    }
}

/// One connection's worth of `kind`, through the relay client's raw
/// requests (which ignore the client's own limit on requests in flight).
async fn flood_connection(a: &Arc<Attack>, kind: Kind) -> Result<(), BenchError> {
    let c = RelayClient::connect_from(&a.plan.address, Some(a.source())).await?;
    let c = Arc::new(c);
    let mut own = Owned {
        auth: SigningKey::generate(&mut rand::rng()),
        ids: None,
        sender: SigningKey::generate(&mut rand::rng()),
    };
    if kind == Kind::DepositValid {
        let dh = StaticSecret::random_from_rng(&mut rand::rng());
        let ids = c
            .create_mailbox(&own.auth, &PublicKey::from(&dh), None)
            .await;
        let Ok(ids) = ids else {
            // This address's creation budget is spent: try the next one.
            a.outcome(kind, "setup-refused");
            c.abort();
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(());
        };
        c.secure(
            &own.auth,
            &ids.recipient_id,
            &own.sender.verifying_key().to_bytes(),
        )
        .await?;
        own.ids = Some(ids);
    }
    let mut set = JoinSet::new();
    for i in 0..PER_CONNECTION {
        a.pace(kind).await;
        if !a.take(kind) {
            break;
        }
        let bytes = build(kind, i, &c, &own, a.plan.target);
        while set.len() >= IN_FLIGHT {
            set.join_next().await;
        }
        let (c, a) = (c.clone(), a.clone());
        set.spawn(async move {
            match c.raw(&bytes).await {
                Ok(r) => a.outcome(kind, label(&r)),
                Err(tropa_relay_client::RequestError::Timeout) => a.outcome(kind, "timeout"),
                Err(_) => a.outcome(kind, "stream-failed"),
            }
        });
    }
    while set.join_next().await.is_some() {}
    c.abort();
    Ok(())
}

/// A raw QUIC connection from the next attacking address, with the
/// client's pinning and `transport` if given.
async fn raw_connection(
    a: &Attack,
    transport: Option<quinn::TransportConfig>,
) -> Result<(quinn::Endpoint, quinn::Connection), BenchError> {
    let endpoint = quinn::Endpoint::client(a.source())?;
    let mut config = tropa_relay_client::tls::client_config(a.plan.address.fingerprint)?;
    if let Some(t) = transport {
        config.transport_config(Arc::new(t));
    }
    let target = a
        .plan
        .address
        .socket_addr()
        .ok_or("relay address is not an IP")?;
    let conn = endpoint
        .connect_with(config, target, tropa_relay_client::SERVER_NAME)?
        .await?;
    Ok((endpoint, conn))
}

/// One connection that opens streams, sends a byte or two on each and
/// walks away: half reset, half finished early.
async fn abandon_connection(a: &Arc<Attack>) -> Result<(), BenchError> {
    let (_endpoint, conn) = raw_connection(a, None).await?;
    for i in 0..ABANDONED_PER_CONNECTION {
        a.pace(Kind::Abandoned).await;
        if !a.take(Kind::Abandoned) {
            break;
        }
        let Ok(Ok((mut send, mut recv))) =
            tokio::time::timeout(Duration::from_secs(5), conn.open_bi()).await
        else {
            a.outcome(Kind::Abandoned, "open-failed");
            break;
        };
        if send.write_all(&[0u8; 2][..1 + i % 2]).await.is_err() {
            a.outcome(Kind::Abandoned, "write-failed");
            continue;
        }
        let _ = recv.stop(0u32.into());
        if i.is_multiple_of(2) {
            let _ = send.reset(0u32.into());
        } else {
            let _ = send.finish();
        }
    }
    conn.close(0u32.into(), b"");
    Ok(())
}

/// One connection that can receive almost nothing (8 bytes per stream, 64
/// on the whole connection). It opens as many streams as the relay allows,
/// each with a request, reads none of the answers, and holds them all
/// until the attack ends.
async fn slow_connection(a: &Arc<Attack>) -> Result<(), BenchError> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(8u32.into());
    t.receive_window(64u32.into());
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(120_000).into()));
    let (_endpoint, conn) = raw_connection(a, Some(t)).await?;
    let mut held = Vec::new();
    let mut i = 0usize;
    while !a.over(Kind::Slowloris) {
        // Blocks while the relay holds all 1024 of this connection's
        // streams; it lets go of one when its answer has waited 20 s.
        let Ok(opened) = tokio::time::timeout(Duration::from_millis(200), conn.open_bi()).await
        else {
            continue;
        };
        let (mut send, recv) = opened?;
        if !a.take(Kind::Slowloris) {
            break;
        }
        let bytes = if i.is_multiple_of(2) {
            prefixed(&random::<32>())
        } else {
            frame(&requests::deposit(&random::<24>(), envelope(), None))
        };
        i += 1;
        // Beyond the connection's request burst the relay answers "slow
        // down" without reading, and stops the stream: that fails the write.
        if send.write_all(&bytes).await.is_err() {
            a.outcome(Kind::Slowloris, "stopped-by-relay");
        } else {
            let _ = send.finish();
        }
        held.push((send, recv));
    }
    a.outcomes(Kind::Slowloris, "streams-held", held.len() as u64);
    while !a.ended() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.close(0u32.into(), b"");
    Ok(())
}

/// Runs the attack until `plan.duration` has passed or `stop` completes,
/// and returns its counts, one line per kind.
pub async fn run(plan: Plan, stop: impl std::future::Future<Output = ()>) -> String {
    let started = Instant::now();
    let a = Arc::new(Attack {
        started,
        deadline: Instant::now() + plan.duration,
        stopped: AtomicBool::new(false),
        tallies: Kind::all().iter().map(|_| Tally::default()).collect(),
        next_source: AtomicUsize::new(0),
        plan,
    });
    let mut tasks = JoinSet::new();
    for &kind in Kind::all() {
        if !a.plan.kinds.is_empty() && !a.plan.kinds.contains(&kind) {
            continue;
        }
        let workers = match kind {
            Kind::Slowloris => a.plan.slow,
            _ => a.plan.workers,
        };
        for _ in 0..workers {
            let a = a.clone();
            tasks.spawn(async move {
                while !a.over(kind) {
                    let r = match kind {
                        Kind::Abandoned => abandon_connection(&a).await,
                        Kind::Slowloris => slow_connection(&a).await,
                        _ => flood_connection(&a, kind).await,
                    };
                    if r.is_err() {
                        a.outcome(kind, "connection-failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
        }
    }
    tokio::select! {
        () = stop => {}
        () = tokio::time::sleep(a.plan.duration) => {}
    }
    a.stopped.store(true, Ordering::Relaxed);
    let attacked = started.elapsed();
    // Requests in flight end within the client's 20 s timeout.
    let _ = tokio::time::timeout(Duration::from_secs(25), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    format!(
        "{}attacked for {:.1} s; the last requests ended {:.1} s after the start\n",
        a.report(),
        attacked.as_secs_f64(),
        started.elapsed().as_secs_f64()
    )
}

/// The command that runs this attack as `tropa-bench attack`, stopping
/// early when its standard input closes.
pub fn command(plan: &Plan) -> Result<std::process::Command, BenchError> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("attack").args(args(plan)).arg("--stop-on-eof");
    Ok(cmd)
}

/// The command-line arguments of `tropa-bench attack` for `plan`.
fn args(plan: &Plan) -> Vec<String> {
    let mut v = vec![
        plan.address.to_string(),
        format!("--secs={}", plan.duration.as_secs()),
        format!("--workers={}", plan.workers),
        format!("--slow={}", plan.slow),
        format!("--cap={}", plan.cap),
        format!("--rate={}", plan.rate),
        format!("--deposit-cap={}", plan.deposit_cap),
    ];
    for k in &plan.kinds {
        v.push(format!("--only={}", k.name()));
    }
    if let Some(t) = plan.target {
        v.push(format!("--target-sender={}", hex(&t.sender_id)));
        v.push(format!("--target-recipient={}", hex(&t.recipient_id)));
    }
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A mailbox ID from hex (for the command line).
pub fn mailbox_id(s: &str) -> Result<[u8; MAILBOX_ID_LEN], String> {
    let bad = || format!("{s:?} is not {MAILBOX_ID_LEN} bytes of hex");
    if s.len() != 2 * MAILBOX_ID_LEN {
        return Err(bad());
    }
    let mut out = [0u8; MAILBOX_ID_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

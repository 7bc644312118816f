//! The relay's side of each scenario, through the real relay client: every
//! connection creates and secures its own mailbox, subscribes to it, and
//! deposits into it with the sender's signature, so one envelope is the
//! whole path a message takes (deposit, store, push, ack).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tropa_proto::{ENVELOPE_SIZE, RelayAddress};
use tropa_relay_client::{CreatedMailbox, RelayClient};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::BenchError;
use crate::procs::Relay;
use crate::report::{Idle, Latency, LatencyRecorder};

/// One connection and the mailbox it owns.
#[derive(Clone)]
struct Mailbox {
    client: Arc<RelayClient>,
    auth: SigningKey,
    ids: CreatedMailbox,
    dh: StaticSecret,
    sender: Arc<SigningKey>,
}

impl Mailbox {
    /// Connects (through `shared`, if given, else an endpoint of its own)
    /// and creates a mailbox, secured if `secure`.
    async fn open(
        addr: RelayAddress,
        secure: bool,
        shared: Option<quinn::Endpoint>,
    ) -> Result<Mailbox, BenchError> {
        let client = match shared {
            Some(endpoint) => RelayClient::connect_on(endpoint, &addr).await,
            None => RelayClient::connect(&addr).await,
        }
        .map_err(|e| format!("connect: {e}"))?;
        let auth = SigningKey::generate(&mut rand::rng());
        let dh = StaticSecret::random_from_rng(&mut rand::rng());
        let ids = client
            .create_mailbox(&auth, &PublicKey::from(&dh), None)
            .await
            .map_err(|e| format!("create mailbox: {e}"))?;
        let sender = SigningKey::generate(&mut rand::rng());
        if secure {
            client
                .secure(&auth, &ids.recipient_id, &sender.verifying_key().to_bytes())
                .await?;
        }
        Ok(Mailbox {
            client: Arc::new(client),
            auth,
            ids,
            dh,
            sender: Arc::new(sender),
        })
    }

    /// Starts the mailbox's acker: it acks the IDs sent to the returned
    /// channel in batches (whatever arrived while the previous ack was
    /// under way, up to `MAX_ACK_IDS`), one ack request at a time, and
    /// calls `then` with the number acked each time the relay confirmed.
    fn acker(
        &self,
        tasks: &mut JoinSet<()>,
        then: impl Fn(usize) + Send + 'static,
    ) -> tokio::sync::mpsc::UnboundedSender<[u8; tropa_proto::ENVELOPE_ID_LEN]> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (client, auth, rid) = (
            self.client.clone(),
            self.auth.clone(),
            self.ids.recipient_id,
        );
        tasks.spawn(async move {
            let mut batch = Vec::with_capacity(tropa_proto::MAX_ACK_IDS);
            while rx.recv_many(&mut batch, tropa_proto::MAX_ACK_IDS).await > 0 {
                if client.ack_many(&auth, &rid, &batch).await.is_ok() {
                    then(batch.len());
                }
                batch.clear();
            }
        });
        tx
    }
}

async fn open_all(
    addr: &RelayAddress,
    n: usize,
    secure: bool,
    shared: Option<&quinn::Endpoint>,
) -> Result<Vec<Mailbox>, BenchError> {
    crate::connect_all(n, || Mailbox::open(addr.clone(), secure, shared.cloned())).await
}

/// Closes every connection at once (one by one with a wait each, 10,000
/// connections would take minutes), then gives the closes a moment to
/// reach the wire.
async fn close_all(mailboxes: Vec<Mailbox>) {
    for m in &mailboxes {
        m.client.abort();
    }
    drop(mailboxes);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Keeps one signed deposit into `m`'s mailbox going through `client`
/// for as long as `window` (the envelopes allowed to wait in the
/// mailbox) gives permits; a permit comes back when its envelope is acked,
/// or at once if the deposit failed.
fn spawn_depositor(
    tasks: &mut JoinSet<()>,
    client: Arc<RelayClient>,
    m: &Mailbox,
    window: Arc<Semaphore>,
    envelope: Bytes,
) {
    let (sender, sid) = (m.sender.clone(), m.ids.sender_id);
    tasks.spawn(async move {
        while let Ok(permit) = window.acquire().await {
            permit.forget();
            if client
                .deposit(&sid, envelope.clone(), Some(&sender))
                .await
                .is_err()
            {
                window.add_permits(1);
            }
        }
    });
}

/// Subscribes to `m`'s mailbox and hands every delivery to its acker
/// ([`Mailbox::acker`], which calls `acked` with each batch confirmed)
/// until `stop`.
async fn spawn_receiver(
    tasks: &mut JoinSet<()>,
    m: &Mailbox,
    stop: Arc<AtomicBool>,
    acked: impl Fn(usize) + Send + 'static,
) -> Result<(), BenchError> {
    let mut sub = m.client.subscribe(&m.auth, &m.ids.recipient_id).await?;
    let acks = m.acker(tasks, acked);
    tasks.spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Ok(next) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await
            else {
                continue;
            };
            let Ok(Some(d)) = next else { break };
            let _ = acks.send(d.envelope_id);
        }
        sub.close();
    });
    Ok(())
}

/// Envelopes delivered and acknowledged per second with `conns`
/// connections, each keeping `in_flight` deposits going into its own
/// mailbox (and at most 4 × `in_flight` envelopes waiting in it).
pub async fn throughput(
    relay: &Relay,
    conns: usize,
    in_flight: usize,
    measure: Duration,
) -> Result<f64, BenchError> {
    let mailboxes = open_all(&relay.address, conns, true, None).await?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    let mut windows = Vec::new();
    let envelope = Bytes::from(vec![0xa5u8; ENVELOPE_SIZE]);
    for m in &mailboxes {
        let window = Arc::new(Semaphore::new(4 * in_flight));
        windows.push(window.clone());
        for _ in 0..in_flight {
            spawn_depositor(
                &mut tasks,
                m.client.clone(),
                m,
                window.clone(),
                envelope.clone(),
            );
        }
        let done = done.clone();
        spawn_receiver(&mut tasks, m, stop.clone(), move |n| {
            done.fetch_add(n as u64, Ordering::Relaxed);
            window.add_permits(n);
        })
        .await?;
    }
    let rate = crate::report::count_rate(&done, measure).await;
    stop.store(true, Ordering::Relaxed);
    for w in &windows {
        w.close();
    }
    crate::report::drain(tasks).await;
    close_all(mailboxes).await;
    Ok(rate)
}

/// Deliveries per second into one mailbox: `senders` connections, each
/// keeping `in_flight` signed deposits going, and the owner's own
/// connection receiving and acking in batches (at most 256 envelopes
/// waiting in the mailbox).
pub async fn one_mailbox(
    relay: &Relay,
    senders: usize,
    in_flight: usize,
    measure: Duration,
) -> Result<f64, BenchError> {
    let owner = Mailbox::open(relay.address.clone(), true, None).await?;
    let clients = crate::connect_all(senders, || {
        let addr = relay.address.clone();
        async move {
            RelayClient::connect(&addr)
                .await
                .map(Arc::new)
                .map_err(|e| format!("connect: {e}").into())
        }
    })
    .await?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(Semaphore::new(256));
    let mut tasks = JoinSet::new();
    let envelope = Bytes::from(vec![0x5au8; ENVELOPE_SIZE]);
    for client in &clients {
        for _ in 0..in_flight {
            spawn_depositor(
                &mut tasks,
                client.clone(),
                &owner,
                window.clone(),
                envelope.clone(),
            );
        }
    }
    let (done2, window2) = (done.clone(), window.clone());
    spawn_receiver(&mut tasks, &owner, stop.clone(), move |n| {
        done2.fetch_add(n as u64, Ordering::Relaxed);
        window2.add_permits(n);
    })
    .await?;
    let rate = crate::report::count_rate(&done, measure).await;
    stop.store(true, Ordering::Relaxed);
    window.close();
    crate::report::drain(tasks).await;
    for c in &clients {
        c.abort();
    }
    close_all(vec![owner]).await;
    Ok(rate)
}

/// Deposit→delivery latency at `rate` envelopes per second spread over
/// `conns` connections (open loop). Each envelope carries its deposit
/// time; the subscriber opens every delivery to read it.
pub async fn latency(
    relay: &Relay,
    conns: usize,
    rate: f64,
    measure: Duration,
) -> Result<Latency, BenchError> {
    let mailboxes = open_all(&relay.address, conns, true, None).await?;
    let rec = LatencyRecorder::new(measure)?;
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut receivers = JoinSet::new();
    let mut pacers = JoinSet::new();
    for m in &mailboxes {
        let mut sub = m.client.subscribe(&m.auth, &m.ids.recipient_id).await?;
        let me = m.clone();
        let acks = m.acker(&mut receivers, |_| {});
        let (rec2, stop2) = (rec.clone(), stop.clone());
        receivers.spawn(async move {
            while !stop2.load(Ordering::Relaxed) {
                let Ok(next) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await
                else {
                    continue;
                };
                let Ok(Some(d)) = next else { break };
                match d.open(&me.dh, &me.ids.relay_dh_pub, &me.ids.recipient_id) {
                    Ok(plain) => {
                        let mut ns = [0u8; 8];
                        ns.copy_from_slice(plain.get(..8).unwrap_or(&[0; 8]));
                        rec2.record(origin + Duration::from_nanos(u64::from_be_bytes(ns)));
                    }
                    Err(_) => rec2.failed(),
                }
                let _ = acks.send(d.envelope_id);
            }
            sub.close();
        });
        let (client, sender, sid, rec) = (
            m.client.clone(),
            m.sender.clone(),
            m.ids.sender_id,
            rec.clone(),
        );
        let period = Duration::from_secs_f64(conns as f64 / rate);
        pacers.spawn(crate::report::pace(period, rec.clone(), move || {
            let (client, sender, rec) = (client.clone(), sender.clone(), rec.clone());
            async move {
                let mut env = vec![0x3cu8; ENVELOPE_SIZE];
                let ns = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
                env[..8].copy_from_slice(&ns.to_be_bytes());
                if client
                    .deposit(&sid, Bytes::from(env), Some(&sender))
                    .await
                    .is_err()
                {
                    rec.failed();
                }
            }
        }));
    }
    crate::report::drain(pacers).await;
    // Let the last deliveries arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    crate::report::drain(receivers).await;
    close_all(mailboxes).await;
    Ok(rec.summary())
}

/// Relay memory growth for `n` connections that each created a mailbox
/// and hold a subscription to it.
pub async fn idle(relay: &Relay, n: usize) -> Result<Idle, BenchError> {
    let before = relay.proc.rss()?;
    let t = Instant::now();
    // One UDP socket for all of them: an endpoint each would reserve a
    // receive buffer each (MiBs) in this process, which is not what is
    // measured, and at thousands of connections exhausts it.
    let endpoint = crate::shared_client_endpoint()?;
    let mailboxes = open_all(&relay.address, n, false, Some(&endpoint)).await?;
    let mut subs = Vec::with_capacity(n);
    for m in &mailboxes {
        subs.push(
            m.client
                .subscribe(&m.auth, &m.ids.recipient_id)
                .await
                .map_err(|e| format!("subscribe: {e}"))?,
        );
    }
    let setup = t.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = relay.proc.rss()?;
    for s in subs {
        s.close();
    }
    close_all(mailboxes).await;
    Ok(Idle::new(n, before, after, setup))
}

/// Fills the redb store of the relay data directory `data` with `n`
/// envelopes in mailboxes of 1,000 that the load never touches (their
/// sealed bytes are random: the relay never opens them), through the
/// store's own batched write, 1,000 envelopes per commit. Prints progress.
pub fn prefill(data: &std::path::Path, n: u64) -> Result<(), BenchError> {
    use tropa_relay::store::{
        MailboxRecord, RedbStore, Store, StoreLimits, WriteOp, migrate::REDB_FILE,
    };
    const PER_MAILBOX: u64 = 1000;
    let store = RedbStore::open(&data.join(REDB_FILE))?;
    let limits = StoreLimits {
        mailbox_quota: u32::MAX,
        total_quota: u64::MAX,
        open_mailbox_quota: u32::MAX,
        open_total_quota: u64::MAX,
        secured_as_checked: vec![9; 32],
    };
    let hour = tropa_relay::service::Now::current().hour;
    let t = Instant::now();
    let mut done = 0u64;
    while done < n {
        let rid: [u8; 24] = rand::random();
        let rec = MailboxRecord {
            recipient_auth_pub: vec![1; 32],
            recipient_dh_pub: vec![2; 32],
            relay_dh_secret: vec![3; 32],
            sender_id: rand::random::<[u8; 24]>().to_vec(),
            secured_sender: vec![9; 32],
            active_hour: hour,
            next_seq: 0,
            count: 0,
            created_hour: hour,
            fresh: false,
            intake: false,
        };
        store.create_mailbox(&rid, &rec)?;
        let batch = PER_MAILBOX.min(n - done);
        let ops: Vec<WriteOp> = (0..batch)
            .map(|_| WriteOp::Deposit {
                recipient_id: rid,
                hour,
                limits: limits.clone(),
                seal: Box::new(|_: &[u8; 16]| {
                    let mut sealed = vec![0u8; tropa_relay::crypto::SEALED_LEN];
                    rand::Rng::fill_bytes(&mut rand::rng(), &mut sealed);
                    sealed
                }),
            })
            .collect();
        for r in store.apply(&ops) {
            r?;
        }
        done += batch;
        if done.is_multiple_of(50_000) || done == n {
            eprintln!(
                "tropa-bench: {done} of {n} envelopes stored ({:.0} s)",
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// One deposit into a fresh mailbox, a second after creating it, so that
/// its system calls stand alone in a trace of the relay.
pub async fn probe(address: &tropa_proto::RelayAddress) -> Result<(), BenchError> {
    let m = Mailbox::open(address.clone(), false, None).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!("tropa-bench: depositing");
    m.client
        .deposit(
            &m.ids.sender_id,
            Bytes::from(vec![0x11u8; ENVELOPE_SIZE]),
            None,
        )
        .await?;
    eprintln!("tropa-bench: accepted");
    close_all(vec![m]).await;
    Ok(())
}

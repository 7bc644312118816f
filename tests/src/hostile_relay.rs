//! A relay that lies to its clients, for `tests/tests/hostile_relay.rs`.
//!
//! [`HostileRelay`] runs the real `tropa_relay` server in this process on a
//! fixed loopback port with a key of its own, over a [`HostileStore`]: the
//! relay's sled store wrapped so that, on demand, it drops deposits it
//! answers `Accepted`, withholds the answer, confirms acks without deleting
//! (so envelopes come back), copies one mailbox's envelopes into another,
//! stores garbage that the real service then delivery-seals correctly, or
//! makes the service seal deliveries under a key of its own. Everything
//! else (QUIC, TLS, framing, signatures, delivery sealing) is the real
//! relay's code, so clients see exactly what a relay run by an adversary
//! could send.
//!
//! What a store cannot do, broken framing, is done by [`HostileRelay::attack`]:
//! a bare QUIC endpoint with the same key and port that answers every
//! stream with a [`FrameAttack`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tropa_proto::relay::{self, Response, response};
use tropa_proto::{ENVELOPE_ID_LEN, RelayAddress};
use tropa_relay::config::Config;
use tropa_relay::crypto::SealingKey;
use tropa_relay::identity::RelayIdentity;
use tropa_relay::server::Server;
use tropa_relay::store::{
    EnvelopeId, LinkId, LinkRecord, MailboxRecord, RecipientId, SenderId, SledStore, Store,
    StoreError, StoreLimits, StoredEnvelope, SweepPolicy, SweepStats, Totals,
};
use x25519_dalek::StaticSecret;

/// Longest a held deposit is held (the client gives up after 20 s).
const HOLD_LIMIT: Duration = Duration::from_secs(30);

/// How the store misbehaves right now; all off is an honest relay.
#[derive(Clone, Debug, Default)]
pub struct Knobs {
    /// Answer deposits `Accepted` and store nothing.
    pub drop_deposits: bool,
    /// Do not answer deposits while set (then store them).
    pub hold_deposits: bool,
    /// Confirm acks and delete nothing: acked envelopes come back.
    pub ignore_acks: bool,
    /// Store a copy of every deposit into another mailbox here too.
    pub copy_to: Option<RecipientId>,
    /// Seal this mailbox's deliveries under a relay key its owner does
    /// not know.
    pub wrong_key: Option<RecipientId>,
}

#[derive(Default)]
struct State {
    knobs: Knobs,
    /// The mailbox of the last deposit (so tests learn a recipient ID).
    last_deposit: Option<RecipientId>,
    /// Deposits answered `Accepted` and thrown away.
    dropped: usize,
}

/// A [`SledStore`] that misbehaves as its [`Knobs`] say.
pub struct HostileStore {
    inner: SledStore,
    state: Mutex<State>,
}

fn secret_of(rec: &MailboxRecord) -> StaticSecret {
    StaticSecret::from(<[u8; 32]>::try_from(rec.relay_dh_secret.as_slice()).expect("32 bytes"))
}

/// The relay key a hostile relay seals `rid`'s deliveries with instead.
fn fake_secret(rid: &RecipientId) -> StaticSecret {
    use sha2::Digest as _;
    let h = sha2::Sha256::new()
        .chain_update(b"hostile relay key")
        .chain_update(rid)
        .finalize();
    StaticSecret::from(<[u8; 32]>::from(h))
}

fn no_limits(rec: &MailboxRecord) -> StoreLimits {
    StoreLimits {
        mailbox_quota: u32::MAX,
        total_quota: u64::MAX,
        open_mailbox_quota: u32::MAX,
        open_total_quota: u64::MAX,
        secured_as_checked: rec.secured_sender.clone(),
    }
}

impl HostileStore {
    /// Opens the store under `dir`.
    pub fn open(dir: &Path) -> Arc<HostileStore> {
        Arc::new(HostileStore {
            inner: SledStore::open(dir).expect("open sled store"),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how it misbehaves from now on.
    pub fn set(&self, knobs: Knobs) {
        self.state().knobs = knobs;
    }

    /// The mailbox the last deposit went to.
    pub fn last_deposit(&self) -> Option<RecipientId> {
        self.state().last_deposit
    }

    /// Deposits answered `Accepted` and thrown away so far.
    pub fn dropped(&self) -> usize {
        self.state().dropped
    }

    /// Envelopes stored in `rid`.
    pub fn count(&self, rid: &RecipientId) -> u32 {
        self.inner
            .mailbox(rid)
            .ok()
            .flatten()
            .map_or(0, |r| r.count)
    }

    /// Stores `plain` in `rid` as if it had been deposited: the relay will
    /// deliver it sealed under the mailbox's real delivery key. (A deposit
    /// of any size other than 16 KiB is refused; this is not.)
    pub fn inject(&self, rid: &RecipientId, plain: &[u8]) {
        let rec = self.inner.mailbox(rid).unwrap().expect("mailbox");
        let at_rest = SealingKey::at_rest(&secret_of(&rec), rid);
        let seal = |id: &EnvelopeId| at_rest.seal(id, plain);
        self.inner
            .put_envelope(rid, tropa_relay::current_hour(), &no_limits(&rec), &seal)
            .unwrap();
        self.inner.flush().unwrap();
    }

    /// Stores a copy of the envelope just deposited into `rid` (sealed at
    /// rest as `sealed`) into `target` as well.
    fn copy(&self, rid: &RecipientId, id: &EnvelopeId, sealed: &[u8], target: &RecipientId) {
        let Ok(Some(rec)) = self.inner.mailbox(rid) else {
            return;
        };
        let Ok(plain) = SealingKey::at_rest(&secret_of(&rec), rid).open(id, sealed) else {
            return;
        };
        self.inject(target, &plain);
    }
}

impl Store for HostileStore {
    fn create_mailbox(&self, rid: &RecipientId, rec: &MailboxRecord) -> Result<(), StoreError> {
        self.inner.create_mailbox(rid, rec)
    }

    fn mailbox(&self, rid: &RecipientId) -> Result<Option<MailboxRecord>, StoreError> {
        let found = self.inner.mailbox(rid)?;
        if self.state().knobs.wrong_key != Some(*rid) {
            return Ok(found);
        }
        // The service derives the delivery (and at-rest) key from this.
        Ok(found.map(|mut rec| {
            rec.relay_dh_secret = fake_secret(rid).to_bytes().to_vec();
            rec
        }))
    }

    fn mailbox_by_sender(
        &self,
        sender_id: &SenderId,
    ) -> Result<Option<(RecipientId, MailboxRecord)>, StoreError> {
        self.inner.mailbox_by_sender(sender_id)
    }

    fn secure(&self, rid: &RecipientId, sender_pub: &[u8]) -> Result<(), StoreError> {
        self.inner.secure(rid, sender_pub)
    }

    fn touch(&self, rid: &RecipientId, hour: tropa_relay::Hour) -> Result<(), StoreError> {
        self.inner.touch(rid, hour)
    }

    fn delete_mailbox(&self, rid: &RecipientId) -> Result<(), StoreError> {
        self.inner.delete_mailbox(rid)
    }

    fn put_envelope(
        &self,
        rid: &RecipientId,
        hour: tropa_relay::Hour,
        limits: &StoreLimits,
        seal: &dyn Fn(&EnvelopeId) -> Vec<u8>,
    ) -> Result<EnvelopeId, StoreError> {
        let start = Instant::now();
        while self.state().knobs.hold_deposits && start.elapsed() < HOLD_LIMIT {
            std::thread::sleep(Duration::from_millis(20));
        }
        let knobs = {
            let mut s = self.state();
            s.last_deposit = Some(*rid);
            if s.knobs.drop_deposits {
                s.dropped += 1;
                return Ok([0; ENVELOPE_ID_LEN]);
            }
            s.knobs.clone()
        };
        let id = self.inner.put_envelope(rid, hour, limits, seal)?;
        if let Some(target) = knobs.copy_to.filter(|t| t != rid) {
            self.copy(rid, &id, &seal(&id), &target);
        }
        Ok(id)
    }

    fn next_envelope(
        &self,
        rid: &RecipientId,
        from_seq: u64,
    ) -> Result<(Option<StoredEnvelope>, u64), StoreError> {
        let (found, corrupt) = self.inner.next_envelope(rid, from_seq)?;
        if self.state().knobs.wrong_key != Some(*rid) {
            return Ok((found, corrupt));
        }
        // Re-seal at rest under the fake key, which `mailbox` made the
        // service use: it then delivers the genuine envelope sealed under a
        // key the recipient cannot check.
        let Some(rec) = self.inner.mailbox(rid)? else {
            return Ok((found, corrupt));
        };
        let found = found.map(|mut env| {
            if let Ok(plain) = SealingKey::at_rest(&secret_of(&rec), rid).open(&env.id, &env.sealed)
            {
                env.sealed = SealingKey::at_rest(&fake_secret(rid), rid).seal(&env.id, &plain);
            }
            env
        });
        Ok((found, corrupt))
    }

    fn ack(&self, rid: &RecipientId, id: &EnvelopeId) -> Result<bool, StoreError> {
        if self.state().knobs.ignore_acks {
            return Ok(true);
        }
        self.inner.ack(rid, id)
    }

    fn put_link(
        &self,
        id: &LinkId,
        rec: &LinkRecord,
        now: tropa_relay::Hour,
        max_links: u64,
    ) -> Result<(), StoreError> {
        self.inner.put_link(id, rec, now, max_links)
    }

    fn link(&self, id: &LinkId) -> Result<Option<LinkRecord>, StoreError> {
        self.inner.link(id)
    }

    fn delete_link(&self, id: &LinkId, owner: &[u8]) -> Result<bool, StoreError> {
        self.inner.delete_link(id, owner)
    }

    fn sweep(
        &self,
        now: tropa_relay::Hour,
        policy: &SweepPolicy,
    ) -> Result<SweepStats, StoreError> {
        self.inner.sweep(now, policy)
    }

    fn totals(&self) -> Totals {
        self.inner.totals()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

/// What the bare endpoint of [`HostileRelay::attack`] answers on every stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameAttack {
    /// A length prefix far over the frame limit, then some bytes.
    Huge,
    /// A frame that announces 100 bytes and ends after 10.
    Truncated,
    /// A frame that decodes to no known answer.
    Undecodable,
    /// A full-size frame announced, then one byte every 100 ms, for ever.
    Trickle,
    /// `Ok`, then delivery frames of random bytes as fast as the client
    /// takes them, for ever.
    Flood,
}

/// The real relay server in this process, over a [`HostileStore`].
pub struct HostileRelay {
    /// Its address (fixed across restarts and attacks).
    pub address: RelayAddress,
    /// Its store, to turn the knobs.
    pub store: Arc<HostileStore>,
    identity: RelayIdentity,
    listen: SocketAddr,
    rt: tokio::runtime::Runtime,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl HostileRelay {
    /// Starts an honest relay with a new key and store under `dir`.
    pub fn start(dir: &Path) -> HostileRelay {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let port = crate::free_udp_port();
        let listen: SocketAddr = ([127, 0, 0, 1], port).into();
        let identity = RelayIdentity::generate().unwrap();
        let address = RelayAddress::new(identity.fingerprint(), listen);
        let mut relay = HostileRelay {
            address,
            store: HostileStore::open(&dir.join("store")),
            identity,
            listen,
            rt,
            running: None,
        };
        relay.serve();
        relay
    }

    /// Binds the port again, retrying while the last user releases it.
    fn bind<T, E: std::fmt::Debug>(mut f: impl FnMut() -> Result<T, E>) -> T {
        let start = Instant::now();
        loop {
            match f() {
                Ok(t) => return t,
                Err(e) if start.elapsed() > Duration::from_secs(5) => panic!("bind: {e:?}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Serves the real relay (after [`stop`](Self::stop) or an attack).
    pub fn serve(&mut self) {
        self.stop();
        let cfg = Config {
            listen: self.listen,
            ..Config::default()
        };
        let store: Arc<dyn Store> = self.store.clone();
        let server = Self::bind(|| {
            self.rt
                .block_on(Server::bind(cfg.clone(), &self.identity, store.clone()))
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = self.rt.spawn(server.run(async {
            let _ = rx.await;
        }));
        self.running = Some((tx, task));
    }

    /// Stops whatever serves the port now.
    pub fn stop(&mut self) {
        if let Some((tx, task)) = self.running.take() {
            let _ = tx.send(());
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await });
        }
    }

    /// Replaces the relay by a bare QUIC endpoint with the same key that
    /// answers every stream with `attack`.
    pub fn attack(&mut self, attack: FrameAttack) {
        self.stop();
        let cfg =
            tropa_relay::tls::server_config(self.identity.cert(), self.identity.private_key())
                .unwrap();
        let endpoint = Self::bind(|| {
            let _guard = self.rt.enter();
            quinn::Endpoint::server(cfg.clone(), self.listen)
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let task = self.rt.spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    incoming = endpoint.accept() => {
                        let Some(incoming) = incoming else { break };
                        tokio::spawn(answer_streams(incoming, attack));
                    }
                }
            }
            endpoint.close(0u32.into(), b"bye");
        });
        self.running = Some((tx, task));
    }
}

impl Drop for HostileRelay {
    fn drop(&mut self) {
        // Let held deposits go so the runtime can shut down.
        self.store.set(Knobs::default());
        self.stop();
    }
}

fn frame(resp: &Response) -> Vec<u8> {
    tropa_proto::framing::encode(resp).unwrap()
}

async fn answer_streams(incoming: quinn::Incoming, attack: FrameAttack) {
    let Ok(Ok(conn)) =
        tokio::time::timeout(Duration::from_secs(10), incoming.accept().unwrap()).await
    else {
        return;
    };
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(answer(send, recv, attack));
    }
}

/// Answers one stream; bounded to a minute whatever the client does.
async fn answer(mut send: quinn::SendStream, mut recv: quinn::RecvStream, attack: FrameAttack) {
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        // The request does not matter, but answer only once it is read.
        // (A subscription's stream stays open: do not wait for its end.)
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            tropa_relay_protocol::frame::read_frame::<relay::Request, _>(&mut recv),
        )
        .await;
        match attack {
            FrameAttack::Huge => {
                let mut b = u32::MAX.to_be_bytes().to_vec();
                b.extend_from_slice(&[0x5a; 64]);
                let _ = send.write_all(&b).await;
                let _ = send.finish();
            }
            FrameAttack::Truncated => {
                let mut b = 100u32.to_be_bytes().to_vec();
                b.extend_from_slice(&[0x5a; 10]);
                let _ = send.write_all(&b).await;
                let _ = send.finish();
            }
            FrameAttack::Undecodable => {
                let mut b = 8u32.to_be_bytes().to_vec();
                b.extend_from_slice(&[0xff; 8]);
                let _ = send.write_all(&b).await;
                let _ = send.finish();
            }
            FrameAttack::Trickle => {
                let len = u32::try_from(tropa_proto::MAX_FRAME_LEN).unwrap();
                if send.write_all(&len.to_be_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if send.write_all(&[0x0a]).await.is_err() {
                        return;
                    }
                }
            }
            FrameAttack::Flood => {
                let ok = Response {
                    result: Some(response::Result::Ok(relay::Ok::default())),
                };
                if send.write_all(&frame(&ok)).await.is_err() {
                    return;
                }
                for seq in 0u64.. {
                    let mut id = [0u8; ENVELOPE_ID_LEN];
                    id[..8].copy_from_slice(&seq.to_be_bytes());
                    let mut sealed = vec![0u8; tropa_relay::crypto::SEALED_LEN];
                    rand::Rng::fill_bytes(&mut rand::rng(), &mut sealed);
                    let d = Response {
                        result: Some(response::Result::Delivery(relay::Delivery {
                            envelope_id: id.to_vec().into(),
                            sealed: sealed.into(),
                        })),
                    };
                    if send.write_all(&frame(&d)).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
}

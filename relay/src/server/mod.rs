//! The relay's async shell: the QUIC endpoint and the TCP listener,
//! connection admission, expiry sweeps, the metrics endpoint and graceful
//! shutdown. Connections and their streams are in [`conn`] (the TCP
//! profile's TLS and HTTP/2 layers in [`tcp`], the stream halves both
//! transports provide in [`stream`]); memory budgets in [`budget`].
//!
//! All protocol decisions are in [`crate::service`]; this module only moves
//! bytes and waits. It must never log peer addresses, mailbox IDs or
//! envelope bytes (S8).
//!
//! Admission (M1 of the security review): slots are counted per address (an
//! IPv6 /64 counts as one), a handshake must complete within
//! [`HANDSHAKE_TIMEOUT`], and an Initial whose source address is not yet
//! validated gets a QUIC Retry once its address holds a few connections or
//! many unvalidated handshakes are in progress ([`must_retry`]). Spoofed or
//! unanswered Initials therefore hold at most a few slots of an address for
//! a few seconds and cannot lock it out, while a phone connecting normally
//! is spared the Retry's round trip. A TCP connection needs no Retry (its
//! handshake already proves the address) and is otherwise admitted the
//! same way: `max_connections` and the per-address cap count QUIC and TCP
//! connections together.

mod budget;
mod commit;
mod conn;
mod stream;
mod tcp;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tropa_proto::{Fingerprint, RelayAddress};

use crate::config::Config;
use crate::identity::RelayIdentity;
use crate::limits::{ip_key, must_retry};
use crate::metrics::Metrics;
use crate::service::{Now, Service};
use crate::store::{RecipientId, Store};
use crate::tls;

pub use budget::{RelayBudget, STREAM_COST};

/// How long a validated client has to complete the TLS handshake (over
/// TCP: the TLS and HTTP/2 handshakes once the TCP connection is accepted).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Wakes subscriptions when envelopes arrive for their mailbox.
#[derive(Debug, Default)]
struct Subscribers {
    map: Mutex<HashMap<RecipientId, watch::Sender<u64>>>,
}

impl Subscribers {
    fn watch(&self, rid: RecipientId) -> watch::Receiver<u64> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(rid)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Forgets the mailbox's channel once no subscription listens to it.
    fn release(&self, rid: &RecipientId) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(rid).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(rid);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn notify(&self, rid: &RecipientId) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(rid) {
            if tx.receiver_count() == 0 {
                map.remove(rid);
            } else {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

/// Open connections per address key ([`ip_key`]), in memory only (never
/// stored or logged), so one host cannot take every connection slot.
#[derive(Debug, Default)]
struct PerIp {
    map: Mutex<HashMap<std::net::IpAddr, u32>>,
}

impl PerIp {
    fn count(&self, ip: std::net::IpAddr) -> u32 {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip).copied().unwrap_or(0)
    }

    fn try_add(&self, ip: std::net::IpAddr, limit: u32) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    fn addresses(&self) -> Vec<IpAddr> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().copied().collect()
    }

    fn remove(&self, ip: std::net::IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

struct Ctx {
    per_ip: Arc<PerIp>,
    /// Connections admitted and not yet ended, QUIC and TCP together.
    open: AtomicUsize,
    /// Handshakes in progress from addresses not validated by a Retry.
    unvalidated: AtomicUsize,
    service: Service,
    subscribers: Subscribers,
    /// The connections alive, for [`Server::served_handle`] (tests only).
    live: Arc<conn::Live>,
    metrics: Arc<Metrics>,
    budget: RelayBudget,
    committer: commit::Committer,
    config: Config,
}

impl Ctx {
    /// Takes a connection slot for address key `ip` if the relay and that
    /// address have one free; the slot is given back when dropped.
    fn try_slot(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let max = self.config.max_connections as usize;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        if !self.per_ip.try_add(ip, self.config.max_connections_per_ip) {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot {
            ctx: self.clone(),
            ip,
        })
    }
}

/// One admitted connection's place in `max_connections` and in its
/// address's count.
struct Slot {
    ctx: Arc<Ctx>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.ctx.per_ip.remove(self.ip);
        self.ctx.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TLS or QUIC configuration failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsConfigError),
    /// The UDP socket (or the metrics listener) could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The TCP listener could not be bound.
    #[error("cannot listen for TCP on {addr}: {source}")]
    BindTcp {
        /// The address (the UDP socket's port when QUIC is on too).
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// Both `quic` and `tcp` are off.
    #[error("nothing to serve: quic and tcp are both off")]
    NoTransport,
    /// With `listen` port 0, every UDP port drawn had its TCP port taken.
    #[error("cannot find a port free for both UDP and TCP on {ip} after {attempts} attempts")]
    NoSharedPort {
        /// The address asked for.
        ip: IpAddr,
        /// Ports tried.
        attempts: u32,
    },
    /// The commit thread could not be started.
    #[error("cannot start the commit thread: {0}")]
    Thread(std::io::Error),
}

/// A bound relay, ready to [`run`](Server::run).
pub struct Server {
    /// The QUIC endpoint (`None` with `quic = false`).
    endpoint: Option<quinn::Endpoint>,
    /// The TCP listener (`None` with `tcp = false`).
    tcp: Option<tcp::Listener>,
    ctx: Arc<Ctx>,
    fingerprint: Fingerprint,
    metrics_listener: Option<tokio::net::TcpListener>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the UDP socket and the TCP listener, as configured (and the
    /// metrics listener, if configured).
    ///
    /// # Errors
    /// [`ServerError`] if the configuration is unusable or the port is taken.
    pub async fn bind(
        config: Config,
        identity: &RelayIdentity,
        store: Arc<dyn Store>,
    ) -> Result<Self, ServerError> {
        let (socket, tcp_listener) = tcp::bind_sockets(&config)?;
        let endpoint = match socket {
            Some(socket) => {
                let server_cfg = tls::server_config(identity.cert(), identity.private_key())?;
                let bind_err = |source| ServerError::Bind {
                    addr: config.listen,
                    source,
                };
                // Stateless-reset and connection-ID keys survive restarts, so a
                // restarted relay tells clients their connection is gone right away.
                let mut endpoint_cfg =
                    quinn::EndpointConfig::new(Arc::new(identity.stateless_reset_key()));
                let cid_key = identity.connection_id_key();
                endpoint_cfg.cid_generator(move || {
                    Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
                });
                Some(
                    quinn::Endpoint::new(
                        endpoint_cfg,
                        Some(server_cfg),
                        socket,
                        Arc::new(quinn::TokioRuntime),
                    )
                    .map_err(bind_err)?,
                )
            }
            None => None,
        };
        let tcp = match tcp_listener {
            Some(l) => Some(tcp::Listener::new(l, identity)?),
            None => None,
        };
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?;
                // The operator's own loopback address: fine to log.
                tracing::info!("metrics on http://{addr}/metrics (loopback only, aggregates only)");
                Some(l)
            }
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let budget = RelayBudget::new(config.memory_budget_mib.saturating_mul(1024 * 1024));
        let committer = commit::Committer::start(store.clone(), metrics.clone())
            .map_err(ServerError::Thread)?;
        Ok(Self {
            endpoint,
            tcp,
            fingerprint: identity.fingerprint(),
            ctx: Arc::new(Ctx {
                per_ip: Arc::default(),
                open: 0.into(),
                unvalidated: 0.into(),
                service: Service::new(store, config.policy(), metrics.clone()),
                subscribers: Subscribers::default(),
                live: Arc::default(),
                metrics,
                budget,
                committer,
                config,
            }),
            metrics_listener,
        })
    }

    /// The socket address actually bound (with the real port if 0 was
    /// asked): the UDP socket's, or the TCP listener's when QUIC is off.
    /// Both have the same port when both are on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match (&self.endpoint, &self.tcp) {
            (Some(e), _) => e.local_addr(),
            (None, Some(t)) => t.local_addr(),
            (None, None) => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// The TCP listener's bound address, if TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|t| t.local_addr().ok())
    }

    /// The address keys (an IPv4 address, an IPv6 /64 as its first
    /// address) currently counted by the per-address connection cap. For
    /// tests that must show which address the relay saw (a client behind a
    /// proxy); never logged and never in the metrics, which stay aggregate.
    #[doc(hidden)]
    pub fn peer_ips(&self) -> Vec<IpAddr> {
        self.ctx.per_ip.addresses()
    }

    /// A handle that reads, while the server runs, which mailboxes each
    /// live connection is subscribed to.
    #[doc(hidden)]
    pub fn served_handle(&self) -> Served {
        Served(self.ctx.live.clone())
    }

    /// A handle that reads [`peer_ips`](Self::peer_ips) while the server
    /// runs (`run` consumes the server).
    #[doc(hidden)]
    pub fn peer_ips_handle(&self) -> PeerIps {
        PeerIps(self.ctx.per_ip.clone())
    }

    /// The metrics endpoint's bound address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The relay address clients use: the public host if configured, else
    /// the bound address (a wildcard address is shown as loopback).
    pub fn address(&self) -> std::io::Result<RelayAddress> {
        let bound = self.local_addr()?;
        Ok(address_for(
            &self.ctx.config,
            self.fingerprint,
            bound.port(),
        ))
    }

    /// Serves until `shutdown` completes, then stops accepting, closes
    /// connections and flushes the store.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let sweeper = tokio::spawn(sweep_loop(self.ctx.clone()));
        let metrics_task = self
            .metrics_listener
            .take()
            .map(|l| tokio::spawn(metrics_loop(l, self.ctx.clone())));
        let (stop_tcp, tcp_stopped) = tokio::sync::watch::channel(false);
        let tcp_task = self
            .tcp
            .take()
            .map(|l| tokio::spawn(l.serve(self.ctx.clone(), tcp_stopped)));
        tokio::pin!(shutdown);
        match &self.endpoint {
            Some(endpoint) => loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    incoming = endpoint.accept() => {
                        let Some(incoming) = incoming else { break };
                        self.admit(incoming);
                    }
                }
            },
            None => shutdown.await,
        }
        tracing::info!("shutting down");
        if let Some(endpoint) = &self.endpoint {
            endpoint.close(0u32.into(), b"relay shutting down");
        }
        // Every TCP connection task holds a receiver; they close their
        // connections and drop it.
        let _ = stop_tcp.send(true);
        sweeper.abort();
        if let Some(t) = metrics_task {
            t.abort();
        }
        let store = self.ctx.service.store().clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.flush()).await {
            tracing::error!("final flush failed: {e}");
        }
        let idle = async {
            if let Some(endpoint) = &self.endpoint {
                endpoint.wait_idle().await;
            }
            stop_tcp.closed().await;
        };
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, idle).await;
        if let Some(t) = tcp_task {
            t.abort();
        }
    }
}

/// Reads which mailboxes each live connection is subscribed to, while the
/// server runs ([`Server::served_handle`]; tests only: issue 12's proof
/// that isolated contacts never share a connection).
#[doc(hidden)]
#[derive(Clone)]
pub struct Served(Arc<conn::Live>);

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Served")
    }
}

impl Served {
    /// For each live connection, the mailboxes (recipient ids) it holds a
    /// subscription to.
    pub fn get(&self) -> Vec<Vec<crate::store::RecipientId>> {
        self.0.subscriptions()
    }
}

/// Reads the addresses the per-address cap counts, while the server runs
/// ([`Server::peer_ips_handle`]; tests only).
#[doc(hidden)]
#[derive(Clone)]
pub struct PeerIps(Arc<PerIp>);

impl std::fmt::Debug for PeerIps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerIps")
    }
}

impl PeerIps {
    /// See [`Server::peer_ips`].
    pub fn get(&self) -> Vec<IpAddr> {
        self.0.addresses()
    }
}

impl Server {
    /// Decides whether a new connection gets a slot (see the module docs).
    fn admit(&self, incoming: quinn::Incoming) {
        let ip = ip_key(incoming.remote_address().ip());
        let validated = incoming.remote_address_validated();
        let in_progress = self.ctx.unvalidated.load(Ordering::Relaxed);
        if must_retry(validated, self.ctx.per_ip.count(ip), in_progress) {
            // Nothing is counted for this attempt: answer with a Retry and
            // forget it. A real client comes back validated.
            if incoming.may_retry() {
                let _ = incoming.retry();
            } else {
                incoming.ignore();
            }
            return;
        }
        let Some(slot) = self.ctx.try_slot(ip) else {
            incoming.refuse();
            return;
        };
        let ctx = self.ctx.clone();
        if !validated {
            ctx.unvalidated.fetch_add(1, Ordering::Relaxed);
        }
        tokio::spawn(async move {
            conn::handle_connection(incoming, ctx, !validated).await;
            drop(slot);
        });
    }
}

/// The address for a relay with this configuration listening on `port`.
pub fn address_for(config: &Config, fingerprint: Fingerprint, port: u16) -> RelayAddress {
    let ip = config.listen.ip();
    let host = match &config.public_host {
        Some(h) => h.clone(),
        None if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
        None if ip.is_unspecified() => "127.0.0.1".to_owned(),
        None => SocketAddr::new(ip, port)
            .to_string()
            .rsplit_once(':')
            .map_or_else(String::new, |(h, _)| h.to_owned()),
    };
    let pw = config
        .creation_password
        .as_ref()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let text = format!("tropa://{fingerprint}{pw}@{host}:{port}");
    text.parse().unwrap_or_else(|_| {
        // public_host was not a valid host: fall back to the bound IP.
        RelayAddress::new(fingerprint, SocketAddr::new(ip, port))
    })
}

async fn sweep_loop(ctx: Arc<Ctx>) {
    let every = Duration::from_secs(ctx.config.sweep_interval_secs.max(1));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let c = ctx.clone();
        let res = tokio::task::spawn_blocking(move || {
            let now = Now::current();
            c.service.prune(now);
            c.service.store().sweep(now.hour, &c.config.sweep_policy())
        })
        .await;
        match res {
            Ok(Ok(stats)) if stats != Default::default() => tracing::info!(
                expired_envelopes = stats.expired_envelopes,
                expired_mailboxes = stats.expired_mailboxes,
                unused_mailboxes = stats.unused_mailboxes,
                expired_links = stats.expired_links,
                corrupt_records = stats.corrupt,
                "expiry sweep"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("expiry sweep failed: {e}"),
            Err(e) => tracing::error!("expiry sweep panicked: {e}"),
        }
    }
}

async fn metrics_loop(listener: tokio::net::TcpListener, ctx: Arc<Ctx>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let body = ctx.metrics.render(
            ctx.service.store().totals(),
            ctx.budget.in_use(),
            &ctx.config,
        );
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
            let resp = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_limit_counts_and_releases() {
        let p = PerIp::default();
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert!(p.try_add(ip, 2) && p.try_add(ip, 2));
        assert!(!p.try_add(ip, 2));
        p.remove(ip);
        assert!(p.try_add(ip, 2));
        p.remove(ip);
        p.remove(ip);
        assert!(p.map.lock().unwrap().is_empty());
    }

    #[test]
    fn subscriber_entries_are_released() {
        let subs = Subscribers::default();
        let rid = [1u8; 24];
        let a = subs.watch(rid);
        let b = subs.watch(rid);
        drop(a);
        subs.release(&rid);
        assert_eq!(subs.len(), 1, "still one listener");
        drop(b);
        subs.release(&rid);
        assert_eq!(subs.len(), 0);
    }
}

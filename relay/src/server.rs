//! The relay's async shell: QUIC endpoint, per-connection rate limiting,
//! request streams, subscriptions, expiry sweeps and graceful shutdown.
//!
//! All protocol decisions are in [`crate::service`]; this module only moves
//! bytes and waits. It must never log peer addresses, mailbox IDs or
//! envelope bytes (S8).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tropa_proto::framing::FrameError;
use tropa_proto::relay::{ErrorCode, Request, Response};
use tropa_proto::{Fingerprint, RelayAddress};

use crate::config::Config;
use crate::crypto::ChannelBinding;
use crate::identity::RelayIdentity;
use crate::metrics::Metrics;
use crate::service::{self, Outcome, Policy, Service, Subscription};
use crate::store::{RecipientId, Store, seq_of};
use crate::tls;
use crate::wire::{self, ReadError};

/// Time a client has to send its request after opening a stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Envelopes read from the store per delivery batch.
const DELIVERY_BATCH: usize = 32;
/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A token bucket: `rate` requests per second on average, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

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

/// Open connections per client IP, in memory only (never stored or logged),
/// so one host cannot take every connection slot.
#[derive(Debug, Default)]
struct PerIp {
    map: Mutex<HashMap<std::net::IpAddr, u32>>,
}

impl PerIp {
    fn try_add(&self, ip: std::net::IpAddr, limit: u32) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
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
    per_ip: PerIp,
    service: Service,
    subscribers: Subscribers,
    metrics: Arc<Metrics>,
    config: Config,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TLS or QUIC configuration failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsConfigError),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}

/// A bound relay, ready to [`run`](Server::run).
pub struct Server {
    endpoint: quinn::Endpoint,
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
    /// Binds the UDP socket (and the metrics listener, if configured).
    ///
    /// # Errors
    /// [`ServerError`] if the configuration is unusable or the port is taken.
    pub async fn bind(
        config: Config,
        identity: &RelayIdentity,
        store: Arc<dyn Store>,
    ) -> Result<Self, ServerError> {
        let server_cfg = tls::server_config(identity.cert(), identity.private_key())?;
        let bind_err = |source| ServerError::Bind {
            addr: config.listen,
            source,
        };
        let socket = std::net::UdpSocket::bind(config.listen).map_err(bind_err)?;
        // Stateless-reset and connection-ID keys survive restarts, so a
        // restarted relay tells clients their connection is gone right away.
        let mut endpoint_cfg = quinn::EndpointConfig::new(Arc::new(identity.stateless_reset_key()));
        let cid_key = identity.connection_id_key();
        endpoint_cfg.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let endpoint = quinn::Endpoint::new(
            endpoint_cfg,
            Some(server_cfg),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_err)?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let policy = Policy {
            mailbox_quota: config.mailbox_quota,
            max_mailboxes: config.max_mailboxes,
            total_quota: config.disk_quota_bytes / tropa_proto::ENVELOPE_SIZE as u64,
            creation_password: config.creation_password.clone(),
        };
        Ok(Self {
            endpoint,
            fingerprint: identity.fingerprint(),
            ctx: Arc::new(Ctx {
                per_ip: PerIp::default(),
                service: Service::new(store, policy, metrics.clone()),
                subscribers: Subscribers::default(),
                metrics,
                config,
            }),
            metrics_listener,
        })
    }

    /// The socket address actually bound (with the real port if 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
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
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let sweeper = tokio::spawn(sweep_loop(self.ctx.clone()));
        let metrics_task = self
            .metrics_listener
            .map(|l| tokio::spawn(metrics_loop(l, self.ctx.clone())));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let ip = incoming.remote_address().ip();
                    if self.endpoint.open_connections() >= self.ctx.config.max_connections as usize
                        || !self.ctx.per_ip.try_add(ip, self.ctx.config.max_connections_per_ip)
                    {
                        incoming.refuse();
                        continue;
                    }
                    let ctx = self.ctx.clone();
                    tokio::spawn(async move {
                        handle_connection(incoming, ctx.clone()).await;
                        ctx.per_ip.remove(ip);
                    });
                }
            }
        }
        tracing::info!("shutting down");
        self.endpoint.close(0u32.into(), b"relay shutting down");
        sweeper.abort();
        if let Some(t) = metrics_task {
            t.abort();
        }
        let store = self.ctx.service.store().clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.flush()).await {
            tracing::error!("final flush failed: {e}");
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.endpoint.wait_idle()).await;
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
            c.service.store().sweep(
                crate::current_hour(),
                c.config.envelope_ttl_hours,
                c.config.idle_mailbox_hours,
            )
        })
        .await;
        match res {
            Ok(Ok(stats)) if stats != Default::default() => tracing::info!(
                expired_envelopes = stats.expired_envelopes,
                expired_mailboxes = stats.expired_mailboxes,
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
        let store = ctx.service.store().clone();
        let body = ctx
            .metrics
            .render(store.total_envelopes(), store.total_mailboxes());
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

async fn handle_connection(incoming: quinn::Incoming, ctx: Arc<Ctx>) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("handshake failed: {e}");
            return;
        }
    };
    ctx.metrics.inc(&ctx.metrics.connections);
    let Ok(binding) = tls::channel_binding(&conn) else {
        conn.close(1u32.into(), b"no channel binding");
        return;
    };
    let mut limiter = RateLimiter::new(
        ctx.config.rate_per_sec,
        ctx.config.rate_burst,
        Instant::now(),
    );
    while let Ok((send, recv)) = conn.accept_bi().await {
        if limiter.try_take(Instant::now()) {
            tokio::spawn(handle_stream(ctx.clone(), binding, send, recv));
        } else {
            ctx.metrics.inc(&ctx.metrics.rate_limited);
            tokio::spawn(reply_and_finish(
                ctx.clone(),
                send,
                service::error(ErrorCode::RateLimited, "too many requests, slow down"),
            ));
        }
    }
}

async fn reply_and_finish(ctx: Arc<Ctx>, mut send: quinn::SendStream, resp: Response) {
    if matches!(
        resp.result,
        Some(tropa_proto::relay::response::Result::Error(_))
    ) {
        ctx.metrics.inc(&ctx.metrics.errors);
    }
    if wire::write_frame(&mut send, &resp).await.is_ok() {
        let _ = send.finish();
        // Wait until the peer has the reply (or gives up) before dropping.
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, send.stopped()).await;
    }
}

async fn handle_stream(
    ctx: Arc<Ctx>,
    binding: ChannelBinding,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let req =
        match tokio::time::timeout(REQUEST_TIMEOUT, wire::read_frame::<Request>(&mut recv)).await {
            Ok(Ok(req)) => {
                // One request per stream: anything more the peer sends is not
                // read, so tell it to stop instead of letting quinn buffer it.
                let _ = recv.stop(0u32.into());
                req
            }
            Ok(Err(e)) => {
                let resp = match e {
                    ReadError::Frame(FrameError::TooLarge(_)) => {
                        // Do not read the rest of an oversized frame.
                        let _ = recv.stop(0u32.into());
                        service::error(ErrorCode::TooLarge, "frame too large")
                    }
                    ReadError::Frame(_) => service::error(ErrorCode::Malformed, "malformed frame"),
                    ReadError::Finished | ReadError::Truncated => {
                        service::error(ErrorCode::Malformed, "truncated frame")
                    }
                    ReadError::Stream(_) => return,
                };
                reply_and_finish(ctx, send, resp).await;
                return;
            }
            Err(_) => {
                let _ = recv.stop(0u32.into());
                reply_and_finish(
                    ctx,
                    send,
                    service::error(ErrorCode::Malformed, "request timed out"),
                )
                .await;
                return;
            }
        };
    let c = ctx.clone();
    // The store is synchronous (sled); keep it off the async workers.
    let outcome =
        tokio::task::spawn_blocking(move || c.service.handle(req, &binding, crate::current_hour()))
            .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(_) => Outcome::Reply(service::error(ErrorCode::Internal, "internal error")),
    };
    match outcome {
        Outcome::Reply(resp) => reply_and_finish(ctx, send, resp).await,
        Outcome::FlushThenAccept(rid) => {
            let store = ctx.service.store().clone();
            let flushed = tokio::task::spawn_blocking(move || store.flush()).await;
            let resp = match flushed {
                Ok(Ok(())) => {
                    ctx.subscribers.notify(&rid);
                    service::accepted()
                }
                _ => {
                    tracing::error!("flush failed; deposit not acknowledged");
                    service::error(ErrorCode::Internal, "could not store, try again")
                }
            };
            reply_and_finish(ctx, send, resp).await;
        }
        Outcome::Subscribe(sub) => deliver(ctx, send, sub).await,
    }
}

/// Pushes the mailbox's envelopes on the subscription stream as they arrive,
/// until the client closes the stream or the connection ends.
async fn deliver(ctx: Arc<Ctx>, mut send: quinn::SendStream, sub: Subscription) {
    let ok = Response {
        result: Some(tropa_proto::relay::response::Result::Ok(
            tropa_proto::relay::Ok {},
        )),
    };
    if wire::write_frame(&mut send, &ok).await.is_err() {
        return;
    }
    let sub = Arc::new(sub);
    let rid = sub.recipient_id;
    let wake = ctx.subscribers.watch(rid);
    push_deliveries(&ctx, &mut send, sub, wake).await;
    ctx.subscribers.release(&rid);
}

async fn push_deliveries(
    ctx: &Ctx,
    send: &mut quinn::SendStream,
    sub: Arc<Subscription>,
    mut wake: watch::Receiver<u64>,
) {
    let mut next_seq = 0u64;
    loop {
        // Mark the current value seen before reading, so a deposit that lands
        // during the read wakes us again instead of being missed.
        wake.borrow_and_update();
        loop {
            let store = ctx.service.store().clone();
            let s = sub.clone();
            let batch = tokio::task::spawn_blocking(move || {
                let envs = store.envelopes(&s.recipient_id, next_seq, DELIVERY_BATCH)?;
                Ok::<_, crate::store::StoreError>(
                    envs.iter()
                        .map(|e| (seq_of(&e.id), service::delivery(&s, e)))
                        .collect::<Vec<_>>(),
                )
            })
            .await;
            let Ok(Ok(batch)) = batch else {
                tracing::error!("reading envelopes failed");
                return;
            };
            let full = batch.len() == DELIVERY_BATCH;
            for (seq, frame) in batch {
                next_seq = seq + 1;
                match frame {
                    Ok(frame) => {
                        if wire::write_frame(send, &frame).await.is_err() {
                            return;
                        }
                        ctx.metrics.inc(&ctx.metrics.deliveries);
                    }
                    Err(_) => tracing::error!("a stored envelope failed to open; skipped"),
                }
            }
            if !full {
                break;
            }
        }
        let idle = Response {
            result: Some(tropa_proto::relay::response::Result::Idle(
                tropa_proto::relay::Idle {},
            )),
        };
        if wire::write_frame(send, &idle).await.is_err() {
            return;
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return },
            _ = send.stopped() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_refills_over_time() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(2, 3, t0);
        assert!((0..3).all(|_| r.try_take(t0)));
        assert!(!r.try_take(t0));
        assert!(r.try_take(t0 + Duration::from_millis(500)));
        assert!(!r.try_take(t0 + Duration::from_millis(500)));
        // Never more than the burst, however long it was idle.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| r.try_take(later)));
        assert!(!r.try_take(later));
    }

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

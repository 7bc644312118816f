//! One connection: its request streams and subscriptions. Reads frames
//! against the memory budget, hands each request to the service, makes the
//! store durable when the service says so, and writes what the service
//! produced. It decides nothing about the protocol. QUIC connections are
//! accepted here; TCP ones in [`super::tcp`], which hands its streams to
//! the same [`Streams`] (the halves are [`super::stream`]'s traits).
//!
//! What bounds a hostile client here (H1 of the security review): a request
//! body is allocated only once its connection's budget and the relay's have
//! paid for it; a subscription holds one delivery frame at a time, paid for
//! the same way; a client that does not read a frame within
//! [`WRITE_TIMEOUT`] loses the subscription; and a connection holds one
//! subscription per mailbox (a new one replaces the old).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;
use tokio::sync::Notify;
use tropa_proto::MAX_FRAME_LEN;
use tropa_proto::framing::{self, FrameError, LEN_PREFIX};
use tropa_proto::relay::{ErrorCode, Request, Response};

use super::Ctx;
use super::budget::{ConnectionBudget, Kind, Permit};
use super::stream::{RecvHalf, SendHalf};
use crate::crypto::ChannelBinding;
use crate::limits::RateLimiter;
use crate::service::{self, Now, Outcome, Peer, Subscription};
use crate::store::RecipientId;
use tropa_relay_protocol::frame as wire;

/// Time a client has to take one delivery frame off the relay's hands.
/// (The time it has to send its request is `request_timeout_secs` in the
/// configuration.)
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(20);
/// What one delivery costs while it is read, opened, sealed and written:
/// the stored and the delivered form of the envelope.
const DELIVERY_COST: usize = 2 * (LEN_PREFIX + MAX_FRAME_LEN);

/// The subscriptions of one connection, one per mailbox.
#[derive(Default)]
struct Subscriptions {
    next: u64,
    active: HashMap<RecipientId, (u64, Arc<Notify>)>,
}

/// The connections alive, weakly held: what [`super::Served`] reads. A
/// connection adds itself when it starts; the dead are pruned once the
/// list has doubled since the last pruning, so adding costs O(1) on
/// average (pruning at every connection scanned the whole list each time:
/// O(n²) for a burst of n connects) and the list holds at most twice the
/// connections alive, plus 64.
#[derive(Default)]
pub(crate) struct Live(Mutex<LiveList>);

#[derive(Default)]
struct LiveList {
    all: Vec<std::sync::Weak<Connection>>,
    /// The length at which the next pruning happens.
    prune_at: usize,
}

impl Live {
    fn add(&self, c: &Arc<Connection>) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if list.all.len() >= list.prune_at {
            list.all.retain(|w| w.strong_count() > 0);
            list.prune_at = (2 * list.all.len()).max(64);
        }
        list.all.push(Arc::downgrade(c));
    }

    /// The subscriptions of each live connection.
    pub(crate) fn subscriptions(&self) -> Vec<Vec<RecipientId>> {
        let list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.all
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .map(|c| {
                let subs = c.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
                subs.active.keys().copied().collect()
            })
            .collect()
    }
}

/// State shared by the streams of one connection.
pub(crate) struct Connection {
    peer: Peer,
    budget: ConnectionBudget,
    subscriptions: Mutex<Subscriptions>,
}

impl Connection {
    /// Registers a subscription to `rid`, stopping the one this connection
    /// already had for it. Returns its generation and its stop signal.
    fn register(&self, rid: RecipientId) -> (u64, Arc<Notify>) {
        let mut subs = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        subs.next += 1;
        let entry = (subs.next, Arc::new(Notify::new()));
        if let Some((_, old)) = subs.active.insert(rid, entry.clone()) {
            // notify_one stores the wake-up if the old one is not waiting yet.
            old.notify_one();
        }
        entry
    }

    fn unregister(&self, rid: &RecipientId, generation: u64) {
        let mut subs = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        if subs.active.get(rid).is_some_and(|(g, _)| *g == generation) {
            subs.active.remove(rid);
        }
    }
}

/// Completes the handshake of an admitted connection; `None` if it failed
/// or took longer than [`super::HANDSHAKE_TIMEOUT`].
async fn handshake(incoming: quinn::Incoming) -> Option<quinn::Connection> {
    let connecting = incoming
        .accept()
        .map_err(|e| tracing::debug!("handshake failed: {e}"))
        .ok()?;
    match tokio::time::timeout(super::HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            tracing::debug!("handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("handshake timed out");
            None
        }
    }
}

/// Serves one admitted connection; `unvalidated` if it was admitted
/// without a Retry (it then counts as an unvalidated handshake until its
/// handshake ends).
pub(crate) async fn handle_connection(incoming: quinn::Incoming, ctx: Arc<Ctx>, unvalidated: bool) {
    let conn = handshake(incoming).await;
    if unvalidated {
        ctx.unvalidated
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
    let Some(conn) = conn else {
        return;
    };
    ctx.metrics.inc(&ctx.metrics.connections);
    let Ok(binding) = crate::tls::channel_binding(&conn) else {
        conn.close(1u32.into(), b"no channel binding");
        return;
    };
    let mut streams = Streams::new(ctx, binding, conn.remote_address().ip());
    let mut limit = crate::tls::INITIAL_STREAMS;
    while let Ok((send, recv)) = conn.accept_bi().await {
        streams.accept(send, recv);
        // Raise the limit before the client runs into it (see
        // tls::INITIAL_STREAMS); never beyond MAX_STREAMS.
        if streams.open() * 2 >= limit as usize && limit < crate::tls::MAX_STREAMS {
            limit = limit.saturating_mul(2).min(crate::tls::MAX_STREAMS);
            conn.set_max_concurrent_bi_streams(limit.into());
        }
    }
}

/// What every stream of one connection shares, whichever transport carries
/// it: the per-connection state, and the rate limiter new streams pass.
pub(crate) struct Streams {
    ctx: Arc<Ctx>,
    state: Arc<Connection>,
    limiter: RateLimiter,
    /// Streams of this connection whose task has not ended.
    open: Arc<std::sync::atomic::AtomicUsize>,
}

/// One stream's place in [`Streams::open`], given back when its task ends.
struct OpenStream(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Streams {
    /// The state of a new connection from `ip`, whose TLS session has this
    /// channel binding.
    pub(crate) fn new(ctx: Arc<Ctx>, binding: ChannelBinding, ip: IpAddr) -> Self {
        let address = crate::limits::ip_key(ip);
        let state = Arc::new(Connection {
            peer: ctx.service.peer(binding, address, Now::current()),
            budget: ctx
                .budget
                .connection(ctx.config.connection_memory_kib.saturating_mul(1024)),
            subscriptions: Mutex::default(),
        });
        ctx.live.add(&state);
        let limiter = RateLimiter::new(
            f64::from(ctx.config.rate_per_sec),
            ctx.config.rate_burst,
            Instant::now(),
        );
        Self {
            ctx,
            state,
            limiter,
            open: Arc::default(),
        }
    }

    /// Streams of this connection still being served.
    pub(crate) fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn track(&self) -> OpenStream {
        self.open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenStream(self.open.clone())
    }

    /// Takes one new stream: answered `RATE_LIMITED` beyond the
    /// connection's request rate, "busy" beyond the relay's stream budget,
    /// and served by its own task otherwise.
    pub(crate) fn accept<S: SendHalf, R: RecvHalf>(&mut self, send: S, recv: R) {
        let ctx = &self.ctx;
        let open = self.track();
        if !self.limiter.try_take(Instant::now()) {
            ctx.metrics.inc(&ctx.metrics.rate_limited);
            drop(recv);
            let reply = reply_and_finish(
                ctx.clone(),
                send,
                service::error(ErrorCode::RateLimited, "too many requests, slow down"),
            );
            tokio::spawn(async move {
                reply.await;
                drop(open);
            });
        } else if let Some(stream) = ctx.budget.try_stream() {
            let (c, s) = (ctx.clone(), self.state.clone());
            tokio::spawn(async move {
                handle_stream(c, s, send, recv).await;
                drop((stream, open));
            });
        } else {
            // The relay holds as many streams as its budget allows.
            ctx.metrics.inc(&ctx.metrics.memory_refusals);
            recv.stop_reading();
            let reply = reply_and_finish(ctx.clone(), send, service::busy());
            tokio::spawn(async move {
                reply.await;
                drop(open);
            });
        }
    }
}

async fn reply_and_finish<S: SendHalf>(ctx: Arc<Ctx>, mut send: S, resp: Response) {
    if matches!(
        resp.result,
        Some(tropa_proto::relay::response::Result::Error(_))
    ) {
        ctx.metrics.inc(&ctx.metrics.errors);
    }
    let written = tokio::time::timeout(WRITE_TIMEOUT, wire::write_frame(&mut send, &resp)).await;
    if matches!(written, Ok(Ok(()))) {
        send.end().await;
    } else {
        send.abort();
    }
}

/// Why a request could not be read.
enum BadRequest {
    /// Answer this and finish.
    Answer(Response),
    /// The stream is gone; nothing to answer.
    Gone,
}

async fn read_exact<R: RecvHalf>(recv: &mut R, buf: &mut [u8]) -> Result<(), BadRequest> {
    match recv.read_exact(buf).await {
        Ok(_) => Ok(()),
        // The stream ended cleanly before the whole frame.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(BadRequest::Answer(
            service::error(ErrorCode::Malformed, "truncated frame"),
        )),
        // Reset, or the connection is gone.
        Err(_) => Err(BadRequest::Gone),
    }
}

/// Reads the stream's one request frame. The body is allocated only after
/// the budget paid for it, and the permit is held until the request has
/// been handled.
async fn read_request<R: RecvHalf>(
    recv: &mut R,
    budget: &ConnectionBudget,
    metrics: &crate::metrics::Metrics,
) -> Result<(Request, Permit), BadRequest> {
    let mut prefix = [0u8; LEN_PREFIX];
    read_exact(recv, &mut prefix).await?;
    let len = match framing::check_len(prefix) {
        Ok(len) => len,
        Err(_) => {
            return Err(BadRequest::Answer(service::error(
                ErrorCode::TooLarge,
                "frame too large",
            )));
        }
    };
    // Never wait for memory here: see tropa_relay_protocol::REQUESTS_IN_FLIGHT.
    let Some(permit) = budget.try_acquire(Kind::Request, len) else {
        metrics.inc(&metrics.memory_refusals);
        return Err(BadRequest::Answer(service::busy()));
    };
    let mut body = vec![0u8; len];
    read_exact(recv, &mut body).await?;
    match prost::Message::decode(bytes::Bytes::from(body)) {
        Ok(req) => Ok((req, permit)),
        Err(e) => {
            tracing::debug!("{}", FrameError::from(e));
            Err(BadRequest::Answer(service::error(
                ErrorCode::Malformed,
                "malformed frame",
            )))
        }
    }
}

async fn handle_stream<S: SendHalf, R: RecvHalf>(
    ctx: Arc<Ctx>,
    conn: Arc<Connection>,
    send: S,
    mut recv: R,
) {
    let read = tokio::time::timeout(
        Duration::from_secs(ctx.config.request_timeout_secs),
        read_request(&mut recv, &conn.budget, &ctx.metrics),
    )
    .await;
    // One request per stream: anything more the peer sends is not read, so
    // tell it to stop instead of letting the transport buffer it.
    recv.stop_reading();
    let (req, permit) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(BadRequest::Answer(resp))) => return reply_and_finish(ctx, send, resp).await,
        Ok(Err(BadRequest::Gone)) => return,
        Err(_) => {
            // Late, not malformed: a client on a slow link tries again.
            let resp = service::error(ErrorCode::TimedOut, "request timed out");
            return reply_and_finish(ctx, send, resp).await;
        }
    };
    let outcome = if service::Service::reads_only(&req) {
        // Deposits and recipient commands only read here (from the store's
        // cache or the page cache) and check a signature; their writes go
        // to the commit thread below. No blocking thread for them.
        Ok(ctx.service.handle(req, &conn.peer, Now::current()))
    } else {
        // The rare requests (a new mailbox, links) write the store
        // themselves: keep those off the async workers.
        let (c, co) = (ctx.clone(), conn.clone());
        tokio::task::spawn_blocking(move || c.service.handle(req, &co.peer, Now::current())).await
    };
    match outcome {
        Ok(Outcome::Reply {
            response,
            durable,
            wake,
        }) => {
            drop(permit);
            let response = if durable && !ctx.committer.durable().await {
                service::internal_error()
            } else {
                if let Some(rid) = wake {
                    ctx.subscribers.notify(&rid);
                }
                response
            };
            reply_and_finish(ctx, send, response).await;
        }
        Ok(Outcome::Write { op, then }) => {
            // The op may still hold the request's body (a deposit's
            // envelope): it stays paid for until the disk has it, so a
            // lagging disk cannot make a connection queue more than its
            // budget (relay_concurrency's
            // deposits_waiting_for_the_disk_stay_within_the_connection_budget).
            let result = ctx.committer.write(op).await;
            drop(permit);
            let (response, wake) = ctx.service.finish(then, result);
            if let Some(rid) = wake {
                ctx.subscribers.notify(&rid);
            }
            reply_and_finish(ctx, send, response).await;
        }
        Ok(Outcome::Subscribe { sub, touch }) => {
            drop(permit);
            if let Some(touch) = touch {
                ctx.committer.write_detached(touch);
            }
            deliver(ctx, conn, send, sub).await;
        }
        Err(_) => {
            drop(permit);
            reply_and_finish(ctx, send, service::internal_error()).await;
        }
    }
}

/// Writes one frame, giving up after [`WRITE_TIMEOUT`].
async fn write<S: SendHalf>(ctx: &Ctx, send: &mut S, frame: &Response) -> bool {
    match tokio::time::timeout(WRITE_TIMEOUT, wire::write_frame(send, frame)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            ctx.metrics.inc(&ctx.metrics.write_timeouts);
            false
        }
    }
}

/// How a subscription's delivery loop ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// The relay gave up on the stream (a write failed or timed out, the
    /// store failed, or the subscription was replaced): reset it.
    GaveUp,
    /// The client stopped reading it or went away.
    PeerStopped,
}

/// Runs a subscription until the client ends it, stops reading, or
/// subscribes to the same mailbox again on this connection.
async fn deliver<S: SendHalf>(
    ctx: Arc<Ctx>,
    conn: Arc<Connection>,
    mut send: S,
    sub: Subscription,
) {
    let rid = sub.recipient_id;
    let (generation, stop) = conn.register(rid);
    let wake = ctx.subscribers.watch(rid);
    let end = tokio::select! {
        end = push(&ctx, &conn, &mut send, Arc::new(sub), wake) => end,
        () = stop.notified() => End::GaveUp,
    };
    if end == End::GaveUp {
        send.abort();
    }
    conn.unregister(&rid, generation);
    ctx.subscribers.release(&rid);
}

/// Waits for `fut`, unless the client stops the stream first (`None`).
/// Used where the delivery loop waits without writing, since a write on a
/// stream the client stopped fails by itself.
async fn unless_stopped<S: SendHalf, T>(send: &mut S, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        v = fut => Some(v),
        () = send.peer_stopped() => None,
    }
}

/// The delivery loop: one frame at a time, each paid for before it is read
/// from the store and released once written. Returns when the relay gives
/// up on the stream (a write failed or timed out, the store failed) or the
/// client stops it.
async fn push<S: SendHalf>(
    ctx: &Arc<Ctx>,
    conn: &Connection,
    send: &mut S,
    sub: Arc<Subscription>,
    mut wake: tokio::sync::watch::Receiver<u64>,
) -> End {
    if !write(ctx, send, &service::ok()).await {
        return End::GaveUp;
    }
    let mut cursor = 0u64;
    loop {
        // Mark the current value seen before reading, so a deposit that lands
        // during the read wakes us again instead of being missed.
        wake.borrow_and_update();
        loop {
            // Waiting here holds nothing; whoever holds the budget either
            // writes within WRITE_TIMEOUT or gives it back.
            let permit = conn.budget.acquire(Kind::Delivery, DELIVERY_COST, None);
            let Some(permit) = unless_stopped(send, permit).await else {
                return End::PeerStopped;
            };
            let Some(permit) = permit else {
                return End::GaveUp;
            };
            // A read (cache or page cache) and two AEAD passes over 16 KiB:
            // short enough for an async worker.
            let delivery = match ctx.service.next_delivery(&sub, cursor) {
                Ok(Some(d)) => d,
                Ok(None) => break,
                _ => {
                    tracing::error!("reading envelopes failed");
                    return End::GaveUp;
                }
            };
            if !write(ctx, send, &delivery.frame).await {
                return End::GaveUp;
            }
            drop(permit);
            cursor = delivery.next_seq;
        }
        if !write(ctx, send, &service::idle()).await {
            return End::GaveUp;
        }
        match unless_stopped(send, wake.changed()).await {
            None => return End::PeerStopped,
            Some(Err(_)) => return End::GaveUp,
            Some(Ok(())) => {}
        }
    }
}

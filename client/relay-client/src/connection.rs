//! One pinned QUIC connection to one relay, and its subscriptions.
//! Requests are built and answers read by [`crate::requests`]; this module
//! only moves frames, with timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tokio::sync::Semaphore;
use tropa_proto::RelayAddress;
use tropa_proto::relay::{Request, Response, recipient_command::Action};
use tropa_relay_protocol::REQUESTS_IN_FLIGHT;
use tropa_relay_protocol::crypto::ChannelBinding;
use tropa_relay_protocol::frame::{self, ReadError};
use x25519_dalek::PublicKey;

use crate::requests::{self, CreatedMailbox, Delivery, Event, RequestError};
use crate::tls;

/// How long a single request may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why connecting to a relay failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The relay's host name did not resolve.
    #[error("cannot resolve the relay host: {0}")]
    Resolve(std::io::Error),
    /// No local UDP socket could be bound.
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsConfigError),
    /// The QUIC connection could not be started.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// Whoever answered holds another key than the address names: a wrong
    /// address, or someone in the middle (S11).
    #[error("the relay's key does not match the address")]
    WrongKey,
    /// The handshake failed.
    #[error("relay handshake failed: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    /// The relay did not answer in time.
    #[error("the relay did not answer in time")]
    Timeout,
}

/// A connection to one relay.
pub struct RelayClient {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    binding: ChannelBinding,
    /// At most [`REQUESTS_IN_FLIGHT`] requests at once: the relay refuses
    /// what its per-connection budget cannot hold instead of queueing it.
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient").finish_non_exhaustive()
    }
}

async fn resolve(addr: &RelayAddress) -> Result<SocketAddr, ConnectError> {
    if let Some(sa) = addr.socket_addr() {
        return Ok(sa);
    }
    tokio::net::lookup_host(addr.host_port())
        .await
        .map_err(ConnectError::Resolve)?
        .next()
        .ok_or_else(|| {
            ConnectError::Resolve(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address for host",
            ))
        })
}

impl RelayClient {
    /// Connects and verifies the relay's key against the address.
    ///
    /// # Errors
    /// [`ConnectError`].
    pub async fn connect(addr: &RelayAddress) -> Result<Self, ConnectError> {
        Self::connect_from(addr, None).await
    }

    /// [`connect`](Self::connect) from a chosen local address (`None`: any).
    ///
    /// # Errors
    /// [`ConnectError`].
    pub async fn connect_from(
        addr: &RelayAddress,
        local: Option<SocketAddr>,
    ) -> Result<Self, ConnectError> {
        let target = resolve(addr).await?;
        let local: SocketAddr = local.unwrap_or_else(|| {
            if target.is_ipv6() {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            }
        });
        let endpoint = quinn::Endpoint::client(local).map_err(ConnectError::Socket)?;
        Self::connect_to(endpoint, addr, target).await
    }

    /// [`connect`](Self::connect) through an existing client `endpoint`
    /// (one UDP socket shared by many connections, e.g. a load generator
    /// with thousands of them: each endpoint reserves a receive buffer of
    /// its own).
    ///
    /// # Errors
    /// [`ConnectError`].
    pub async fn connect_on(
        endpoint: quinn::Endpoint,
        addr: &RelayAddress,
    ) -> Result<Self, ConnectError> {
        let target = resolve(addr).await?;
        Self::connect_to(endpoint, addr, target).await
    }

    async fn connect_to(
        endpoint: quinn::Endpoint,
        addr: &RelayAddress,
        target: SocketAddr,
    ) -> Result<Self, ConnectError> {
        let (config, mismatch) = tls::pinned_config(addr.fingerprint)?;
        let connecting = endpoint.connect_with(config, target, crate::SERVER_NAME)?;
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Err(_)) if mismatch.load(std::sync::atomic::Ordering::Relaxed) => {
                return Err(ConnectError::WrongKey);
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(conn)) => conn,
        };
        let binding = tls::channel_binding(&conn)?;
        Ok(Self {
            endpoint,
            conn,
            binding,
            in_flight: Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT)),
        })
    }

    /// This connection's channel binding, for signing recipient commands.
    pub fn binding(&self) -> &ChannelBinding {
        &self.binding
    }

    /// Whether the connection has been closed (by either side or by loss).
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// Bytes sent and received on this connection so far (UDP payloads).
    pub fn traffic(&self) -> (u64, u64) {
        let s = self.conn.stats();
        (s.udp_tx.bytes, s.udp_rx.bytes)
    }

    /// Closes the connection at once, without waiting for the relay to
    /// hear it (for a connection shared with tasks still holding it).
    pub fn abort(&self) {
        self.conn.close(0u32.into(), b"bye");
    }

    /// Closes the connection and waits up to `limit` for the close to
    /// reach the wire. Without the wait a process that exits right after
    /// closing may never send it, and the relay keeps retransmitting its
    /// last unacknowledged data (a whole delivery) to an address nobody
    /// listens on: bytes on the user's metered link for nothing.
    pub async fn close_within(&self, limit: Duration) {
        self.conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(limit, self.endpoint.wait_idle()).await;
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }

    /// Sends raw bytes on a new stream and reads one response. For tests of
    /// the relay's handling of bad input; not limited to
    /// [`REQUESTS_IN_FLIGHT`], so tests can act as a client that ignores it.
    ///
    /// # Errors
    /// [`RequestError`] for transport failures; relay errors come back as a
    /// `Response` so the test can inspect them.
    pub async fn raw(&self, bytes: &[u8]) -> Result<Response, RequestError> {
        let fut = async {
            let (mut send, mut recv) = self.conn.open_bi().await?;
            send.write_all(bytes)
                .await
                .map_err(|e| RequestError::Write(std::io::Error::from(e).into()))?;
            let _ = send.finish();
            Ok::<_, RequestError>(frame::read_frame::<Response, _>(&mut recv).await?)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| RequestError::Timeout)?
    }

    /// Sends `req` on a new stream and reads its one answer.
    ///
    /// # Errors
    /// [`RequestError`] for transport failures; the answer is not checked.
    pub async fn exchange(&self, req: &Request) -> Result<Response, RequestError> {
        // Opening the stream counts against the timeout too: a relay out of
        // streams must not make a request wait forever.
        let fut = async {
            // Never closed, so this only waits.
            let _permit = self.in_flight.acquire().await;
            let (mut send, mut recv) = self.conn.open_bi().await?;
            frame::write_frame(&mut send, req).await?;
            let _ = send.finish();
            Ok::<_, RequestError>(frame::read_frame::<Response, _>(&mut recv).await?)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| RequestError::Timeout)?
    }

    /// Creates a mailbox whose recipient commands `auth` signs and whose
    /// deliveries are sealed to `dh`.
    ///
    /// # Errors
    /// [`RequestError`]; `AuthFailed` if the relay needs a creation password
    /// the address did not carry.
    pub async fn create_mailbox(
        &self,
        auth: &SigningKey,
        dh: &PublicKey,
        password: Option<&str>,
    ) -> Result<CreatedMailbox, RequestError> {
        requests::created(self.exchange(&requests::create(auth, dh, password)).await?)
    }

    /// Deposits one envelope; returns once the relay has it on disk.
    ///
    /// # Errors
    /// [`RequestError`] (`NoMailbox`, `AuthFailed`, `Quota`, ...).
    pub async fn deposit(
        &self,
        sender_id: &[u8],
        envelope: Bytes,
        signer: Option<&SigningKey>,
    ) -> Result<(), RequestError> {
        requests::accepted(
            self.exchange(&requests::deposit(sender_id, envelope, signer))
                .await?,
        )
    }

    /// Builds a signed recipient command for this connection.
    pub fn signed(&self, auth: &SigningKey, recipient_id: &[u8], action: Action) -> Request {
        requests::signed(&self.binding, auth, recipient_id, action)
    }

    /// Sends a prepared request (e.g. a captured signed command, in tests)
    /// and expects `Ok`.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn send_expect_ok(&self, req: &Request) -> Result<(), RequestError> {
        requests::ok(self.exchange(req).await?)
    }

    /// Deletes a delivered envelope.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn ack(
        &self,
        auth: &SigningKey,
        recipient_id: &[u8],
        envelope_id: &[u8],
    ) -> Result<(), RequestError> {
        let req = requests::ack(&self.binding, auth, recipient_id, envelope_id);
        self.send_expect_ok(&req).await
    }

    /// From now on only deposits signed by `sender` are accepted.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn secure(
        &self,
        auth: &SigningKey,
        recipient_id: &[u8],
        sender: &[u8; 32],
    ) -> Result<(), RequestError> {
        let req = requests::secure(&self.binding, auth, recipient_id, sender);
        self.send_expect_ok(&req).await
    }

    /// Deletes the mailbox and everything in it.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn delete(&self, auth: &SigningKey, recipient_id: &[u8]) -> Result<(), RequestError> {
        let req = requests::delete(&self.binding, auth, recipient_id);
        self.send_expect_ok(&req).await
    }

    /// Starts receiving the mailbox's envelopes.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn subscribe(
        &self,
        auth: &SigningKey,
        recipient_id: &[u8],
    ) -> Result<Subscription, RequestError> {
        let req = requests::subscribe(&self.binding, auth, recipient_id);
        let fut = async {
            let (mut send, mut recv) = self.conn.open_bi().await?;
            frame::write_frame(&mut send, &req).await?;
            let resp = frame::read_frame::<Response, _>(&mut recv).await?;
            Ok::<_, RequestError>((send, recv, resp))
        };
        let (send, recv, resp) = tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| RequestError::Timeout)??;
        requests::ok(resp)?;
        Ok(Subscription { send, recv })
    }
}

/// An open subscription stream.
#[derive(Debug)]
pub struct Subscription {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl Subscription {
    /// Waits for the next event: a delivery, or `Idle` once everything
    /// stored has been pushed. `Ok(None)` if the relay ended the stream.
    ///
    /// # Errors
    /// [`RequestError`] if the connection fails or the relay sends garbage.
    pub async fn next_event(&mut self) -> Result<Option<Event>, RequestError> {
        match frame::read_frame::<Response, _>(&mut self.recv).await {
            Ok(r) => requests::event(r).map(Some),
            Err(ReadError::Finished) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for the next delivery, skipping `Idle` markers.
    ///
    /// # Errors
    /// [`RequestError`] if the connection fails or the relay sends garbage.
    pub async fn next(&mut self) -> Result<Option<Delivery>, RequestError> {
        loop {
            match self.next_event().await? {
                Some(Event::Delivery(d)) => return Ok(Some(d)),
                Some(Event::Idle) => {}
                None => return Ok(None),
            }
        }
    }

    /// Reads events and sends each into `tx`, wrapped by `wrap`, until the
    /// relay ends the stream (`Ok(None)` is sent last), reading fails (the
    /// error is sent last), or the receiver is gone.
    ///
    /// `tx` is bounded on purpose: while it is full nothing more is read, so
    /// QUIC flow control stops the relay after about one frame. A hostile
    /// relay or a big backlog can then never fill the client's memory
    /// faster than it processes what arrived (L3 of the security review).
    pub async fn forward<T>(
        mut self,
        tx: tokio::sync::mpsc::Sender<T>,
        wrap: impl Fn(Result<Option<Event>, RequestError>) -> T,
    ) {
        loop {
            let event = self.next_event().await;
            let last = !matches!(event, Ok(Some(_)));
            if tx.send(wrap(event)).await.is_err() || last {
                break;
            }
        }
    }

    /// Ends the subscription.
    pub fn close(mut self) {
        let _ = self.send.finish();
        let _ = self.recv.stop(0u32.into());
    }
}

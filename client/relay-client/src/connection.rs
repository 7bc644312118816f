//! One pinned connection to one relay, over QUIC or TCP, and its
//! subscriptions. Requests are built and answers read by
//! [`crate::requests`]; connecting is [`crate::dial`]'s, the transports
//! [`crate::transport`]'s; this module only moves frames, with timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;
use tropa_proto::relay::{Request, Response, recipient_command::Action};
use tropa_proto::{Fingerprint, FingerprintPrefix, Host, LINK_LOCATOR_LEN, RelayAddress};
use tropa_relay_protocol::REQUESTS_IN_FLIGHT;
use tropa_relay_protocol::crypto::ChannelBinding;
use tropa_relay_protocol::frame::{self, ReadError};
use x25519_dalek::PublicKey;

use crate::dial::{self, CONNECT_TIMEOUT, ConnectError};
use crate::options::{ConnectOptions, Transport, TransportChoice};
use crate::requests::{self, CreatedMailbox, Delivery, Event, RequestError};
use crate::tls::Pin;
use crate::transport::{self, Connected, Link, RecvHalf, SendHalf};

/// How long a single request may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A connection to one relay.
pub struct RelayClient {
    link: Link,
    binding: ChannelBinding,
    /// The relay's address with the fingerprint of the key it presented.
    address: RelayAddress,
    /// At most [`REQUESTS_IN_FLIGHT`] requests at once: the relay refuses
    /// what its per-connection budget cannot hold instead of queueing it.
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient").finish_non_exhaustive()
    }
}

impl RelayClient {
    /// Connects over QUIC and verifies the relay's key against the address.
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
        let opts = ConnectOptions {
            transport: TransportChoice::Quic,
            local,
            ..ConnectOptions::default()
        };
        Self::connect_with(addr, &opts).await
    }

    /// Connects as `opts` say (transport, SOCKS5 proxy, what worked last
    /// time) and verifies the relay's key against the address, on whichever
    /// transport: a wrong key is [`ConnectError::WrongKey`], never a reason
    /// to try the other. [`transport`](Self::transport) then tells which
    /// transport connected, for the caller to remember as
    /// [`ConnectOptions::prefer`] for this relay.
    ///
    /// # Errors
    /// [`ConnectError`]; with a proxy, `ProxyUnreachable`, `ProxyAuth` or
    /// `Proxy` name the proxy.
    pub async fn connect_with(
        addr: &RelayAddress,
        opts: &ConnectOptions,
    ) -> Result<Self, ConnectError> {
        let pin = Pin::Key(addr.fingerprint);
        let connected = dial::dial(&addr.host, addr.port, pin, opts).await?;
        Ok(Self::new(connected, addr.clone()))
    }

    /// Connects over QUIC to the relay at `host:port` whose key's
    /// fingerprint starts with `prefix` (what a short link carries), and
    /// refuses any other key with [`ConnectError::WrongKey`], exactly as a
    /// full address does. The full fingerprint is then
    /// [`fingerprint`](Self::fingerprint), and [`address`](Self::address)
    /// the relay's full address (without a creation password): check it
    /// against what the link's data says before trusting that data.
    ///
    /// # Errors
    /// [`ConnectError`].
    pub async fn connect_prefix(
        host: &Host,
        port: u16,
        prefix: &FingerprintPrefix,
    ) -> Result<Self, ConnectError> {
        let opts = ConnectOptions {
            transport: TransportChoice::Quic,
            ..ConnectOptions::default()
        };
        Self::connect_prefix_with(host, port, prefix, &opts).await
    }

    /// [`connect_prefix`](Self::connect_prefix) as `opts` say, as
    /// [`connect_with`](Self::connect_with) does for a full address.
    ///
    /// # Errors
    /// [`ConnectError`].
    pub async fn connect_prefix_with(
        host: &Host,
        port: u16,
        prefix: &FingerprintPrefix,
        opts: &ConnectOptions,
    ) -> Result<Self, ConnectError> {
        let connected = dial::dial(host, port, Pin::Prefix(*prefix), opts).await?;
        // The fingerprint is replaced by the one the relay presents.
        let address = RelayAddress {
            fingerprint: Fingerprint([0; 32]),
            password: None,
            host: host.clone(),
            port,
        };
        Ok(Self::new(connected, address))
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
        let target = dial::resolve(&addr.host, addr.port).await?;
        let pin = Pin::Key(addr.fingerprint);
        let connected = tokio::time::timeout(
            CONNECT_TIMEOUT,
            transport::connect_quic(endpoint, pin, target),
        )
        .await
        .map_err(|_| ConnectError::Timeout)??;
        Ok(Self::new(connected, addr.clone()))
    }

    fn new(connected: Connected, mut address: RelayAddress) -> Self {
        address.fingerprint = connected.fingerprint;
        Self {
            link: connected.link,
            binding: connected.binding,
            address,
            in_flight: Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT)),
        }
    }

    /// The transport this connection runs over.
    pub fn transport(&self) -> Transport {
        self.link.transport()
    }

    /// The fingerprint of the key the relay proved it holds: the pinned one,
    /// or, after [`connect_prefix`](Self::connect_prefix), the full
    /// fingerprint that starts with the prefix.
    pub fn fingerprint(&self) -> Fingerprint {
        self.address.fingerprint
    }

    /// The relay's address with [`fingerprint`](Self::fingerprint): the
    /// address connected to, or, after [`connect_prefix`](Self::connect_prefix),
    /// the full `tropa://FP@host:port` address (no creation password).
    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// This connection's channel binding, for signing recipient commands.
    pub fn binding(&self) -> &ChannelBinding {
        &self.binding
    }

    /// Whether the connection has been closed (by either side or by loss).
    pub fn is_closed(&self) -> bool {
        self.link.is_closed()
    }

    /// Bytes sent and received on this connection so far: UDP payloads
    /// over QUIC; over TCP the TCP payload (TLS records, and the SOCKS5
    /// exchange through a proxy).
    pub fn traffic(&self) -> (u64, u64) {
        self.link.traffic()
    }

    /// Closes the connection at once, without waiting for the relay to
    /// hear it (for a connection shared with tasks still holding it).
    pub fn abort(&self) {
        self.link.abort();
    }

    /// Closes the connection and waits up to `limit` for the close to
    /// reach the wire. Without the wait a process that exits right after
    /// closing may never send it, and the relay keeps retransmitting its
    /// last unacknowledged data (a whole delivery) to an address nobody
    /// listens on: bytes on the user's metered link for nothing. (Over TCP
    /// the kernel sends the close on its own: no wait.)
    pub async fn close_within(&self, limit: Duration) {
        self.link.close_within(limit).await;
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.link.close_within(Duration::from_secs(1)).await;
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
            let (mut send, mut recv) = self.link.open().await?;
            send.write_all(bytes)
                .await
                .map_err(|e| RequestError::Write(e.into()))?;
            send.finish().await;
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
            let (mut send, mut recv) = self.link.open().await?;
            let wrote = frame::write_frame(&mut send, req).await;
            if wrote.is_ok() {
                send.finish().await;
            }
            answer(&send, &mut recv, wrote).await
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

    /// Creates an intake mailbox (the mailbox of a public contact address):
    /// anyone with its sender ID may deposit unsigned, at most the relay's
    /// `intake_deposits_per_hour` (beyond: `RateLimited`), and it can never
    /// be secured.
    ///
    /// # Errors
    /// [`RequestError`], as [`create_mailbox`](Self::create_mailbox).
    pub async fn create_intake_mailbox(
        &self,
        auth: &SigningKey,
        dh: &PublicKey,
        password: Option<&str>,
    ) -> Result<CreatedMailbox, RequestError> {
        let req = requests::create_intake(auth, dh, password);
        requests::created(self.exchange(&req).await?)
    }

    /// Stores (or, with the same `owner`, refreshes) a short link's data
    /// under `locator`; returns once the relay has it on disk, with the time
    /// to live granted (the relay rounds up to hours and caps it at its
    /// `max_link_ttl_hours`: refresh before it runs out).
    ///
    /// # Errors
    /// [`RequestError`]: `AuthFailed` if another owner holds the locator (or
    /// the creation password is wrong), `Quota` if the relay holds its
    /// maximum of links, `RateLimited` beyond the creation budget,
    /// `TooLarge`/`Malformed` unless `data` is `LINK_DATA_SIZE` bytes.
    pub async fn put_link(
        &self,
        owner: &SigningKey,
        locator: &[u8; LINK_LOCATOR_LEN],
        data: Bytes,
        ttl_secs: u32,
        password: Option<&str>,
    ) -> Result<Duration, RequestError> {
        let req = requests::put_link(&self.binding, owner, locator, data, ttl_secs, password);
        requests::link_stored(self.exchange(&req).await?)
    }

    /// Fetches a short link's data (exactly `LINK_DATA_SIZE` bytes).
    ///
    /// # Errors
    /// [`RequestError`]: `NoLink` if it was never stored, has expired or was
    /// deleted; `Unexpected` if the relay answers data of another size.
    pub async fn get_link(&self, locator: &[u8; LINK_LOCATOR_LEN]) -> Result<Bytes, RequestError> {
        requests::link_data(self.exchange(&requests::get_link(locator)).await?)
    }

    /// Deletes a short link's data.
    ///
    /// # Errors
    /// [`RequestError`]: `NoLink` if it is already gone (a caller deleting a
    /// used invitation can take that as done), `AuthFailed` if `owner` is
    /// not the link's owner key.
    pub async fn delete_link(
        &self,
        owner: &SigningKey,
        locator: &[u8; LINK_LOCATOR_LEN],
    ) -> Result<(), RequestError> {
        let req = requests::delete_link(&self.binding, owner, locator);
        self.send_expect_ok(&req).await
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

    /// Deletes several delivered envelopes with one signed request per
    /// [`tropa_proto::MAX_ACK_IDS`] of them. Against a relay that reads
    /// only the first ID of an ack (older relays answer `acked` = 0), the
    /// rest of each batch is acked one by one.
    ///
    /// # Errors
    /// [`RequestError`] of the first request that failed; the IDs before
    /// it were acked.
    pub async fn ack_many(
        &self,
        auth: &SigningKey,
        recipient_id: &[u8],
        ids: &[[u8; tropa_proto::ENVELOPE_ID_LEN]],
    ) -> Result<(), RequestError> {
        for chunk in ids.chunks(tropa_proto::MAX_ACK_IDS) {
            let refs: Vec<&[u8]> = chunk.iter().map(|id| id.as_slice()).collect();
            let req = requests::ack_many(&self.binding, auth, recipient_id, &refs);
            let covered = requests::acked(self.exchange(&req).await?)?;
            if covered != 0 && covered as usize != chunk.len() {
                return Err(RequestError::Unexpected);
            }
            if covered == 0 {
                for id in &chunk[1..] {
                    self.ack(auth, recipient_id, id).await?;
                }
            }
        }
        Ok(())
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
            let (mut send, mut recv) = self.link.open().await?;
            let wrote = frame::write_frame(&mut send, &req).await;
            let resp = answer(&send, &mut recv, wrote).await?;
            Ok::<_, RequestError>((send, recv, resp))
        };
        let (send, recv, resp) = tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| RequestError::Timeout)??;
        requests::ok(resp)?;
        Ok(Subscription { send, recv })
    }
}

/// Reads the one answer to a request whose writing ended with `wrote`. A
/// failed write ends the request, except where the transport lets the
/// relay answer before it reads (over TCP: see
/// [`SendHalf::answer_may_follow_a_failed_write`]); then the answer counts
/// if there is one, and the write's error otherwise.
async fn answer(
    send: &SendHalf,
    recv: &mut RecvHalf,
    wrote: Result<(), frame::WriteError>,
) -> Result<Response, RequestError> {
    match wrote {
        Ok(()) => Ok(frame::read_frame::<Response, _>(recv).await?),
        Err(e) if !send.answer_may_follow_a_failed_write() => Err(e.into()),
        Err(e) => frame::read_frame::<Response, _>(recv)
            .await
            .map_err(|_| e.into()),
    }
}

/// An open subscription stream.
#[derive(Debug)]
pub struct Subscription {
    send: SendHalf,
    recv: RecvHalf,
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
    /// flow control (QUIC's or HTTP/2's) stops the relay after about
    /// one frame. A hostile
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
        transport::cancel(&mut self.send, &mut self.recv);
    }
}

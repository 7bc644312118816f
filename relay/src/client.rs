//! Async client for the relay protocol (used by `tropa-client` and tests).
//!
//! One [`RelayClient`] is one QUIC connection to one relay, verified against
//! the fingerprint in the relay address (S11). Each request uses its own
//! bidirectional stream; a [`Subscription`] keeps its stream open and yields
//! deliveries. Recipient commands are signed over this connection's channel
//! binding, so they are worthless on any other connection.
//!
//! This module holds keys only for the duration of a call and never logs.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use prost::Message;
use tropa_proto::relay::{
    self, ErrorCode, RecipientCommand, Request, Response, recipient_command::Action, request,
    response,
};
use tropa_proto::{ENVELOPE_ID_LEN, MAILBOX_ID_LEN, PROTOCOL_VERSION, RelayAddress};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::crypto::{self, ChannelBinding, SealingKey};
use crate::tls;
use crate::wire::{self, ReadError, WriteError};

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
    /// The handshake failed, including when the relay's key does not match
    /// the fingerprint in its address.
    #[error("relay handshake failed (wrong relay key or not a Tropa relay?): {0}")]
    Handshake(#[from] quinn::ConnectionError),
    /// The relay did not answer in time.
    #[error("the relay did not answer in time")]
    Timeout,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The relay answered with an error.
    #[error("relay refused: {message} ({code:?})")]
    Relay {
        /// The error code.
        code: ErrorCode,
        /// The relay's explanation.
        message: String,
    },
    /// The connection failed or was closed.
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing the request failed.
    #[error("sending failed: {0}")]
    Write(#[from] WriteError),
    /// Reading the response failed.
    #[error("receiving failed: {0}")]
    Read(#[from] ReadError),
    /// The relay answered something this request does not expect.
    #[error("unexpected answer from the relay")]
    Unexpected,
    /// The relay did not answer in time.
    #[error("the relay did not answer in time")]
    Timeout,
}

impl RequestError {
    /// The relay's error code, if the relay answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RequestError::Relay { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A mailbox the relay just created.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedMailbox {
    /// Recipient-side ID (keep private).
    pub recipient_id: [u8; MAILBOX_ID_LEN],
    /// Sender-side ID (give to the sender).
    pub sender_id: [u8; MAILBOX_ID_LEN],
    /// The relay's DH key for this mailbox.
    pub relay_dh_pub: [u8; 32],
}

impl std::fmt::Debug for CreatedMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreatedMailbox(<ids redacted>)")
    }
}

/// One delivery as it arrived (still sealed under the delivery key).
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The envelope's ID, used to `Ack` it.
    pub envelope_id: [u8; ENVELOPE_ID_LEN],
    /// Nonce ‖ ciphertext ‖ tag.
    pub sealed: Bytes,
}

impl Delivery {
    /// Opens the delivery with the recipient's DH secret.
    ///
    /// # Errors
    /// [`crypto::OpenError`] if it was not sealed for this mailbox or was altered.
    pub fn open(
        &self,
        recipient_dh: &StaticSecret,
        relay_dh_pub: &[u8; 32],
        recipient_id: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, crypto::OpenError> {
        SealingKey::delivery(recipient_dh, &PublicKey::from(*relay_dh_pub), recipient_id)
            .open(&self.envelope_id, &self.sealed)
    }
}

/// A connection to one relay.
pub struct RelayClient {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    binding: ChannelBinding,
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
        let mut endpoint = quinn::Endpoint::client(local).map_err(ConnectError::Socket)?;
        endpoint.set_default_client_config(tls::client_config(addr.fingerprint)?);
        let connecting = endpoint.connect(target, tls::SERVER_NAME)?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| ConnectError::Timeout)??;
        let binding = tls::channel_binding(&conn)?;
        Ok(Self {
            endpoint,
            conn,
            binding,
        })
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

    /// Closes the connection.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }

    /// Sends raw bytes on a new stream and reads one response. For tests of
    /// the relay's handling of bad input.
    ///
    /// # Errors
    /// [`RequestError`] for transport failures; relay errors come back as a
    /// `Response` so the test can inspect them.
    pub async fn raw(&self, bytes: &[u8]) -> Result<Response, RequestError> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        let fut = async {
            send.write_all(bytes)
                .await
                .map_err(|e| RequestError::Write(e.into()))?;
            let _ = send.finish();
            Ok::<_, RequestError>(wire::read_frame::<Response>(&mut recv).await?)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| RequestError::Timeout)?
    }

    async fn request(&self, req: &Request) -> Result<Response, RequestError> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        let fut = async {
            wire::write_frame(&mut send, req).await?;
            let _ = send.finish();
            Ok::<_, RequestError>(wire::read_frame::<Response>(&mut recv).await?)
        };
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| RequestError::Timeout)??;
        check(resp)
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
        let req = Request {
            version: PROTOCOL_VERSION,
            command: Some(request::Command::CreateMailbox(relay::CreateMailbox {
                recipient_auth_pub: auth.verifying_key().to_bytes().to_vec().into(),
                recipient_dh_pub: dh.to_bytes().to_vec().into(),
                password: password.unwrap_or_default().to_owned(),
            })),
        };
        match self.request(&req).await?.result {
            Some(response::Result::Created(c)) => Ok(CreatedMailbox {
                recipient_id: c
                    .recipient_id
                    .as_ref()
                    .try_into()
                    .map_err(|_| RequestError::Unexpected)?,
                sender_id: c
                    .sender_id
                    .as_ref()
                    .try_into()
                    .map_err(|_| RequestError::Unexpected)?,
                relay_dh_pub: c
                    .relay_dh_pub
                    .as_ref()
                    .try_into()
                    .map_err(|_| RequestError::Unexpected)?,
            }),
            _ => Err(RequestError::Unexpected),
        }
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
        let signature = signer
            .map(|k| crypto::sign_deposit(k, sender_id, &envelope).to_vec())
            .unwrap_or_default();
        let req = Request {
            version: PROTOCOL_VERSION,
            command: Some(request::Command::Deposit(relay::Deposit {
                sender_id: Bytes::copy_from_slice(sender_id),
                envelope,
                signature: signature.into(),
            })),
        };
        match self.request(&req).await?.result {
            Some(response::Result::Accepted(_)) => Ok(()),
            _ => Err(RequestError::Unexpected),
        }
    }

    /// Builds a signed recipient command for this connection.
    pub fn signed(&self, auth: &SigningKey, recipient_id: &[u8], action: Action) -> Request {
        let command = RecipientCommand {
            recipient_id: Bytes::copy_from_slice(recipient_id),
            action: Some(action),
        }
        .encode_to_vec();
        let signature = crypto::sign_recipient(auth, &self.binding, &command);
        Request {
            version: PROTOCOL_VERSION,
            command: Some(request::Command::Signed(relay::SignedCommand {
                command: command.into(),
                signature: signature.to_vec().into(),
            })),
        }
    }

    /// Sends a prepared request (e.g. a captured signed command, in tests)
    /// and expects `Ok`.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn send_expect_ok(&self, req: &Request) -> Result<(), RequestError> {
        match self.request(req).await?.result {
            Some(response::Result::Ok(_)) => Ok(()),
            _ => Err(RequestError::Unexpected),
        }
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
        let action = Action::Ack(relay::Ack {
            envelope_id: Bytes::copy_from_slice(envelope_id),
        });
        self.send_expect_ok(&self.signed(auth, recipient_id, action))
            .await
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
        let action = Action::Secure(relay::Secure {
            sender_auth_pub: Bytes::copy_from_slice(sender),
        });
        self.send_expect_ok(&self.signed(auth, recipient_id, action))
            .await
    }

    /// Deletes the mailbox and everything in it.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn delete(&self, auth: &SigningKey, recipient_id: &[u8]) -> Result<(), RequestError> {
        let action = Action::Delete(relay::DeleteMailbox {});
        self.send_expect_ok(&self.signed(auth, recipient_id, action))
            .await
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
        let req = self.signed(auth, recipient_id, Action::Subscribe(relay::Subscribe {}));
        let (mut send, mut recv) = self.conn.open_bi().await?;
        let fut = async {
            wire::write_frame(&mut send, &req).await?;
            Ok::<_, RequestError>(wire::read_frame::<Response>(&mut recv).await?)
        };
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| RequestError::Timeout)??;
        match check(resp)?.result {
            Some(response::Result::Ok(_)) => Ok(Subscription { send, recv }),
            _ => Err(RequestError::Unexpected),
        }
    }
}

fn check(resp: Response) -> Result<Response, RequestError> {
    match resp.result {
        Some(response::Result::Error(e)) => Err(RequestError::Relay {
            code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified),
            message: e.message,
        }),
        None => Err(RequestError::Unexpected),
        Some(_) => Ok(resp),
    }
}

/// What a subscription yields.
#[derive(Clone, Debug)]
pub enum Event {
    /// An envelope.
    Delivery(Delivery),
    /// Everything stored so far has been delivered.
    Idle,
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
        let resp = match wire::read_frame::<Response>(&mut self.recv).await {
            Ok(r) => r,
            Err(ReadError::Finished) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match check(resp)?.result {
            Some(response::Result::Delivery(d)) => Ok(Some(Event::Delivery(Delivery {
                envelope_id: d
                    .envelope_id
                    .as_ref()
                    .try_into()
                    .map_err(|_| RequestError::Unexpected)?,
                sealed: d.sealed,
            }))),
            Some(response::Result::Idle(_)) => Ok(Some(Event::Idle)),
            _ => Err(RequestError::Unexpected),
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

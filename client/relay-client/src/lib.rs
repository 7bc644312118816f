//! The client side of the relay protocol: the one place where transports
//! live.
//!
//! - [`requests`] builds every request and reads every answer, without I/O,
//!   so simulations and tests can speak the protocol without sockets.
//! - [`RelayClient`] is one pinned connection to one relay (S11), over QUIC
//!   or over TLS on TCP (docs/relay-protocol.md §11), directly or through
//!   a SOCKS5 proxy ([`ConnectOptions`]); each request uses its own stream,
//!   and a [`Subscription`] keeps its stream open for deliveries. It pins
//!   either a full relay address or, for a short link, a 16-byte
//!   fingerprint prefix ([`RelayClient::connect_prefix`]), and then reports
//!   the relay's full address.
//! - With [`TransportChoice::Auto`], QUIC is tried first and TCP after
//!   [`QUIC_FALLBACK_AFTER`] without an answer; [`RelayClient::transport`]
//!   says which connected, for the caller to remember per relay
//!   ([`ConnectOptions::prefer`]).
//!
//! Keys are held only for the duration of a call; nothing here logs.

#![forbid(unsafe_code)]

mod connection;
mod dial;
mod options;
pub mod requests;
mod tcp;
pub mod tls;
mod transport;

pub use connection::{REQUEST_TIMEOUT, RelayClient, Subscription};
pub use dial::{CONNECT_TIMEOUT, ConnectError, QUIC_FALLBACK_AFTER, SOCKS5_CONNECT_TIMEOUT};
pub use options::{
    ConnectOptions, Socks5, Socks5ParseError, Transport, TransportChoice, UnknownTransport,
};
pub use requests::{CreatedMailbox, Delivery, Event, RequestError};
pub use tls::Pin;
pub use tropa_relay_protocol::SERVER_NAME;

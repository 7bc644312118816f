//! The client side of the relay protocol: the one place where transports
//! live (QUIC today; TCP+TLS and SOCKS5 plug in here).
//!
//! - [`requests`] builds every request and reads every answer, without I/O,
//!   so simulations and tests can speak the protocol without sockets.
//! - [`RelayClient`] is one pinned QUIC connection to one relay (S11); each
//!   request uses its own stream, and a [`Subscription`] keeps its stream
//!   open for deliveries. It pins either a full relay address or, for a
//!   short link, a 16-byte fingerprint prefix ([`RelayClient::connect_prefix`]),
//!   and then reports the relay's full address.
//!
//! Keys are held only for the duration of a call; nothing here logs.

#![forbid(unsafe_code)]

mod connection;
pub mod requests;
pub mod tls;

pub use connection::{CONNECT_TIMEOUT, ConnectError, REQUEST_TIMEOUT, RelayClient, Subscription};
pub use requests::{CreatedMailbox, Delivery, Event, RequestError};
pub use tls::Pin;
pub use tropa_relay_protocol::SERVER_NAME;

//! What both ends of the relay protocol must compute identically, in one
//! place so the relay and its clients cannot drift apart: the signature
//! contexts of recipient commands and deposits, the TLS exporter label of
//! the channel binding, the delivery and at-rest key derivations
//! ([`crypto`]), reading and writing length-delimited frames on any
//! byte stream ([`frame`]), and the HTTP/2 settings and stream adapters of
//! the TCP profile ([`tcp`]).
//!
//! The wire types themselves are in `tropa-proto`. This crate opens no
//! socket (QUIC or TCP), keeps no state, and never logs.

#![forbid(unsafe_code)]

pub mod crypto;
pub mod frame;
pub mod tcp;

/// Requests a client keeps in flight on one connection at most, and so the
/// whole frames a relay must let each connection's requests hold at once.
/// The relay answers a request it has no memory budget for at once with
/// `RATE_LIMITED` ("busy") instead of letting it wait: a waiting request's
/// body would sit unread in the connection's flow-control window, which the
/// requests holding the budget need to receive the rest of theirs, and the
/// connection would stall on itself.
pub const REQUESTS_IN_FLIGHT: usize = 8;

/// Server name put in the (unsent) SNI slot by clients; any valid name would do.
pub const SERVER_NAME: &str = "tropa-relay";

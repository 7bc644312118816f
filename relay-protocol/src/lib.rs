//! What both ends of the relay protocol must compute identically, in one
//! place so the relay and its clients cannot drift apart: the signature
//! contexts of recipient commands and deposits, the TLS exporter label of
//! the channel binding, the delivery and at-rest key derivations
//! ([`crypto`]), and reading and writing length-delimited frames on any
//! byte stream ([`frame`]).
//!
//! The wire types themselves are in `tropa-proto`. This crate knows no
//! transport (QUIC or TCP), keeps no state, and never logs.

#![forbid(unsafe_code)]

pub mod crypto;
pub mod frame;

/// Server name put in the (unsent) SNI slot by clients; any valid name would do.
pub const SERVER_NAME: &str = "tropa-relay";

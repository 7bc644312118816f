//! The Tropa relay: a QUIC server that stores sealed, fixed-size envelopes in
//! mailboxes and forgets them once acknowledged or expired, plus the async
//! client for its protocol.
//!
//! The relay never sees end-to-end content, never stores client addresses or
//! fine-grained timestamps (S8), and never logs mailbox IDs or envelope bytes.
//! Modules behind the `server` feature hold the store and the server; the
//! rest (`client`, `crypto`, `tls`, `wire`) is what clients need.

#![forbid(unsafe_code)]

pub mod client;
pub mod crypto;
pub mod tls;
pub mod wire;

#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod identity;
#[cfg(feature = "server")]
pub mod limits;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod store;

/// Hours since the Unix epoch: the only time resolution the relay stores (S8).
pub type Hour = u32;

/// The current hour since the Unix epoch.
pub fn current_hour() -> Hour {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs / 3600).unwrap_or(u32::MAX)
}

//! The Tropa relay: a QUIC server that stores sealed, fixed-size envelopes in
//! mailboxes and forgets them once acknowledged or expired.
//!
//! The relay never sees end-to-end content, never stores client addresses or
//! fine-grained timestamps (S8), and never logs mailbox IDs or envelope bytes.
//! Its protocol decisions are in [`service`] (sans-IO), its durable state in
//! [`store`], and [`server`] is the async shell. What clients share with it
//! is in `tropa-relay-protocol`; it never builds client crates.

#![forbid(unsafe_code)]

pub mod config;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;

pub use tropa_relay_protocol::crypto;

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

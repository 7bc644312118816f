//! Tropa wire types: the protobuf schemas of the relay and end-to-end protocols,
//! length-delimited framing, relay addresses and the envelope size.
//!
//! Everything that crosses a process boundary is defined here so that the relay
//! and the clients cannot drift apart. This crate does no I/O and holds no
//! secrets; it must never allocate a buffer whose size came from the network
//! before checking it against a hard limit.

#![forbid(unsafe_code)]

pub mod address;
pub mod framing;
mod redact;

pub use address::{AddressError, Fingerprint, FingerprintPrefix, Host, RelayAddress};
pub use framing::{FrameError, MAX_FRAME_LEN};

/// Size in bytes of every envelope, on the wire and on disk (S5). 16 KiB, the
/// block size SimpleX has shown to work for chat over mobile networks.
pub const ENVELOPE_SIZE: usize = 16 * 1024;

/// Length of the relay-assigned mailbox IDs (recipient and sender side).
pub const MAILBOX_ID_LEN: usize = 24;

/// Length of the relay-assigned envelope IDs.
pub const ENVELOPE_ID_LEN: usize = 16;

/// Size in bytes of a short link's data as the relay stores it: every link
/// (one-time invitation or intake address) has exactly this size, so the
/// relay cannot tell them apart.
pub const LINK_DATA_SIZE: usize = 2048;

/// Length of a short link's locator, the link's only name on the relay.
pub const LINK_LOCATOR_LEN: usize = 32;

/// The protocol version carried in every request.
pub const PROTOCOL_VERSION: u32 = 1;
/// Envelope IDs one `Ack` may carry (`envelope_id` and `more_ids`).
pub const MAX_ACK_IDS: usize = 64;

/// QUIC ALPN identifier of relay protocol version 1.
pub const ALPN: &[u8] = b"tropa/1";

/// Relay protocol messages (package `tropa.relay.v1`).
#[allow(missing_docs, clippy::all)]
pub mod relay {
    include!(concat!(env!("OUT_DIR"), "/tropa.relay.v1.rs"));
}

/// End-to-end messages (package `tropa.e2e.v1`), opaque to the relay.
#[allow(missing_docs, clippy::all)]
pub mod e2e {
    include!(concat!(env!("OUT_DIR"), "/tropa.e2e.v1.rs"));
}

//! The Tropa client library: the one API both front ends (`tropa` CLI and
//! `tropa-desk`) use. It holds every key of a profile, in an encrypted store,
//! and talks to relays only through `tropa-relay-client`.
//!
//! * [`store`]: the encrypted profile store (`Vault`), DESIGN §2 S9 and §7,
//!   behind the [`store::Kv`] trait (in memory for simulations).
//! * [`repo`]: typed access to the profile's records; the only module that
//!   names the store's trees.
//! * [`Client`]: a profile unlocked: contacts, messages, safety numbers,
//!   passphrases, wipe; and sync, send, invite, accept.
//! * [`engine`]: the sans-IO sync engine (inputs and time in, actions out),
//!   every decision about receiving and delivering (S13).
//! * [`SyncHandle`]: the engine kept running for long-lived front ends.
//!
//! This crate never prints and never logs message text, aliases or keys.

#![forbid(unsafe_code)]

pub mod client;
pub mod display;
pub mod engine;
pub mod error;
mod handle;
pub mod passphrase;
pub mod records;
mod redact;
pub mod repo;
mod shell;
pub mod store;
pub mod sync;

pub use client::cases::{
    CaseStatus, CaseSummary, CaseView, Evaluation, Note, Verdict, VettingError,
};
pub use client::{AddressInfo, IntakeError, RequestView};
pub use client::{
    Client, ContactInfo, InboxEntry, LinkResolveError, MessageStatus, MessageView, Page,
    ResolvedLink, SafetyView, SearchHit, SearchResults, Sent, Unread,
};
pub use client::{Network, isolation_name, parse_isolation};
pub use engine::{Command, InviteLinks, Isolation, Outcome};
pub use error::{ClientError, ProfileError, Refusal, RelayError};
pub use handle::{Pending, Submitter, SyncHandle, answer};
pub use store::KdfParams;
pub use sync::{SyncEvent, SyncOptions, SyncReport};
pub use tropa_relay_client::{Socks5, Socks5ParseError, Transport, TransportChoice};

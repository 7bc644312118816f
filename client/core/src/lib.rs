//! The Tropa client library: the one API both front ends (`tropa` CLI and
//! `tropa-desk`) use. It holds every key of a profile, in an encrypted store,
//! and talks to relays only through `tropa-relay`'s client.
//!
//! * [`store`]: the encrypted profile store (`Vault`), DESIGN §2 S9 and §7.
//! * [`Client`]: a profile unlocked: contacts, invitations, messages, safety
//!   numbers, passphrases, wipe.
//! * [`sync`]: the engine that receives and delivers (S13).
//!
//! This crate never prints and never logs message text, aliases or keys.

#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod passphrase;
pub mod records;
pub mod store;
pub mod sync;

pub use client::{Client, ContactInfo, MessageView, SafetyView};
pub use error::{ClientError, ProfileError, Refusal, RelayError};
pub use store::KdfParams;
pub use sync::{Command, SyncEvent, SyncOptions, SyncReport};

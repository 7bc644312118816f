//! Tropa client library (work in progress).
//!
//! * [`store`]: the encrypted profile store (`Vault`), DESIGN §2 S9 and §7.

pub mod store;

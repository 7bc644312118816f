//! One module per group of commands; each command is one function.

pub(crate) mod case;
pub(crate) mod chat;
pub(crate) mod config;
pub(crate) mod console;
pub(crate) mod contacts;
pub(crate) mod intake;
pub(crate) mod messages;
pub(crate) mod profile;
pub(crate) mod shell;

use crate::CliError;

/// A runtime for one command (single-threaded: a phone has few cores and
/// the work is I/O).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

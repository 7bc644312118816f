//! Typed errors of the profile store. None of them ever contains a passphrase,
//! a key, a tree or key name, or a value.

use std::io;

use thiserror::Error;

/// Error creating a new profile with [`Vault::create`](super::Vault::create).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The directory already holds a profile (its key file exists); nothing was changed.
    #[error("a profile already exists in this directory")]
    AlreadyExists,
    /// The passphrase is empty.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// The Argon2 parameters are out of the accepted range.
    #[error("invalid key-derivation parameters: {0}")]
    InvalidParams(&'static str),
    /// A file-system operation failed.
    #[error("profile I/O error: {0}")]
    Io(#[from] io::Error),
    /// The database could not be created.
    #[error("profile database error: {0}")]
    Db(#[from] redb::Error),
}

/// Error unlocking a profile with [`Vault::open`](super::Vault::open).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// There is no profile in this directory (no key file).
    #[error("no profile in this directory")]
    NoProfile,
    /// The passphrase opens neither slot. Nothing on disk was changed.
    ///
    /// A key file whose slots were tampered with also yields this error: without
    /// the right key the two cases cannot be told apart.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The key file is structurally invalid (truncated, bad magic, parameters out
    /// of range, ...). Nothing on disk was changed.
    #[error("the profile key file is corrupt: {0}")]
    Corrupt(&'static str),
    /// The key file has a format version this build does not understand.
    #[error("unsupported profile key file version {0}")]
    UnsupportedVersion(u8),
    /// Another process (or another `Vault` in this process) has the profile open.
    #[error("the profile is in use by another process")]
    Locked,
    /// A file-system operation failed.
    #[error("profile I/O error: {0}")]
    Io(#[from] io::Error),
    /// The database could not be opened.
    #[error("profile database error: {0}")]
    Db(#[from] redb::Error),
    /// A profile made before 0.2 (sled database) could not be moved to the
    /// current database; the old one is left as it was.
    #[error("the profile's old database could not be read: {0}")]
    Legacy(#[from] sled::Error),
}

/// Error reading or writing entries of an unlocked [`Vault`](super::Vault).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored value failed authentication: it was modified, or moved from another
    /// key or tree. The value is not returned.
    #[error("a stored value failed authentication (tampered or moved)")]
    Tampered,
    /// A stored value authenticated but its inner structure is invalid.
    #[error("a stored value is corrupt: {0}")]
    Corrupt(&'static str),
    /// A key or value is too large to be stored (over 4 GiB).
    #[error("key or value too large")]
    TooLarge,
    /// The database failed.
    #[error("profile database error: {0}")]
    Db(#[from] redb::Error),
}

/// Error changing the passphrase or the duress passphrase of an unlocked
/// [`Vault`](super::Vault). On error the key file on disk is unchanged.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// The new passphrase is empty.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// The duress passphrase equals the main passphrase.
    #[error("the duress passphrase must differ from the main passphrase")]
    DuressSameAsMain,
    /// The new main passphrase equals the current duress passphrase.
    #[error("the new passphrase must differ from the duress passphrase")]
    SameAsDuress,
    /// The decoy blob is longer than [`MAX_DECOY_LEN`](super::MAX_DECOY_LEN).
    #[error("the decoy data is too large (at most {max} bytes)")]
    DecoyTooLarge {
        /// The maximum accepted length.
        max: usize,
    },
    /// The Argon2 parameters are out of the accepted range.
    #[error("invalid key-derivation parameters: {0}")]
    InvalidParams(&'static str),
    /// The key file on disk is invalid.
    #[error("the profile key file is corrupt: {0}")]
    Corrupt(&'static str),
    /// A file-system operation failed.
    #[error("profile I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Error wiping a profile with [`wipe`](super::wipe).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WipeError {
    /// A file-system operation failed. If the key file was already destroyed
    /// (see [`wipe`](super::wipe)), the data is unreadable even so.
    #[error("wipe I/O error: {0}")]
    Io(#[from] io::Error),
}

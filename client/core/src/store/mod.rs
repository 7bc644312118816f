//! Encrypted profile store (DESIGN §2 S9, §7): a [`Vault`] is a sled database in a
//! profile directory in which every tree name, key and value is protected by a data
//! key that is itself wrapped under Argon2id(passphrase).
//!
//! # Security goal (S9)
//!
//! A seized phone's profile directory, without the passphrase, reveals no contact
//! names, messages, keys, relay addresses, tree names or key names. A wrong
//! passphrase yields [`OpenError::WrongPassphrase`] and changes nothing on disk.
//! [`wipe`] crypto-erases a profile in well under a second. An optional duress
//! passphrase wipes the profile silently and hands the caller a decoy blob so it can
//! make a fresh-looking profile.
//!
//! # Directory layout
//!
//! ```text
//! DIR/key       the key file (exactly 2 168 bytes, format below)
//! DIR/key.tmp   transient, only while the key file is being replaced
//! DIR/lock      empty file, flock()ed while a Vault is open
//! DIR/db/       the sled database (only keyed hashes and ciphertext)
//! ```
//!
//! `DIR` is created with mode 0700 and the key file with mode 0600 on Unix.
//!
//! # Keys
//!
//! * **Data key** `D`: 32 random bytes, generated once by [`Vault::create`]. It
//!   never changes (changing the passphrase only re-wraps it).
//! * **Index key** `I = HKDF-SHA256(ikm = D, salt = none, info = "tropa/store/v1/index")`,
//!   64 bytes (one SHA-256 block), the HMAC key for names.
//! * **Value key** `V = HKDF-SHA256(D, info = "tropa/store/v1/value")`, 32 bytes,
//!   the XChaCha20-Poly1305 key for values.
//! * **Slot wrapping key** `K = Argon2id(passphrase, salt, m, t, p)`, 32 bytes,
//!   version 0x13, no secret/associated data.
//!
//! # Key file format (version 1), all integers little-endian
//!
//! ```text
//! offset  len   field
//!      0    4   magic "TRPK"
//!      4    1   version = 1
//!      5    3   reserved, zero
//!      8 1080   slot 0 (main)
//!   1088 1080   slot 1 (duress, or random bytes)
//!   2168        end
//!
//! slot:
//!      0    4   Argon2 m_cost in KiB (u32)
//!      4    4   Argon2 t_cost (u32)
//!      8    4   Argon2 p_cost (u32)
//!     12   16   Argon2 salt
//!     28   24   XChaCha20-Poly1305 nonce
//!     52 1040   ciphertext of the 1024-byte payload + 16-byte tag
//!
//! payload (plaintext, always 1024 bytes):
//!      0    1   kind: 1 = main, 2 = duress
//!      1    2   body length n (u16)
//!      3    n   body: main = data key D (n = 32); duress = caller's decoy blob
//!    3+n  ...   zero padding
//! ```
//!
//! The AEAD associated data of slot `i` is the 8-byte header, the byte `i`, then
//! the slot's 12 parameter bytes, so a slot cannot be moved to the other position
//! and its parameters cannot be altered.
//!
//! **Both slots are always present and indistinguishable.** Without a duress
//! passphrase, slot 1 is random salt, nonce and ciphertext with the same parameter
//! fields as slot 0; with one, it is a real sealed payload. Both have the same
//! length, so an observer cannot tell whether a duress passphrase is set.
//! [`Vault::change_passphrase`] replaces only slot 0 and never touches slot 1 (it
//! cannot re-wrap the duress slot without the duress passphrase, and leaving slot 1
//! alone in every case keeps the set/unset cases identical); [`Vault::set_duress`]
//! and [`Vault::clear_duress`] replace only slot 1, both with fresh random-looking
//! bytes, so comparing two snapshots of the key file shows *that* the duress setting
//! was touched but not whether it is now set.
//!
//! # Opening
//!
//! [`Vault::open`] always derives both slot keys with Argon2id and always attempts
//! both AEAD decryptions before looking at either result, so the time taken does
//! not reveal which slot matched or whether a duress slot exists (it is about twice
//! the cost of one derivation). Then:
//!
//! * slot 0 opens → the database is opened and [`Opened::Unlocked`] is returned;
//! * else slot 1 opens → the profile is wiped exactly like [`wipe`], a fresh empty
//!   profile is created in the same directory, unlocked by the duress passphrase,
//!   and [`Opened::Duress`] carries it with the decoy blob; the caller should fill
//!   it silently (e.g. from the display name and relay address in the decoy). The
//!   fresh main slot is sealed with the key already derived from slot 1 (its salt
//!   and parameters are reused), so a duress unlock costs the same two Argon2 runs
//!   as a normal one and takes no measurably longer;
//! * else → [`OpenError::WrongPassphrase`]. Nothing is written before a slot
//!   opens (the lock file and the database are only touched after success).
//!
//! # Stored entries
//!
//! A logical tree name `t` is stored as the sled tree named
//! `T = HMAC-SHA256(I, "tropa/store/v1/tree\0" || t)` (32 raw bytes), and a key `k`
//! of that tree as the sled key `H = HMAC-SHA256(I, "tropa/store/v1/key\0" || T || k)`.
//! The sled value is
//!
//! ```text
//! 0x01 || nonce (24 random bytes) || XChaCha20-Poly1305_V(nonce, plaintext, aad)
//! plaintext = key_len (u32) || value_len (u32) || k || value || zero padding to a multiple of 64
//! aad       = "tropa/store/v1/value\0" || 0x01 || T || H
//! ```
//!
//! The original key is sealed inside so [`Vault::iter`] can return it; the AAD binds
//! the record to its tree and key, so a value copied or swapped to another key or
//! tree fails with [`StoreError::Tampered`]. XChaCha20-Poly1305 (the 24-byte-nonce
//! variant of ChaCha20-Poly1305) is used so random nonces are safe for any number of
//! writes. Padding hides exact value lengths (only a 64-byte granularity leaks).
//!
//! # Durability
//!
//! Every mutation ([`Vault::put`], [`Vault::remove`], [`Vault::apply`]) is flushed
//! (fsynced) to disk before it returns. A [`Batch`] is applied in one sled
//! multi-tree transaction: after a crash either all of it or none of it is visible.
//!
//! # Wipe
//!
//! [`wipe`] first overwrites the key file in place with random bytes, fsyncs and
//! deletes it (from that moment the data key is gone and the database is
//! unreadable), then deletes the database, the lock file and the directory (only if
//! it is then empty: foreign files are never deleted).
//!
//! # Known limits (documented, accepted)
//!
//! * What leaks without the passphrase: that this is a Tropa profile, the Argon2
//!   parameters, the number of trees, the number of entries per tree, each value's
//!   length to 64 bytes, and sled's write history (timestamps, file sizes).
//!   **Callers:** do not make one tree per contact if the number of contacts or
//!   of messages per contact must stay hidden; use a few fixed trees (e.g.
//!   `messages`, keyed by contact id and message id inside the key).
//! * Keys are stored as keyed hashes, so there are no range or prefix scans:
//!   [`Vault::iter`] decrypts a whole tree into memory and sorts it by key.
//! * Removing or overwriting an entry does not crypto-erase it: sled may keep the
//!   old ciphertext in its log until the segment is reclaimed, and it stays
//!   decryptable with the data key. Against someone who has the passphrase,
//!   deleted (e.g. disappearing) messages are only gone after [`wipe`]. Rotating
//!   the data key (re-encrypting into a fresh database) would fix this and is
//!   deferred.
//! * [`Vault::change_passphrase`] re-wraps the same data key: someone holding a copy
//!   of the *old* key file and the *old* passphrase can still decrypt. Rotating the
//!   data key means re-encrypting every value and is not done here.
//! * Crypto-erase overwrites the key file through the file system. On flash storage
//!   with wear levelling or a copy-on-write file system the old blocks may survive
//!   physically; a forensic attacker reading raw flash then still needs the
//!   passphrase (so a strong passphrase still matters).
//! * The lock file prevents two processes from opening the same profile (sled
//!   itself does not lock on Android).
//! * A key file tampered with inside a slot looks like a wrong passphrase.
//! * Integrity is per entry: someone who can write the directory cannot forge,
//!   alter or move a value, but can delete entries or roll the database back to
//!   an older copy undetected (that would need a MAC over whole trees).

mod error;
mod fsutil;
mod keyfile;
mod memory;
mod seal;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::Rng;
use sled::Transactional;
use zeroize::Zeroizing;

pub use error::{CreateError, OpenError, PassphraseError, StoreError, WipeError};
pub use keyfile::{KdfParams, MAX_DECOY_LEN, MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST};
pub use memory::MemoryKv;

/// Entry points for the fuzz targets in `fuzz/` (built with `--cfg
/// fuzzing` by cargo-fuzz); never part of the normal API.
#[cfg(fuzzing)]
pub mod fuzzing {
    /// Parses a key file as [`Vault::open`](super::Vault::open) does before
    /// deriving anything: the Argon2 parameters of its two slots.
    ///
    /// # Errors
    /// A short description of why the file was refused.
    pub fn parse_key_file(bytes: &[u8]) -> Result<Vec<super::KdfParams>, &'static str> {
        match super::keyfile::KeyFile::parse(bytes) {
            Ok(k) => Ok(k.slots.iter().map(super::keyfile::Slot::params).collect()),
            Err(super::keyfile::ParseError::Corrupt(why)) => Err(why),
            Err(super::keyfile::ParseError::Version(_)) => Err("unknown version"),
        }
    }
}

/// Argon2 derivations made on this thread so far (tests only).
#[cfg(test)]
pub(crate) fn derivations() -> u64 {
    keyfile::DERIVATIONS.with(std::cell::Cell::get)
}

use keyfile::{DATA_KEY_LEN, KEY_FILE_LEN, KeyFile, ParseError, Slot, SlotContent};
use seal::{Id, Keys};

/// File name of the key file inside a profile directory.
pub const KEY_FILE_NAME: &str = "key";
/// File name of the temporary key file used while replacing it.
const KEY_TMP_NAME: &str = "key.tmp";
/// File name of the lock file.
const LOCK_FILE_NAME: &str = "lock";
/// Directory name of the sled database inside a profile directory.
pub const DB_DIR_NAME: &str = "db";
/// sled page-cache size: modest, for phones.
const SLED_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// An unlocked encrypted profile store. See the [module docs](self).
///
/// `Vault` is `Send + Sync`; share it with an `Arc`. Dropping it closes the database
/// and releases the profile lock; the derived keys are zeroized on drop.
pub struct Vault {
    db: sled::Db,
    keys: Keys,
    data_key: Zeroizing<[u8; DATA_KEY_LEN]>,
    dir: PathBuf,
    /// Serializes key-file rewrites within this process.
    key_file_mutex: Mutex<()>,
    /// Holds the profile lock; dropped last.
    _lock: File,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("keys", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A decrypted entry returned by [`Vault::iter`]: the original key and the value
/// (zeroized on drop).
pub type Entry = (Vec<u8>, Zeroizing<Vec<u8>>);

/// What the client's repository needs from a store: named trees of keys
/// and values, read one at a time or whole, and changed in atomic, durable
/// batches. The [`Vault`] is the real one (encrypted, on disk); [`MemoryKv`]
/// is the same in memory, for simulations and tests.
pub trait Kv: Send + Sync + 'static {
    /// The value of `key` in `tree`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;
    /// Every entry of `tree`, sorted by key.
    ///
    /// # Errors
    /// [`StoreError`].
    fn iter(&self, tree: &str) -> Result<Vec<Entry>, StoreError>;
    /// Applies `batch` atomically and durably.
    ///
    /// # Errors
    /// [`StoreError`]; then nothing was applied.
    fn apply(&self, batch: Batch) -> Result<(), StoreError>;
}

impl Kv for Vault {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Vault::get(self, tree, key)
    }

    fn iter(&self, tree: &str) -> Result<Vec<Entry>, StoreError> {
        Vault::iter(self, tree)
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        Vault::apply(self, batch)
    }
}

/// The result of [`Vault::open`].
pub enum Opened {
    /// The main passphrase was given: the profile is unlocked.
    Unlocked(Vault),
    /// The duress passphrase was given: the profile has been wiped and a
    /// fresh, empty one created in its place, unlocked by the duress
    /// passphrase with the same Argon2 parameters. The caller should
    /// silently fill it as a new profile, e.g. from the decoy.
    Duress {
        /// The opaque bytes given to [`Vault::set_duress`].
        decoy: Zeroizing<Vec<u8>>,
        /// The fresh profile.
        vault: Vault,
    },
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unlocked(v) => f.debug_tuple("Unlocked").field(v).finish(),
            Self::Duress { vault, .. } => f
                .debug_struct("Duress")
                .field("decoy", &"<redacted>")
                .field("vault", vault)
                .finish(),
        }
    }
}

/// A set of puts and removes, possibly across trees, applied atomically and
/// durably by [`Vault::apply`]. Operations apply in order (a later one on the same
/// key wins).
#[derive(Default)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

enum BatchOp {
    Put {
        tree: String,
        key: Zeroizing<Vec<u8>>,
        value: Zeroizing<Vec<u8>>,
    },
    Remove {
        tree: String,
        key: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("ops", &self.ops.len())
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds "set `key` in `tree` to `value`".
    pub fn put(&mut self, tree: &str, key: &[u8], value: &[u8]) -> &mut Self {
        self.ops.push(BatchOp::Put {
            tree: tree.to_owned(),
            key: Zeroizing::new(key.to_vec()),
            value: Zeroizing::new(value.to_vec()),
        });
        self
    }

    /// Adds "remove `key` from `tree`" (no error if absent).
    pub fn remove(&mut self, tree: &str, key: &[u8]) -> &mut Self {
        self.ops.push(BatchOp::Remove {
            tree: tree.to_owned(),
            key: Zeroizing::new(key.to_vec()),
        });
        self
    }

    /// Number of operations.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE_NAME)
}

/// How long [`open_db`] waits for sled's own lock on the database file.
const SLED_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database. Callers hold the profile's exclusive lock
/// (`DIR/lock`) first, so if sled's own file lock is taken, its holder can
/// only be this profile's previous `Db` in this process, whose background
/// thread lets go a moment after the `Db` is dropped (under load, many
/// milliseconds later). Waiting a little for it is safe; failing would tell
/// the user their profile is corrupt.
fn open_db(dir: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + SLED_LOCK_PATIENCE;
    loop {
        let res = sled::Config::new()
            .path(dir.join(DB_DIR_NAME))
            .cache_capacity(SLED_CACHE_BYTES)
            .open();
        match res {
            // sled 0.34 reports its lock as ErrorKind::Other with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Opens (creating if needed) and exclusively locks `DIR/lock`.
fn acquire_lock(dir: &Path) -> io::Result<Option<File>> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE_NAME))?;
    match fs2::FileExt::try_lock_exclusive(&f) {
        Ok(()) => Ok(Some(f)),
        Err(e) if e.kind() == fs2::lock_contended_error().kind() => Ok(None),
        // Some file systems (e.g. FUSE-backed shared storage on Android) do not
        // support flock: run unlocked rather than refuse to work.
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(Some(f)),
        Err(e) => Err(e),
    }
}

/// Reads the key file. `Ok(None)` if it does not exist.
fn read_key_file(dir: &Path) -> io::Result<Option<Vec<u8>>> {
    let f = match File::open(key_path(dir)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::with_capacity(KEY_FILE_LEN);
    // Read at most one byte more than expected so a huge file is rejected cheaply.
    f.take(KEY_FILE_LEN as u64 + 1).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

impl Vault {
    /// Whether `dir` holds a profile (its key file exists). Does not check the
    /// passphrase or the file's validity.
    #[must_use]
    pub fn exists(dir: &Path) -> bool {
        fs::symlink_metadata(key_path(dir)).is_ok()
    }

    /// Creates a new profile in `dir` (created if missing) protected by
    /// `passphrase`, with no duress passphrase.
    ///
    /// Leftovers of an interrupted creation or wipe (a database without a key file,
    /// which is unreadable anyway) are removed first.
    ///
    /// # Errors
    /// [`CreateError::AlreadyExists`] if a key file exists (nothing is changed),
    /// [`CreateError::EmptyPassphrase`], [`CreateError::InvalidParams`], or an I/O or
    /// database error.
    pub fn create(dir: &Path, passphrase: &[u8], params: KdfParams) -> Result<Vault, CreateError> {
        if passphrase.is_empty() {
            return Err(CreateError::EmptyPassphrase);
        }
        params.validate().map_err(CreateError::InvalidParams)?;
        Self::create_with(dir, params, |data_key| {
            Slot::seal_main(passphrase, params, data_key)
        })
    }

    /// [`create`](Self::create) with the main slot sealed by `seal_main`.
    fn create_with(
        dir: &Path,
        params: KdfParams,
        seal_main: impl FnOnce(&[u8; DATA_KEY_LEN]) -> Result<Slot, &'static str>,
    ) -> Result<Vault, CreateError> {
        if Self::exists(dir) {
            return Err(CreateError::AlreadyExists);
        }
        fsutil::create_private_dir(dir)?;
        let lock = acquire_lock(dir)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::WouldBlock, "profile directory in use"))?;
        if Self::exists(dir) {
            return Err(CreateError::AlreadyExists);
        }
        let _ = fs::remove_file(dir.join(KEY_TMP_NAME));
        fsutil::remove_dir_all_if_exists(&dir.join(DB_DIR_NAME))?;

        let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::rng().fill_bytes(data_key.as_mut_slice());
        let keys = Keys::derive(&data_key).map_err(CreateError::InvalidParams)?;
        let main = seal_main(&data_key).map_err(CreateError::InvalidParams)?;
        let key_file = KeyFile {
            slots: [main, Slot::random(params)],
        };

        let db = open_db(dir)?;
        db.flush()?;
        // The key file is written last: a profile "exists" only once complete.
        fsutil::write_atomic(
            dir,
            &dir.join(KEY_TMP_NAME),
            &key_path(dir),
            &key_file.to_bytes(),
        )?;
        Ok(Vault {
            db,
            keys,
            data_key,
            dir: dir.to_path_buf(),
            key_file_mutex: Mutex::new(()),
            _lock: lock,
        })
    }

    /// Unlocks the profile in `dir` with `passphrase`. See "Opening" in the
    /// [module docs](self), including the duress behaviour.
    ///
    /// # Errors
    /// [`OpenError::NoProfile`], [`OpenError::WrongPassphrase`] (nothing on disk
    /// changed), [`OpenError::Corrupt`] / [`OpenError::UnsupportedVersion`] for a bad
    /// key file, [`OpenError::Locked`] if the profile is open elsewhere, or an I/O
    /// or database error.
    pub fn open(dir: &Path, passphrase: &[u8]) -> Result<Opened, OpenError> {
        let bytes = read_key_file(dir)?.ok_or(OpenError::NoProfile)?;
        let key_file = KeyFile::parse(&bytes).map_err(|e| match e {
            ParseError::Corrupt(why) => OpenError::Corrupt(why),
            ParseError::Version(v) => OpenError::UnsupportedVersion(v),
        })?;
        // Always run both derivations and both decryptions before branching.
        let main = key_file.slots[0].try_open(0, passphrase);
        let duress = key_file.slots[1].try_open(1, passphrase);
        let main = main.map_err(OpenError::Corrupt)?;
        let duress = duress.map_err(OpenError::Corrupt)?;
        match (main, duress) {
            (Some(SlotContent::Main(data_key)), _) => {
                let keys = Keys::derive(&data_key).map_err(OpenError::Corrupt)?;
                if !dir.join(DB_DIR_NAME).is_dir() {
                    // Never silently replace a deleted database with an empty one.
                    return Err(OpenError::Corrupt("the profile database is missing"));
                }
                let lock = acquire_lock(dir)?.ok_or(OpenError::Locked)?;
                // A copied or restored profile may have lost its private mode.
                fsutil::tighten_dir(dir)?;
                // A crash during a key-file rewrite may leave a stale temporary.
                let _ = fs::remove_file(dir.join(KEY_TMP_NAME));
                let db = open_db(dir)?;
                Ok(Opened::Unlocked(Vault {
                    db,
                    keys,
                    data_key,
                    dir: dir.to_path_buf(),
                    key_file_mutex: Mutex::new(()),
                    _lock: lock,
                }))
            }
            (None, Some(SlotContent::Duress(decoy, wrapping))) => {
                if let Err(WipeError::Io(e)) = wipe(dir)
                    && Self::exists(dir)
                {
                    // The crypto-erase itself failed: the data is still there.
                    return Err(OpenError::Io(e));
                }
                // The fresh profile is sealed with the key just derived from
                // the duress passphrase (same salt and parameters): a third
                // Argon2 run would make this unlock slower than a normal one.
                let vault = Self::create_with(dir, wrapping.params(), |data_key| {
                    Slot::seal_main_wrapped(&wrapping, data_key)
                })
                .map_err(|e| match e {
                    CreateError::Io(e) => OpenError::Io(e),
                    CreateError::Db(e) => OpenError::Db(e),
                    _ => OpenError::Corrupt("could not start a fresh profile"),
                })?;
                Ok(Opened::Duress { decoy, vault })
            }
            (None, None) => Err(OpenError::WrongPassphrase),
            _ => Err(OpenError::Corrupt("slot holds an unexpected payload")),
        }
    }

    /// The profile directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tree(&self, name: &str) -> Result<(Id, sled::Tree), StoreError> {
        let id = self.keys.tree_id(name);
        let tree = self.db.open_tree(id)?;
        Ok((id, tree))
    }

    /// The value of `key` in `tree`, decrypted, or `None`.
    ///
    /// # Errors
    /// [`StoreError::Tampered`] if the stored value fails authentication, or a
    /// database error.
    pub fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let (tid, t) = self.tree(tree)?;
        let kid = self.keys.key_id(&tid, key);
        match t.get(kid)? {
            None => Ok(None),
            Some(record) => {
                let (_, value) = self.keys.open(&tid, &kid, &record)?;
                Ok(Some(value))
            }
        }
    }

    /// All `(key, value)` pairs of `tree`, decrypted, sorted by key.
    ///
    /// # Errors
    /// [`StoreError::Tampered`] if any stored value fails authentication, or a
    /// database error.
    pub fn iter(&self, tree: &str) -> Result<Vec<Entry>, StoreError> {
        let (tid, t) = self.tree(tree)?;
        let mut out = Vec::new();
        for item in t.iter() {
            let (kid, record) = item?;
            let kid: Id = kid.as_ref().try_into().map_err(|_| StoreError::Tampered)?;
            let (mut key, value) = self.keys.open(&tid, &kid, &record)?;
            out.push((std::mem::take(&mut *key), value));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Sets `key` in `tree` to `value`, durably.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] or a database error.
    pub fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let (tid, t) = self.tree(tree)?;
        let kid = self.keys.key_id(&tid, key);
        let record = self.keys.seal(&tid, &kid, key, value)?;
        t.insert(kid, record)?;
        self.db.flush()?;
        Ok(())
    }

    /// Removes `key` from `tree`, durably. Returns whether it was present.
    ///
    /// # Errors
    /// A database error.
    pub fn remove(&self, tree: &str, key: &[u8]) -> Result<bool, StoreError> {
        let (tid, t) = self.tree(tree)?;
        let kid = self.keys.key_id(&tid, key);
        let existed = t.remove(kid)?.is_some();
        self.db.flush()?;
        Ok(existed)
    }

    /// Applies `batch` atomically (one sled multi-tree transaction) and durably
    /// (flushed before returning). An empty batch does nothing.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] or a database error; on error nothing was applied.
    pub fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut trees: Vec<sled::Tree> = Vec::new();
        let mut index: HashMap<Id, usize> = HashMap::new();
        // (tree index, key id, sealed record or None for remove)
        let mut prepared: Vec<(usize, Id, Option<Vec<u8>>)> = Vec::with_capacity(batch.len());
        for op in &batch.ops {
            let (tree, key, value) = match op {
                BatchOp::Put { tree, key, value } => (tree, key, Some(value)),
                BatchOp::Remove { tree, key } => (tree, key, None),
            };
            let tid = self.keys.tree_id(tree);
            let ti = match index.get(&tid) {
                Some(&i) => i,
                None => {
                    trees.push(self.db.open_tree(tid)?);
                    index.insert(tid, trees.len() - 1);
                    trees.len() - 1
                }
            };
            let kid = self.keys.key_id(&tid, key);
            let record = match value {
                Some(v) => Some(self.keys.seal(&tid, &kid, key, v)?),
                None => None,
            };
            prepared.push((ti, kid, record));
        }
        let result: sled::transaction::TransactionResult<(), ()> = trees[..].transaction(|view| {
            for (ti, kid, record) in &prepared {
                let Some(t) = view.get(*ti) else {
                    return sled::transaction::abort(());
                };
                match record {
                    Some(r) => {
                        t.insert(&kid[..], r.as_slice())?;
                    }
                    None => {
                        t.remove(&kid[..])?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(sled::transaction::TransactionError::Storage(e)) => return Err(e.into()),
            Err(sled::transaction::TransactionError::Abort(())) => {
                return Err(StoreError::Corrupt("internal batch error"));
            }
        }
        self.db.flush()?;
        Ok(())
    }

    /// Flushes all pending writes to disk.
    ///
    /// # Errors
    /// A database error.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn read_parsed_key_file(&self) -> Result<KeyFile, PassphraseError> {
        let bytes =
            read_key_file(&self.dir)?.ok_or(PassphraseError::Corrupt("key file missing"))?;
        KeyFile::parse(&bytes).map_err(|e| match e {
            ParseError::Corrupt(why) => PassphraseError::Corrupt(why),
            ParseError::Version(_) => PassphraseError::Corrupt("unsupported key file version"),
        })
    }

    fn write_key_file(&self, key_file: &KeyFile) -> Result<(), PassphraseError> {
        fsutil::write_atomic(
            &self.dir,
            &self.dir.join(KEY_TMP_NAME),
            &key_path(&self.dir),
            &key_file.to_bytes(),
        )?;
        Ok(())
    }

    /// Re-wraps the data key under a `new` passphrase (and optionally new Argon2
    /// parameters; `None` keeps the current ones), replacing the key file
    /// atomically. The duress slot is left as it is (see the module docs).
    ///
    /// # Errors
    /// [`PassphraseError::EmptyPassphrase`], [`PassphraseError::SameAsDuress`] if
    /// `new` is the duress passphrase, [`PassphraseError::InvalidParams`], or an I/O
    /// or key-file error; on error the key file is unchanged.
    pub fn change_passphrase(
        &self,
        new: &[u8],
        params: Option<KdfParams>,
    ) -> Result<(), PassphraseError> {
        if new.is_empty() {
            return Err(PassphraseError::EmptyPassphrase);
        }
        let _guard = self
            .key_file_mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key_file = self.read_parsed_key_file()?;
        let params = params.unwrap_or(key_file.slots[0].params());
        params.validate().map_err(PassphraseError::InvalidParams)?;
        if let Some(SlotContent::Duress(..)) = key_file.slots[1]
            .try_open(1, new)
            .map_err(PassphraseError::Corrupt)?
        {
            return Err(PassphraseError::SameAsDuress);
        }
        key_file.slots[0] =
            Slot::seal_main(new, params, &self.data_key).map_err(PassphraseError::InvalidParams)?;
        self.write_key_file(&key_file)
    }

    /// Sets (or replaces) the duress passphrase and its decoy blob (at most
    /// [`MAX_DECOY_LEN`] bytes, e.g. the display name and relay address for the
    /// fresh profile the caller will create after a duress unlock).
    ///
    /// # Errors
    /// [`PassphraseError::EmptyPassphrase`], [`PassphraseError::DuressSameAsMain`],
    /// [`PassphraseError::DecoyTooLarge`], or an I/O or key-file error; on error the
    /// key file is unchanged.
    pub fn set_duress(&self, duress: &[u8], decoy: &[u8]) -> Result<(), PassphraseError> {
        if duress.is_empty() {
            return Err(PassphraseError::EmptyPassphrase);
        }
        if decoy.len() > MAX_DECOY_LEN {
            return Err(PassphraseError::DecoyTooLarge { max: MAX_DECOY_LEN });
        }
        let _guard = self
            .key_file_mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key_file = self.read_parsed_key_file()?;
        if let Some(SlotContent::Main(_)) = key_file.slots[0]
            .try_open(0, duress)
            .map_err(PassphraseError::Corrupt)?
        {
            return Err(PassphraseError::DuressSameAsMain);
        }
        let params = key_file.slots[0].params();
        key_file.slots[1] =
            Slot::seal_duress(duress, params, decoy).map_err(PassphraseError::InvalidParams)?;
        self.write_key_file(&key_file)
    }

    /// The Argon2 parameters of the main passphrase.
    ///
    /// # Errors
    /// An I/O or key-file error.
    pub fn kdf_params(&self) -> Result<KdfParams, PassphraseError> {
        Ok(self.read_parsed_key_file()?.slots[0].params())
    }

    /// Removes the duress passphrase (slot 1 becomes fresh random bytes, which look
    /// exactly like a set duress slot).
    ///
    /// # Errors
    /// An I/O or key-file error; on error the key file is unchanged.
    pub fn clear_duress(&self) -> Result<(), PassphraseError> {
        let _guard = self
            .key_file_mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key_file = self.read_parsed_key_file()?;
        key_file.slots[1] = Slot::random(key_file.slots[0].params());
        self.write_key_file(&key_file)
    }

    /// Crypto-erases this profile, then deletes it (see [`wipe`]). The key file is
    /// destroyed before the database is even closed.
    ///
    /// # Errors
    /// An I/O error; if it occurs after the key file was destroyed, the data is
    /// unreadable even so.
    pub fn wipe(self) -> Result<(), WipeError> {
        let dir = self.dir.clone();
        erase_key_file(&dir)?;
        drop(self);
        wipe(&dir)
    }
}

/// Overwrites and deletes the key file and any temporary copy, then fsyncs `dir`.
fn erase_key_file(dir: &Path) -> Result<(), WipeError> {
    let a = fsutil::shred_file(&key_path(dir), KEY_FILE_LEN)?;
    let b = fsutil::shred_file(&dir.join(KEY_TMP_NAME), KEY_FILE_LEN)?;
    if a || b {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}

/// Crypto-erases and deletes the profile in `dir`: the key file is overwritten
/// with random bytes, fsynced and deleted first (from then on the data is
/// unreadable), then the database and the lock file are deleted, then the
/// directory itself if it is empty. Files this module did not create are left
/// alone (so a profile mistakenly created in a home directory cannot take the
/// user's files with it); callers must keep all profile data inside the vault.
/// A missing directory is not an error. Works whether or not the profile is open
/// elsewhere.
///
/// # Errors
/// An I/O error; if it occurs after the key file was destroyed (check
/// [`Vault::exists`]), the data is unreadable even so.
pub fn wipe(dir: &Path) -> Result<(), WipeError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    erase_key_file(dir)?;
    fsutil::remove_dir_all_if_exists(&dir.join(DB_DIR_NAME))?;
    match fs::remove_file(dir.join(LOCK_FILE_NAME)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    // Only an empty directory is removed: a mistaken `--home ~` must not delete
    // the user's files.
    match fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(_)
            if fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

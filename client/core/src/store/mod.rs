//! Encrypted profile store (DESIGN §2 S9, §7): a [`Vault`] is a redb database in a
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
//! DIR/store.redb the redb database (only keyed hashes and ciphertext)
//! DIR/db/       the sled database of profiles made before 0.2: moved into
//!               store.redb at the first unlock, then deleted (store/legacy.rs)
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
//! # Key file
//!
//! Its byte layout, and why both of its slots always look alike, are in
//! `store/keyfile.rs`.
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
//! A logical tree name `t` becomes the tree id
//! `T = HMAC-SHA256(I, "tropa/store/v1/tree\0" || t)` (32 raw bytes), and a key `k`
//! of that tree the record key `H = HMAC-SHA256(I, "tropa/store/v1/key\0" || T || k)`.
//! A tree is a redb table named by the lower-case hex of `T`; the key of a record
//! is `H`, its value is
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
//! Every mutation ([`Vault::put`], [`Vault::remove`], [`Vault::apply`]) is one redb
//! write transaction, committed with `Durability::Immediate` (fsynced) before it
//! returns: after a crash or a SIGKILL either all of a [`Batch`] or none of it is
//! visible. redb is a copy-on-write B-tree whose commit flips a checksummed root,
//! so a kill at any moment leaves the last committed state readable.
//!
//! The store was sled 0.34 until a kill while a profile was being opened or
//! closed was found to leave it unopenable ("Read corrupted data"), in about
//! one run in three of `tests/tests/store_kills.rs` and once in CI: a
//! deserter's phone kills apps without warning, and a profile that does not
//! open is every contact lost.
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
//!   length to 64 bytes, and the database's write history (timestamps, file size).
//!   **Callers:** do not make one tree per contact if the number of contacts or
//!   of messages per contact must stay hidden; use a few fixed trees (e.g.
//!   `messages`, keyed by contact id and message id inside the key).
//! * Keys are stored as keyed hashes, so there are no range or prefix scans:
//!   [`Vault::iter`] decrypts a whole tree into memory and sorts it by key.
//! * Removing or overwriting an entry does not crypto-erase it: the database may
//!   keep the old ciphertext in a free page until the page is reused, and it stays
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
//! * The lock file prevents two processes from opening the same profile (the
//!   database's own file lock is not relied on).
//! * A key file tampered with inside a slot looks like a wrong passphrase.
//! * Integrity is per entry: someone who can write the directory cannot forge,
//!   alter or move a value, but can delete entries or roll the database back to
//!   an older copy undetected (that would need a MAC over whole trees).

mod erase;
mod error;
mod fsutil;
mod keyfile;
mod legacy;
mod memory;
mod passphrase;
mod seal;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::Rng;
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition, TableError};
use zeroize::Zeroizing;

pub use erase::wipe;
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
/// File name of the database inside a profile directory.
pub const DB_FILE_NAME: &str = "store.redb";
/// Directory name of the sled database of older profiles (see [`legacy`]).
pub const DB_DIR_NAME: &str = "db";
/// Database page-cache size: modest, for phones.
const DB_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// An unlocked encrypted profile store. See the [module docs](self).
///
/// `Vault` is `Send + Sync`; share it with an `Arc`. Dropping it closes the database
/// and releases the profile lock; the derived keys are zeroized on drop.
pub struct Vault {
    db: redb::Database,
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

/// One sealed write of a batch: the record's key id, and its sealed
/// record (`None` removes it).
type SealedOp = (Id, Option<Vec<u8>>);

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

/// Opens (creating if missing) the database. Callers hold the profile's
/// exclusive lock (`DIR/lock`) first.
fn open_db(dir: &Path) -> Result<redb::Database, redb::Error> {
    Ok(redb::Database::builder()
        .set_cache_size(DB_CACHE_BYTES)
        .create(dir.join(DB_FILE_NAME))?)
}

/// The table of the tree with id `id`.
fn table_name(id: &Id) -> String {
    hex::encode(id)
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
        legacy::remove_leftovers(dir)?;
        match fs::remove_file(dir.join(DB_FILE_NAME)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }

        let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::rng().fill_bytes(data_key.as_mut_slice());
        let keys = Keys::derive(&data_key).map_err(CreateError::InvalidParams)?;
        let main = seal_main(&data_key).map_err(CreateError::InvalidParams)?;
        let key_file = KeyFile {
            slots: [main, Slot::random(params)],
        };

        let db = open_db(dir)?;
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
                let lock = acquire_lock(dir)?.ok_or(OpenError::Locked)?;
                if !dir.join(DB_FILE_NAME).is_file() {
                    if dir.join(DB_DIR_NAME).is_dir() {
                        // A profile made before the move to redb.
                        legacy::migrate(dir)?;
                    } else {
                        // Never silently replace a deleted database with an empty one.
                        return Err(OpenError::Corrupt("the profile database is missing"));
                    }
                } else if dir.join(DB_DIR_NAME).is_dir() {
                    // A migration that was killed after its last step but one.
                    fsutil::remove_dir_all_if_exists(&dir.join(DB_DIR_NAME))?;
                }
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

    /// The id of tree `name` and its table's name.
    fn tree(&self, name: &str) -> (Id, String) {
        let id = self.keys.tree_id(name);
        let table = table_name(&id);
        (id, table)
    }

    /// The value of `key` in `tree`, decrypted, or `None`.
    ///
    /// # Errors
    /// [`StoreError::Tampered`] if the stored value fails authentication, or a
    /// database error.
    pub fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let (tid, name) = self.tree(tree);
        let kid = self.keys.key_id(&tid, key);
        let read = self.db.begin_read().map_err(db)?;
        let table = match read.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db(e)),
        };
        let record = match table.get(&kid[..]).map_err(db)? {
            None => return Ok(None),
            Some(r) => Zeroizing::new(r.value().to_vec()),
        };
        let (_, value) = self.keys.open(&tid, &kid, &record)?;
        Ok(Some(value))
    }

    /// All `(key, value)` pairs of `tree`, decrypted, sorted by key.
    ///
    /// # Errors
    /// [`StoreError::Tampered`] if any stored value fails authentication, or a
    /// database error.
    pub fn iter(&self, tree: &str) -> Result<Vec<Entry>, StoreError> {
        let (tid, name) = self.tree(tree);
        let read = self.db.begin_read().map_err(db)?;
        let table = match read.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db(e)),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(db)? {
            let (kid, record) = item.map_err(db)?;
            let kid: Id = kid.value().try_into().map_err(|_| StoreError::Tampered)?;
            let (mut key, value) = self.keys.open(&tid, &kid, record.value())?;
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
        let mut b = Batch::new();
        b.put(tree, key, value);
        self.apply(b)
    }

    /// Removes `key` from `tree`, durably. Returns whether it was present.
    ///
    /// # Errors
    /// A database error.
    pub fn remove(&self, tree: &str, key: &[u8]) -> Result<bool, StoreError> {
        let (tid, name) = self.tree(tree);
        let kid = self.keys.key_id(&tid, key);
        let write = self.db.begin_write().map_err(db)?;
        let existed = {
            let mut table = write
                .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
                .map_err(db)?;
            table.remove(&kid[..]).map_err(db)?.is_some()
        };
        write.commit().map_err(db)?;
        Ok(existed)
    }

    /// Applies `batch` atomically and durably (one write transaction,
    /// committed and fsynced before returning). An empty batch does nothing.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] or a database error; on error nothing was applied.
    pub fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Sealed first, so a failure to seal leaves the database untouched.
        // Grouped by tree (a table is open once at a time in a transaction),
        // in the batch's order within each tree, which is all that orders
        // them: records of different trees never share a key.
        let mut groups: Vec<(String, Vec<SealedOp>)> = Vec::new();
        let mut index: HashMap<Id, usize> = HashMap::new();
        for op in &batch.ops {
            let (tree, key, value) = match op {
                BatchOp::Put { tree, key, value } => (tree, key, Some(value)),
                BatchOp::Remove { tree, key } => (tree, key, None),
            };
            let (tid, name) = self.tree(tree);
            let gi = *index.entry(tid).or_insert_with(|| {
                groups.push((name, Vec::new()));
                groups.len() - 1
            });
            let kid = self.keys.key_id(&tid, key);
            let record = match value {
                Some(v) => Some(self.keys.seal(&tid, &kid, key, v)?),
                None => None,
            };
            groups[gi].1.push((kid, record));
        }
        let write = self.db.begin_write().map_err(db)?;
        for (name, ops) in &groups {
            let mut table = write
                .open_table(TableDefinition::<&[u8], &[u8]>::new(name))
                .map_err(db)?;
            for (kid, record) in ops {
                match record {
                    Some(r) => {
                        table.insert(&kid[..], r.as_slice()).map_err(db)?;
                    }
                    None => {
                        table.remove(&kid[..]).map_err(db)?;
                    }
                }
            }
        }
        // Dropping an uncommitted transaction (on any error above) aborts it.
        write.commit().map_err(db)?;
        Ok(())
    }

    /// Makes everything written so far durable. Every write already is (each
    /// commits with fsync), so this only checks the database is usable.
    ///
    /// # Errors
    /// A database error.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.begin_read().map_err(db)?;
        Ok(())
    }
}

/// A database error as a [`StoreError`].
fn db(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}

//! Profiles made before the store moved to redb keep their records in a
//! sled 0.34 database in `DIR/db/`. At the first unlock by a newer version,
//! [`migrate`] copies every tree's records as they are (already sealed: the
//! same keyed-hash keys and the same ciphertext; a tree becomes the table
//! named by the hex of its id) into `DIR/store.redb.tmp`, commits it
//! (fsync), renames it to `DIR/store.redb`, fsyncs the directory, and only
//! then deletes `DIR/db/`.
//!
//! A kill at any step leaves either the old database untouched (the next
//! unlock starts over) or the new one complete (the next unlock deletes the
//! old one). This module must never decrypt anything (it needs no key) and
//! never delete the old database before the new one is durable.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use redb::TableDefinition;

use super::error::OpenError;
use super::{DB_DIR_NAME, DB_FILE_NAME, fsutil};

/// The new database while it is being filled.
const TMP_NAME: &str = "store.redb.tmp";
/// sled's own default tree, which the vault never used.
const SLED_DEFAULT_TREE: &[u8] = b"__sled__default";

/// Moves the sled database of `dir` into a new redb database. The caller
/// holds the profile lock, and `DIR/store.redb` does not exist.
///
/// # Errors
/// [`OpenError::Legacy`] if the old database cannot be read (it is left as
/// it was), [`OpenError::Db`] or [`OpenError::Io`] if the new one cannot be
/// written.
pub(super) fn migrate(dir: &Path) -> Result<(), OpenError> {
    remove_leftovers(dir)?;
    let tmp = dir.join(TMP_NAME);
    let old = open_sled(dir)?;
    {
        let new = redb::Database::create(&tmp).map_err(redb::Error::from)?;
        let write = new.begin_write().map_err(redb::Error::from)?;
        for name in old.tree_names() {
            if name.as_ref() == SLED_DEFAULT_TREE {
                continue;
            }
            let tree = old.open_tree(&name)?;
            let table_name = hex::encode(&name);
            let mut table = write
                .open_table(TableDefinition::<&[u8], &[u8]>::new(&table_name))
                .map_err(redb::Error::from)?;
            for item in tree.iter() {
                let (key, value) = item?;
                table
                    .insert(key.as_ref(), value.as_ref())
                    .map_err(redb::Error::from)?;
            }
        }
        write.commit().map_err(redb::Error::from)?;
    }
    drop(old);
    fs::rename(&tmp, dir.join(DB_FILE_NAME))?;
    fsutil::sync_dir(dir)?;
    fsutil::remove_dir_all_if_exists(&dir.join(DB_DIR_NAME))?;
    Ok(())
}

/// How long to wait for sled's own file lock (see [`open_sled`]).
const SLED_LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// Opens the old database. sled 0.34 holds its file lock until its flusher
/// thread lets go, a moment after the `Db` is dropped, so a database closed
/// earlier in this process (a failed attempt, or a test writing it) may be
/// locked for a few milliseconds; waiting is safe, failing would tell the
/// user their profile is damaged.
fn open_sled(dir: &Path) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + SLED_LOCK_PATIENCE;
    loop {
        match sled::Config::new().path(dir.join(DB_DIR_NAME)).open() {
            // sled 0.34 reports its lock as ErrorKind::Other with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Removes what an interrupted [`migrate`] may have left (never the old
/// database, never a complete new one).
pub(super) fn remove_leftovers(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(TMP_NAME)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use redb::{ReadableDatabase as _, ReadableTable as _};

    use super::*;
    use crate::store::{KdfParams, Opened, Vault};

    const PASS: &[u8] = b"correct horse battery staple";

    /// One table's raw rows: (key, record).
    type Rows = Vec<(Vec<u8>, Vec<u8>)>;

    /// Rewrites the profile in `dir` as a version before redb kept it: the
    /// same records in a sled database in `DIR/db/`, and no `store.redb`.
    fn make_legacy(dir: &Path) {
        let records: Vec<(String, Rows)> = {
            let db = redb::Database::create(dir.join(DB_FILE_NAME)).unwrap();
            let read = db.begin_read().unwrap();
            read.list_tables()
                .unwrap()
                .map(|h| {
                    let name = redb::TableHandle::name(&h).to_owned();
                    let t = read
                        .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
                        .unwrap();
                    let rows = t
                        .iter()
                        .unwrap()
                        .map(|r| {
                            let (k, v) = r.unwrap();
                            (k.value().to_vec(), v.value().to_vec())
                        })
                        .collect();
                    (name, rows)
                })
                .collect()
        };
        fs::remove_file(dir.join(DB_FILE_NAME)).unwrap();
        let old = sled::Config::new()
            .path(dir.join(DB_DIR_NAME))
            .open()
            .unwrap();
        for (name, rows) in records {
            let tree = old.open_tree(hex::decode(name).unwrap()).unwrap();
            for (k, v) in rows {
                tree.insert(k, v).unwrap();
            }
        }
        old.flush().unwrap();
    }

    fn unlock(dir: &Path) -> Vault {
        match Vault::open(dir, PASS).unwrap() {
            Opened::Unlocked(v) => v,
            Opened::Duress { .. } => panic!("duress"),
        }
    }

    /// An old profile opens with everything in it, is moved to redb once
    /// (the old database is gone), and opens again from the new one.
    #[test]
    fn an_old_sled_profile_is_moved_whole_at_the_first_unlock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let v = Vault::create(&dir, PASS, KdfParams::insecure_for_tests()).unwrap();
        v.put("contacts", b"alice", b"alice's record").unwrap();
        for i in 0..300u32 {
            v.put("messages", &i.to_be_bytes(), &vec![i as u8; 700])
                .unwrap();
        }
        drop(v);
        make_legacy(&dir);
        assert!(!dir.join(DB_FILE_NAME).exists());
        assert!(dir.join(DB_DIR_NAME).is_dir());

        let v = unlock(&dir);
        assert!(dir.join(DB_FILE_NAME).is_file());
        assert!(
            !dir.join(DB_DIR_NAME).exists(),
            "the old database is deleted"
        );
        assert!(!dir.join(TMP_NAME).exists());
        assert_eq!(
            v.get("contacts", b"alice").unwrap().unwrap().as_slice(),
            b"alice's record"
        );
        let messages = v.iter("messages").unwrap();
        assert_eq!(messages.len(), 300);
        assert_eq!(messages[299].1.as_slice(), vec![43u8; 700].as_slice());
        v.put("contacts", b"bob", b"new").unwrap();
        drop(v);
        let v = unlock(&dir);
        assert_eq!(v.iter("contacts").unwrap().len(), 2);
    }

    /// A migration killed before its rename leaves a partial new database
    /// beside the untouched old one: the next unlock starts over from the
    /// old one and loses nothing.
    #[test]
    fn an_interrupted_migration_starts_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let v = Vault::create(&dir, PASS, KdfParams::insecure_for_tests()).unwrap();
        v.put("contacts", b"alice", b"alice's record").unwrap();
        drop(v);
        make_legacy(&dir);
        fs::write(dir.join(TMP_NAME), b"half a database").unwrap();
        let v = unlock(&dir);
        assert_eq!(
            v.get("contacts", b"alice").unwrap().unwrap().as_slice(),
            b"alice's record"
        );
        assert!(!dir.join(TMP_NAME).exists());
    }
}

//! Crypto-erase: destroying the key file first, so that the database is
//! unreadable from that moment, then deleting what this module created. It
//! must never delete a file it did not create.

use std::fs;
use std::io;
use std::path::Path;

use super::keyfile::KEY_FILE_LEN;
use super::{
    DB_DIR_NAME, DB_FILE_NAME, KEY_TMP_NAME, LOCK_FILE_NAME, Vault, WipeError, fsutil, key_path,
    legacy,
};

impl Vault {
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
    match fs::remove_file(dir.join(DB_FILE_NAME)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    fsutil::remove_dir_all_if_exists(&dir.join(DB_DIR_NAME))?;
    legacy::remove_leftovers(dir)?;
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

//! File-system helpers: private directories, atomic key-file replacement, wipe.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use rand::Rng;

/// Creates `dir` (and parents) readable only by the owner on Unix.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Makes an existing `dir` readable only by its owner on Unix, if it is not.
pub(crate) fn tighten_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

fn private_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Fsyncs a directory so that renames and unlinks in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

/// Atomically replaces `target` with `bytes`: write `tmp`, fsync, rename, fsync dir.
pub(crate) fn write_atomic(dir: &Path, tmp: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let result = (|| {
        let mut f = private_file_options().open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(tmp, target)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Overwrites `path` in place with random bytes (at least `min_len`), fsyncs, then
/// deletes it. Returns `Ok(false)` if it did not exist.
pub(crate) fn shred_file(path: &Path, min_len: usize) -> io::Result<bool> {
    let mut f = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let len = usize::try_from(f.metadata()?.len())
        .unwrap_or(min_len)
        .max(min_len);
    let mut noise = vec![0u8; len];
    rand::rng().fill_bytes(&mut noise);
    f.write_all(&noise)?;
    f.sync_all()?;
    drop(f);
    fs::remove_file(path)?;
    Ok(true)
}

/// Removes a directory tree; a missing directory is not an error.
pub(crate) fn remove_dir_all_if_exists(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

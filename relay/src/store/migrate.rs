//! Opening the relay's store in its data directory: redb in
//! `DATA/store.redb` (the default), or sled in `DATA/store/` (relays before
//! issue 13, and the load generator's comparison).
//!
//! A sled store found where redb is wanted is moved into redb at start, in
//! an order that loses nothing to a crash at any point:
//!
//! 1. copy it into `store.redb.tmp` and commit that durably;
//! 2. rename `store/` to `store.moved/` (the copy is complete);
//! 3. rename `store.redb.tmp` to `store.redb`;
//! 4. delete `store.moved/`.
//!
//! The directory is synced after each rename. A crash in step 1 starts the
//! copy over; after step 2 the next start finishes steps 3 and 4. The
//! relay must never run on a half-copied store, never delete a sled store
//! that was not copied whole, and never delete one it did not move: a
//! `store/` next to a `store.redb` (an older relay was started on the
//! moved directory and made a new sled store, or a backup was restored
//! over part of it) may hold accepted envelopes, so the relay refuses to
//! start and says so instead of choosing.

use std::path::Path;
use std::sync::Arc;

use super::{RedbStore, SledStore, Store, StoreError, Totals};
use crate::config::StoreEngine;

/// The sled store's directory in the data directory.
pub const SLED_DIR: &str = "store";
/// The redb store's file in the data directory.
pub const REDB_FILE: &str = "store.redb";
const REDB_TMP: &str = "store.redb.tmp";
/// The sled store once its copy is complete, until it is deleted.
const SLED_MOVED: &str = "store.moved";

/// What [`open`] did besides opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Opened (or created) the configured store.
    AsIs,
    /// Moved a sled store into redb first; these are its totals.
    MovedFromSled(Totals),
    /// Finished a move that a crash interrupted after the copy.
    FinishedMove,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store itself failed to open or to copy.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation of the move failed.
    #[error("moving the store into redb: {0}")]
    Io(#[from] std::io::Error),
    /// `store = "sled"` with a redb store in the data directory: running on
    /// sled would hide every mailbox that is in redb.
    #[error(
        "this data directory holds a redb store ({REDB_FILE}); set `store = \"redb\"` in \
         relay.toml to use it"
    )]
    RedbPresent,
    /// Both stores are there: which one holds the envelopes is not for the
    /// relay to guess.
    #[error(
        "this data directory holds both a redb store ({REDB_FILE}) and a sled store \
         ({SLED_DIR}/), perhaps from an older relay started after the upgrade; both may \
         hold accepted envelopes. Move the one you do not want out of the data directory"
    )]
    BothStores,
}

fn exists(data: &Path, name: &str) -> bool {
    data.join(name).exists()
}

/// Opens the store `engine` names in `data`, moving a sled store into
/// redb first when redb is wanted and only sled is there.
///
/// # Errors
/// [`OpenError`].
pub fn open(data: &Path, engine: StoreEngine) -> Result<(Arc<dyn Store>, Opened), OpenError> {
    let redb_file = data.join(REDB_FILE);
    if engine == StoreEngine::Sled {
        if redb_file.exists() {
            return Err(OpenError::RedbPresent);
        }
        return Ok((
            Arc::new(SledStore::open(&data.join(SLED_DIR))?),
            Opened::AsIs,
        ));
    }
    let mut opened = Opened::AsIs;
    if exists(data, SLED_MOVED) {
        if exists(data, SLED_DIR) {
            return Err(OpenError::BothStores);
        }
        // A move interrupted after its copy was complete: finish it.
        if exists(data, REDB_TMP) && !redb_file.exists() {
            rename(data, REDB_TMP, REDB_FILE)?;
        }
        if redb_file.exists() {
            std::fs::remove_dir_all(data.join(SLED_MOVED))?;
            opened = Opened::FinishedMove;
        } else {
            // Renamed by hand, or the copy is gone: move it again.
            rename(data, SLED_MOVED, SLED_DIR)?;
        }
    }
    match (redb_file.exists(), exists(data, SLED_DIR)) {
        (true, true) => Err(OpenError::BothStores),
        (false, true) => {
            let totals = move_from_sled(data)?;
            let store = RedbStore::open(&redb_file)?;
            Ok((Arc::new(store), Opened::MovedFromSled(totals)))
        }
        (_, false) => Ok((Arc::new(RedbStore::open(&redb_file)?), opened)),
    }
}

/// Renames `from` to `to` in `data` and syncs the directory.
fn rename(data: &Path, from: &str, to: &str) -> std::io::Result<()> {
    std::fs::rename(data.join(from), data.join(to))?;
    std::fs::File::open(data)?.sync_all()
}

fn move_from_sled(data: &Path) -> Result<Totals, OpenError> {
    let tmp = data.join(REDB_TMP);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let totals = {
        let sled = SledStore::open(&data.join(SLED_DIR))?;
        let redb = RedbStore::open(&tmp)?;
        redb.import(|sink| sled.for_each_record(sink))?;
        let (from, to) = (sled.totals(), redb.totals());
        if from != to {
            tracing::error!("the copy of the sled store counts {to:?}, the original {from:?}");
            return Err(StoreError::Corrupt.into());
        }
        to
    };
    rename(data, SLED_DIR, SLED_MOVED)?;
    rename(data, REDB_TMP, REDB_FILE)?;
    std::fs::remove_dir_all(data.join(SLED_MOVED))?;
    Ok(totals)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::tests::record;

    fn fill_sled(data: &Path) -> Totals {
        let s = SledStore::open(&data.join(SLED_DIR)).unwrap();
        let (rid, open) = ([5u8; 24], [6u8; 24]);
        s.create_mailbox(&rid, &record(6, 0)).unwrap();
        s.create_mailbox(&open, &record(7, 0)).unwrap();
        s.secure(&rid, &[7; 32]).unwrap();
        let limits = crate::store::StoreLimits {
            mailbox_quota: 100,
            total_quota: 100,
            open_mailbox_quota: 10,
            open_total_quota: 10,
            secured_as_checked: vec![7; 32],
        };
        for _ in 0..3 {
            s.put_envelope(&rid, 0, &limits, &|id| id.to_vec()).unwrap();
        }
        let open_limits = crate::store::StoreLimits {
            secured_as_checked: Vec::new(),
            ..limits
        };
        s.put_envelope(&open, 0, &open_limits, &|id| id.to_vec())
            .unwrap();
        s.put_link(&[1; 32], &crate::store::tests::link(1, 10), 0, 10)
            .unwrap();
        s.flush().unwrap();
        s.totals()
    }

    /// A relay's sled store is moved whole into redb at the first start,
    /// the sled directory is gone after, and the next start just opens it.
    #[test]
    fn a_sled_store_is_moved_whole_into_redb() {
        let dir = tempfile::tempdir().unwrap();
        let before = fill_sled(dir.path());
        assert_eq!(before.envelopes, 4);
        let (s, opened) = open(dir.path(), StoreEngine::Redb).unwrap();
        assert_eq!(opened, Opened::MovedFromSled(before));
        assert_eq!(s.totals(), before);
        let (first, _) = s.next_envelope(&[5u8; 24], 0).unwrap();
        assert_eq!(crate::store::seq_of(&first.unwrap().id), 0);
        assert!(s.mailbox_by_sender(&[7u8; 24]).unwrap().is_some());
        assert!(s.link(&[1; 32]).unwrap().is_some());
        assert!(!dir.path().join(SLED_DIR).exists());
        drop(s);
        let (s, opened) = open(dir.path(), StoreEngine::Redb).unwrap();
        assert_eq!(opened, Opened::AsIs);
        assert_eq!(s.totals(), before);
        drop(s);
        assert!(matches!(
            open(dir.path(), StoreEngine::Sled),
            Err(OpenError::RedbPresent)
        ));
    }

    /// A move interrupted in its copy (a half-written temporary file)
    /// starts over; one interrupted after its copy was complete finishes.
    #[test]
    fn an_interrupted_move_starts_over_or_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let before = fill_sled(data);
        std::fs::write(data.join(REDB_TMP), b"half a copy").unwrap();
        let (s, opened) = open(data, StoreEngine::Redb).unwrap();
        assert_eq!(opened, Opened::MovedFromSled(before));
        assert!(!data.join(REDB_TMP).exists());
        drop(s);
        // As if the relay died between the two renames: the copy is whole.
        std::fs::rename(data.join(REDB_FILE), data.join(REDB_TMP)).unwrap();
        std::fs::create_dir(data.join(SLED_MOVED)).unwrap();
        let (s, opened) = open(data, StoreEngine::Redb).unwrap();
        assert_eq!(opened, Opened::FinishedMove);
        assert_eq!(s.totals(), before);
        drop(s);
        // As if it died before deleting the moved sled store.
        std::fs::create_dir(data.join(SLED_MOVED)).unwrap();
        let (s, opened) = open(data, StoreEngine::Redb).unwrap();
        assert_eq!(opened, Opened::FinishedMove);
        assert_eq!(s.totals(), before);
        assert!(!data.join(SLED_MOVED).exists());
    }

    /// A sled store next to a redb store (an older relay started on the
    /// moved directory made one, and may have accepted envelopes into it)
    /// is never deleted: the relay refuses to start, and both stay.
    #[test]
    fn a_sled_store_next_to_a_redb_store_is_refused_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        fill_sled(data);
        drop(open(data, StoreEngine::Redb).unwrap());
        let newer = fill_sled(data);
        assert!(matches!(
            open(data, StoreEngine::Redb),
            Err(OpenError::BothStores)
        ));
        assert!(data.join(REDB_FILE).exists());
        let sled = SledStore::open(&data.join(SLED_DIR)).unwrap();
        assert_eq!(sled.totals(), newer, "the sled store is untouched");
    }

    /// How fast a large sled store moves (a measurement, not a check; the
    /// figure is in deploy/README.md, Upgrades):
    /// `cargo test --release -p tropa-relay --lib moving_a_large -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement: fills 330 MB"]
    fn moving_a_large_sled_store() {
        const N: u32 = 20_000;
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(&dir.path().join(SLED_DIR)).unwrap();
            let limits = crate::store::StoreLimits {
                mailbox_quota: u32::MAX,
                total_quota: u64::MAX,
                open_mailbox_quota: u32::MAX,
                open_total_quota: u64::MAX,
                secured_as_checked: Vec::new(),
            };
            for m in 0..N / 1000 {
                let mut rid = [0u8; 24];
                rid[..4].copy_from_slice(&m.to_be_bytes());
                let mut rec = record(1, 0);
                rec.sender_id = rid.to_vec();
                s.create_mailbox(&rid, &rec).unwrap();
                for _ in 0..1000 {
                    s.put_envelope(&rid, 0, &limits, &|_| vec![0x5a; 16_412])
                        .unwrap();
                }
            }
            s.flush().unwrap();
        }
        let t = std::time::Instant::now();
        let (s, opened) = open(dir.path(), StoreEngine::Redb).unwrap();
        let took = t.elapsed().as_secs_f64();
        assert!(matches!(opened, Opened::MovedFromSled(_)));
        assert_eq!(s.totals().envelopes, u64::from(N));
        let mb = f64::from(N) * 16_412.0 / 1e6;
        eprintln!(
            "moved {N} envelopes ({mb:.0} MB) in {took:.1} s: {:.0} MB/s",
            mb / took
        );
    }
}

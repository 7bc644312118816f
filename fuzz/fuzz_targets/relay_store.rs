//! The relay's stored records, tampered with on disk: a redb (the default)
//! or sled database with whatever records the fuzzer writes into the
//! relay's tables is opened by the real `RedbStore` or `SledStore` and read
//! and written through the `Store` trait, single writes and batches. The
//! relay must answer with typed errors (`StoreError`), never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use redb::TableDefinition;
use tropa_relay::store::{
    LinkRecord, RecipientWrite, RedbStore, SledStore, Store, StoreLimits, SweepPolicy, WriteOp,
};

const TREES: [&str; 5] = ["meta", "mailboxes", "senders", "envelopes", "links"];

#[derive(Arbitrary, Debug)]
struct Input {
    /// redb (the relay's default) or sled.
    redb: bool,
    records: Vec<(u8, Vec<u8>, Vec<u8>)>,
    queries: Vec<Query>,
}

/// Each `u8` picks one of the written keys (so queries hit tampered records).
#[derive(Arbitrary, Debug)]
enum Query {
    Mailbox(u8),
    Sender(u8),
    Next(u8, u64),
    Ack(u8, u8),
    Put(u8, u32),
    Touch(u8, u32),
    Secure(u8, Vec<u8>),
    Delete(u8),
    Sweep(u32),
    Totals,
    /// A link put under a written key: owner, expiry hour, the hour now.
    PutLink(u8, Vec<u8>, u32, u32),
    Link(u8),
    DeleteLink(u8, Vec<u8>),
    /// A batch through `Store::apply`: a deposit into one mailbox and an
    /// ack of one ID in another.
    Apply(u8, u8, u8, u32),
}

fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        base.join(format!("tropa-fuzz-relay-store-{}", std::process::id()))
    })
}

/// The `i`-th written key (cycling), cut or zero-padded to `N` bytes.
fn pick<const N: usize>(keys: &[Vec<u8>], i: u8) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(k) = keys.get(usize::from(i) % keys.len().max(1)) {
        let n = k.len().min(N);
        out[..n].copy_from_slice(&k[..n]);
    }
    out
}

/// The records, raw, into the redb tables the relay's store reads.
fn write_redb(
    file: &std::path::Path,
    records: &[&(u8, Vec<u8>, Vec<u8>)],
) -> Result<(), redb::Error> {
    let db = redb::Database::create(file)?;
    let write = db.begin_write()?;
    for (table, k, v) in records {
        let name = TREES[usize::from(*table) % TREES.len()];
        write
            .open_table(TableDefinition::<&[u8], &[u8]>::new(name))?
            .insert(k.as_slice(), v.as_slice())?;
    }
    write.commit()?;
    Ok(())
}

fuzz_target!(|input: Input| {
    let path = dir();
    let _ = std::fs::remove_dir_all(path);
    let records: Vec<_> = input.records.iter().take(32).collect();
    let keys: Vec<Vec<u8>> = records.iter().map(|(_, k, _)| k.clone()).collect();
    let store: Box<dyn Store> = if input.redb {
        let file = path.join("store.redb");
        if std::fs::create_dir_all(path).is_err() || write_redb(&file, &records).is_err() {
            return;
        }
        match RedbStore::open(&file) {
            Ok(s) => Box::new(s),
            Err(_) => return,
        }
    } else {
        {
            let Ok(db) = sled::Config::new().path(path).temporary(false).open() else {
                return;
            };
            for (tree, k, v) in &records {
                let Ok(t) = db.open_tree(TREES[usize::from(*tree) % TREES.len()]) else {
                    return;
                };
                if t.insert(k.as_slice(), v.as_slice()).is_err() {
                    return;
                }
            }
            if db.flush().is_err() {
                return;
            }
        }
        match SledStore::open(path) {
            Ok(s) => Box::new(s),
            Err(_) => return,
        }
    };
    let limits = StoreLimits {
        mailbox_quota: 4,
        total_quota: 64,
        open_mailbox_quota: 2,
        open_total_quota: 16,
        secured_as_checked: Vec::new(),
    };
    for q in input.queries.iter().take(32) {
        match q {
            Query::Mailbox(i) => {
                let _ = store.mailbox(&pick(&keys, *i));
            }
            Query::Sender(i) => {
                let _ = store.mailbox_by_sender(&pick(&keys, *i));
            }
            Query::Next(i, from) => {
                let _ = store.next_envelope(&pick(&keys, *i), *from);
            }
            Query::Ack(i, j) => {
                let _ = store.ack(&pick(&keys, *i), &pick(&keys, *j));
            }
            Query::Put(i, hour) => {
                let _ = store.put_envelope(&pick(&keys, *i), *hour, &limits, &|_| vec![7; 64]);
            }
            Query::Touch(i, hour) => {
                let _ = store.touch(&pick(&keys, *i), *hour);
            }
            Query::Secure(i, key) => {
                let _ = store.secure(&pick(&keys, *i), key);
            }
            Query::Delete(i) => {
                let _ = store.delete_mailbox(&pick(&keys, *i));
            }
            Query::Sweep(now) => {
                let policy = SweepPolicy {
                    ttl_hours: 168,
                    idle_hours: 192,
                    unused_hours: 24,
                };
                let _ = store.sweep(*now, &policy);
            }
            Query::Totals => {
                let _ = store.totals();
            }
            Query::PutLink(i, owner, expires_hour, now) => {
                let rec = LinkRecord {
                    owner_auth_pub: owner.clone(),
                    expires_hour: *expires_hour,
                    sealed: vec![7; 64],
                };
                let _ = store.put_link(&pick(&keys, *i), &rec, *now, 8);
            }
            Query::Link(i) => {
                let _ = store.link(&pick(&keys, *i));
            }
            Query::DeleteLink(i, owner) => {
                let _ = store.delete_link(&pick(&keys, *i), owner);
            }
            Query::Apply(i, j, k, hour) => {
                let ops = [
                    WriteOp::Deposit {
                        recipient_id: pick(&keys, *i),
                        hour: *hour,
                        limits: limits.clone(),
                        seal: Box::new(|_| vec![7; 64]),
                    },
                    WriteOp::Recipient {
                        recipient_id: pick(&keys, *j),
                        hour: *hour,
                        action: RecipientWrite::Ack(vec![pick(&keys, *k)]),
                    },
                ];
                let _ = store.apply(&ops);
            }
        }
    }
});

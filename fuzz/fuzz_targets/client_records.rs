//! A client profile whose stored records were tampered with (a bug, a bad
//! flash cell, or someone holding the data key): the fuzzer writes records
//! of its choosing into the profile's trees, then the client opens the
//! profile, reads every view the front ends show, and runs a sync engine's
//! start. Every problem must be a typed error (`ClientError::Corrupt` and
//! friends), never a panic. (Without the data key, tampering is stopped
//! earlier by the store's AEAD; the key file has its own target.)
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tropa_client::engine::{Input as EngineInput, Mode};
use tropa_client::records::tree;
use tropa_client::store::{Batch, Kv, MemoryKv};
use tropa_client::{Client, SyncOptions};

const TREES: [&str; 13] = [
    tree::META,
    tree::CONTACTS,
    tree::SESSIONS,
    tree::MAILBOXES,
    tree::PENDING,
    tree::MESSAGES,
    tree::MESSAGE_IDS,
    tree::OUTBOX,
    tree::PROCESSED,
    tree::RECEIPTS_OWED,
    tree::USED_INVITATIONS,
    tree::COUNTERS,
    tree::CASES,
];

#[derive(Arbitrary, Debug)]
struct Input {
    /// (tree, key, value); a key of `None` overwrites an existing record.
    records: Vec<(u8, Option<Vec<u8>>, Vec<u8>)>,
}

/// A populated profile's records, made once.
fn base() -> &'static Vec<(String, Vec<u8>, Vec<u8>)> {
    static B: OnceLock<Vec<(String, Vec<u8>, Vec<u8>)>> = OnceLock::new();
    B.get_or_init(|| {
        let kv = Arc::new(MemoryKv::default());
        let relay = format!("tropa://{}@relay.example:4433", "A".repeat(43))
            .parse()
            .expect("address");
        let c = Client::in_memory(kv.clone(), "fuzz", &relay).expect("profile");
        drop(c);
        let mut out = Vec::new();
        for t in TREES {
            for e in kv.iter(t).expect("iter") {
                out.push((t.to_owned(), e.0.to_vec(), e.1.to_vec()));
            }
        }
        out
    })
}

fuzz_target!(|input: Input| {
    let base = base();
    let kv = Arc::new(MemoryKv::default());
    let mut batch = Batch::new();
    for (t, k, v) in base {
        batch.put(t, k, v);
    }
    for (t, k, v) in input.records.iter().take(16) {
        let tree = TREES[usize::from(*t) % TREES.len()];
        let key = match k {
            Some(k) => k.clone(),
            None => match base.iter().filter(|r| r.0 == tree).nth(v.len() % 4) {
                Some(r) => r.1.clone(),
                None => continue,
            },
        };
        batch.put(tree, &key, v);
    }
    if kv.apply(batch).is_err() {
        return;
    }
    let relay = format!("tropa://{}@relay.example:4433", "A".repeat(43))
        .parse()
        .expect("address");
    let Ok(client) = Client::in_memory(kv, "fuzz", &relay) else {
        return;
    };
    let _ = client.messages(None);
    let _ = client.cases();
    let _ = client.snapshot();
    if let Ok(contacts) = client.contacts() {
        for c in contacts.iter().take(4) {
            let _ = client.contact(&c.alias);
            let _ = client.messages(Some(&c.alias));
            let _ = client.safety(&c.alias);
            let _ = client.case(&c.alias);
        }
    }
    let _ = client.purge_expired();
    let mut engine = client.engine_seeded(Mode::Sync, SyncOptions::default(), [9; 32]);
    let _ = engine.handle(EngineInput::Start, 1_750_000_000);
    let _ = engine.handle(EngineInput::Tick, 1_750_000_001);
    let _ = engine.handle(EngineInput::Stop, 1_750_000_002);
});

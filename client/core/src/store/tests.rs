//! Tests of the encrypted profile store, on real files in temporary directories.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::keyfile::KEY_FILE_LEN;
use super::*;

const PASS: &[u8] = b"correct horse battery staple";
const PARAMS: KdfParams = KdfParams::insecure_for_tests();

fn profile() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("profile");
    (tmp, dir)
}

fn unlock(dir: &Path, pass: &[u8]) -> Vault {
    match Vault::open(dir, pass).unwrap() {
        Opened::Unlocked(v) => v,
        Opened::Duress { .. } => panic!("unexpected duress"),
    }
}

/// Path → SHA-256 of the contents (directories by name only), for the whole tree.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<[u8; 32]>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<[u8; 32]>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                let bytes = fs::read(&path).unwrap();
                out.insert(rel, Some(Sha256::digest(&bytes).into()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// All files under `dir` whose contents contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &[u8], out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, needle, out);
            } else {
                let bytes = fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    out.push(path);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, needle, &mut out);
    out
}

#[test]
fn round_trip_across_reopen() {
    let (_tmp, dir) = profile();
    assert!(!Vault::exists(&dir));
    {
        let v = Vault::create(&dir, PASS, PARAMS).unwrap();
        assert!(Vault::exists(&dir));
        v.put("contacts", b"bob", b"Bob the handler").unwrap();
        v.put("contacts", b"alice", b"Alice").unwrap();
        v.put("messages", b"bob", b"a different tree").unwrap();
        v.put("contacts", b"empty", b"").unwrap();
        v.put("contacts", b"", b"empty key").unwrap();
        v.put("contacts", b"alice", b"Alice v2").unwrap();
        assert!(v.remove("contacts", b"empty").unwrap());
        assert!(!v.remove("contacts", b"never").unwrap());
    }
    let v = unlock(&dir, PASS);
    assert_eq!(
        v.get("contacts", b"alice").unwrap().unwrap().as_slice(),
        b"Alice v2"
    );
    assert_eq!(
        v.get("messages", b"bob").unwrap().unwrap().as_slice(),
        b"a different tree"
    );
    assert!(v.get("contacts", b"empty").unwrap().is_none());
    assert!(v.get("nosuchtree", b"x").unwrap().is_none());
    let all: Vec<(Vec<u8>, Vec<u8>)> = v
        .iter("contacts")
        .unwrap()
        .into_iter()
        .map(|(k, val)| (k, val.to_vec()))
        .collect();
    assert_eq!(
        all,
        vec![
            (b"".to_vec(), b"empty key".to_vec()),
            (b"alice".to_vec(), b"Alice v2".to_vec()),
            (b"bob".to_vec(), b"Bob the handler".to_vec()),
        ]
    );
    assert!(v.iter("nosuchtree").unwrap().is_empty());
}

#[test]
fn large_values_round_trip() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    v.put("blobs", b"big", &big).unwrap();
    drop(v);
    let v = unlock(&dir, PASS);
    assert_eq!(
        v.get("blobs", b"big").unwrap().unwrap().as_slice(),
        &big[..]
    );
}

#[test]
fn batch_is_applied_across_trees_and_in_order() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    v.put("outbox", b"env-1", b"pending").unwrap();
    let mut b = Batch::new();
    b.put("messages", b"m1", b"hello")
        .put("sessions", b"bob", b"ratchet-2")
        .remove("outbox", b"env-1")
        .put("sessions", b"bob", b"ratchet-3")
        .put("tmp", b"x", b"1")
        .remove("tmp", b"x");
    assert_eq!(b.len(), 6);
    v.apply(b).unwrap();
    v.apply(Batch::new()).unwrap();
    drop(v);
    let v = unlock(&dir, PASS);
    assert_eq!(
        v.get("messages", b"m1").unwrap().unwrap().as_slice(),
        b"hello"
    );
    assert_eq!(
        v.get("sessions", b"bob").unwrap().unwrap().as_slice(),
        b"ratchet-3"
    );
    assert!(v.get("outbox", b"env-1").unwrap().is_none());
    assert!(v.get("tmp", b"x").unwrap().is_none());
}

#[test]
fn batch_is_atomic_for_concurrent_readers() {
    let (_tmp, dir) = profile();
    let v = std::sync::Arc::new(Vault::create(&dir, PASS, PARAMS).unwrap());
    let mut b = Batch::new();
    b.put("a", b"k", b"0").put("c", b"k", b"0");
    v.apply(b).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (v, stop) = (v.clone(), stop.clone());
        std::thread::spawn(move || {
            let (ta_id, ta) = v.tree("a");
            let (tc_id, tc) = v.tree("c");
            let ka = v.keys.key_id(&ta_id, b"k");
            let kc = v.keys.key_id(&tc_id, b"k");
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                // One consistent snapshot of both trees.
                use redb::{ReadableDatabase as _, TableDefinition};
                let read = v.db.begin_read().unwrap();
                let get = |name: &str, k: &[u8]| {
                    let t = read
                        .open_table(TableDefinition::<&[u8], &[u8]>::new(name))
                        .unwrap();
                    t.get(k).unwrap().map(|r| r.value().to_vec())
                };
                let (ra, rc) = (get(&ta, &ka[..]), get(&tc, &kc[..]));
                let a = v.keys.open(&ta_id, &ka, &ra.unwrap()).unwrap().1;
                let c = v.keys.open(&tc_id, &kc, &rc.unwrap()).unwrap().1;
                assert_eq!(a, c, "a reader saw half a batch");
                reads += 1;
            }
            reads
        })
    };
    for i in 1..=150u32 {
        let mut b = Batch::new();
        b.put("a", b"k", i.to_string().as_bytes())
            .put("c", b"k", i.to_string().as_bytes());
        v.apply(b).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(v.get("c", b"k").unwrap().unwrap().as_slice(), b"150");
}

/// Child half of `batch_survives_kill_9`: applies batches forever, reporting each
/// one after `apply` returned. Does nothing unless started by the parent.
#[test]
fn batch_crash_child() {
    let Some(dir) = std::env::var_os("TROPA_STORE_CRASH_CHILD_DIR") else {
        return;
    };
    let v = unlock(Path::new(&dir), PASS);
    for i in 0u32.. {
        let mut b = Batch::new();
        let k = i.to_be_bytes();
        b.put("messages", &k, b"decrypted message")
            .put("sessions", &k, b"ratchet state")
            .remove("inbox", &k);
        v.apply(b).unwrap();
        println!("applied {i}");
    }
}

/// Batches are atomic and durable across `kill -9`: every batch reported as
/// applied is fully present, and no batch is half present.
#[test]
fn batch_survives_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let (_tmp, dir) = profile();
    {
        let v = Vault::create(&dir, PASS, PARAMS).unwrap();
        let mut b = Batch::new();
        for i in 0..2000u32 {
            b.put("inbox", &i.to_be_bytes(), b"envelope");
        }
        v.apply(b).unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "store::tests::batch_crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TROPA_STORE_CRASH_CHILD_DIR", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_acked: Option<u32> = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("applied ") {
            let n: u32 = n.parse().unwrap();
            last_acked = Some(n);
            if n >= 60 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let last_acked = last_acked.expect("child applied nothing");

    let v = unlock(&dir, PASS);
    let mut last_present = None;
    for i in 0..2000u32 {
        let k = i.to_be_bytes();
        let m = v.get("messages", &k).unwrap().is_some();
        let s = v.get("sessions", &k).unwrap().is_some();
        let inbox = v.get("inbox", &k).unwrap().is_some();
        assert!(
            m == s && m != inbox,
            "batch {i} half applied: {m} {s} {inbox}"
        );
        if m {
            last_present = Some(i);
        }
    }
    let last_present = last_present.unwrap();
    assert!(
        last_present >= last_acked,
        "acknowledged batch {last_acked} lost"
    );
    // batches are contiguous
    assert_eq!(v.iter("messages").unwrap().len() as u32, last_present + 1);
}

#[test]
fn wrong_passphrase_is_typed_and_changes_nothing() {
    let (_tmp, dir) = profile();
    {
        let v = Vault::create(&dir, PASS, PARAMS).unwrap();
        v.put("contacts", b"bob", b"Bob").unwrap();
        v.set_duress(b"duress", b"decoy").unwrap();
    }
    let before = snapshot(&dir);
    for wrong in [&b"wrong"[..], b"", b"correct horse battery stapl"] {
        match Vault::open(&dir, wrong) {
            Err(OpenError::WrongPassphrase) => {}
            other => panic!("expected WrongPassphrase, got {other:?}"),
        }
    }
    assert_eq!(
        snapshot(&dir),
        before,
        "a failed open changed the directory"
    );
    // and the right one still works
    let v = unlock(&dir, PASS);
    assert_eq!(
        v.get("contacts", b"bob").unwrap().unwrap().as_slice(),
        b"Bob"
    );
}

#[test]
fn missing_and_corrupt_key_files_are_typed_errors() {
    let (_tmp, dir) = profile();
    assert!(matches!(Vault::open(&dir, PASS), Err(OpenError::NoProfile)));
    drop(Vault::create(&dir, PASS, PARAMS).unwrap());
    let key = dir.join(KEY_FILE_NAME);
    let good = fs::read(&key).unwrap();
    assert_eq!(good.len(), KEY_FILE_LEN);

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "empty"),
        (good[..100].to_vec(), "truncated"),
        ([good.clone(), vec![0]].concat(), "too long"),
        (vec![0u8; KEY_FILE_LEN], "zeros"),
        (
            {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&u32::MAX.to_le_bytes()); // m_cost 4 TiB
                b
            },
            "huge memory cost",
        ),
        (
            {
                let mut b = good.clone();
                b[16..20].copy_from_slice(&0u32.to_le_bytes()); // p_cost 0
                b
            },
            "zero lanes",
        ),
        (
            {
                let mut b = good.clone();
                b[6] = 1;
                b
            },
            "reserved bytes",
        ),
    ];
    for (bytes, what) in cases {
        fs::write(&key, &bytes).unwrap();
        match Vault::open(&dir, PASS) {
            Err(OpenError::Corrupt(_)) => {}
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(fs::read(&key).unwrap(), bytes, "{what}: key file changed");
    }

    let mut b = good.clone();
    b[4] = 9;
    fs::write(&key, &b).unwrap();
    assert!(matches!(
        Vault::open(&dir, PASS),
        Err(OpenError::UnsupportedVersion(9))
    ));

    // A flipped bit in the main slot's ciphertext or parameters: indistinguishable
    // from a wrong passphrase.
    for pos in [8, 8 + 12, 8 + 30, 8 + 60, 8 + 1079] {
        let mut b = good.clone();
        b[pos] ^= 0x01;
        fs::write(&key, &b).unwrap();
        assert!(
            matches!(Vault::open(&dir, PASS), Err(OpenError::WrongPassphrase)),
            "flip at {pos}"
        );
    }

    fs::write(&key, &good).unwrap();
    drop(unlock(&dir, PASS));
}

/// The database's tables without the vault: what someone who can write
/// the profile's files can do.
struct Raw<'a>(&'a redb::Database);

impl Raw<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Vec<u8> {
        use redb::{ReadableDatabase as _, TableDefinition};
        let read = self.0.begin_read().unwrap();
        let t = read
            .open_table(TableDefinition::<&[u8], &[u8]>::new(table))
            .unwrap();
        t.get(key).unwrap().unwrap().value().to_vec()
    }

    fn write(&self, table: &str, f: impl FnOnce(&mut redb::Table<'_, &[u8], &[u8]>)) {
        let write = self.0.begin_write().unwrap();
        {
            let mut t = write
                .open_table(redb::TableDefinition::<&[u8], &[u8]>::new(table))
                .unwrap();
            f(&mut t);
        }
        write.commit().unwrap();
    }
}

struct RawTable<'a>(&'a Raw<'a>, &'a str);

impl RawTable<'_> {
    fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0.write(self.1, |t| {
            t.insert(key.as_ref(), value.as_ref()).unwrap();
        });
    }

    fn remove(&self, key: impl AsRef<[u8]>) {
        self.0.write(self.1, |t| {
            t.remove(key.as_ref()).unwrap();
        });
    }
}

#[test]
fn tampered_or_swapped_values_are_detected() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    v.put("t", b"k1", b"value one").unwrap();
    v.put("t", b"k2", b"value two").unwrap();
    v.put("u", b"k1", b"other tree").unwrap();

    let (t_id, t_name) = v.tree("t");
    let (u_id, u_name) = v.tree("u");
    let k1 = v.keys.key_id(&t_id, b"k1");
    let k2 = v.keys.key_id(&t_id, b"k2");
    let uk1 = v.keys.key_id(&u_id, b"k1");
    // Raw access to the tables, as someone with the files would have.
    let raw = Raw(&v.db);
    let r1 = raw.get(&t_name, &k1);
    let r2 = raw.get(&t_name, &k2);
    let ru = raw.get(&u_name, &uk1);
    let t = RawTable(&raw, &t_name);

    // swap between keys of one tree
    t.insert(k1, r2.clone());
    assert!(matches!(v.get("t", b"k1"), Err(StoreError::Tampered)));
    assert!(matches!(v.iter("t"), Err(StoreError::Tampered)));
    // moved from another tree under the same key
    t.insert(k1, ru.clone());
    assert!(matches!(v.get("t", b"k1"), Err(StoreError::Tampered)));
    // flipped bit in each part of the record
    for pos in [0, 1, 30, r1.len() - 1] {
        let mut bad = r1.clone();
        bad[pos] ^= 0x80;
        t.insert(k1, bad);
        assert!(
            matches!(v.get("t", b"k1"), Err(StoreError::Tampered)),
            "flip at {pos}"
        );
    }
    // truncated and empty records
    t.insert(k1, &r1[..10]);
    assert!(matches!(v.get("t", b"k1"), Err(StoreError::Tampered)));
    t.insert(k1, &[][..]);
    assert!(matches!(v.get("t", b"k1"), Err(StoreError::Tampered)));
    // a record under a key that is not a 32-byte id
    t.insert(k1, r1.clone());
    t.insert(b"short", r1.clone());
    assert!(matches!(v.iter("t"), Err(StoreError::Tampered)));
    t.remove(b"short");
    // restored: all good again
    assert_eq!(v.get("t", b"k1").unwrap().unwrap().as_slice(), b"value one");
    assert_eq!(v.iter("t").unwrap().len(), 2);
}

/// S9: nothing sensitive is visible in any file of the profile directory.
#[test]
fn directory_reveals_no_plaintext() {
    let (_tmp, dir) = profile();
    let tree = "contacts-tree-name-XYZZY";
    let key = b"key-name-alias-PLUGH";
    let value = b"message plaintext: meet at the station at noon QWERTY";
    let relay = b"relay.example.org:4433#fingerprint";
    let pass = b"passphrase-SECRET-12345";
    let duress = b"duress-SECRET-67890";
    {
        let v = Vault::create(&dir, pass, PARAMS).unwrap();
        v.put(tree, key, value).unwrap();
        v.put("profile", b"relay", relay).unwrap();
        let mut b = Batch::new();
        for i in 0..500u32 {
            b.put(tree, format!("bulk-key-{i}").as_bytes(), value);
        }
        v.apply(b).unwrap();
        v.set_duress(duress, b"decoy-name-FROBOZZ").unwrap();
        v.flush().unwrap();
    }
    // And once more after a reopen, so the database has rewritten its files.
    drop(unlock(&dir, pass));

    let needles: Vec<&[u8]> = vec![
        tree.as_bytes(),
        key,
        b"bulk-key-1",
        value,
        b"QWERTY",
        relay,
        b"relay",
        b"contacts",
        pass,
        duress,
        b"FROBOZZ",
    ];
    for needle in &needles {
        let hits = files_containing(&dir, needle);
        assert!(
            hits.is_empty(),
            "{:?} found in {hits:?}",
            String::from_utf8_lossy(needle)
        );
    }

    // The check must be able to fail: a plaintext written in clear is found.
    fs::write(dir.join("side-file"), [&b"xx"[..], value, b"yy"].concat()).unwrap();
    assert_eq!(files_containing(&dir, value), vec![dir.join("side-file")]);
}

#[test]
fn duress_wipes_and_returns_decoy() {
    let (_tmp, dir) = profile();
    {
        let v = Vault::create(&dir, PASS, PARAMS).unwrap();
        v.put("messages", b"m", b"secret").unwrap();
        assert!(matches!(
            v.set_duress(PASS, b"x"),
            Err(PassphraseError::DuressSameAsMain)
        ));
        assert!(matches!(
            v.set_duress(b"", b"x"),
            Err(PassphraseError::EmptyPassphrase)
        ));
        assert!(matches!(
            v.set_duress(b"d", &vec![0u8; MAX_DECOY_LEN + 1]),
            Err(PassphraseError::DecoyTooLarge { .. })
        ));
        v.set_duress(b"first duress", b"old decoy").unwrap();
        v.set_duress(b"duress", b"name=Ali;relay=r.example:1")
            .unwrap();
    }
    // the replaced duress passphrase no longer works
    assert!(matches!(
        Vault::open(&dir, b"first duress"),
        Err(OpenError::WrongPassphrase)
    ));
    match Vault::open(&dir, b"duress").unwrap() {
        Opened::Duress { decoy, vault } => {
            assert_eq!(decoy.as_slice(), b"name=Ali;relay=r.example:1");
            // A fresh, empty profile in the same place, with the same cost.
            assert!(vault.get("messages", b"m").unwrap().is_none());
            assert_eq!(vault.kdf_params().unwrap(), PARAMS);
        }
        Opened::Unlocked(_) => panic!("duress passphrase unlocked the profile"),
    }
    // The old data is gone for good; the duress passphrase is now the main one.
    assert!(matches!(
        Vault::open(&dir, PASS),
        Err(OpenError::WrongPassphrase)
    ));
    let v = unlock(&dir, b"duress");
    assert!(v.get("messages", b"m").unwrap().is_none());
}

#[test]
fn key_file_length_does_not_reveal_duress() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    let key = dir.join(KEY_FILE_NAME);
    let without = fs::read(&key).unwrap();
    v.set_duress(b"duress", b"some decoy").unwrap();
    let with = fs::read(&key).unwrap();
    v.clear_duress().unwrap();
    let cleared = fs::read(&key).unwrap();
    assert_eq!(without.len(), KEY_FILE_LEN);
    assert_eq!(with.len(), KEY_FILE_LEN);
    assert_eq!(cleared.len(), KEY_FILE_LEN);
    // Slot 0 and the header are untouched by duress changes; slot 1 always changes.
    let slot1 = 8 + keyfile::SLOT_LEN;
    assert_eq!(without[..slot1], with[..slot1]);
    assert_eq!(with[..slot1], cleared[..slot1]);
    // Parameter fields of slot 1 look the same whether set or not.
    assert_eq!(without[slot1..slot1 + 12], with[slot1..slot1 + 12]);
    assert_ne!(without[slot1 + 12..], with[slot1 + 12..]);
    assert_ne!(with[slot1 + 12..], cleared[slot1 + 12..]);
    drop(v);
    assert!(matches!(
        Vault::open(&dir, b"duress"),
        Err(OpenError::WrongPassphrase)
    ));
}

#[test]
fn change_passphrase_keeps_data() {
    let (_tmp, dir) = profile();
    {
        let v = Vault::create(&dir, PASS, PARAMS).unwrap();
        v.put("t", b"k", b"v").unwrap();
        v.set_duress(b"duress", b"decoy").unwrap();
        assert!(matches!(
            v.change_passphrase(b"duress", None),
            Err(PassphraseError::SameAsDuress)
        ));
        assert!(matches!(
            v.change_passphrase(b"", None),
            Err(PassphraseError::EmptyPassphrase)
        ));
        assert!(matches!(
            v.change_passphrase(
                b"new",
                Some(KdfParams {
                    m_cost_kib: 8,
                    t_cost: 0,
                    p_cost: 1
                })
            ),
            Err(PassphraseError::InvalidParams(_))
        ));
        let new_params = KdfParams {
            m_cost_kib: 128,
            ..PARAMS
        };
        v.change_passphrase(b"new passphrase", Some(new_params))
            .unwrap();
        assert!(!dir.join("key.tmp").exists());
    }
    assert!(matches!(
        Vault::open(&dir, PASS),
        Err(OpenError::WrongPassphrase)
    ));
    let v = unlock(&dir, b"new passphrase");
    assert_eq!(v.get("t", b"k").unwrap().unwrap().as_slice(), b"v");
    drop(v);
    // The duress slot survives a passphrase change (with its own parameters).
    assert!(matches!(
        Vault::open(&dir, b"duress").unwrap(),
        Opened::Duress { .. }
    ));
}

#[test]
fn create_refuses_existing_profile_and_bad_input() {
    let (_tmp, dir) = profile();
    assert!(matches!(
        Vault::create(&dir, b"", PARAMS),
        Err(CreateError::EmptyPassphrase)
    ));
    assert!(matches!(
        Vault::create(
            &dir,
            PASS,
            KdfParams {
                m_cost_kib: MAX_M_COST_KIB + 1,
                ..PARAMS
            }
        ),
        Err(CreateError::InvalidParams(_))
    ));
    assert!(!dir.exists());
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    v.put("t", b"k", b"v").unwrap();
    drop(v);
    let before = snapshot(&dir);
    assert!(matches!(
        Vault::create(&dir, b"other", PARAMS),
        Err(CreateError::AlreadyExists)
    ));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn profile_is_locked_while_open() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    assert!(matches!(Vault::open(&dir, PASS), Err(OpenError::Locked)));
    drop(v);
    let v = unlock(&dir, PASS);
    assert!(matches!(Vault::open(&dir, PASS), Err(OpenError::Locked)));
    drop(v);
}

#[test]
fn wipe_is_fast_and_complete() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    let mut b = Batch::new();
    for i in 0..3000u32 {
        b.put(
            "messages",
            &i.to_be_bytes(),
            format!("message number {i} with some text").as_bytes(),
        );
    }
    v.apply(b).unwrap();
    drop(v);
    let start = Instant::now();
    wipe(&dir).unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "wipe took {took:?}");
    assert!(!dir.exists());
    assert!(!Vault::exists(&dir));
    // idempotent
    wipe(&dir).unwrap();
}

#[test]
fn wipe_of_open_vault_and_foreign_files_are_kept() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    v.put("t", b"k", b"v").unwrap();
    fs::write(dir.join("not-ours.txt"), b"user file").unwrap();
    let start = Instant::now();
    v.wipe().unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(!Vault::exists(&dir));
    assert!(!dir.join(DB_FILE_NAME).exists());
    assert_eq!(fs::read(dir.join("not-ours.txt")).unwrap(), b"user file");
    assert!(matches!(Vault::open(&dir, PASS), Err(OpenError::NoProfile)));
}

#[test]
fn debug_output_is_redacted() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    v.set_duress(b"duress", b"DECOYSECRET").unwrap();
    let mut b = Batch::new();
    b.put("TREESECRET", b"KEYSECRET", b"VALUESECRET");
    let dbg = format!("{v:?} {b:?} {:?}", v.keys);
    for s in ["TREESECRET", "KEYSECRET", "VALUESECRET"] {
        assert!(!dbg.contains(s));
    }
    drop(v);
    let opened = Vault::open(&dir, b"duress").unwrap();
    assert!(!format!("{opened:?}").contains("DECOYSECRET"));
    let err = Vault::open(&dir, b"my passphrase").unwrap_err();
    assert!(!format!("{err:?} {err}").contains("my passphrase"));
}

/// Real parameters: one create + open must stay within a few seconds.
#[test]
fn default_params_are_usable() {
    let (_tmp, dir) = profile();
    let start = Instant::now();
    drop(Vault::create(&dir, PASS, KdfParams::default()).unwrap());
    let v = unlock(&dir, PASS);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "default KDF took {took:?}");
    drop(v);
    assert!(matches!(
        Vault::open(&dir, b"wrong"),
        Err(OpenError::WrongPassphrase)
    ));
}

#[test]
fn missing_database_is_not_silently_recreated() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    v.put("t", b"k", b"v").unwrap();
    drop(v);
    fs::remove_file(dir.join(DB_FILE_NAME)).unwrap();
    assert!(matches!(
        Vault::open(&dir, PASS),
        Err(OpenError::Corrupt(_))
    ));
    assert!(!dir.join(DB_FILE_NAME).exists());
}

#[test]
fn vault_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Vault>();
    check::<Batch>();
}

/// A profile directory that became readable by others (copied, restored
/// from a backup, created by an older version) is made private again at
/// the next unlock.
#[cfg(unix)]
#[test]
fn unlock_tightens_a_loose_profile_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_tmp, dir) = profile();
    drop(Vault::create(&dir, PASS, PARAMS).unwrap());
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(
        Vault::open(&dir, b"wrong"),
        Err(OpenError::WrongPassphrase)
    ));
    drop(unlock(&dir, PASS));
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

/// Closing a profile and opening it again at once (the desk after the CLI,
/// a test after `drop`) must not fail on the database's own file lock.
/// With sled, whose background flusher released it a moment after the `Db`
/// was dropped, this failed within a few rounds with "could not acquire
/// lock" until `open_db` waited for it.
#[test]
fn reopening_right_after_closing_never_trips_on_the_database_lock() {
    let (_tmp, dir) = profile();
    let v = Vault::create(&dir, PASS, PARAMS).unwrap();
    v.put("t", b"k", b"v").unwrap();
    drop(v);
    for round in 0..200 {
        let v = match Vault::open(&dir, PASS) {
            Ok(Opened::Unlocked(v)) => v,
            Ok(Opened::Duress { .. }) => panic!("unexpected duress"),
            Err(e) => panic!("round {round}: {e}"),
        };
        v.put("t", b"k", &[round as u8]).unwrap();
        drop(v);
    }
}

//! The `tropa` CLI as a deserter uses it, for the defects of issue 9: each
//! test drives the real binary against real relays and checks what the
//! user is told (exit code and words), and that nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tropa_tests::{Profile, RelayProcess, alice_and_bob, connect_profiles, relay_on_fixed_port};

fn texts(p: &Profile, alias: &str) -> Vec<String> {
    p.read_json(Some(alias))
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

fn contacts(p: &Profile) -> Vec<serde_json::Value> {
    p.tropa(&["contacts", "--json"])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Item 4: with the relay down, `send` says within seconds that the text
/// is queued, and exits 5 as README says; the next `sync` delivers it.
#[test]
fn send_with_the_relay_down_is_queued_quickly_and_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let relay = relay_on_fixed_port(&data);
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    relay.kill9();
    let started = Instant::now();
    let q = bob.tropa_input(&["send", "alice"], "while the relay is down");
    let took = started.elapsed();
    assert_eq!(q.code, 5, "{q:?}");
    assert!(q.stderr.contains("queued for alice"), "{q:?}");
    assert!(took < Duration::from_secs(10), "send took {took:?}");
    let _relay = RelayProcess::start(&data);
    bob.tropa(&["sync"]).ok();
    alice.tropa(&["sync"]).ok();
    assert_eq!(texts(&alice, "bob"), vec!["while the relay is down"]);
}

/// Item 4: a relay that answers with another key than the address names
/// is a failure (exit 5), with the reason in plain words.
#[test]
fn sync_against_a_relay_with_another_key_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let other = RelayProcess::start(&dir.path().join("other"));
    let mut wrong = relay.address.clone();
    wrong.fingerprint = other.address.fingerprint;
    let alice = Profile::init_offline(dir.path(), "alice", &wrong);
    let s = alice.tropa(&["sync"]);
    assert_eq!(s.code, 5, "{s:?}");
    assert!(s.stderr.contains("does not match"), "{s:?}");
}

/// Item 3: a contact whose mailbox is gone (their relay lost it) breaks
/// only itself: sending to someone else succeeds with exit 0 and no word
/// about it, `sync` and `contacts` say what is wrong, and sending to the
/// broken contact is refused up front.
#[test]
fn a_broken_contact_does_not_spoil_other_sends() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = RelayProcess::start(&dir.path().join("r1"));
    let r2_data = dir.path().join("r2");
    let r2 = relay_on_fixed_port(&r2_data);
    let (alice, bob) = alice_and_bob(dir.path(), &r1.address);
    let x = Profile::init(dir.path(), "x", &r2.address);
    connect_profiles(&bob, "x", &x, "bob");
    // x's relay loses its store: bob's mailbox at x is gone.
    r2.kill9();
    std::fs::remove_file(r2_data.join("store.redb")).unwrap();
    let _r2 = RelayProcess::start(&r2_data);

    let first = bob.tropa_input(&["send", "x"], "are you there");
    assert_eq!(first.code, 5, "{first:?}");
    assert!(first.stderr.contains("cannot be reached"), "{first:?}");
    let to_alice = bob.tropa_input(&["send", "alice"], "hello alice");
    assert_eq!(to_alice.code, 0, "{to_alice:?}");
    assert!(!to_alice.stderr.contains('x'), "{to_alice:?}");
    let again = bob.tropa_input(&["send", "x"], "again");
    assert_eq!(again.code, 5, "{again:?}");
    assert!(again.stderr.contains("new invitation"), "{again:?}");

    let s = bob.tropa(&["sync"]);
    assert_eq!(s.code, 0, "{s:?}");
    assert!(s.stderr.contains("cannot be reached any more: x"), "{s:?}");
    let c = contacts(&bob);
    let states: Vec<(&str, &str)> = c
        .iter()
        .map(|c| (c["alias"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, vec![("alice", "established"), ("x", "broken")]);
    // Nothing typed was lost: the first text to x is still there, queued.
    let to_x: Vec<(String, String)> = bob
        .read_json(Some("x"))
        .iter()
        .map(|m| {
            (
                m["text"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(to_x, vec![("are you there".into(), "queued".into())]);
    alice.tropa(&["sync"]).ok();
    assert_eq!(texts(&alice, "bob"), vec!["hello alice"]);
}

/// Item 2: a second person accepting a link that was already used is told
/// so (not "unreachable"), exit 6, and no half-made contact stays.
#[test]
fn a_used_link_is_refused_and_leaves_no_contact() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    let eve = Profile::init(dir.path(), "eve", &relay.address);
    let link = alice.tropa(&["invite", "--name", "bob"]).ok().stdout;
    bob.tropa_input(&["accept", "--name", "alice"], &link).ok();
    alice.tropa(&["sync"]).ok();
    let second = eve.tropa_input(&["accept", "--name", "alice"], &link);
    assert_eq!(second.code, 6, "{second:?}");
    assert!(second.stderr.contains("already used"), "{second:?}");
    assert!(contacts(&eve).is_empty(), "a half-made contact stayed");
}

/// Item 2: contacts can be renamed and deleted, open invitations listed
/// and cancelled; a cancelled link no longer works.
#[test]
fn contacts_rename_delete_and_invitations_list_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    alice.tropa(&["contacts", "rename", "bob", "bob-k"]).ok();
    assert_eq!(contacts(&alice)[0]["alias"], "bob-k");
    let taken = alice.tropa(&["contacts", "rename", "bob-k", "bob-k"]);
    assert_eq!(taken.code, 0, "renaming to itself is fine: {taken:?}");

    let link = alice.tropa(&["invite", "--name", "carol"]).ok().stdout;
    let listed = alice.tropa(&["invite", "--list"]).ok();
    assert!(listed.stdout.starts_with("carol (until "), "{listed:?}");
    alice.tropa(&["invite", "--cancel", "carol"]).ok();
    assert!(alice.tropa(&["invite", "--list"]).ok().stdout.is_empty());
    let carol = Profile::init(dir.path(), "carol", &relay.address);
    let late = carol.tropa_input(&["accept", "--name", "alice"], &link);
    assert_eq!(late.code, 6, "{late:?}");

    let not_confirmed = alice.tropa(&["contacts", "delete", "bob-k"]);
    assert_eq!(not_confirmed.code, 2, "{not_confirmed:?}");
    alice.tropa(&["contacts", "delete", "bob-k", "--yes"]).ok();
    assert!(contacts(&alice).is_empty());
    assert!(alice.read_json(None).is_empty());
    // Bob's mailbox at alice is gone: his next text breaks the contact.
    let b = bob.tropa_input(&["send", "alice"], "still there?");
    assert_eq!(b.code, 5, "{b:?}");
    assert!(b.stderr.contains("cannot be reached"), "{b:?}");
}

/// Item 7: `init` checks the relay before saving anything: a wrong key or
/// a port where nothing answers is refused with exit 5 and no profile;
/// `--offline` skips the check, and `relay set` changes it later.
#[test]
fn init_checks_the_relay_and_relay_set_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let other = RelayProcess::start(&dir.path().join("other"));
    let mut wrong = relay.address.clone();
    wrong.fingerprint = other.address.fingerprint;
    let p = Profile {
        home: dir.path().join("p"),
        passphrase: "plover gasket violin p".into(),
    };
    let init = |address: &str| {
        p.tropa(&[
            "init",
            "--name",
            "p",
            "--relay",
            address,
            "--kdf-memory-mib",
            "1",
            "--kdf-passes",
            "1",
        ])
    };
    let r = init(&wrong.to_string());
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("does not match"), "{r:?}");
    assert!(!p.home.exists(), "nothing saved");
    let offline = Profile::init_offline(dir.path(), "q", &wrong);
    assert_eq!(
        offline.tropa(&["relay"]).ok().stdout.trim(),
        wrong.to_string()
    );
    let bad = offline.tropa(&["relay", "set", &wrong.to_string()]);
    assert_eq!(bad.code, 5, "{bad:?}");
    offline
        .tropa(&["relay", "set", &relay.address.to_string()])
        .ok();
    assert_eq!(
        offline.tropa(&["relay"]).ok().stdout.trim(),
        relay.address.to_string()
    );
    // The profile now works: an invitation on the new relay.
    offline.tropa(&["invite", "--name", "z"]).ok();
}

/// Item 7: an empty or blank message is refused (not sent as 16 KiB).
#[test]
fn blank_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (_alice, bob) = alice_and_bob(dir.path(), &relay.address);
    for blank in ["", " ", "\n\n", " \t "] {
        let r = bob.tropa_input(&["send", "alice"], blank);
        assert_eq!(r.code, 2, "{blank:?}: {r:?}");
    }
    let r = bob.tropa(&["send", "alice", "   "]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(bob.read_json(Some("alice")).is_empty());
}

/// Item 2: a link with one character changed is refused with exit 6 and
/// nothing is saved (before, "frank added" and a contact that could never
/// work).
#[test]
fn a_damaged_link_is_refused_and_nothing_saved() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    let link = alice.tropa(&["invite", "--name", "bob"]).ok().stdout;
    let link = link.trim();
    // Change one character in the middle (inside the keys: the relay's
    // fingerprint prefix of a short link). Short links are read without
    // regard to case, so 'X' → 'x' would change nothing: pick a letter
    // that differs either way.
    let mut chars: Vec<char> = link.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i].eq_ignore_ascii_case(&'x') {
        'y'
    } else {
        'x'
    };
    let damaged: String = chars.into_iter().collect();
    let r = bob.tropa_input(&["accept", "--name", "alice"], &damaged);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("damaged"), "{r:?}");
    assert!(contacts(&bob).is_empty());
    bob.tropa_input(&["accept", "--name", "alice"], link).ok();
}

/// Item 10: errors are plain words; the technical detail shows only with
/// `-v`.
#[test]
fn errors_are_plain_words_with_detail_under_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let other = RelayProcess::start(&dir.path().join("other"));
    let mut wrong = relay.address.clone();
    wrong.fingerprint = other.address.fingerprint;
    let p = Profile::init_offline(dir.path(), "p", &wrong);
    let plain = p.tropa(&["relay", "set", &wrong.to_string()]);
    assert_eq!(plain.code, 5, "{plain:?}");
    let last = plain.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("tropa: cannot use this relay: the relay's key does not match the address (wrong address, or someone is in the middle)"),
        "{plain:?}"
    );
    for jargon in ["certificate", "error", "Verification", "detail"] {
        assert!(!plain.stderr.contains(jargon), "{jargon}: {plain:?}");
    }
    let verbose = p.tropa(&["-v", "relay", "set", &wrong.to_string()]);
    assert!(verbose.stderr.contains("detail: "), "{verbose:?}");
    let synced = p.tropa(&["sync"]);
    assert!(!synced.stderr.contains("certificate"), "{synced:?}");
    assert!(synced.stderr.contains("does not match"), "{synced:?}");
}

/// Item 8: aliases match ignoring case, a typo gets a suggestion, and a
/// bidirectional override in a message (or an alias) cannot make text
/// read differently than it is.
#[test]
fn aliases_ignore_case_suggest_and_bidi_overrides_are_neutralised() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    bob.tropa_input(&["send", "Alice"], "case does not matter")
        .ok();
    let typo = bob.tropa_input(&["send", "alcie"], "typo");
    assert_eq!(typo.code, 4, "{typo:?}");
    assert!(typo.stderr.contains("did you mean \"alice\"?"), "{typo:?}");
    let far = bob.tropa_input(&["send", "zebra"], "far");
    assert!(far.stderr.contains("see `tropa contacts`"), "{far:?}");

    bob.tropa_input(&["send", "alice"], "invoice_\u{202E}fdp.exe")
        .ok();
    alice.tropa(&["sync"]).ok();
    let shown = alice.tropa(&["read", "bob"]).ok().stdout;
    assert!(!shown.contains('\u{202E}'), "{shown:?}");
    assert!(shown.contains("invoice_\\u{202e}fdp.exe"), "{shown}");
    let bad = alice.tropa(&["contacts", "rename", "bob", "bob\u{202E}"]);
    assert_eq!(bad.code, 6, "{bad:?}");
    let taken = alice.tropa(&["invite", "--name", "BOB"]);
    assert_eq!(taken.code, 6, "aliases differing in case clash: {taken:?}");
}

/// Item 5: an incoming message shows when it was sent (the sender's clock,
/// carried inside the encrypted content), in local time (TZ) or UTC with
/// `--utc`, and `read` says which.
#[test]
fn times_are_when_sent_in_local_time_or_utc() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    bob.tropa_input(&["send", "alice"], "what time is it").ok();
    let sent_at = bob.read_json(Some("alice"))[0]["at"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    alice.tropa(&["sync"]).ok();
    let got = &alice.read_json(Some("bob"))[0];
    assert_eq!(got["sent_at"].as_u64(), Some(sent_at), "{got}");
    assert!(got["at"].as_u64().unwrap() >= sent_at + 2, "{got}");
    let hhmm = |offset: u64| {
        let t = (sent_at + offset) % 86_400;
        format!("{:02}:{:02} bob:", t / 3600, t % 3600 / 60)
    };
    let local = alice.tropa_with(&["read", "bob"], &alice.passphrase, &[("TZ", "<+04>-4")]);
    assert!(local.stdout.contains(&hhmm(4 * 3600)), "{local:?}");
    assert!(local.stderr.contains("times local, UTC+04:00"), "{local:?}");
    let utc = alice.tropa_with(
        &["--utc", "read", "bob"],
        &alice.passphrase,
        &[("TZ", "<+04>-4")],
    );
    assert!(utc.stdout.contains(&hhmm(0)), "{utc:?}");
    assert!(utc.stderr.contains("times UTC"), "{utc:?}");
}

/// A relay whose key changed (rotated by its operator, or someone in the
/// middle): `tropa send` queues the message and says why, as `sync` does,
/// instead of "the relay cannot be reached".
#[test]
fn send_to_a_relay_with_another_key_says_so_and_queues() {
    let dir = tempfile::tempdir().unwrap();
    let first = relay_on_fixed_port(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &first.address);
    let port = first.address.port;
    first.kill9();
    // Another relay (another key) on the same address.
    let out = std::process::Command::new(tropa_tests::bin("tropa-relay"))
        .args(["init", "--data"])
        .arg(dir.path().join("rotated"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let _rotated = RelayProcess::start(&dir.path().join("rotated"));
    let r = bob.tropa_input(&["send", "alice"], "after the rotation\n");
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains("queued for alice")
            && r.stderr
                .contains("the relay's key does not match the address"),
        "{r:?}"
    );
    drop(alice);
}

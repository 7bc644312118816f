//! `tropa case`: case work (status, private notes, evaluations, star) on
//! the real binary against a real relay. Checks what a handler is told,
//! that the two-evaluator rule holds from the command line (exit 6), that
//! changes before a refused one stay and those after it are not made, and
//! that notes persist without leaving plaintext in the profile directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tropa_tests::{
    Profile, RelayProcess, alice_and_bob, connect_profiles, files, files_containing,
};

/// `tropa case [ARGS] --json`, parsed.
fn case_json(p: &Profile, args: &[&str]) -> Value {
    let mut all = vec!["case"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = p.tropa(&all).ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The aliases of a `tropa case --json` list.
fn aliases(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["alias"].as_str().unwrap())
        .collect()
}

fn note_texts(case: &Value) -> Vec<&str> {
    case["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect()
}

fn evaluations(case: &Value) -> Vec<(&str, &str, &str)> {
    case["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["evaluator"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["comment"].as_str().unwrap(),
            )
        })
        .collect()
}

/// A contact made by invite/accept has a case that starts `new`; notes
/// added on the command line and through stdin (`--note -`) show in the
/// case, in text and JSON, for a later process; they are never sent to
/// the contact, and no file of the profile holds their text.
#[test]
fn notes_are_added_shown_kept_and_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);

    let list = case_json(&alice, &[]);
    assert_eq!(aliases(&list), vec!["bob"]);
    let c = &list[0];
    assert_eq!(c["status"], "new", "{c}");
    assert_eq!(c["starred"], false, "{c}");
    assert_eq!(c["established"], true, "{c}");
    assert_eq!(c["identity_alert"], false, "{c}");
    assert!(c["last_activity"].as_u64().unwrap() > 1_600_000_000, "{c}");
    assert_eq!(case_json(&bob, &[])[0]["status"], "new");
    let shown = alice.tropa(&["case", "bob"]).ok();
    assert!(shown.stdout.starts_with("bob: new\n"), "{shown:?}");
    assert!(shown.stdout.contains("\nno notes\n"), "{shown:?}");
    assert!(shown.stdout.contains("cannot be cleared yet"), "{shown:?}");

    // A note on the command line (with the one-time history warning) and
    // one piped in, so it stays out of the shell history.
    let first = "Met him at the Chisinau station";
    let r = alice.tropa(&["case", "bob", "--note", first]).ok();
    assert!(r.stderr.contains("private note added to bob"), "{r:?}");
    let warning = r.stderr.replace('\n', " ");
    assert!(warning.contains("stays in your shell history"), "{r:?}");
    assert!(warning.contains("next time give --note - and"), "{r:?}");
    let piped = "Brother in Warsaw vouches for him\nunit 3rd brigade, left in May";
    let r = alice
        .tropa_input(&["case", "bob", "--note", "-"], piped)
        .ok();
    assert!(r.stderr.contains("private note added to bob"), "{r:?}");
    assert!(!r.stderr.contains("shell history"), "{r:?}");
    // `--note -` with nothing piped in adds nothing.
    let empty = alice.tropa_input(&["case", "bob", "--note", "-"], "\n");
    assert_eq!(empty.code, 2, "{empty:?}");

    // Another process sees both, oldest first, in text and in JSON.
    let shown = alice.tropa(&["case", "bob"]).ok();
    assert!(shown.stdout.contains("notes (private):"), "{shown:?}");
    assert!(
        shown.stdout.contains("    Met him at the Chisinau station"),
        "{shown:?}"
    );
    assert!(
        shown
            .stdout
            .contains("    Brother in Warsaw vouches for him\n    unit 3rd brigade"),
        "{shown:?}"
    );
    assert!(
        shown.stdout.find("Chisinau") < shown.stdout.find("Warsaw"),
        "{shown:?}"
    );
    let case = case_json(&alice, &["bob"]);
    assert_eq!(note_texts(&case), vec![first, piped]);
    assert!(case["notes"][0]["at"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(case["status"], "new");
    assert!(case["clearing_blocked"].is_string(), "{case}");
    assert_eq!(evaluations(&case), vec![]);

    // Never sent: Bob, after syncing, has no message and no note.
    bob.tropa(&["sync"]).ok();
    assert!(bob.read_json(Some("alice")).is_empty());
    assert!(note_texts(&case_json(&bob, &["alice"])).is_empty());

    // No file of either profile (nor the relay) holds the notes' text.
    assert!(!files(&alice.home).is_empty());
    for needle in [b"Chisinau".as_slice(), b"Brother in Warsaw", b"3rd brigade"] {
        for d in [&alice.home, &bob.home, &relay.data] {
            assert!(
                files_containing(d, needle).is_empty(),
                "{} has {:?}",
                d.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// The two-evaluator rule from the command line: one evaluator, or the
/// same name twice, is refused with exit 6 and the rule in plain words;
/// changes before the refused status stay, those after it are not made;
/// a second evaluator with another name who passes lets it through. The
/// list filters by status.
#[test]
fn clearing_needs_two_evaluators_and_the_list_filters_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, _bob) = alice_and_bob(dir.path(), &relay.address);
    let carol = Profile::init(dir.path(), "carol", &relay.address);
    connect_profiles(&alice, "carol", &carol, "alice");

    // One evaluator: the note and the evaluation before the refused status
    // stay; the star after it is not made.
    let r = alice.tropa(&[
        "case",
        "bob",
        "--note",
        "asked for papers",
        "--evaluate",
        "Amira",
        "--outcome",
        "pass",
        "--status",
        "cleared",
        "--star",
    ]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("private note added to bob"), "{r:?}");
    assert!(r.stderr.contains("bob: Amira says pass"), "{r:?}");
    assert!(
        r.stderr.contains("2 evaluators with different names"),
        "{r:?}"
    );
    assert!(r.stderr.contains("this one has 1"), "{r:?}");
    assert!(r.stderr.contains("refused: --status cleared"), "{r:?}");
    assert!(r.stderr.contains("kept: --note, --evaluate"), "{r:?}");
    assert!(r.stderr.contains("not made: --star"), "{r:?}");
    assert!(!r.stderr.contains("is now cleared"), "{r:?}");
    let bob_case = case_json(&alice, &["bob"]);
    assert_eq!(bob_case["status"], "new");
    assert_eq!(bob_case["starred"], false);
    assert_eq!(note_texts(&bob_case), vec!["asked for papers"]);
    assert_eq!(evaluations(&bob_case), vec![("Amira", "pass", "")]);

    // The same evaluator twice (case and spaces aside) is one evaluator.
    alice
        .tropa(&["case", "carol", "--evaluate", "Amira", "--outcome", "pass"])
        .ok();
    let r = alice.tropa(&[
        "case",
        "carol",
        "--evaluate",
        " amira ",
        "--outcome",
        "pass",
        "--status",
        "relocating",
    ]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("this one has 1"), "{r:?}");
    let carol_case = case_json(&alice, &["carol"]);
    assert_eq!(carol_case["status"], "new");
    assert_eq!(evaluations(&carol_case).len(), 2);
    let blocked = carol_case["clearing_blocked"].as_str().unwrap();
    assert!(blocked.contains("this one has 1"), "{blocked}");

    // Vetting is allowed without evaluations.
    let r = alice.tropa(&["case", "carol", "--status", "vetting"]).ok();
    assert!(r.stderr.contains("carol is now vetting"), "{r:?}");

    // A second evaluator who passes: cleared (and starred after it).
    let r = alice
        .tropa(&[
            "case",
            "bob",
            "--evaluate",
            "Jonas",
            "--outcome",
            "pass",
            "--comment",
            "knows the unit",
            "--status",
            "cleared",
            "--star",
        ])
        .ok();
    assert!(r.stderr.contains("bob is now cleared"), "{r:?}");
    assert!(r.stderr.contains("bob starred"), "{r:?}");
    let bob_case = case_json(&alice, &["bob"]);
    assert_eq!(bob_case["status"], "cleared");
    assert_eq!(bob_case["starred"], true);
    assert_eq!(bob_case["clearing_blocked"], Value::Null);
    assert_eq!(
        evaluations(&bob_case),
        vec![("Amira", "pass", ""), ("Jonas", "pass", "knows the unit")]
    );
    let shown = alice.tropa(&["case", "bob"]).ok().stdout;
    assert!(shown.starts_with("bob: cleared, starred\n"), "{shown}");
    assert!(shown.contains("evaluations (private):"), "{shown}");
    assert!(
        shown.contains(" Jonas: pass\n    knows the unit"),
        "{shown}"
    );
    assert!(!shown.contains("cannot be cleared"), "{shown}");

    // A later fail blocks clearing again, in plain words.
    let r = alice.tropa(&[
        "case",
        "carol",
        "--evaluate",
        "Jonas",
        "--outcome",
        "pass",
        "--evaluate",
        "Lea",
    ]);
    assert_eq!(r.code, 2, "one --evaluate per call: {r:?}");
    alice
        .tropa(&["case", "carol", "--evaluate", "Jonas", "--outcome", "pass"])
        .ok();
    alice
        .tropa(&["case", "carol", "--evaluate", "Lea", "--outcome", "fail"])
        .ok();
    let r = alice.tropa(&["case", "carol", "--status", "cleared"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("latest evaluation is fail"), "{r:?}");
    assert_eq!(case_json(&alice, &["carol"])["status"], "vetting");

    // The list, whole and by status.
    assert_eq!(aliases(&case_json(&alice, &[])).len(), 2);
    assert_eq!(
        aliases(&case_json(&alice, &["--status", "cleared"])),
        vec!["bob"]
    );
    assert_eq!(
        aliases(&case_json(&alice, &["--status", "vetting"])),
        vec!["carol"]
    );
    assert!(aliases(&case_json(&alice, &["--status", "closed"])).is_empty());
    let text = alice.tropa(&["case", "--status", "cleared"]).ok();
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{text:?}");
    assert!(lines[0].starts_with("* bob: cleared, "), "{text:?}");
    let all = alice.tropa(&["case"]).ok().stdout;
    assert!(all.contains("  carol: vetting, "), "{all}");
    let none = alice.tropa(&["case", "--status", "closed"]).ok();
    assert!(none.stdout.is_empty(), "{none:?}");
    assert!(none.stderr.contains("no case is closed"), "{none:?}");
}

/// Usage errors (exit 2), the did-you-mean for an unknown alias (exit 4,
/// nothing read or changed), unstar, and the identity alert raised when
/// someone offers another key under a contact's name (S10), shown on the
/// case until acknowledged.
#[test]
fn usage_unknown_alias_star_and_identity_alert() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    let mallory = Profile::init(dir.path(), "mallory", &relay.address);

    for args in [
        vec!["case", "bob", "--evaluate", "Amira"],
        vec!["case", "bob", "--outcome", "pass"],
        vec!["case", "bob", "--comment", "why"],
        vec!["case", "--note", "no alias"],
        vec!["case", "--star"],
        vec!["case", "bob", "--star", "--unstar"],
        vec!["case", "bob", "--status", "done"],
        vec!["case", "bob", "--evaluate", "A", "--outcome", "maybe"],
    ] {
        let r = alice.tropa(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
    }
    let r = alice.tropa_input(&["case", "bobb", "--note", "-"], "lost note");
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("did you mean \"bob\""), "{r:?}");
    assert!(note_texts(&case_json(&alice, &["bob"])).is_empty());

    // Names are matched ignoring case; confirmations use the contact's own.
    let r = alice.tropa(&["case", "BOB", "--star"]).ok();
    assert!(r.stderr.contains("bob starred"), "{r:?}");
    assert_eq!(case_json(&alice, &["bob"])["starred"], true);
    alice.tropa(&["case", "bob", "--unstar"]).ok();
    assert_eq!(case_json(&alice, &["bob"])["starred"], false);

    // S10: Mallory's link accepted under the name "alice" is refused and
    // leaves an alert on Bob's case for Alice.
    let link = mallory.tropa(&["invite"]).ok().stdout.trim().to_owned();
    assert_eq!(bob.tropa(&["accept", &link, "--name", "alice"]).code, 7);
    let case = case_json(&bob, &["alice"]);
    assert_eq!(case["identity_alert"], true, "{case}");
    let shown = bob.tropa(&["case", "alice"]).ok().stdout;
    assert!(shown.contains("KEY ALERT"), "{shown}");
    assert!(bob.tropa(&["case"]).ok().stdout.contains("KEY ALERT"));
    let r = bob.tropa(&["case", "alice", "--acknowledge-alert"]).ok();
    assert!(
        r.stderr.contains("identity alert for alice cleared"),
        "{r:?}"
    );
    assert_eq!(case_json(&bob, &["alice"])["identity_alert"], false);
    assert!(
        !bob.tropa(&["case", "alice"])
            .ok()
            .stdout
            .contains("KEY ALERT")
    );
}

//! Reading on a phone (issue 11, part 4) through the real `tropa` binary
//! and a real relay: `tropa` alone shows who wrote, `read ALIAS -n N`
//! pages back through a long history and marks as read only what it
//! showed, and `search` finds messages ignoring case without writing
//! anything. What users see is kept as golden files at 40 columns
//! (`tests/tests/snapshots/cli_reading__*.snap`, insta), every line
//! checked to fit; times are replaced by `HH:MM`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use tropa_tests::{
    Profile, RelayProcess, Run, alice_and_bob, bin, connect_profiles, profile_records,
};

const WIDTH: usize = 40;

/// `tropa ARGS` on `p` at 40 columns in UTC.
fn at_40(p: &Profile, args: &[&str]) -> Run {
    p.tropa_with(args, &p.passphrase, &[("COLUMNS", "40"), ("TZ", "UTC")])
}

/// What the screen shows (stdout, then stderr), every line checked to fit
/// 40 columns, with `HH:MM` for times.
fn screen(run: &Run) -> String {
    let mut out = String::new();
    for line in run.stdout.lines().chain(run.stderr.lines()) {
        let width = line.chars().count();
        assert!(width <= WIDTH, "{width} columns: {line:?}");
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let time = chars.get(i..i + 5).is_some_and(|w| {
                w[0].is_ascii_digit()
                    && w[1].is_ascii_digit()
                    && w[2] == ':'
                    && w[3].is_ascii_digit()
                    && w[4].is_ascii_digit()
            });
            if time {
                out.push_str("HH:MM");
                i += 5;
            } else {
                out.push(chars[i]);
                i += 1;
            }
        }
        out.push('\n');
    }
    out
}

fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `tropa --json`: (alias, unread, state) per contact, in the order shown.
fn inbox(p: &Profile) -> Vec<(String, u64, String)> {
    json_lines(&p.tropa(&["--json"]).ok())
        .iter()
        .map(|c| {
            (
                c["alias"].as_str().unwrap().to_owned(),
                c["unread"].as_u64().unwrap(),
                c["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry(alias: &str, unread: u64, state: &str) -> (String, u64, String) {
    (alias.to_owned(), unread, state.to_owned())
}

/// Alice with 25 messages from bob (the 7th and 19th about the
/// checkpoint), then one from carol, and an invitation nobody accepted.
fn alice_with_a_long_history(dir: &std::path::Path, relay: &RelayProcess) -> Profile {
    let (alice, bob) = alice_and_bob(dir, &relay.address);
    let carol = Profile::init(dir, "carol", &relay.address);
    connect_profiles(&alice, "carol", &carol, "alice");
    alice.tropa(&["invite", "--name", "dave"]).ok();
    let burst: String = (1..=25)
        .map(|i| match i {
            7 => "The Checkpoint at the bridge: closed.\n".to_owned(),
            19 => "They reopened the checkpoint at six.\n".to_owned(),
            _ => format!("note {i} from bob\n"),
        })
        .collect();
    bob.tropa_input(&["chat", "alice"], &burst).ok();
    let s = alice.tropa(&["sync"]).ok();
    assert!(s.stdout.starts_with("25 new"), "{s:?}");
    // In a sync of its own: within one sync, the order of arrival is the
    // order the mailboxes were fetched in.
    carol
        .tropa_input(&["send", "alice"], "Carol here. Are you safe?")
        .ok();
    let s = alice.tropa(&["sync"]).ok();
    assert!(s.stdout.starts_with("1 new"), "{s:?}");
    alice
}

#[test]
fn who_wrote_pages_and_search_at_40_columns() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let alice = alice_with_a_long_history(dir.path(), &relay);

    // `tropa` alone: carol wrote last, then bob; dave never answered.
    insta::assert_snapshot!("inbox", screen(&at_40(&alice, &[]).ok()));
    assert_eq!(
        inbox(&alice),
        [
            entry("carol", 1, "established"),
            entry("bob", 25, "established"),
            entry("dave", 0, "invited")
        ]
    );

    // The last 5, then the 5 before; only those 10 are marked read.
    insta::assert_snapshot!(
        "read_last_5",
        screen(&at_40(&alice, &["read", "bob", "-n", "5"]).ok())
    );
    insta::assert_snapshot!(
        "read_page_2",
        screen(&at_40(&alice, &["read", "BOB", "-n", "5", "--page", "2"]).ok())
    );
    assert_eq!(inbox(&alice)[1], entry("bob", 15, "established"));
    let page = json_lines(
        &alice
            .tropa(&["read", "bob", "-n", "5", "--page", "2", "--json"])
            .ok(),
    );
    let texts: Vec<&str> = page.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "note 16 from bob",
            "note 17 from bob",
            "note 18 from bob",
            "They reopened the checkpoint at six.",
            "note 20 from bob"
        ]
    );
    assert!(page.iter().all(|m| m["status"] == "read"), "{page:?}");
    // Past the oldest page: told how many there are, exit 0.
    let past = at_40(&alice, &["read", "bob", "-n", "5", "--page", "9"]).ok();
    assert!(past.stdout.is_empty(), "{past:?}");
    assert!(
        past.stderr
            .contains("only 5 pages; the oldest:\n  tropa read bob -n 5 --page 5"),
        "{past:?}"
    );
    // Scripts reading JSON get the whole conversation unless they ask.
    assert_eq!(alice.read_json(Some("bob")).len(), 25);

    // Search: both checkpoint messages, any case, one line each; with an
    // alias only that contact's; the text comes through a pipe, so it
    // stays out of shell history.
    let s = alice.tropa(&["search"]);
    assert_eq!(s.code, 2, "no text, no terminal: {s:?}");
    let found = alice.tropa_input(&["search"], "CHECKPOINT\n").ok();
    insta::assert_snapshot!("search", screen(&found));
    let carol_only = alice
        .tropa_input(&["search", "-", "carol"], "checkpoint")
        .ok();
    assert_eq!(screen(&carol_only), "no message contains that\n");
    let newest = alice.tropa_input(&["search", "-n", "1"], "checkpoint").ok();
    insta::assert_snapshot!("search_newest", screen(&newest));
    let hits = json_lines(
        &alice
            .tropa_input(&["search", "--json", "-", "bob"], "CHECKPOINT")
            .ok(),
    );
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["contact"], "bob");
    assert_eq!(hits[0]["match_start"], 4);
    assert_eq!(hits[0]["match_end"], 14);
}

/// `read` without an alias goes through everyone's new messages oldest
/// first, a few at a time, marking only what it showed; `search` leaves
/// every file of the profile as it was.
#[test]
fn new_messages_a_few_at_a_time_and_search_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let alice = alice_with_a_long_history(dir.path(), &relay);

    // What follows must write no record (redb's own bookkeeping in the
    // file changes at every unlock: see `profile_records`).
    let before = profile_records(&alice.home);
    for (args, input) in [
        (vec!["search"], "checkpoint"),
        (vec!["search", "-", "bob"], "note 1"),
        (vec!["search", "--json"], "CAROL"),
    ] {
        alice.tropa_input(&args, input).ok();
    }
    assert!(
        profile_records(&alice.home) == before,
        "search changed the profile"
    );
    assert_eq!(inbox(&alice)[1], entry("bob", 25, "established"));

    let first = at_40(&alice, &["read", "-n", "3"]).ok();
    insta::assert_snapshot!("read_new_3", screen(&first));
    assert!(
        first.stderr.contains("23 more new: tropa read"),
        "{first:?}"
    );
    // The default is 20: then 3 remain, and then none.
    let second = at_40(&alice, &["read"]).ok();
    assert_eq!(second.stdout.matches("\n  ").count(), 20, "{second:?}");
    assert!(second.stderr.contains("3 more new"), "{second:?}");
    assert_eq!(
        inbox(&alice),
        [
            entry("carol", 1, "established"),
            entry("bob", 2, "established"),
            entry("dave", 0, "invited")
        ]
    );
    alice.tropa(&["read"]).ok();
    let none = at_40(&alice, &["read"]).ok();
    assert_eq!(screen(&none), "no new messages\n");
    insta::assert_snapshot!("inbox_nothing_new", screen(&at_40(&alice, &[]).ok()));
}

/// Without a profile, `tropa` alone says how to make one (exit 4, as for
/// any command without a profile), creates nothing, and `--help` works.
#[test]
fn no_profile_yet_gets_a_hint_and_help_teaches() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = Profile {
        home: dir.path().join("nobody"),
        passphrase: "plover gasket violin nobody".into(),
    };
    let r = at_40(&nobody, &[]);
    assert_eq!(r.code, 4, "{r:?}");
    insta::assert_snapshot!("no_profile", screen(&r));
    assert!(!nobody.home.exists(), "nothing may be created");
    for args in [
        vec!["--help"],
        vec!["read", "--help"],
        vec!["search", "--help"],
    ] {
        // As golden.rs runs help: without TROPA_HOME, whose value clap shows.
        let out = std::process::Command::new(bin("tropa"))
            .args(&args)
            .env("COLUMNS", "40")
            .env_remove("TROPA_HOME")
            .output()
            .unwrap();
        let h = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_eq!(h.code, 0, "{h:?}");
        if args.len() > 1 {
            insta::assert_snapshot!(format!("help_{}", args[0]), screen(&h));
        }
    }
    let bad = at_40(&nobody, &["read", "--page", "2"]);
    assert_eq!(bad.code, 2, "--page needs an alias: {bad:?}");
}

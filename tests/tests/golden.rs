//! Golden files of what `tropa` shows on a 40-column phone screen: help
//! texts, `contacts`, `read` and a chat transcript, each checked to fit 40
//! columns. Snapshots live in `tests/tests/snapshots/` (insta); a change
//! to what users see shows up there in review. Times are replaced by
//! `HH:MM` (they are the only thing that differs between runs), and
//! `#N sent`/`#N delivered` lines of the chat by nothing, since whether the
//! relay answers before the chat closes is a matter of timing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use tropa_tests::{Profile, RelayProcess, alice_and_bob, bin};

const WIDTH: usize = 40;

fn run(p: Option<&Profile>, args: &[&str], input: Option<&str>) -> String {
    let mut cmd = Command::new(bin("tropa"));
    cmd.args(args)
        .env("COLUMNS", WIDTH.to_string())
        .env("TZ", "UTC")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = p {
        cmd.env("TROPA_HOME", &p.home)
            .env("TROPA_PASSPHRASE", &p.passphrase);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = input {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    normalise(&text)
}

/// Times become `HH:MM`; lines longer than the screen fail the test.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let width = line.chars().count();
        assert!(width <= WIDTH, "{width} columns: {line:?}");
        let mut shown = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let is_time = i + 5 <= chars.len()
                && chars[i].is_ascii_digit()
                && chars[i + 1].is_ascii_digit()
                && chars[i + 2] == ':'
                && chars[i + 3].is_ascii_digit()
                && chars[i + 4].is_ascii_digit();
            if is_time {
                shown.push_str("HH:MM");
                i += 5;
            } else {
                shown.push(chars[i]);
                i += 1;
            }
        }
        out.push_str(&shown);
        out.push('\n');
    }
    out
}

#[test]
fn help_fits_40_columns() {
    for args in [
        vec!["--help"],
        vec!["send", "--help"],
        vec!["chat", "--help"],
        vec!["shell", "--help"],
        vec!["contacts", "--help"],
        vec!["invite", "--help"],
        vec!["case", "--help"],
    ] {
        let name = format!("help_{}", args.join("_").replace("--", ""));
        insta::assert_snapshot!(name, run(None, &args, None));
    }
}

#[test]
fn contacts_read_and_chat_at_40_columns() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    let carol = Profile::init(dir.path(), "carol", &relay.address);
    let _ = carol;
    alice.tropa(&["invite", "--name", "carol"]).ok();
    bob.tropa_input(
        &["send", "alice"],
        "Hello. I made it across.\nThe bus left at six.",
    )
    .ok();
    alice.tropa(&["sync"]).ok();
    insta::assert_snapshot!("contacts", run(Some(&alice), &["contacts"], None));
    insta::assert_snapshot!("read", run(Some(&alice), &["read"], None));
    let chat = run(
        Some(&alice),
        &["chat", "bob"],
        Some("Good. Stay where you are.\n/help\nI will call at nine.\n/quit\n"),
    );
    let chat: String = chat
        .lines()
        .filter(|l| !(l.starts_with("  #") && (l.ends_with(" sent") || l.ends_with(" delivered"))))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("chat", chat);
}

#[test]
fn case_list_and_view_at_40_columns() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, _bob) = alice_and_bob(dir.path(), &relay.address);
    let carol = Profile::init(dir.path(), "carol", &relay.address);
    tropa_tests::connect_profiles(&alice, "carol", &carol, "alice");
    alice
        .tropa_input(
            &["case", "bob", "--note", "-"],
            "Met him at the station in Chisinau; he knows the unit and the name of its commander.\nBrother in Warsaw.",
        )
        .ok();
    alice
        .tropa(&[
            "case",
            "bob",
            "--evaluate",
            "Amira",
            "--outcome",
            "pass",
            "--comment",
            "Knows the barracks and the road to them.",
            "--status",
            "vetting",
            "--star",
        ])
        .ok();
    insta::assert_snapshot!("case_list", run(Some(&alice), &["case"], None));
    insta::assert_snapshot!("case_view", run(Some(&alice), &["case", "bob"], None));
}

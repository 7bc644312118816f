//! `tropa` at a real terminal (a pseudo-terminal under an interactive
//! bash), where what the user types or pastes must end up in the message
//! and nowhere else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use rexpect::reader::Options;
use tropa_tests::{RelayProcess, alice_and_bob, bin};

const PROMPT: &str = "TEST$ ";

/// A message of several lines pasted at the `Message:` prompt is sent
/// whole. Before, `tropa` read the first line and exited, and bash then ran
/// the other lines as commands and kept them in its history file.
#[test]
fn a_pasted_message_of_several_lines_is_sent_whole_and_not_run_by_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    let history = dir.path().join("bash_history");
    let mut bash = Command::new("bash");
    bash.args(["--norc", "--noprofile", "-i"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("TERM", "dumb")
        .env("PS1", PROMPT)
        .env("HISTFILE", &history)
        .env("TROPA_HOME", &bob.home)
        .env("TROPA_PASSPHRASE", &bob.passphrase);
    let mut sh = rexpect::session::spawn_with_options(
        bash,
        Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .unwrap();
    sh.exp_string(PROMPT).unwrap();
    sh.send_line(&format!("{} send alice", bin("tropa").display()))
        .unwrap();
    sh.exp_string("Message: ").unwrap();
    // One write, as a terminal delivers a paste.
    sh.send("meet at the north gate\necho pasted-line-ran\nbring the papers\n")
        .unwrap();
    sh.exp_string(PROMPT).unwrap();
    sh.send_line("exit").unwrap();
    let rest = sh.exp_eof().unwrap();
    assert!(
        !rest.contains("pasted-line-ran"),
        "bash ran a pasted line: {rest}"
    );

    alice.tropa(&["sync"]).ok();
    let got: Vec<String> = alice
        .read_json(Some("bob"))
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        got,
        vec!["meet at the north gate\necho pasted-line-ran\nbring the papers"]
    );
    let saved = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(
        saved.contains("send alice"),
        "bash kept no history: {saved}"
    );
    assert!(!saved.contains("pasted-line-ran"), "history: {saved}");
    assert!(!saved.contains("papers"), "history: {saved}");
}

fn tropa_on_pty(p: &tropa_tests::Profile, args: &[&str]) -> rexpect::session::PtySession {
    let mut cmd = Command::new(bin("tropa"));
    cmd.args(args)
        .env("TROPA_HOME", &p.home)
        .env("TROPA_PASSPHRASE", &p.passphrase)
        .env("TERM", "xterm")
        .env("TZ", "UTC");
    rexpect::session::spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(30_000))
            .strip_ansi_escape_codes(true),
    )
    .unwrap()
}

/// Issue 9 items 1 and 6: in an interactive chat each line shows its state
/// by number (queued, sent, delivered), and a message arriving while a
/// line is half typed is printed above it; the half-typed line stays
/// whole and is sent whole.
#[test]
fn chat_shows_line_states_and_incoming_messages_do_not_splice_into_typing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    let mut chat = tropa_on_pty(&alice, &["chat", "bob"]);
    chat.exp_string("/quit").unwrap();
    chat.exp_string("bob> ").unwrap();
    chat.send_line("first line").unwrap();
    chat.exp_string("#1 queued").unwrap();
    chat.exp_string("#1 sent").unwrap();
    chat.send("half typ").unwrap();
    chat.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    bob.tropa_input(&["send", "alice"], "arrives meanwhile")
        .ok();
    chat.exp_string("arrives meanwhile").unwrap();
    // The receipt for #1 comes with bob's next sync.
    bob.tropa(&["sync"]).ok();
    chat.exp_string("#1 delivered").unwrap();
    chat.send_line("ed and finished").unwrap();
    chat.exp_string("#2 queued").unwrap();
    chat.send_line("/quit").unwrap();
    chat.exp_eof().unwrap();
    bob.tropa(&["sync"]).ok();
    let got: Vec<String> = bob
        .read_json(Some("alice"))
        .iter()
        .filter(|m| m["direction"] == "in")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, vec!["first line", "half typed and finished"]);
}

/// Issue 9 item 9: `tropa shell` unlocks once and runs commands; Tab
/// completes commands and aliases; another `tropa` meanwhile is told
/// what to do instead of a bare "in use".
#[test]
fn the_shell_runs_commands_and_completes_names() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let (alice, bob) = alice_and_bob(dir.path(), &relay.address);
    bob.tropa_input(&["send", "alice"], "waiting for you").ok();
    let mut sh = tropa_on_pty(&alice, &["shell"]);
    sh.exp_string("tropa> ").unwrap();
    // The sync in the background brings bob's message in.
    sh.exp_string("waiting for you").unwrap();
    sh.send("/cont\t").unwrap();
    sh.send_line("").unwrap();
    sh.exp_string("bob (unverified").unwrap();
    sh.send("/send B\t").unwrap();
    sh.send_line("sent from the shell").unwrap();
    sh.exp_string("queued for bob").unwrap();
    let busy = alice.tropa(&["read"]);
    assert_eq!(busy.code, 8, "{busy:?}");
    assert!(busy.stderr.contains("tropa shell"), "{busy:?}");
    sh.send_line("/nonsense").unwrap();
    sh.exp_string("/help lists them").unwrap();
    sh.send_line("/quit").unwrap();
    sh.exp_eof().unwrap();
    bob.tropa(&["sync"]).ok();
    let got: Vec<String> = bob
        .read_json(Some("alice"))
        .iter()
        .filter(|m| m["direction"] == "in")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, vec!["sent from the shell"]);
    // Nothing of the session was written to a history file.
    let written = tropa_tests::files_containing(dir.path(), b"sent from the shell");
    assert!(written.is_empty(), "{written:?}");
}

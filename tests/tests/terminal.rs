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

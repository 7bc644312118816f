//! README.md's walkthrough, run as written: every `$` command of its
//! console blocks is typed into an interactive bash on a pseudo-terminal,
//! every prompt is answered with what the README shows being typed, and
//! the output lines it shows are expected. Afterwards the shell's history
//! file must hold the commands but no message text and no link (H3 of the
//! security review: on a seized phone, shell history undoes S9).
//!
//! The transcript's rules: a line `$ CMD` is a command; `Paste the link: X`
//! and `Message: X` are prompts answered with X (`TROPA:I/…` stands for
//! the short link the invite printed); in a `chat`, lines after its banner are
//! typed (except `  #N state` lines, which it shows) and `^D` leaves;
//! passphrase prompts are skipped (the test gives the
//! passphrase in TROPA_PASSPHRASE); other lines are expected output, except
//! those containing `…` (times, digits).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;

use rexpect::reader::Options;
use tropa_tests::{RelayProcess, bin};

const PROMPT: &str = "README$ ";
const PLACEHOLDER_LINK: &str = "TROPA:I/…";

/// One `$` command with the lines that follow it.
struct Step {
    command: String,
    lines: Vec<String>,
}

fn walkthrough(readme: &str) -> Vec<Step> {
    let start = readme.find("<!-- walkthrough -->").expect("start marker");
    let end = readme.find("<!-- /walkthrough -->").expect("end marker");
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            in_block = line == "```console";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: cmd.to_owned(),
                lines: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.lines.push(line.to_owned());
        }
    }
    steps
}

fn is_passphrase_prompt(line: &str) -> bool {
    ["New passphrase:", "Repeat it:", "Passphrase:"]
        .iter()
        .any(|p| line.trim_end() == *p)
}

#[test]
fn the_readme_walkthrough_runs_and_leaves_no_secrets_in_shell_history() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let steps = walkthrough(&readme);
    assert!(steps.len() >= 10, "the walkthrough is in README.md");

    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let home = format!("{}/", dir.path().display());
    let history = dir.path().join("bash_history");
    let tropa = bin("tropa");
    let path = format!(
        "{}:{}",
        tropa.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut bash = Command::new("bash");
    bash.args(["--norc", "--noprofile", "-i"])
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("TERM", "dumb")
        .env("PS1", PROMPT)
        .env("HISTFILE", &history)
        .env("HISTSIZE", "1000")
        .env("RELAY", relay.address.to_string())
        .env("TROPA_PASSPHRASE", "plover gasket violin orchard");
    let mut sh = rexpect::session::spawn_with_options(
        bash,
        Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .unwrap();
    sh.exp_string(PROMPT).unwrap();

    let mut link = String::new();
    let mut typed = Vec::new();
    for step in &steps {
        let command = step.command.replace("/tmp/", &home);
        eprintln!("$ {command}");
        sh.send_line(&command).unwrap();
        let chat = command.contains(" chat ");
        let mut in_chat = false;
        for line in &step.lines {
            let line = line.replace("/tmp/", &home);
            if is_passphrase_prompt(&line) {
                continue;
            }
            if let Some(answer) = ["Paste the link: ", "Message: "]
                .iter()
                .find_map(|p| line.strip_prefix(p).map(|a| (*p, a)))
            {
                sh.exp_string(answer.0).unwrap();
                let text = if answer.1 == PLACEHOLDER_LINK {
                    link.clone()
                } else {
                    answer.1.to_owned()
                };
                typed.push(text.clone());
                sh.send_line(&text).unwrap();
            } else if line == "^D" {
                sh.send_control('d').unwrap();
            } else if in_chat && line.starts_with("  #") {
                // A typed line's state, as the chat shows it.
                sh.exp_string(line.trim()).unwrap_or_else(|e| {
                    panic!("README shows {line:?} in the chat, tropa did not print it: {e}")
                });
            } else if in_chat {
                typed.push(line.clone());
                sh.send_line(&line).unwrap();
            } else if line.starts_with("TROPA:I/") {
                let (_, got) = sh
                    .exp_regex(r"TROPA:I/[A-Z0-9.:\[\]-]+/[A-Z2-7]{26}/[A-Z2-7]{26}")
                    .unwrap();
                link = got;
            } else if !line.contains('…') && !line.trim().is_empty() {
                if line.starts_with("  ") {
                    // A message body as `read` shows it: a secret too.
                    typed.push(line.trim().to_owned());
                }
                sh.exp_string(line.trim()).unwrap_or_else(|e| {
                    panic!("README shows {line:?} after `{command}`, tropa did not print it: {e}")
                });
                if chat && line.starts_with("-- chat with") {
                    in_chat = true;
                }
            }
        }
        sh.exp_string(PROMPT)
            .unwrap_or_else(|e| panic!("`{command}` did not finish: {e}"));
    }
    sh.send_line("exit").unwrap();
    sh.exp_eof().unwrap();

    let saved = std::fs::read_to_string(&history).expect("bash wrote its history");
    for step in &steps {
        assert!(
            saved.contains(&step.command.replace("/tmp/", &home)),
            "history lacks `{}`: the check would prove nothing",
            step.command
        );
    }
    assert!(!link.is_empty(), "the walkthrough made a link");
    // The link's secret part alone, too (its last 26 characters).
    let secret_part = link[link.len().saturating_sub(26)..].to_owned();
    for secret in typed
        .iter()
        .chain([&link, &secret_part, &"TROPA:I/".to_owned()])
    {
        assert!(
            !saved.contains(secret.as_str()),
            "shell history holds {secret:?}:\n{saved}"
        );
    }
}

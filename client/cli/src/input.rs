//! What the user gives `tropa` besides arguments: the profile directory,
//! passphrases (terminal, TROPA_PASSPHRASE or --passphrase-file), and
//! message text and links (prompt or pipe, so they stay out of shell
//! history and the process list).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use tropa_client::Client;
use tropa_client::error::ProfileError;
use zeroize::Zeroizing;

use crate::{Cli, CliError};

pub(crate) fn home_dir(cli: &Cli) -> Result<PathBuf, CliError> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    directories::ProjectDirs::from("", "", "tropa")
        .map(|p| p.data_dir().join("profile"))
        .ok_or_else(|| CliError::Usage("no default profile directory; pass --home DIR".into()))
}

fn read_first_line(path: &Path) -> Result<Zeroizing<String>, CliError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| CliError::Io {
            path: path.display().to_string(),
            source,
        })?,
    );
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

fn prompt(label: &str) -> Result<Zeroizing<String>, CliError> {
    if !std::io::stdin().is_terminal() && !Path::new("/dev/tty").exists() {
        return Err(CliError::NoPassphrase);
    }
    rpassword::prompt_password(label)
        .map(Zeroizing::new)
        .map_err(|_| CliError::NoPassphrase)
}

/// Whether the passphrase comes from a script (file or environment).
pub(crate) fn scripted_passphrase(cli: &Cli) -> bool {
    cli.passphrase_file.is_some() || std::env::var("TROPA_PASSPHRASE").is_ok()
}

/// The passphrase: --passphrase-file, then TROPA_PASSPHRASE, then the TTY.
pub(crate) fn passphrase(cli: &Cli, label: &str) -> Result<Zeroizing<String>, CliError> {
    if let Some(f) = &cli.passphrase_file {
        return read_first_line(f);
    }
    if let Ok(p) = std::env::var("TROPA_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    prompt(label)
}

/// A new passphrase: TROPA_NEW_PASSPHRASE, else asked twice on the TTY.
pub(crate) fn new_passphrase(label: &str) -> Result<Zeroizing<String>, CliError> {
    if let Ok(p) = std::env::var("TROPA_NEW_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    let a = prompt(&format!("{label}: "))?;
    let b = prompt("Repeat it: ")?;
    if *a != *b {
        return Err(CliError::Usage("the two passphrases differ".into()));
    }
    Ok(a)
}

/// Unlocks the profile.
pub(crate) fn open(cli: &Cli) -> Result<Client, CliError> {
    let home = home_dir(cli)?;
    if !Client::exists(&home) {
        return Err(ProfileError::NoProfile.into());
    }
    let pass = passphrase(cli, "Passphrase: ")?;
    let mut client = Client::open(&home, pass.as_bytes())?;
    client.override_network(cli.transport, cli.socks5()?);
    Ok(client)
}

/// Text that should stay out of shell history and `/proc/PID/cmdline`:
/// from the argument if one was given (with a one-time warning per profile),
/// else typed at a prompt on a terminal, else read from stdin to its end.
pub(crate) fn secret_input(
    client: &Client,
    arg: Option<&str>,
    prompt: &str,
    what: &str,
) -> Result<Zeroizing<String>, CliError> {
    if let Some(given) = arg.filter(|a| *a != "-") {
        if client.first_notice("argv-secrets")? {
            eprintln!(
                "note: a {what} on the command line stays in your shell history; \
                 leave it out next time and type or paste it when asked"
            );
        }
        return Ok(Zeroizing::new(given.to_owned()));
    }
    let stdin = std::io::stdin();
    let mut text = Zeroizing::new(String::new());
    let io = |source| CliError::Io {
        path: "standard input".into(),
        source,
    };
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut lock = stdin.lock();
        lock.read_line(&mut text).map_err(io)?;
        // A pasted message of several lines arrives all at once. Whatever
        // follows the first line belongs to it: left unread, the shell would
        // run those lines as commands once we exit, and keep them in its
        // history.
        while pending(&stdin, std::time::Duration::from_millis(150)) {
            if lock.read_line(&mut text).map_err(io)? == 0 {
                break;
            }
        }
    } else {
        std::io::Read::read_to_string(&mut stdin.lock(), &mut text).map_err(io)?;
    }
    let trimmed = text.trim_end_matches(['\r', '\n']);
    if trimmed.trim().is_empty() {
        return Err(CliError::Usage(format!(
            "no {what}: type it when asked, or pipe it in"
        )));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// Whether more input is waiting on the terminal within `wait`.
#[cfg(unix)]
fn pending(stdin: &std::io::Stdin, wait: std::time::Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(stdin, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    poll(&mut fds, Some(&timeout)).is_ok_and(|n| n > 0)
}

/// Elsewhere a paste's further lines stay with the terminal.
#[cfg(not(unix))]
fn pending(_: &std::io::Stdin, _: std::time::Duration) -> bool {
    false
}

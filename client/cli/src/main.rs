//! `tropa`: the Tropa command-line client, made for Termux on cheap phones:
//! short commands, output that fits 40 columns, no colour, works offline
//! (messages queue and go out on the next `sync`), and clear one-line errors
//! with distinct exit codes.
//!
//! All protocol logic lives in `tropa-client`; this file only parses
//! arguments, asks for passphrases and prints.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tropa_client::error::{ClientError, ProfileError};
use tropa_client::{Client, Command as SyncCommand, KdfParams, SyncEvent, SyncOptions};
use zeroize::Zeroizing;

/// Tropa: private messages through a relay that learns nothing.
///
/// First time: `tropa init --name NAME --relay ADDRESS`, then either
/// `tropa invite` and send the printed link to the other person, or
/// `tropa accept --name ALIAS` and paste a link you received. Then
/// `tropa send ALIAS` (type the text), `tropa sync`, `tropa read`, or
/// `tropa chat ALIAS`.
///
/// Message text and links are asked for when left out, so they stay out of
/// your shell history. The passphrase is asked on the terminal; scripts can
/// set TROPA_PASSPHRASE or use --passphrase-file.
#[derive(Debug, Parser)]
#[command(name = "tropa", version, about, long_about, max_term_width = 80)]
struct Cli {
    /// Profile directory [default: your data dir, or TROPA_HOME].
    #[arg(long, global = true, value_name = "DIR", env = "TROPA_HOME")]
    home: Option<PathBuf>,
    /// Read the passphrase from this file (first line).
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Print JSON Lines (for `contacts` and `read`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create your profile (keys stay on this device, encrypted).
    Init {
        /// Your name (only shown to you).
        #[arg(long)]
        name: String,
        /// Your relay: tropa://FINGERPRINT@HOST:PORT (from its operator).
        #[arg(long, value_name = "ADDRESS")]
        relay: String,
        /// Memory for passphrase hashing, MiB (more is safer, slower).
        #[arg(long, value_name = "MIB", default_value_t = 64)]
        kdf_memory_mib: u32,
        /// Passes for passphrase hashing.
        #[arg(long, value_name = "N", default_value_t = 3)]
        kdf_passes: u32,
    },
    /// Make a one-time invitation link for one person.
    ///
    /// Send the link over a channel you trust (or show the QR). Whoever
    /// accepts it becomes ALIAS in your contacts after your next `sync`.
    Invite {
        /// What you will call the person who accepts.
        #[arg(long = "name", value_name = "ALIAS")]
        alias: Option<String>,
        /// Also print the link as a QR code.
        #[arg(long)]
        qr: bool,
    },
    /// Accept an invitation link and call its sender ALIAS.
    ///
    /// Leave LINK out (or give -) to paste it at the prompt or pipe it in:
    /// a link typed on the command line stays in your shell history.
    Accept {
        /// The tropa:invite#… link [default: asked for].
        link: Option<String>,
        /// What you will call them.
        #[arg(long = "name", value_name = "ALIAS")]
        alias: String,
    },
    /// List contacts with unread and pending counts.
    Contacts,
    /// Send a message (queued if offline; `sync` delivers it later).
    ///
    /// Leave TEXT out (or give -) to type it at the prompt, or pipe it in
    /// (`termux-clipboard-get | tropa send ALIAS`): text on the command line
    /// stays in your shell history.
    Send {
        /// Contact.
        alias: String,
        /// Message text [default: asked for, or read from a pipe].
        text: Option<String>,
    },
    /// Receive new messages and deliver queued ones.
    Sync {
        /// Keep listening this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
        /// Show events and bytes sent/received.
        #[arg(long, short)]
        verbose: bool,
        /// Resend a message without receipt after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        resend_after: u64,
    },
    /// Show messages: with ALIAS the conversation, else all unread.
    Read {
        /// Contact.
        alias: Option<String>,
    },
    /// Chat with ALIAS live (type a line to send, Ctrl-D to leave).
    Chat {
        /// Contact.
        alias: String,
    },
    /// Show the safety number with ALIAS; compare it in person.
    ///
    /// Both of you see the same 60 digits. If they match, run again with
    /// --confirm. If they differ, someone is in the middle: stop.
    Verify {
        /// Contact.
        alias: String,
        /// Mark ALIAS as verified.
        #[arg(long)]
        confirm: bool,
        /// With --confirm: the digits they read out, checked first.
        #[arg(long, value_name = "DIGITS")]
        digits: Option<String>,
        /// Also print the safety number as a QR code.
        #[arg(long)]
        qr: bool,
    },
    /// Delete messages to ALIAS after SECONDS (0 = keep).
    Timer {
        /// Contact.
        alias: String,
        /// Seconds, 0 turns it off.
        seconds: u32,
    },
    /// Destroy this profile at once (no passphrase needed).
    Wipe {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Change the passphrase, or set a duress passphrase.
    ///
    /// With --duress, entering the duress passphrase later silently wipes
    /// everything and opens an empty profile.
    Passphrase {
        /// Set the duress passphrase instead.
        #[arg(long)]
        duress: bool,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("no passphrase: type it on a terminal, set TROPA_PASSPHRASE, or use --passphrase-file")]
    NoPassphrase,
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Network(String),
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    #[error("wipe failed: {0}")]
    Wipe(String),
}

impl From<ProfileError> for CliError {
    fn from(e: ProfileError) -> Self {
        CliError::Client(ClientError::Profile(e))
    }
}

impl CliError {
    /// Exit codes (documented in README): 1 other, 2 usage, 3 wrong
    /// passphrase, 4 not found, 5 network, 6 invalid input, 7 identity
    /// changed or safety mismatch, 8 profile exists or in use.
    fn exit_code(&self) -> u8 {
        use ClientError as C;
        match self {
            CliError::Usage(_) | CliError::NoPassphrase => 2,
            CliError::Network(_) => 5,
            CliError::Client(c) => match c {
                C::Profile(ProfileError::WrongPassphrase) => 3,
                C::Profile(ProfileError::NoProfile) | C::UnknownContact(_) => 4,
                C::Profile(ProfileError::Exists | ProfileError::Locked) => 8,
                C::Profile(
                    ProfileError::BadName
                    | ProfileError::BadPassphrase(_)
                    | ProfileError::WeakPassphrase(_),
                ) => 6,
                C::Relay(_) => 5,
                C::BadLink(_)
                | C::BadAlias
                | C::AliasTaken(_)
                | C::TooLong { .. }
                | C::BadRelay(_)
                | C::InvitationExpired
                | C::InvitationUsed
                | C::OwnInvitation
                | C::NotEstablished(_) => 6,
                C::IdentityChanged(_) | C::SafetyMismatch(_) => 7,
                _ => 1,
            },
            _ => 1,
        }
    }
}

fn home_dir(cli: &Cli) -> Result<PathBuf, CliError> {
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

/// The passphrase: --passphrase-file, then TROPA_PASSPHRASE, then the TTY.
fn passphrase(cli: &Cli, label: &str) -> Result<Zeroizing<String>, CliError> {
    if let Some(f) = &cli.passphrase_file {
        return read_first_line(f);
    }
    if let Ok(p) = std::env::var("TROPA_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    prompt(label)
}

/// A new passphrase: TROPA_NEW_PASSPHRASE, else asked twice on the TTY.
fn new_passphrase(label: &str) -> Result<Zeroizing<String>, CliError> {
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

/// Text that should stay out of shell history and `/proc/PID/cmdline`:
/// from the argument if one was given (with a one-time warning per profile),
/// else typed at a prompt on a terminal, else read from stdin to its end.
fn secret_input(
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
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        stdin
            .lock()
            .read_line(&mut text)
            .map_err(|source| CliError::Io {
                path: "standard input".into(),
                source,
            })?;
    } else {
        std::io::Read::read_to_string(&mut stdin.lock(), &mut text).map_err(|source| {
            CliError::Io {
                path: "standard input".into(),
                source,
            }
        })?;
    }
    let trimmed = text.trim_end_matches(['\r', '\n']);
    if trimmed.trim().is_empty() {
        return Err(CliError::Usage(format!(
            "no {what}: type it when asked, or pipe it in"
        )));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

fn open(cli: &Cli) -> Result<Client, CliError> {
    let home = home_dir(cli)?;
    if !Client::exists(&home) {
        return Err(ProfileError::NoProfile.into());
    }
    let pass = passphrase(cli, "Passphrase: ")?;
    Ok(Client::open(&home, pass.as_bytes())?)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

fn hhmm(t: u64) -> String {
    let fmt = time::macros::format_description!("[month]-[day] [hour]:[minute]");
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}

fn print_qr(data: &[u8]) {
    match qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::L) {
        Ok(code) => {
            let s = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build();
            println!("{s}");
        }
        Err(e) => eprintln!("cannot make a QR code: {e}"),
    }
}

/// Text from other people or from a relay, made safe for a terminal: control
/// characters (escape sequences could rewrite the screen, fake a "verified"
/// line or set the clipboard) are shown as `\u{..}` escapes. Newlines and
/// tabs in message text are kept.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn print_message(m: &tropa_client::MessageView, json: bool) {
    if json {
        let v = serde_json::json!({
            "id": m.id,
            "contact": m.alias,
            "direction": if m.incoming { "in" } else { "out" },
            "text": m.text,
            "status": m.status,
            "at": m.at,
        });
        println!("{v}");
    } else if m.incoming {
        println!("{} {}:\n  {}", hhmm(m.at), clean(&m.alias), clean(&m.text));
    } else {
        println!(
            "{} me > {} [{}]:\n  {}",
            hhmm(m.at),
            clean(&m.alias),
            m.status,
            clean(&m.text)
        );
    }
}

fn print_event(ev: &SyncEvent, show_messages: bool) {
    match ev {
        SyncEvent::Received(m) if show_messages => print_message(m, false),
        SyncEvent::Received(_) => {}
        SyncEvent::Delivered { alias, .. } => eprintln!("delivered to {}", clean(alias)),
        SyncEvent::Joined { alias } => eprintln!("{} accepted your invitation", clean(alias)),
        SyncEvent::InvitationExpired { alias } => {
            eprintln!("the invitation for {} expired unused", clean(alias));
        }
        SyncEvent::Dropped { alias, reason } => {
            eprintln!(
                "WARNING: dropped a message for {}: {}",
                clean(alias),
                clean(reason)
            );
        }
        SyncEvent::Unreachable { relay, error } => {
            eprintln!("relay {relay}: {}", clean(error));
        }
    }
}

fn sync_once(
    client: &mut Client,
    rt: &tokio::runtime::Runtime,
) -> Result<tropa_client::SyncReport, CliError> {
    Ok(rt.block_on(client.sync(SyncOptions::default(), None, None))?)
}

fn run(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Cmd::Init {
            name,
            relay,
            kdf_memory_mib,
            kdf_passes,
        } => {
            let home = home_dir(cli)?;
            let relay = relay.parse().map_err(ClientError::BadRelay)?;
            let kdf = KdfParams {
                m_cost_kib: kdf_memory_mib.saturating_mul(1024),
                t_cost: *kdf_passes,
                p_cost: 1,
            };
            kdf.validate()
                .map_err(|e| CliError::Usage(format!("passphrase hashing: {e}")))?;
            if Client::exists(&home) {
                return Err(ProfileError::Exists.into());
            }
            let pass = if cli.passphrase_file.is_some() || std::env::var("TROPA_PASSPHRASE").is_ok()
            {
                passphrase(cli, "")?
            } else {
                new_passphrase("New passphrase")?
            };
            Client::init(&home, pass.as_bytes(), name, &relay, kdf)?;
            eprintln!("profile created in {}", home.display());
            eprintln!("next: `tropa invite` or `tropa accept LINK --name ALIAS`");
        }
        Cmd::Invite { alias, qr } => {
            let mut client = open(cli)?;
            let (link, alias) = runtime()?.block_on(client.invite(alias.as_deref()))?;
            println!("{link}");
            if *qr {
                print_qr(link.as_bytes());
            }
            eprintln!("one-time link for {alias}; valid 7 days. Send it privately.");
        }
        Cmd::Accept { link, alias } => {
            let mut client = open(cli)?;
            let link = secret_input(&client, link.as_deref(), "Paste the link: ", "link")?;
            let rt = runtime()?;
            let delivered = rt.block_on(client.accept(link.trim(), alias))?;
            if delivered {
                eprintln!("{alias} added. Compare safety numbers: `tropa verify {alias}`");
            } else {
                eprintln!("{alias} added; their relay is unreachable, `tropa sync` will retry");
            }
        }
        Cmd::Contacts => {
            let client = open(cli)?;
            let contacts = client.contacts()?;
            if contacts.is_empty() && !cli.json {
                eprintln!("no contacts yet: `tropa invite` or `tropa accept`");
            }
            for c in contacts {
                if cli.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "alias": c.alias,
                            "state": if c.established { "established" } else { "invited" },
                            "verified": c.verified,
                            "unread": c.unread,
                            "pending": c.pending,
                            "timer_secs": c.timer_secs,
                            "dropped": c.dropped,
                        })
                    );
                } else {
                    let mut flags = Vec::new();
                    if !c.established {
                        flags.push("invited".to_owned());
                    } else if c.verified {
                        flags.push("verified".to_owned());
                    } else {
                        flags.push("unverified".to_owned());
                    }
                    if c.unread > 0 {
                        flags.push(format!("{} new", c.unread));
                    }
                    if c.pending > 0 {
                        flags.push(format!("{} pending", c.pending));
                    }
                    if c.dropped > 0 {
                        flags.push(format!("{} DROPPED", c.dropped));
                    }
                    println!("{} ({})", clean(&c.alias), flags.join(", "));
                }
            }
        }
        Cmd::Send { alias, text } => {
            let mut client = open(cli)?;
            let text = secret_input(&client, text.as_deref(), "Message: ", "message text")?;
            client.queue_text(alias, &text)?;
            let report = sync_once(&mut client, &runtime()?)?;
            if !report.refused.is_empty() {
                return Err(CliError::Network(format!(
                    "queued for {alias}, the relay refused it for now ({}); `tropa sync` retries",
                    clean(&report.refused.join("; "))
                )));
            }
            if report.unreachable.is_empty() {
                eprintln!("sent to {alias}");
            } else {
                eprintln!("queued for {alias}: relay unreachable, `tropa sync` retries");
            }
        }
        Cmd::Sync {
            wait,
            verbose,
            resend_after,
        } => {
            let mut client = open(cli)?;
            let rt = runtime()?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let opts = SyncOptions {
                wait: wait.map(Duration::from_secs),
                resend_after: Duration::from_secs(*resend_after),
                ..SyncOptions::default()
            };
            let verbose = *verbose;
            let report = rt.block_on(async {
                let printer = async {
                    while let Some(ev) = rx.recv().await {
                        if verbose {
                            print_event(&ev, false);
                        }
                    }
                };
                let work = async {
                    let r = client.sync(opts, Some(&tx), None).await;
                    drop(tx);
                    r
                };
                let (r, ()) = tokio::join!(work, printer);
                r
            })?;
            println!(
                "{} new, {} delivered, {} joined{}",
                report.received,
                report.delivered,
                report.joined,
                if report.dropped > 0 {
                    format!(", {} DROPPED (tampered)", report.dropped)
                } else {
                    String::new()
                }
            );
            if verbose {
                eprintln!(
                    "bytes: {} sent, {} received",
                    report.bytes_sent, report.bytes_received
                );
            }
            if !report.unreachable.is_empty() {
                return Err(CliError::Network(format!(
                    "unreachable: {}",
                    report.unreachable.join(", ")
                )));
            }
            if !report.refused.is_empty() {
                return Err(CliError::Network(format!(
                    "refused, will retry: {}",
                    clean(&report.refused.join("; "))
                )));
            }
        }
        Cmd::Read { alias } => {
            let client = open(cli)?;
            let msgs = client.messages(alias.as_deref())?;
            let shown: Vec<_> = if alias.is_some() {
                msgs
            } else {
                msgs.into_iter().filter(|m| m.status == "unread").collect()
            };
            if shown.is_empty() && !cli.json {
                eprintln!("no new messages");
            }
            for m in &shown {
                print_message(m, cli.json);
            }
            for c in client.contacts()? {
                if c.dropped > 0 && alias.as_ref().is_none_or(|a| *a == c.alias) {
                    eprintln!(
                        "WARNING: {} message(s) for {} were tampered with and dropped",
                        c.dropped,
                        clean(&c.alias)
                    );
                }
            }
            client.mark_read(alias.as_deref())?;
        }
        Cmd::Chat { alias } => chat(cli, alias)?,
        Cmd::Verify {
            alias,
            confirm,
            digits,
            qr,
        } => {
            let client = open(cli)?;
            let sn = client.safety(alias)?;
            for row in sn.groups.chunks(4) {
                println!("{}", row.join(" "));
            }
            if *qr {
                print_qr(&sn.qr_payload);
            }
            if *confirm {
                client.confirm_verified(alias, digits.as_deref())?;
                eprintln!("{alias} is now verified");
            } else if sn.verified {
                eprintln!("{alias} is verified");
            } else {
                eprintln!("compare with {alias} in person; if equal: --confirm");
            }
        }
        Cmd::Timer { alias, seconds } => {
            let client = open(cli)?;
            client.set_timer(alias, *seconds)?;
            if *seconds == 0 {
                eprintln!("messages to {alias} are kept");
            } else {
                eprintln!("messages to {alias} disappear after {seconds} s");
            }
        }
        Cmd::Wipe { yes } => {
            let home = home_dir(cli)?;
            if !Client::exists(&home) {
                return Err(ProfileError::NoProfile.into());
            }
            if !yes {
                eprint!("Destroy the profile in {}? Type WIPE: ", home.display());
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
                if line.trim() != "WIPE" {
                    return Err(CliError::Usage("not wiped".into()));
                }
            }
            Client::wipe(&home).map_err(|e| CliError::Wipe(e.to_string()))?;
            eprintln!("wiped");
        }
        Cmd::Passphrase { duress } => {
            let client = open(cli)?;
            if *duress {
                let p = new_passphrase("Duress passphrase")?;
                client.set_duress(p.as_bytes())?;
                eprintln!("duress passphrase set");
            } else {
                let p = new_passphrase("New passphrase")?;
                client.change_passphrase(p.as_bytes(), None)?;
                eprintln!("passphrase changed");
            }
        }
    }
    Ok(())
}

fn chat(cli: &Cli, alias: &str) -> Result<(), CliError> {
    let mut client = open(cli)?;
    // Fail early on an unknown alias.
    let history = client.messages(Some(alias))?;
    for m in history.iter().rev().take(10).rev() {
        print_message(m, false);
    }
    client.mark_read(Some(alias))?;
    eprintln!("-- chat with {alias}; Ctrl-D to leave --");
    let rt = runtime()?;
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let (quit_tx, quit_rx) = tokio::sync::oneshot::channel::<()>();
    let target = alias.to_owned();
    // stdin is blocking: read it on its own thread.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let text = line.trim().to_owned();
            if text == "/quit" {
                break;
            }
            if text.is_empty() {
                continue;
            }
            if cmd_tx
                .send(SyncCommand::Send {
                    alias: target.clone(),
                    text,
                })
                .is_err()
            {
                break;
            }
        }
        let _ = quit_tx.send(());
    });
    let result = rt.block_on(async {
        let printer = async {
            while let Some(ev) = ev_rx.recv().await {
                print_event(&ev, true);
            }
        };
        let work = async {
            let opts = SyncOptions {
                wait: Some(Duration::from_secs(365 * 24 * 3600)),
                ..SyncOptions::default()
            };
            let r = tokio::select! {
                r = client.sync(opts, Some(&ev_tx), Some(&mut cmd_rx)) => r,
                _ = quit_rx => Ok(Default::default()),
            };
            drop(ev_tx);
            r
        };
        let (r, ()) = tokio::join!(work, printer);
        r
    });
    result?;
    // Lines typed just before Ctrl-D may still wait in the channel: queue
    // every one of them durably, then deliver what can be delivered now.
    while let Ok(SyncCommand::Send { alias, text }) = cmd_rx.try_recv() {
        client.queue_text(&alias, &text)?;
    }
    let _ = sync_once(&mut client, &rt);
    // What arrived during the chat was shown live.
    client.mark_read(Some(alias))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tropa: {}", clean(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn terminal_escapes_are_neutralised() {
        assert_eq!(clean("hi\nthere\tyou"), "hi\nthere\tyou");
        let evil = "ok\u{1b}[2J\u{1b}]52;c;AAAA\u{7}\rverified";
        let shown = clean(evil);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
        assert!(shown.contains("\\u{1b}"));
    }
}

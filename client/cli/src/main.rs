//! `tropa`: the Tropa command-line client, made for Termux on cheap phones:
//! short commands, output that fits 40 columns, no colour, works offline
//! (messages queue and go out on the next `sync`), and clear one-line errors
//! with distinct exit codes.
//!
//! All protocol logic lives in `tropa-client`; this crate only parses
//! arguments (this file), asks for input ([`input`]), prints ([`output`]),
//! and runs one command per function in [`cmd`].

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cmd;
mod input;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tropa_client::error::{ClientError, ProfileError};

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
    /// Print JSON: lines for `contacts` and `read`, one value for `case`.
    #[arg(long, global = true)]
    json: bool,
    /// Show technical detail: events and bytes for `sync`, and what lies
    /// behind an error.
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Show times in UTC instead of local time.
    #[arg(long, global = true)]
    utc: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create your profile (keys stay on this device, encrypted).
    #[command(override_usage = "tropa init --name NAME\n       --relay ADDRESS [OPTIONS]")]
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
        /// Do not check that the relay answers with its key.
        #[arg(long)]
        offline: bool,
    },
    /// Show your relay, or change it for new invitations.
    ///
    /// `tropa relay` prints the address; `tropa relay set ADDRESS` checks
    /// the new relay and uses it from now on for new invitations and
    /// accepted links (existing contacts keep theirs).
    Relay {
        #[command(subcommand)]
        action: Option<RelayCmd>,
    },
    /// Make a one-time invitation link for one person.
    ///
    /// Send the link over a channel you trust (or show the QR). Whoever
    /// accepts it becomes ALIAS in your contacts after your next `sync`.
    /// `--list` shows the invitations nobody accepted yet; `--cancel ALIAS`
    /// withdraws one (its link stops working).
    Invite {
        /// What you will call the person who accepts.
        #[arg(long = "name", value_name = "ALIAS", conflicts_with_all = ["list", "cancel"])]
        alias: Option<String>,
        /// Also print the link as a QR code.
        #[arg(long)]
        qr: bool,
        /// List invitations not accepted yet.
        #[arg(long, conflicts_with = "cancel")]
        list: bool,
        /// Cancel the invitation for ALIAS.
        #[arg(long, value_name = "ALIAS")]
        cancel: Option<String>,
    },
    /// Accept an invitation link and call its sender ALIAS.
    ///
    /// Leave LINK out (or give -) to paste it at the prompt or pipe it in:
    /// a link typed on the command line stays in your shell history.
    #[command(override_usage = "tropa accept --name ALIAS [LINK]")]
    Accept {
        /// The tropa:invite#… link [default: asked for].
        link: Option<String>,
        /// What you will call them.
        #[arg(long = "name", value_name = "ALIAS")]
        alias: String,
    },
    /// List contacts (or delete or rename one).
    #[command(override_usage = "tropa contacts [COMMAND]")]
    Contacts {
        #[command(subcommand)]
        action: Option<ContactsCmd>,
    },
    /// Case work: status, private notes, vetting.
    ///
    /// `tropa case` lists every case (with --status S, only those in S);
    /// `tropa case ALIAS` shows one. Notes and evaluations are private:
    /// stored encrypted in your profile and never sent to anyone, the
    /// contact included.
    ///
    /// A case becomes cleared (or relocating) only once 2 evaluators with
    /// different names passed it and no evaluator's latest outcome is fail.
    /// A refused status change exits 6.
    ///
    /// Changes to ALIAS are made in this order: --note, --evaluate,
    /// --status, --star or --unstar, --acknowledge-alert. When one is
    /// refused, the ones after it are not made; those before it stay.
    #[command(
        override_usage = "tropa case [ALIAS] [OPTIONS]",
        next_display_order = 10
    )]
    Case {
        /// Contact [default: list all cases].
        alias: Option<String>,
        /// With ALIAS: move the case to S. Without: list only cases in S.
        #[arg(long, value_name = "S")]
        status: Option<CaseStatusArg>,
        /// Add a private note. Give - to type it at a prompt or pipe it in,
        /// so it stays out of your shell history.
        #[arg(long, value_name = "TEXT", requires = "alias")]
        note: Option<String>,
        /// Record an evaluation by NAME (needs --outcome).
        #[arg(long, value_name = "NAME", requires_all = ["alias", "outcome"])]
        evaluate: Option<String>,
        /// The outcome of the evaluation.
        #[arg(long, value_name = "O", requires = "evaluate")]
        outcome: Option<VerdictArg>,
        /// Why (with --evaluate).
        #[arg(long, value_name = "TEXT", requires = "evaluate")]
        comment: Option<String>,
        /// Star the case.
        #[arg(long, requires = "alias", conflicts_with = "unstar")]
        star: bool,
        /// Remove the star.
        #[arg(long, requires = "alias")]
        unstar: bool,
        /// Clear the alert that someone offered another identity key for
        /// ALIAS, once you checked with them another way.
        #[arg(long, requires = "alias")]
        acknowledge_alert: bool,
    },
    /// Send a message; if the relay cannot take it now it stays queued.
    ///
    /// Leave TEXT out (or give -) to type it at the prompt, or pipe it in
    /// (`termux-clipboard-get | tropa send ALIAS`): text on the command line
    /// stays in your shell history. Exit 0: the relay has it. Exit 5: it is
    /// queued and `tropa sync` delivers it later.
    #[command(override_usage = "tropa send ALIAS [TEXT] [OPTIONS]")]
    Send {
        /// Contact.
        alias: String,
        /// Message text [default: asked for, or read from a pipe].
        text: Option<String>,
        /// Seconds to wait for the relay before leaving it queued.
        #[arg(long, value_name = "SECONDS", default_value_t = 6)]
        timeout: u64,
    },
    /// Receive new messages and deliver queued ones.
    Sync {
        /// Keep listening this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
        /// Resend a message without receipt after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        resend_after: u64,
    },
    /// Show messages: with ALIAS the conversation, else all unread.
    Read {
        /// Contact.
        alias: Option<String>,
    },
    /// Chat with ALIAS live.
    ///
    /// Type a line and Enter to send it; each line is numbered and its
    /// state shown (#1 queued, #1 sent, #1 delivered). /quit or Ctrl-D
    /// leaves; lines piped in are sent one by one.
    Chat {
        /// Contact.
        alias: String,
    },
    /// An interactive session: unlock once, messages arrive live.
    ///
    /// Type /help there. /send, /read, /contacts, /chat ALIAS, /invite,
    /// /accept; Tab completes commands and names; history is kept in
    /// memory only. Other `tropa` commands cannot use the profile while it
    /// is open.
    Shell,
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
    #[command(override_usage = "tropa timer ALIAS SECONDS")]
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

/// `tropa case --status`: where a case stands.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CaseStatusArg {
    New,
    Vetting,
    Cleared,
    Relocating,
    Closed,
}

impl From<CaseStatusArg> for tropa_client::CaseStatus {
    fn from(s: CaseStatusArg) -> Self {
        use tropa_client::CaseStatus as S;
        match s {
            CaseStatusArg::New => S::New,
            CaseStatusArg::Vetting => S::Vetting,
            CaseStatusArg::Cleared => S::Cleared,
            CaseStatusArg::Relocating => S::Relocating,
            CaseStatusArg::Closed => S::Closed,
        }
    }
}

/// `tropa case --outcome`: what an evaluator concluded.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum VerdictArg {
    Pass,
    Fail,
    Inconclusive,
}

impl From<VerdictArg> for tropa_client::Verdict {
    fn from(v: VerdictArg) -> Self {
        use tropa_client::Verdict as V;
        match v {
            VerdictArg::Pass => V::Pass,
            VerdictArg::Fail => V::Fail,
            VerdictArg::Inconclusive => V::Inconclusive,
        }
    }
}

#[derive(Debug, Subcommand)]
enum RelayCmd {
    /// Print your relay's address (the default).
    Show,
    /// Use another relay for new invitations and accepted links.
    #[command(override_usage = "tropa relay set ADDRESS [OPTIONS]")]
    Set {
        /// The relay's tropa:// address.
        address: String,
        /// Do not check that the relay answers with its key.
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ContactsCmd {
    /// List contacts with unread and pending counts (the default).
    List,
    /// Delete a contact: their messages on this device, and your mailbox
    /// for them on the relay. They can no longer write to you.
    #[command(override_usage = "tropa contacts delete ALIAS")]
    Delete {
        /// Contact.
        alias: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Give a contact another name (only you see it).
    #[command(override_usage = "tropa contacts rename OLD NEW")]
    Rename {
        /// Current name.
        #[arg(value_name = "OLD")]
        alias: String,
        /// New name.
        #[arg(value_name = "NEW")]
        new_alias: String,
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
    #[error(
        "cannot use this relay: {0}. Check the address with its operator, or add --offline to skip the check"
    )]
    BadRelay(tropa_client::RelayError),
    #[error("queued for {alias}: {why}")]
    Queued { alias: String, why: String },
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
    /// The technical detail behind the plain message, shown with `-v`.
    fn detail(&self) -> Option<&str> {
        match self {
            CliError::Client(ClientError::Relay(e)) | CliError::BadRelay(e) => Some(e.detail()),
            CliError::Client(ClientError::Profile(ProfileError::Storage(d)))
            | CliError::Client(ClientError::Profile(ProfileError::Corrupt(d))) => Some(d),
            _ => None,
        }
    }

    /// Exit codes (documented in README): 1 other, 2 usage, 3 wrong
    /// passphrase, 4 not found, 5 network, 6 invalid input, 7 identity
    /// changed or safety mismatch, 8 profile exists or in use.
    fn exit_code(&self) -> u8 {
        use ClientError as C;
        match self {
            CliError::Usage(_) | CliError::NoPassphrase => 2,
            CliError::Network(_) | CliError::Queued { .. } | CliError::BadRelay(_) => 5,
            CliError::Client(c) => match c {
                C::Profile(ProfileError::WrongPassphrase) => 3,
                C::Profile(ProfileError::NoProfile) | C::UnknownContact { .. } => 4,
                C::Profile(ProfileError::Exists | ProfileError::Locked) => 8,
                C::Profile(
                    ProfileError::BadName
                    | ProfileError::BadPassphrase(_)
                    | ProfileError::WeakPassphrase(_),
                ) => 6,
                C::Relay(_) | C::ContactBroken(_) => 5,
                C::BadLink(_)
                | C::BadAlias
                | C::AliasTaken(_)
                | C::TooLong { .. }
                | C::BadRelay(_)
                | C::InvitationExpired
                | C::InvitationUsed
                | C::InvitationRefused
                | C::OwnInvitation
                | C::NotEstablished(_)
                | C::EmptyText
                | C::Vetting(_) => 6,
                C::IdentityChanged(_) | C::SafetyMismatch(_) => 7,
                _ => 1,
            },
            _ => 1,
        }
    }
}

fn run(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Cmd::Init {
            name,
            relay,
            kdf_memory_mib,
            kdf_passes,
            offline,
        } => cmd::profile::init(cli, name, relay, (*kdf_memory_mib, *kdf_passes), *offline),
        Cmd::Relay {
            action: None | Some(RelayCmd::Show),
        } => cmd::profile::show_relay(cli),
        Cmd::Relay {
            action: Some(RelayCmd::Set { address, offline }),
        } => cmd::profile::set_relay(cli, address, *offline),
        Cmd::Invite { list: true, .. } => cmd::contacts::invitations(cli),
        Cmd::Invite {
            cancel: Some(alias),
            ..
        } => cmd::contacts::delete(cli, alias, true, true),
        Cmd::Invite { alias, qr, .. } => cmd::contacts::invite(cli, alias.as_deref(), *qr),
        Cmd::Accept { link, alias } => cmd::contacts::accept(cli, link.as_deref(), alias),
        Cmd::Contacts {
            action: None | Some(ContactsCmd::List),
        } => cmd::contacts::list(cli),
        Cmd::Contacts {
            action: Some(ContactsCmd::Delete { alias, yes }),
        } => cmd::contacts::delete(cli, alias, *yes, false),
        Cmd::Contacts {
            action: Some(ContactsCmd::Rename { alias, new_alias }),
        } => cmd::contacts::rename(cli, alias, new_alias),
        Cmd::Case {
            alias: None,
            status,
            ..
        } => cmd::case::list(cli, status.map(Into::into)),
        Cmd::Case {
            alias: Some(alias),
            status,
            note,
            evaluate,
            outcome,
            comment,
            star,
            unstar,
            acknowledge_alert,
        } => cmd::case::case(
            cli,
            alias,
            &cmd::case::Changes {
                note: note.as_deref(),
                evaluation: evaluate
                    .as_deref()
                    .zip(outcome.map(Into::into))
                    .map(|(name, verdict)| (name, verdict, comment.as_deref().unwrap_or_default())),
                status: status.map(Into::into),
                star: if *star {
                    Some(true)
                } else if *unstar {
                    Some(false)
                } else {
                    None
                },
                acknowledge_alert: *acknowledge_alert,
            },
        ),
        Cmd::Send {
            alias,
            text,
            timeout,
        } => cmd::messages::send(cli, alias, text.as_deref(), *timeout),
        Cmd::Sync { wait, resend_after } => {
            cmd::messages::sync(cli, *wait, cli.verbose, *resend_after)
        }
        Cmd::Read { alias } => cmd::messages::read(cli, alias.as_deref()),
        Cmd::Chat { alias } => cmd::chat::chat(cli, alias),
        Cmd::Shell => cmd::shell::shell(cli),
        Cmd::Verify {
            alias,
            confirm,
            digits,
            qr,
        } => cmd::contacts::verify(cli, alias, *confirm, digits.as_deref(), *qr),
        Cmd::Timer { alias, seconds } => cmd::contacts::timer(cli, alias, *seconds),
        Cmd::Wipe { yes } => cmd::profile::wipe(cli, *yes),
        Cmd::Passphrase { duress } => cmd::profile::change_passphrase(cli, *duress),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::show_utc(cli.utc);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tropa: {}", output::clean(&e.to_string()));
            if let Some(detail) = e.detail().filter(|_| cli.verbose) {
                eprintln!("detail: {}", output::clean(detail));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

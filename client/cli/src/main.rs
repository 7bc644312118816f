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
/// Every day: `tropa` alone shows who wrote (new messages per contact),
/// `tropa read ALIAS` the last 20 messages, and `tropa search` finds a
/// message by its words.
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
    /// Print JSON: lines for `tropa` alone, `contacts`, `read` and
    /// `search`; one value for `case`.
    #[arg(long, global = true)]
    json: bool,
    /// Show technical detail: events and bytes for `sync`, and what lies
    /// behind an error.
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Show times in UTC instead of local time.
    #[arg(long, global = true)]
    utc: bool,
    /// How to reach relays in this run: auto (QUIC, and TCP within 3 s
    /// where UDP is blocked), quic or tcp. `tropa config transport` saves
    /// it.
    #[arg(long, global = true, value_name = "auto|quic|tcp", value_parser = parse_transport)]
    transport: Option<tropa_client::TransportChoice>,
    /// Go through this SOCKS5 proxy in this run, e.g. Tor's
    /// 127.0.0.1:9050: the relay sees the proxy's address, not yours.
    /// `tropa config socks5` saves it.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    socks5: Option<String>,
    /// Without one: who wrote (new messages per contact).
    #[command(subcommand)]
    command: Option<Cmd>,
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
    /// List, add or remove the relays your new contacts are spread over.
    ///
    /// Each new invitation or accepted link puts its mailbox on one of
    /// your relays, chosen at random, so that no one relay sees all of
    /// your contacts. Existing contacts keep the relay they have
    /// (`tropa contacts` shows it once you have several).
    #[command(override_usage = "tropa relays [list]\n       tropa relays add|remove ADDRESS")]
    Relays {
        #[command(subcommand)]
        action: Option<RelaysCmd>,
    },
    /// Show or change this profile's settings.
    ///
    /// `tropa config` prints them; `tropa config metered on` saves data
    /// when you pay for every megabyte (see `tropa config metered --help`);
    /// `tropa config socks5 127.0.0.1:9050` goes through Tor.
    #[command(override_usage = "tropa config [SETTING VALUE]")]
    Config {
        #[command(subcommand)]
        action: Option<ConfigCmd>,
    },
    /// Make a one-time invitation link for one person.
    ///
    /// Prints a short link (TROPA:I/..., under 100 characters): send it
    /// over a channel you trust, or show its QR code (--qr, 39 columns).
    /// Whoever accepts it becomes ALIAS in your contacts after your next
    /// `sync`. The invitation waits on your relay, sealed with a key only
    /// the link holds, and is deleted from it once used. `--long` prints
    /// the long link instead (about 1,900 characters; works with older
    /// versions). `--list` shows the invitations nobody accepted yet;
    /// `--cancel ALIAS` withdraws one (its link stops working).
    Invite {
        /// What you will call the person who accepts.
        #[arg(long = "name", value_name = "ALIAS", conflicts_with_all = ["list", "cancel"])]
        alias: Option<String>,
        /// Also print the link as a QR code.
        #[arg(long)]
        qr: bool,
        /// Print the long tropa:invite#… link instead of the short one.
        #[arg(long, conflicts_with_all = ["list", "cancel"])]
        long: bool,
        /// List invitations not accepted yet.
        #[arg(long, conflicts_with = "cancel")]
        list: bool,
        /// Cancel the invitation for ALIAS.
        #[arg(long, value_name = "ALIAS")]
        cancel: Option<String>,
    },
    /// Accept an invitation link and call its sender ALIAS.
    ///
    /// LINK is a short TROPA:I/… link (its invitation is fetched from the
    /// relay it names, checked by that relay's key) or a long
    /// tropa:invite#… link. Leave it out (or give -) to paste it at the
    /// prompt or pipe it in: a link typed on the command line stays in
    /// your shell history.
    ///
    /// An organisation's public address (TROPA:A/…) sends them a contact
    /// request instead: your first message is asked for (or piped in), and
    /// they become ALIAS once they accept it.
    #[command(override_usage = "tropa accept --name ALIAS [LINK]")]
    Accept {
        /// The TROPA:I/… or tropa:invite#… link [default: asked for].
        link: Option<String>,
        /// What you will call them.
        #[arg(long = "name", value_name = "ALIAS")]
        alias: String,
    },
    /// Your public address (for organisations).
    ///
    /// One reusable link (and QR code) to publish. Whoever uses it sends a
    /// contact request with a first message; `tropa requests` lists them.
    /// Deleting it stops new requests; contacts made through it stay.
    #[command(override_usage = "tropa address [create|show|delete]")]
    Address {
        #[command(subcommand)]
        action: Option<AddressCmd>,
    },
    /// Requests to your public address.
    ///
    /// Each shows its id, when it came, the first digits of the safety
    /// number with the requester, and their first message. Accepting makes
    /// them a contact with mailboxes of their own; rejecting deletes the
    /// request and sends nothing.
    #[command(override_usage = "tropa requests [list|accept|reject]")]
    Requests {
        #[command(subcommand)]
        action: Option<RequestsCmd>,
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
    /// Show messages: with ALIAS the conversation, else all new ones.
    ///
    /// With ALIAS: its last 20 messages, oldest at the top; -n sets how
    /// many, --page 2 shows the ones before those, and so on. Without
    /// ALIAS: everyone's new messages, oldest first, 20 at a time. Only
    /// what is shown is marked read. With --json and no -n: all.
    ///
    /// Example: `tropa read bob -n 5 --page 2`
    #[command(override_usage = "tropa read [ALIAS] [-n N]\n       [--page K] [OPTIONS]")]
    Read {
        /// Contact [default: everyone's new messages].
        alias: Option<String>,
        /// How many messages [default: 20].
        #[arg(short = 'n', long = "last", value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        last: Option<u32>,
        /// Which page, counting back from the newest (1).
        #[arg(long, value_name = "K", requires = "alias", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..))]
        page: u32,
    },
    /// Find messages containing TEXT (any case), in memory only.
    ///
    /// Searches your messages with ALIAS, or with everyone, and shows the
    /// 20 newest hits (-n for more), one line each. Nothing is written:
    /// no index, no record of the search. Leave TEXT out (or give -) to
    /// type it when asked, so it stays out of your shell history.
    ///
    /// Example: `tropa search - bob`, then type
    /// the words to find when asked.
    #[command(override_usage = "tropa search [TEXT] [ALIAS]\n       [-n N] [OPTIONS]")]
    Search {
        /// What to look for [default: asked for].
        text: Option<String>,
        /// Only messages with this contact.
        alias: Option<String>,
        /// How many hits, the newest [default: 20].
        #[arg(short = 'n', long = "last", value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        last: Option<u32>,
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
enum ConfigCmd {
    /// Print the settings (the default).
    Show,
    /// Pay for less data: let receipts wait for your reply.
    ///
    /// Each message you receive is confirmed to its sender by a receipt.
    /// On its own a receipt costs as much as a message, about 17 KB each
    /// way; inside your next message to that person it costs nothing.
    ///
    /// With metered on, a receipt with nothing to ride on waits for your
    /// reply up to 5 minutes, then goes alone with your next `sync` (or
    /// sooner, with any `sync` that sends something anyway). The sender
    /// sees `delivered` later. Not longer: after 10 minutes without a
    /// receipt the sender sends the message again, which costs more than
    /// the receipt saved.
    #[command(override_usage = "tropa config metered on|off")]
    Metered {
        /// on: hold receipts; off: send them at once (the default).
        #[arg(value_name = "on|off")]
        state: OnOff,
    },
    /// How to reach relays: auto, quic or tcp.
    ///
    /// auto (the default) tries QUIC, which is fastest, and TCP when QUIC
    /// gets no answer within 3 s (networks that block UDP); it remembers
    /// per relay what worked. tcp also looks like ordinary web traffic.
    #[command(override_usage = "tropa config transport auto|quic|tcp")]
    Transport {
        /// auto, quic or tcp.
        #[arg(value_name = "auto|quic|tcp", value_parser = parse_transport)]
        transport: tropa_client::TransportChoice,
    },
    /// Go through a SOCKS5 proxy such as Tor, or `off`.
    ///
    /// The relay then sees the proxy (with Tor: an exit) instead of your
    /// address, and host names are resolved by the proxy. Every
    /// connection goes over TCP. With a proxy, each contact gets its own
    /// connection and its own Tor circuit (see `tropa config isolation`).
    ///
    /// On Termux: `pkg install tor`, run `tor &`, then
    /// `tropa config socks5 127.0.0.1:9050`.
    #[command(override_usage = "tropa config socks5 HOST:PORT|off")]
    Socks5 {
        /// HOST:PORT (Tor: 127.0.0.1:9050), off, or for a proxy that
        /// wants a password socks5://USER:PASS@HOST:PORT
        #[arg(value_name = "HOST:PORT|off")]
        proxy: String,
    },
    /// One connection per contact, or one for everything.
    ///
    /// contact: each contact's mailboxes and messages travel on a
    /// connection of their own, so the relay cannot tell that two
    /// contacts are yours by their sharing a connection (it may still
    /// guess from timing). It costs a connection (a handshake, about
    /// 5-10 KB) per contact per sync, and more battery.
    /// profile: one connection per relay (cheapest).
    /// default: contact with a SOCKS5 proxy, profile without.
    #[command(override_usage = "tropa config isolation contact|profile|default")]
    Isolation {
        /// contact, profile or default.
        #[arg(value_name = "contact|profile|default")]
        mode: String,
    },
}

fn parse_transport(s: &str) -> Result<tropa_client::TransportChoice, String> {
    s.parse().map_err(|_| "auto, quic or tcp".to_owned())
}

impl Cli {
    /// The `--socks5` proxy, if given. Parsed here rather than by clap,
    /// whose error would echo the value, password and all.
    fn socks5(&self) -> Result<Option<tropa_client::Socks5>, CliError> {
        let Some(s) = self.socks5.as_deref() else {
            return Ok(None);
        };
        let proxy: tropa_client::Socks5 =
            s.parse().map_err(|e: tropa_client::Socks5ParseError| {
                CliError::Usage(format!("--socks5: {e}"))
            })?;
        if proxy.credentials.is_some() {
            eprintln!(
                "note: a password on the command line stays in your shell history; \
                 `tropa config socks5` saves it instead"
            );
        }
        Ok(Some(proxy))
    }
}

/// A setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
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
enum RelaysCmd {
    /// Print every relay, your main one first (the default).
    List,
    /// Spread new contacts over this relay too.
    #[command(override_usage = "tropa relays add ADDRESS [--offline]")]
    Add {
        /// The relay's tropa:// address (from its operator).
        address: String,
        /// Do not check that the relay answers with its key.
        #[arg(long)]
        offline: bool,
    },
    /// Put no new contacts on this relay (those there stay).
    #[command(override_usage = "tropa relays remove ADDRESS")]
    Remove {
        /// The relay's tropa:// address, as `tropa relays` prints it.
        address: String,
    },
}

#[derive(Debug, Subcommand)]
enum AddressCmd {
    /// Print the address and its QR code (the default).
    Show,
    /// Make the address (one per profile) on your relay.
    Create,
    /// Delete the address: its link stops working.
    #[command(override_usage = "tropa address delete [--yes]")]
    Delete {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RequestsCmd {
    /// List the requests waiting, oldest first (the default).
    List,
    /// Accept request ID and call the requester ALIAS.
    #[command(override_usage = "tropa requests accept ID --name ALIAS")]
    Accept {
        /// The request's id (its first characters are enough).
        id: String,
        /// What you will call them.
        #[arg(long = "name", value_name = "ALIAS")]
        alias: String,
    },
    /// Reject request ID: it is deleted, nothing is sent.
    #[command(override_usage = "tropa requests reject ID")]
    Reject {
        /// The request's id (its first characters are enough).
        id: String,
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
    #[error(
        "no profile here yet. Create one:\n  tropa init --name NAME --relay ADDRESS\nADDRESS is your relay's tropa://…\naddress, from whoever runs it."
    )]
    NoProfileYet,
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
            CliError::Client(ClientError::Link(
                tropa_client::LinkResolveError::Unreachable(e)
                | tropa_client::LinkResolveError::Refused(e),
            )) => Some(e.detail()),
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
            CliError::NoProfileYet => 4,
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
                C::Link(l) if !l.is_bad_link() => 5,
                C::BadLink(_)
                | C::Link(_)
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
                C::Intake(i) => {
                    use tropa_client::IntakeError as I;
                    match i {
                        I::NoAddress | I::UnknownRequest(_) => 4,
                        I::AddressGone => 5,
                        _ => 6,
                    }
                }
                _ => 1,
            },
            _ => 1,
        }
    }
}

fn run(cli: &Cli) -> Result<(), CliError> {
    let Some(command) = &cli.command else {
        return cmd::messages::inbox(cli);
    };
    match command {
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
        Cmd::Relays {
            action: None | Some(RelaysCmd::List),
        } => cmd::profile::list_relays(cli),
        Cmd::Relays {
            action: Some(RelaysCmd::Add { address, offline }),
        } => cmd::profile::add_relay(cli, address, *offline),
        Cmd::Relays {
            action: Some(RelaysCmd::Remove { address }),
        } => cmd::profile::remove_relay(cli, address),
        Cmd::Config {
            action: None | Some(ConfigCmd::Show),
        } => cmd::config::show(cli),
        Cmd::Config {
            action: Some(ConfigCmd::Metered { state }),
        } => cmd::config::set_metered(cli, *state == OnOff::On),
        Cmd::Config {
            action: Some(ConfigCmd::Transport { transport }),
        } => cmd::config::set_transport(cli, *transport),
        Cmd::Config {
            action: Some(ConfigCmd::Socks5 { proxy }),
        } => cmd::config::set_socks5(cli, proxy),
        Cmd::Config {
            action: Some(ConfigCmd::Isolation { mode }),
        } => cmd::config::set_isolation(cli, mode),
        Cmd::Invite { list: true, .. } => cmd::contacts::invitations(cli),
        Cmd::Invite {
            cancel: Some(alias),
            ..
        } => cmd::contacts::delete(cli, alias, true, true),
        Cmd::Invite {
            alias, qr, long, ..
        } => cmd::contacts::invite(cli, alias.as_deref(), *qr, *long),
        Cmd::Accept { link, alias } => cmd::contacts::accept(cli, link.as_deref(), alias),
        Cmd::Address {
            action: None | Some(AddressCmd::Show),
        } => cmd::intake::address_show(cli),
        Cmd::Address {
            action: Some(AddressCmd::Create),
        } => cmd::intake::address_create(cli),
        Cmd::Address {
            action: Some(AddressCmd::Delete { yes }),
        } => cmd::intake::address_delete(cli, *yes),
        Cmd::Requests {
            action: None | Some(RequestsCmd::List),
        } => cmd::intake::requests_list(cli),
        Cmd::Requests {
            action: Some(RequestsCmd::Accept { id, alias }),
        } => cmd::intake::requests_accept(cli, id, alias),
        Cmd::Requests {
            action: Some(RequestsCmd::Reject { id }),
        } => cmd::intake::requests_reject(cli, id),
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
        Cmd::Read { alias, last, page } => cmd::messages::read(cli, alias.as_deref(), *last, *page),
        Cmd::Search { text, alias, last } => {
            cmd::messages::search(cli, text.as_deref(), alias.as_deref(), *last)
        }
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

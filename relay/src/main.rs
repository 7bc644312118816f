//! `tropa-relay`: run a Tropa relay.
//!
//! With no arguments it initialises a data directory at the default location
//! if needed and serves. The first line of stdout of `run` is always the relay
//! address, so scripts can read it.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tropa_relay::config::Config;
use tropa_relay::identity::{KEY_FILE, RelayIdentity};
use tropa_relay::server::{Server, address_for};
use tropa_relay::store::migrate;

const CONFIG_FILE: &str = "relay.toml";

/// A Tropa relay: stores sealed, fixed-size envelopes for Tropa clients and
/// learns nothing else about them.
///
/// Quick start: `tropa-relay` creates a relay in the default data directory
/// ($TROPA_RELAY_DATA if set; on first start $TROPA_RELAY_PUBLIC_HOST, if
/// set, becomes its public_host) and serves it, printing the relay address
/// (tropa://…) to give to users.
/// Operators: `tropa-relay init --data DIR --listen 0.0.0.0:4433`, edit
/// DIR/relay.toml (set public_host), then `tropa-relay run --data DIR`.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the relay key and relay.toml in DIR and print the address.
    Init {
        /// Data directory (created with mode 0700).
        #[arg(long, value_name = "DIR", env = "TROPA_RELAY_DATA")]
        data: PathBuf,
        /// UDP address to listen on; port 0 picks a free port at every start.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// Host or IP to put in the address when listening on 0.0.0.0 or [::].
        #[arg(long, value_name = "HOST")]
        public_host: Option<String>,
    },
    /// Serve the relay in DIR. Prints the address on the first line of stdout.
    Run {
        /// Data directory made by `init`.
        #[arg(long, value_name = "DIR", env = "TROPA_RELAY_DATA")]
        data: PathBuf,
        /// Override the listen address from relay.toml.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
    },
    /// Check DIR's relay.toml and key without serving: prints the address
    /// users get, or what is wrong (with the key and line) and exits 4.
    Check {
        /// Data directory made by `init`.
        #[arg(long, value_name = "DIR", env = "TROPA_RELAY_DATA")]
        data: PathBuf,
    },
    /// Print the relay address of DIR, as relay.toml says now (run it after
    /// every change of public_host, listen or creation_password).
    Address {
        /// Data directory made by `init`.
        #[arg(long, value_name = "DIR", env = "TROPA_RELAY_DATA")]
        data: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0} is already a relay data directory (use `tropa-relay run --data {0}`)")]
    AlreadyInitialised(String),
    #[error("{0} is not a relay data directory (create one with `tropa-relay init --data {0}`)")]
    NotInitialised(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no default data directory on this system; pass --data DIR")]
    NoDefaultDir,
    #[error(
        "the relay listens on port 0 (a new port each start); the running relay prints its address"
    )]
    DynamicPort,
    #[error(transparent)]
    Config(#[from] tropa_relay::config::ConfigError),
    #[error(transparent)]
    Identity(#[from] tropa_relay::identity::IdentityError),
    #[error(transparent)]
    Store(#[from] migrate::OpenError),
    #[error(transparent)]
    Server(#[from] tropa_relay::server::ServerError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::AlreadyInitialised(_) | CliError::NotInitialised(_) => 3,
            CliError::Config(_) => 4,
            CliError::Server(_) => 5,
            _ => 1,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn default_data_dir() -> Result<PathBuf, CliError> {
    if let Some(d) = std::env::var_os("TROPA_RELAY_DATA") {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "tropa")
        .map(|p| p.data_dir().join("relay"))
        .ok_or(CliError::NoDefaultDir)
}

fn is_initialised(data: &Path) -> bool {
    data.join(KEY_FILE).exists()
}

/// Creates the relay in `data`. `announce` prints the address (the no-argument
/// mode leaves that to `run`, so stdout carries it once).
fn init(
    data: &Path,
    listen: Option<SocketAddr>,
    public_host: Option<String>,
    announce: bool,
) -> Result<(), CliError> {
    if is_initialised(data) {
        return Err(CliError::AlreadyInitialised(data.display().to_string()));
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(data).map_err(io_err(data))?;
    let mut cfg = Config::default();
    if let Some(l) = listen {
        cfg.listen = l;
    }
    cfg.public_host = public_host;
    cfg.validate()?;
    let identity = RelayIdentity::generate()?;
    cfg.save(&data.join(CONFIG_FILE))?;
    identity.save(&data.join(KEY_FILE))?;
    if !announce {
        return Ok(());
    }
    if cfg.listen.port() == 0 {
        println!(
            "relay created in {} (port chosen at each start)",
            data.display()
        );
    } else {
        println!(
            "{}",
            address_for(&cfg, identity.fingerprint(), cfg.listen.port())
        );
    }
    warn_public_host(&cfg);
    Ok(())
}

/// Says on stderr when `public_host` is an address users elsewhere cannot
/// reach (the example from the documentation, a private one, ...).
fn warn_public_host(cfg: &Config) {
    if let Some(w) = cfg.public_host_warning() {
        eprintln!("warning: {w}");
    }
}

fn load(data: &Path) -> Result<(Config, RelayIdentity), CliError> {
    if !is_initialised(data) {
        return Err(CliError::NotInitialised(data.display().to_string()));
    }
    let cfg_path = data.join(CONFIG_FILE);
    let cfg = if cfg_path.exists() {
        Config::load(&cfg_path)?
    } else {
        Config::default()
    };
    Ok((cfg, RelayIdentity::load(&data.join(KEY_FILE))?))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn run(data: &Path, listen: Option<SocketAddr>) -> Result<(), CliError> {
    let (mut cfg, identity) = load(data)?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    rt.block_on(async {
        let (store, opened) = migrate::open(data, cfg.store)?;
        match opened {
            migrate::Opened::MovedFromSled(t) => tracing::info!(
                "moved the store from sled into redb: {} mailboxes, {} envelopes, {} links",
                t.mailboxes,
                t.envelopes,
                t.links
            ),
            migrate::Opened::FinishedMove => {
                tracing::info!("finished moving the store from sled into redb");
            }
            migrate::Opened::AsIs => {}
        }
        warn_public_host(&cfg);
        let has_public_host = cfg.public_host.is_some();
        let wildcard = cfg.listen.ip().is_unspecified();
        let cfg_quic = cfg.quic;
        let server = Server::bind(cfg, &identity, store).await?;
        let address = server.address().map_err(io_err(data))?;
        println!("{address}");
        let transports = match (cfg_quic, server.tcp_addr().is_some()) {
            (true, true) => "QUIC and TCP",
            (false, _) => "TCP only",
            (true, false) => "QUIC only",
        };
        tracing::info!("relay listening ({transports}); address printed on stdout");
        if wildcard && !has_public_host {
            eprintln!(
                "note: listening on all interfaces; the address above uses loopback. \
                 Set public_host in {} so users get a reachable address.",
                data.join(CONFIG_FILE).display()
            );
        }
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

fn check(data: &Path) -> Result<(), CliError> {
    let (cfg, identity) = load(data)?;
    let port = cfg.listen.port();
    if port == 0 {
        println!("ok (the port is chosen at each start)");
    } else {
        println!("{}", address_for(&cfg, identity.fingerprint(), port));
    }
    if cfg.listen.ip().is_unspecified() && cfg.public_host.is_none() {
        eprintln!(
            "note: listen is a wildcard and public_host is unset: the address above \
             works only on this machine. Set public_host in {}.",
            data.join(CONFIG_FILE).display()
        );
    }
    warn_public_host(&cfg);
    Ok(())
}

fn address(data: &Path) -> Result<(), CliError> {
    let (cfg, identity) = load(data)?;
    if cfg.listen.port() == 0 {
        return Err(CliError::DynamicPort);
    }
    println!(
        "{}",
        address_for(&cfg, identity.fingerprint(), cfg.listen.port())
    );
    Ok(())
}

/// The log filter: `TROPA_LOG` (or `info`), always followed by directives
/// that keep quinn and quinn-udp quiet. They log peer addresses (even at
/// WARN, e.g. on sendmsg errors, and at TRACE on migration), which must
/// never reach the relay's logs (S8), whatever the operator asks for.
fn log_filter(asked: Option<&str>) -> tracing_subscriber::EnvFilter {
    let asked = asked.filter(|a| !a.trim().is_empty()).unwrap_or("info");
    tracing_subscriber::EnvFilter::try_new(format!(
        "{asked},quinn_udp=off,quinn=error,quinn_proto=error"
    ))
    .unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,quinn_udp=off,quinn=error,quinn_proto=error")
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(log_filter(std::env::var("TROPA_LOG").ok().as_deref()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Init {
            data,
            listen,
            public_host,
        }) => init(&data, listen, public_host, true),
        Some(Command::Run { data, listen }) => run(&data, listen),
        Some(Command::Check { data }) => check(&data),
        Some(Command::Address { data }) => address(&data),
        None => default_data_dir().and_then(|data| {
            if !is_initialised(&data) {
                // A container's first start: its public host comes from
                // the environment (there is no shell to run `init` with).
                let public_host = std::env::var("TROPA_RELAY_PUBLIC_HOST")
                    .ok()
                    .filter(|h| !h.trim().is_empty());
                init(&data, None, public_host, false)?;
                eprintln!("created a new relay in {}", data.display());
            }
            run(&data, None)
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tropa-relay: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    fn enabled(asked: Option<&str>, target_quinn: bool, level: tracing::Level) -> bool {
        let subscriber = tracing_subscriber::registry().with(super::log_filter(asked));
        tracing::subscriber::with_default(subscriber, || match (target_quinn, level) {
            (true, tracing::Level::TRACE) => {
                tracing::enabled!(target: "quinn_proto", tracing::Level::TRACE)
            }
            (true, _) => tracing::enabled!(target: "quinn", tracing::Level::WARN),
            (false, _) => tracing::enabled!(target: "tropa_relay", tracing::Level::DEBUG),
        })
    }

    /// S8: whatever TROPA_LOG asks for, quinn's address-bearing lines stay out.
    #[test]
    fn an_operators_log_filter_cannot_bring_back_peer_addresses() {
        for asked in [
            None,
            Some("trace"),
            Some("quinn=trace,quinn_proto=trace"),
            Some("debug,quinn=warn"),
        ] {
            assert!(!enabled(asked, true, tracing::Level::TRACE), "{asked:?}");
            assert!(!enabled(asked, true, tracing::Level::WARN), "{asked:?}");
        }
        assert!(
            enabled(Some("debug"), false, tracing::Level::DEBUG),
            "the rest follows the operator"
        );
    }
}

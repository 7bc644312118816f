//! `relay.toml`: where the relay listens and its limits.
//!
//! Every field has a default, so an empty file is a valid configuration.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The relay configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on: UDP for QUIC, and TCP on the same IP and the
    /// same port number. Port 0 picks a free port (the same for both).
    pub listen: SocketAddr,
    /// Serve QUIC (UDP) on `listen`.
    pub quic: bool,
    /// Serve the TCP profile (TCP + TLS 1.3, HTTP/2 as the multiplexer) on
    /// `listen`'s IP and the port the UDP socket got, for clients whose
    /// network blocks UDP and for clients behind a SOCKS5 proxy (Tor).
    pub tcp: bool,
    /// Host (IP or DNS name) to print in the relay address, when `listen` is
    /// a wildcard address that clients cannot use as such.
    pub public_host: Option<String>,
    /// Password required to create mailboxes (deposits never need it).
    /// Letters, digits and `-._~` only; it appears in the relay address.
    pub creation_password: Option<String>,
    /// Envelopes one secured mailbox may hold while the relay is at most half
    /// full; beyond that, the other half is shared equally by all mailboxes,
    /// so the mailboxes nobody drains are refused first.
    pub mailbox_quota: u32,
    /// Envelopes one open mailbox (not yet secured by its recipient, so
    /// anyone with its address may deposit) may hold.
    pub open_mailbox_quota: u32,
    /// Bytes of envelopes the relay may hold in total.
    pub disk_quota_bytes: u64,
    /// Percent of `disk_quota_bytes` that open mailboxes may use together.
    pub open_disk_share_percent: u8,
    /// Hours an undelivered envelope is kept (default 21 days).
    pub envelope_ttl_hours: u32,
    /// Hours a mailbox may go unused before it is deleted (default 90 days).
    pub idle_mailbox_hours: u32,
    /// Hours after which a mailbox that was never subscribed to or secured
    /// is deleted (default 8 days: an invitation's 7 days plus a day's grace).
    pub unused_mailbox_hours: u32,
    /// Seconds between expiry sweeps.
    pub sweep_interval_secs: u64,
    /// Requests per second each connection may make on average.
    pub rate_per_sec: u32,
    /// Requests a connection may burst above the average.
    pub rate_burst: u32,
    /// Concurrent connections the relay accepts. Each may make QUIC buffer
    /// up to 256 KiB (see docs/relay-protocol.md §8), so the relay's memory
    /// is bounded by this times 256 KiB plus twice `memory_budget_mib`.
    pub max_connections: u32,
    /// Concurrent connections from one address (an IPv4 address or an IPv6
    /// /64), counted in memory only and only once the address is validated.
    pub max_connections_per_ip: u32,
    /// Mailboxes the relay holds at most; creation fails with `QUOTA` beyond.
    pub max_mailboxes: u64,
    /// Mailboxes one address (IPv4 address or IPv6 /64) may create per hour.
    pub creations_per_hour_per_address: u32,
    /// Mailboxes one address may create in a burst.
    pub creation_burst_per_address: u32,
    /// Mailboxes one connection may create in a burst.
    pub creation_burst_per_connection: u32,
    /// Short links the relay holds at most (each about 2.2 KB on disk); a
    /// new link beyond gets `QUOTA`. A new link also counts against the
    /// creation budgets above, like a mailbox.
    pub max_links: u64,
    /// Hours a short link may live at most (default 90 days); a longer time
    /// to live asked for is cut to this, and the owner refreshes the link.
    pub max_link_ttl_hours: u32,
    /// Deposits (contact requests) one intake mailbox takes per hour on
    /// average; beyond, `RATE_LIMITED`.
    pub intake_deposits_per_hour: u32,
    /// Deposits one intake mailbox takes in a burst.
    pub intake_deposit_burst: u32,
    /// MiB of memory the relay may hold for requests and deliveries in
    /// flight, all connections together, and as much again for open streams
    /// (8 KiB each). Beyond it, requests wait and are then answered
    /// `RATE_LIMITED` (relay busy); a stream beyond it is answered so at once.
    pub memory_budget_mib: u32,
    /// KiB of memory one connection may hold for requests in flight, and as
    /// much again for deliveries in flight.
    pub connection_memory_kib: u32,
    /// Seconds a client has to send a whole request after opening a
    /// stream; a slower one is answered `TIMED_OUT`. Longer than a client's
    /// own 20 s, so a client on a slow link gives up first and retries on a
    /// fresh connection.
    pub request_timeout_secs: u64,
    /// Which database holds mailboxes and envelopes in the data directory.
    pub store: StoreEngine,
    /// Loopback address for the Prometheus endpoint (off if unset).
    pub metrics_listen: Option<SocketAddr>,
}

/// The relay's database (see docs/benchmarks.md for why redb is the
/// default).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngine {
    /// redb, in `DATA/store.redb`: one fsynced transaction per group
    /// commit. A sled store found in the data directory is moved into it
    /// at the first start.
    #[default]
    Redb,
    /// sled 0.34, in `DATA/store/` (the store of relays before issue 13),
    /// kept for comparison in the load generator.
    Sled,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 4433)),
            quic: true,
            tcp: true,
            public_host: None,
            creation_password: None,
            mailbox_quota: 1000,
            open_mailbox_quota: 8,
            disk_quota_bytes: 8 * 1024 * 1024 * 1024,
            open_disk_share_percent: 5,
            envelope_ttl_hours: 21 * 24,
            idle_mailbox_hours: 90 * 24,
            unused_mailbox_hours: 8 * 24,
            sweep_interval_secs: 600,
            rate_per_sec: 50,
            rate_burst: 200,
            max_connections: 4_000,
            max_connections_per_ip: 128,
            max_mailboxes: 250_000,
            creations_per_hour_per_address: 30,
            creation_burst_per_address: 32,
            creation_burst_per_connection: 8,
            max_links: 100_000,
            max_link_ttl_hours: 90 * 24,
            intake_deposits_per_hour: 30,
            intake_deposit_burst: 10,
            memory_budget_mib: 256,
            connection_memory_kib: 256,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            store: StoreEngine::Redb,
            metrics_listen: None,
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}{}: {}{message}", at_line(*line), key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Parse {
        /// The file.
        path: String,
        /// The line (1-based) where it went wrong, when known.
        line: Option<usize>,
        /// The key on that line, when there is one.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or not usable.
    #[error("relay.toml{}: {reason}", at_line(*line))]
    Invalid {
        /// The key.
        key: &'static str,
        /// Its line in the file (None: not in the file, so its default).
        line: Option<usize>,
        /// What is wrong, naming the key.
        reason: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        line: None,
        reason: reason.into(),
    }
}

/// The 1-based line of `text` on which `key` is set, if it is.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The line (1-based) of byte offset `at`, and the key set on it.
fn line_and_key(text: &str, at: usize) -> (usize, Option<String>) {
    let at = at.min(text.len());
    let line = text[..at].matches('\n').count() + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('#'));
    (line, key)
}

impl Config {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`ConfigError`] for unreadable files, bad TOML or invalid values.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates the text of a relay.toml (`path` names it in
    /// errors, which also give the line and the key).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => {
                    let (l, k) = line_and_key(text, span.start);
                    (Some(l), k)
                }
                None => (None, None),
            };
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                key,
                message: e.message().trim().to_owned(),
            }
        })?;
        cfg.validate().map_err(|e| match e {
            ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
                key,
                line: line_of_key(text, key),
                reason,
            },
            other => other,
        })?;
        Ok(cfg)
    }

    /// Why `public_host` (if set) is unlikely to be what users can reach:
    /// a loopback, private, shared (carrier NAT), link-local, unspecified or
    /// documentation address. `None` for a DNS name or a global address.
    /// The relay still starts (a relay for one private network is legitimate),
    /// but `check`, `init` and `run` say so, because an operator who only
    /// uncommented the example line would otherwise hand out 203.0.113.7.
    pub fn public_host_warning(&self) -> Option<String> {
        let host = self.public_host.as_deref()?;
        let tropa_proto::Host::Ip(ip) = host.parse::<tropa_proto::Host>().ok()? else {
            return None;
        };
        let what = match ip {
            std::net::IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                if v4.is_unspecified() {
                    "the unspecified address"
                } else if v4.is_loopback() {
                    "a loopback address (this machine only)"
                } else if v4.is_private() {
                    "a private address (10/8, 172.16/12, 192.168/16)"
                } else if a == 100 && (64..128).contains(&b) {
                    "a carrier-grade NAT address (100.64/10)"
                } else if v4.is_link_local() {
                    "a link-local address"
                } else if (a, b, c) == (192, 0, 2)
                    || (a, b, c) == (198, 51, 100)
                    || (a, b, c) == (203, 0, 113)
                {
                    "an example address reserved for documentation"
                } else {
                    return None;
                }
            }
            std::net::IpAddr::V6(v6) => {
                let s0 = v6.segments()[0];
                if v6.is_unspecified() {
                    "the unspecified address"
                } else if v6.is_loopback() {
                    "a loopback address (this machine only)"
                } else if s0 & 0xfe00 == 0xfc00 {
                    "a unique local (private) address"
                } else if s0 & 0xffc0 == 0xfe80 {
                    "a link-local address"
                } else if s0 == 0x2001 && v6.segments()[1] == 0x0db8 {
                    "an example address reserved for documentation"
                } else {
                    return None;
                }
            }
        };
        Some(format!(
            "public_host {host} is {what}: users on other networks cannot reach it. \
             Put your server's public IP (from your provider) or DNS name."
        ))
    }

    /// Checks ranges and the password's character set.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.quic && !self.tcp {
            return Err(invalid(
                "tcp",
                "quic and tcp are both false: the relay would serve nothing; turn one on",
            ));
        }
        if let Some(h) = &self.public_host
            && h.parse::<tropa_proto::Host>().is_err()
        {
            // An unusable host used to be dropped silently, and the relay
            // printed an address with 0.0.0.0 that operators handed out.
            return Err(invalid(
                "public_host",
                format!(
                    "public_host {h:?} is not an IPv4 address, a bracketed IPv6 address \
                     ([2001:db8::1]) or a DNS name (no scheme, no port)"
                ),
            ));
        }
        if let Some(pw) = &self.creation_password {
            let probe = format!(
                "tropa://{}:{pw}@127.0.0.1:1",
                tropa_proto::Fingerprint([0; 32])
            );
            if probe.parse::<tropa_proto::RelayAddress>().is_err() {
                return Err(invalid(
                    "creation_password",
                    "creation_password may only use letters, digits and - . _ ~",
                ));
            }
        }
        if let Some(m) = self.metrics_listen
            && !m.ip().is_loopback()
        {
            return Err(invalid(
                "metrics_listen",
                "metrics_listen must be a loopback address (metrics are for the operator only)",
            ));
        }
        let at_least_one = [
            ("mailbox_quota", u64::from(self.mailbox_quota)),
            ("open_mailbox_quota", u64::from(self.open_mailbox_quota)),
            ("rate_per_sec", u64::from(self.rate_per_sec)),
            ("max_connections", u64::from(self.max_connections)),
            (
                "max_connections_per_ip",
                u64::from(self.max_connections_per_ip),
            ),
            ("max_mailboxes", self.max_mailboxes),
            (
                "creation_burst_per_address",
                u64::from(self.creation_burst_per_address),
            ),
            (
                "creation_burst_per_connection",
                u64::from(self.creation_burst_per_connection),
            ),
            ("memory_budget_mib", u64::from(self.memory_budget_mib)),
            ("max_links", self.max_links),
            ("max_link_ttl_hours", u64::from(self.max_link_ttl_hours)),
            (
                "intake_deposits_per_hour",
                u64::from(self.intake_deposits_per_hour),
            ),
            ("intake_deposit_burst", u64::from(self.intake_deposit_burst)),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(name, format!("{name} must be at least 1")));
        }
        // Past half full, the disk's second half is shared equally by all
        // mailboxes, at least one envelope each: that must fit.
        let envelopes = self.disk_quota_bytes / tropa_proto::ENVELOPE_SIZE as u64;
        if self.max_mailboxes > envelopes / 2 {
            return Err(invalid(
                "max_mailboxes",
                format!(
                    "max_mailboxes must be at most half the envelopes disk_quota_bytes holds \
                 ({} for {} bytes), so every mailbox keeps room for one",
                    envelopes / 2,
                    self.disk_quota_bytes
                ),
            ));
        }
        // The granted time to live goes back to the client in seconds (u32).
        if self.max_link_ttl_hours > MAX_LINK_TTL_HOURS {
            return Err(invalid(
                "max_link_ttl_hours",
                format!("max_link_ttl_hours must be at most {MAX_LINK_TTL_HOURS} (ten years)"),
            ));
        }
        if !(1..=MAX_REQUEST_TIMEOUT_SECS).contains(&self.request_timeout_secs) {
            return Err(invalid(
                "request_timeout_secs",
                format!("request_timeout_secs must be between 1 and {MAX_REQUEST_TIMEOUT_SECS}"),
            ));
        }
        if self.open_disk_share_percent > 100 {
            return Err(invalid(
                "open_disk_share_percent",
                "open_disk_share_percent must be at most 100",
            ));
        }
        // A client keeps up to REQUESTS_IN_FLIGHT requests in flight and
        // the relay refuses a request it has no budget for (a delivery needs
        // room for two frames while it is being sealed).
        let min_kib = (tropa_relay_protocol::REQUESTS_IN_FLIGHT.max(2)
            * (tropa_proto::MAX_FRAME_LEN + 4))
            .div_ceil(1024);
        if (self.connection_memory_kib as usize) < min_kib {
            return Err(invalid(
                "connection_memory_kib",
                format!("connection_memory_kib must be at least {min_kib}"),
            ));
        }
        if u64::from(self.memory_budget_mib) * 1024 < u64::from(self.connection_memory_kib) {
            return Err(invalid(
                "memory_budget_mib",
                "memory_budget_mib must hold at least one connection_memory_kib",
            ));
        }
        if u64::from(self.memory_budget_mib) * 1024 * 1024 > u64::from(u32::MAX) {
            return Err(invalid(
                "memory_budget_mib",
                "memory_budget_mib must be below 4096",
            ));
        }
        Ok(())
    }

    /// The service's policy under this configuration.
    pub fn policy(&self) -> crate::service::Policy {
        let total_quota = self.disk_quota_bytes / tropa_proto::ENVELOPE_SIZE as u64;
        crate::service::Policy {
            mailbox_quota: self.mailbox_quota,
            open_mailbox_quota: self.open_mailbox_quota,
            max_mailboxes: self.max_mailboxes,
            total_quota,
            open_total_quota: total_quota * u64::from(self.open_disk_share_percent) / 100,
            creation_password: self.creation_password.clone(),
            creations_per_hour: self.creations_per_hour_per_address,
            creation_burst_per_address: self.creation_burst_per_address,
            creation_burst_per_connection: self.creation_burst_per_connection,
            max_links: self.max_links,
            max_link_ttl_hours: self.max_link_ttl_hours,
            intake_deposits_per_hour: self.intake_deposits_per_hour,
            intake_deposit_burst: self.intake_deposit_burst,
            max_tracked_intake: crate::service::MAX_TRACKED_INTAKE,
        }
    }

    /// What the expiry sweep removes under this configuration.
    pub fn sweep_policy(&self) -> crate::store::SweepPolicy {
        crate::store::SweepPolicy {
            ttl_hours: self.envelope_ttl_hours,
            idle_hours: self.idle_mailbox_hours,
            unused_hours: self.unused_mailbox_hours,
        }
    }

    /// The configuration as a relay.toml an operator can read on the
    /// server alone: every option, each with what it does, its value, and
    /// the optional ones commented out with an example.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if a value cannot be written as TOML.
    pub fn to_commented_toml(&self) -> Result<String, ConfigError> {
        let table = toml::Table::try_from(self)
            .map_err(|e| invalid("relay.toml", format!("cannot write relay.toml: {e}")))?;
        let mut out = String::from(
            "# Tropa relay configuration (relay.toml). Every option is listed with\n\
             # what it does; a line left out or commented out takes the default shown.\n\
             # After a change: restart the relay, then `tropa-relay check --data DIR`\n\
             # validates this file and `tropa-relay address --data DIR` prints the\n\
             # address to give to users.\n",
        );
        for (key, doc, example) in FIELDS {
            out.push('\n');
            for line in doc.lines() {
                out.push_str("# ");
                out.push_str(line);
                out.push('\n');
            }
            match table.get(*key) {
                Some(v) => out.push_str(&format!("{key} = {v}\n")),
                None => out.push_str(&format!("# {key} = {example}\n")),
            }
        }
        Ok(out)
    }

    /// Writes the configuration as a commented relay.toml
    /// ([`to_commented_toml`](Self::to_commented_toml)), owner-only.
    ///
    /// # Errors
    /// [`ConfigError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = self.to_commented_toml()?;
        // It may hold the creation password: owner-only.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        };
        use std::io::Write as _;
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

/// The default `request_timeout_secs`: above a client's own request
/// timeout (20 s), so that a live client on a slow link is never told its
/// request was late, and short enough that a stalled stream is not held for
/// long (its memory is paid for by its connection's budget meanwhile).
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// The longest `request_timeout_secs` allowed.
pub const MAX_REQUEST_TIMEOUT_SECS: u64 = 600;

/// The longest `max_link_ttl_hours` allowed: ten years.
const MAX_LINK_TTL_HOURS: u32 = 10 * 365 * 24;

/// Every option of relay.toml, in the order the file lists them: key, what
/// it does, and an example for the optional ones (unset by default).
const FIELDS: &[(&str, &str, &str)] = &[
    (
        "listen",
        "Address and port to listen on, UDP for QUIC and TCP on the same port\n(0.0.0.0 = all IPv4 interfaces, [::] = all IPv6; port 0 picks a free\nport at every start). 443 gets through most firewalls.",
        "",
    ),
    (
        "quic",
        "Serve QUIC (UDP) on `listen`: the fastest transport, used by default.",
        "",
    ),
    (
        "tcp",
        "Serve TCP + TLS on the same port as QUIC, for users whose network\nblocks UDP or who go through Tor or another SOCKS5 proxy (TCP only).\nSame key, same address, same limits. Keep at least one of quic and tcp.",
        "",
    ),
    (
        "public_host",
        "Host put in the relay address users get, when `listen` is a wildcard:\nan IPv4 address, a bracketed IPv6 address or a DNS name (no scheme,\nno port). Unset: the address shows the loopback address, usable only\non this machine.",
        "\"203.0.113.7\"",
    ),
    (
        "creation_password",
        "Password needed to create mailboxes (deposits never need it). Letters,\ndigits and - . _ ~ only. It becomes part of the relay address, so only\npeople given that address can make mailboxes here.",
        "\"choose-a-long-random-word\"",
    ),
    (
        "mailbox_quota",
        "Envelopes (16 KiB each) one secured mailbox may hold while the relay\nis at most half full; past that, the second half is split evenly.",
        "",
    ),
    (
        "open_mailbox_quota",
        "Envelopes a mailbox not yet secured by its owner may hold (anyone\nwith its address may deposit into it).",
        "",
    ),
    (
        "disk_quota_bytes",
        "Bytes of envelopes the relay may hold in all.",
        "",
    ),
    (
        "open_disk_share_percent",
        "Percent of disk_quota_bytes open mailboxes may use together.",
        "",
    ),
    (
        "envelope_ttl_hours",
        "Hours an undelivered envelope is kept (default 21 days).",
        "",
    ),
    (
        "idle_mailbox_hours",
        "Hours a mailbox may go unused before it is deleted (default 90 days).",
        "",
    ),
    (
        "unused_mailbox_hours",
        "Hours after which a mailbox never subscribed to or secured is deleted\n(default 8 days: an invitation's 7 days and a day's grace).",
        "",
    ),
    ("sweep_interval_secs", "Seconds between expiry sweeps.", ""),
    (
        "rate_per_sec",
        "Requests per second one connection may make on average.",
        "",
    ),
    (
        "rate_burst",
        "Requests a connection may make in a burst above the average.",
        "",
    ),
    (
        "max_connections",
        "Concurrent connections in all. Memory is bounded by this times\n256 KiB plus twice memory_budget_mib.",
        "",
    ),
    (
        "max_connections_per_ip",
        "Concurrent connections from one IPv4 address or IPv6 /64.",
        "",
    ),
    (
        "max_mailboxes",
        "Mailboxes the relay holds at most (at most half the envelopes\ndisk_quota_bytes holds).",
        "",
    ),
    (
        "creations_per_hour_per_address",
        "Mailboxes one address (IPv4, or IPv6 /64) may create per hour.",
        "",
    ),
    (
        "creation_burst_per_address",
        "Mailboxes one address may create in a burst.",
        "",
    ),
    (
        "creation_burst_per_connection",
        "Mailboxes one connection may create in a burst.",
        "",
    ),
    (
        "max_links",
        "Short links (invitation and address data, about 2.2 KB each on disk)\nthe relay holds at most. A new link also counts as a creation above.",
        "",
    ),
    (
        "max_link_ttl_hours",
        "Hours a short link lives at most (default 90 days); its owner\nrefreshes it before then. At most 87600 (ten years).",
        "",
    ),
    (
        "intake_deposits_per_hour",
        "Contact requests one public intake address (intake mailbox) takes\nper hour on average; beyond, the sender is told to retry later.",
        "",
    ),
    (
        "intake_deposit_burst",
        "Contact requests one intake address takes in a burst.",
        "",
    ),
    (
        "memory_budget_mib",
        "MiB for requests and deliveries in flight, all connections together,\nand as much again for open streams. Beyond it the relay answers busy.",
        "",
    ),
    (
        "connection_memory_kib",
        "KiB one connection may hold for requests in flight, and as much again\nfor deliveries. At least 137: clients keep up to 8 requests of up to\n17 KiB in flight.",
        "",
    ),
    (
        "request_timeout_secs",
        "Seconds a client has to send a whole request once it opened a stream\n(default 30, above a client's own 20 s; at most 600). Raise it for\nusers on very slow links; a stalled stream holds its memory this long.",
        "",
    ),
    (
        "store",
        "Database: \"redb\" (default; a sled store from an older relay is moved\ninto it at the first start) or \"sled\" (the old one, for comparison).",
        "",
    ),
    (
        "metrics_listen",
        "Loopback address:port for aggregate Prometheus metrics (off when\nunset; never expose it: it is for the operator only).",
        "\"127.0.0.1:9464\"",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_default_and_round_trips() {
        let cfg: Config = toml::from_str("").unwrap();
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.envelope_ttl_hours, 504);
        let text = toml::to_string_pretty(&cfg).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), cfg);
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let cfg: Config = toml::from_str(include_str!("../../deploy/relay.toml.example")).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.public_host.as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn invalid_values_are_named() {
        let bad = Config {
            metrics_listen: Some("0.0.0.0:9000".parse().unwrap()),
            ..Config::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("metrics_listen")
        );
        let bad = Config {
            creation_password: Some("has space".into()),
            ..Config::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("creation_password")
        );
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }

    /// Issue 15: a host the relay cannot put in an address is refused with
    /// the key and its line; it used to be dropped silently, and the relay
    /// printed 0.0.0.0 in the address operators handed out.
    #[test]
    fn a_bad_public_host_is_refused_with_its_line() {
        for bad in [
            "2001:db8::1",
            "https://relay.example.org",
            "relay.example.org:4433",
            "",
        ] {
            let text = format!("listen = \"0.0.0.0:4433\"\npublic_host = {bad:?}\n");
            let e = Config::parse(&text, "relay.toml").unwrap_err();
            let shown = e.to_string();
            assert!(
                shown.starts_with("relay.toml line 2: public_host"),
                "{bad:?}: {shown}"
            );
        }
        for good in ["203.0.113.7", "[2001:db8::1]", "relay.example.org"] {
            let text = format!("public_host = {good:?}\n");
            assert!(Config::parse(&text, "relay.toml").is_ok(), "{good}");
        }
    }

    /// Issue 11: the link and intake knobs are checked like the others and
    /// reach the service's policy.
    #[test]
    fn link_and_intake_limits_are_checked_and_applied() {
        for (text, want) in [
            (
                "max_links = 0\n",
                "relay.toml line 1: max_links must be at least 1",
            ),
            (
                "\nmax_link_ttl_hours = 0\n",
                "relay.toml line 2: max_link_ttl_hours must be at least 1",
            ),
            (
                "max_link_ttl_hours = 87601\n",
                "relay.toml line 1: max_link_ttl_hours must be at most 87600",
            ),
            (
                "intake_deposits_per_hour = 0\n",
                "relay.toml line 1: intake_deposits_per_hour must be at least 1",
            ),
            (
                "intake_deposit_burst = 0\n",
                "relay.toml line 1: intake_deposit_burst must be at least 1",
            ),
        ] {
            let shown = Config::parse(text, "relay.toml").unwrap_err().to_string();
            assert!(shown.starts_with(want), "{text:?}: {shown}");
        }
        let cfg = Config::parse(
            "max_links = 5\nmax_link_ttl_hours = 87600\nintake_deposits_per_hour = 7\n\
             intake_deposit_burst = 2\n",
            "relay.toml",
        )
        .unwrap();
        let p = cfg.policy();
        assert_eq!(
            (
                p.max_links,
                p.max_link_ttl_hours,
                p.intake_deposits_per_hour,
                p.intake_deposit_burst
            ),
            (5, 87_600, 7, 2)
        );
        let d = Config::default().policy();
        assert_eq!((d.max_links, d.max_link_ttl_hours), (100_000, 2160));
        assert_eq!(
            (d.intake_deposits_per_hour, d.intake_deposit_burst),
            (30, 10)
        );
    }

    /// Addresses users elsewhere cannot reach are flagged; public ones and
    /// names are not.
    #[test]
    fn unreachable_public_hosts_are_flagged() {
        let warn = |h: &str| {
            Config {
                public_host: Some(h.into()),
                ..Config::default()
            }
            .public_host_warning()
        };
        for (host, says) in [
            ("203.0.113.7", "documentation"),
            ("10.0.0.5", "private"),
            ("192.168.1.2", "private"),
            ("100.64.3.4", "carrier-grade NAT"),
            ("127.0.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("169.254.1.1", "link-local"),
            ("[2001:db8::1]", "documentation"),
            ("[fd00::1]", "unique local"),
            ("[fe80::1]", "link-local"),
            ("[::1]", "loopback"),
        ] {
            let w = warn(host).unwrap_or_else(|| panic!("{host} not flagged"));
            assert!(w.contains(says), "{host}: {w}");
        }
        for fine in [
            "198.18.0.1",
            "8.8.4.4",
            "[2a01:4f8::1]",
            "relay.example.org",
        ] {
            assert_eq!(warn(fine), None, "{fine}");
        }
        assert_eq!(Config::default().public_host_warning(), None);
    }

    /// Issue 12: both transports are on by default, either can be turned
    /// off, and turning both off is refused with the line.
    #[test]
    fn transports_default_on_and_one_must_stay() {
        let d = Config::default();
        assert!(d.quic && d.tcp);
        let only_tcp = Config::parse("quic = false\n", "relay.toml").unwrap();
        assert!(!only_tcp.quic && only_tcp.tcp);
        let only_quic = Config::parse("tcp = false\n", "relay.toml").unwrap();
        assert!(only_quic.quic && !only_quic.tcp);
        let shown = Config::parse("quic = false\ntcp = false\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with("relay.toml line 2: quic and tcp are both false"),
            "{shown}"
        );
        let shown = Config::parse("tcp = \"yes\"\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(shown.starts_with("relay.toml line 1: tcp: "), "{shown}");
        for cfg in [only_tcp, only_quic] {
            let text = cfg.to_commented_toml().unwrap();
            assert_eq!(Config::parse(&text, "relay.toml").unwrap(), cfg);
        }
    }

    /// Every error names the key and the line: TOML syntax, types, unknown
    /// and duplicate keys, and values out of range.
    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases = [
            (
                "rate_burst = 5\nlisten = \"nowhere\"\n",
                "relay.toml line 2: listen: ",
            ),
            (
                "listen = \"0.0.0.0:1\"\nlisten = \"0.0.0.0:2\"\n",
                "relay.toml line 2: listen: ",
            ),
            (
                "\n\nmailbox_quota = \"many\"\n",
                "relay.toml line 3: mailbox_quota: ",
            ),
            (
                "rate_per_sec = 1\nnonsense = 1\n",
                "relay.toml line 2: nonsense: ",
            ),
            (
                "# a comment\nmax_mailboxes = 0\n",
                "relay.toml line 2: max_mailboxes must be at least 1",
            ),
            (
                "rate_per_sec = 0\n",
                "relay.toml line 1: rate_per_sec must be at least 1",
            ),
        ];
        for (text, want) in cases {
            let shown = Config::parse(text, "relay.toml").unwrap_err().to_string();
            assert!(shown.starts_with(want), "{text:?}: {shown}");
        }
    }

    /// The relay.toml `init` writes is self-contained: every option with
    /// what it does, the optional ones as commented examples, nothing that
    /// points to a file the server does not have; and it reads back as the
    /// same configuration.
    #[test]
    fn the_written_relay_toml_lists_every_option_and_reads_back() {
        let all = Config {
            public_host: Some("relay.example.org".into()),
            creation_password: Some("open-sesame".into()),
            metrics_listen: Some("127.0.0.1:9464".parse().unwrap()),
            ..Config::default()
        };
        for cfg in [Config::default(), all] {
            let text = cfg.to_commented_toml().unwrap();
            assert_eq!(Config::parse(&text, "relay.toml").unwrap(), cfg);
            assert!(!text.contains("README"), "{text}");
            let keys: Vec<String> = toml::Table::try_from(Config {
                public_host: Some("x".into()),
                creation_password: Some("x".into()),
                metrics_listen: Some("127.0.0.1:1".parse().unwrap()),
                ..Config::default()
            })
            .unwrap()
            .keys()
            .cloned()
            .collect();
            assert_eq!(keys.len(), FIELDS.len());
            for key in keys {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{key} = "))
                        || l.starts_with(&format!("# {key} = "))),
                    "{key} missing"
                );
            }
        }
    }
}

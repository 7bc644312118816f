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
    /// UDP address to listen on. Port 0 picks a free port.
    pub listen: SocketAddr,
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
    /// MiB of memory the relay may hold for requests and deliveries in
    /// flight, all connections together, and as much again for open streams
    /// (8 KiB each). Beyond it, requests wait and are then answered
    /// `RATE_LIMITED` (relay busy); a stream beyond it is answered so at once.
    pub memory_budget_mib: u32,
    /// KiB of memory one connection may hold for requests in flight, and as
    /// much again for deliveries in flight.
    pub connection_memory_kib: u32,
    /// Loopback address for the Prometheus endpoint (off if unset).
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 4433)),
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
            memory_budget_mib: 256,
            connection_memory_kib: 256,
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
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("relay.toml: {0}")]
    Invalid(String),
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
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.message().to_owned(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and the password's character set.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(pw) = &self.creation_password {
            let probe = format!(
                "tropa://{}:{pw}@127.0.0.1:1",
                tropa_proto::Fingerprint([0; 32])
            );
            if probe.parse::<tropa_proto::RelayAddress>().is_err() {
                return Err(ConfigError::Invalid(
                    "creation_password may only use letters, digits and - . _ ~".into(),
                ));
            }
        }
        if let Some(m) = self.metrics_listen
            && !m.ip().is_loopback()
        {
            return Err(ConfigError::Invalid(
                "metrics_listen must be a loopback address (metrics are for the operator only)"
                    .into(),
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
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
        }
        // Past half full, the disk's second half is shared equally by all
        // mailboxes, at least one envelope each: that must fit.
        let envelopes = self.disk_quota_bytes / tropa_proto::ENVELOPE_SIZE as u64;
        if self.max_mailboxes > envelopes / 2 {
            return Err(ConfigError::Invalid(format!(
                "max_mailboxes must be at most half the envelopes disk_quota_bytes holds \
                 ({} for {} bytes), so every mailbox keeps room for one",
                envelopes / 2,
                self.disk_quota_bytes
            )));
        }
        if self.open_disk_share_percent > 100 {
            return Err(ConfigError::Invalid(
                "open_disk_share_percent must be at most 100".into(),
            ));
        }
        // One connection must be able to hold at least one whole frame (and a
        // delivery needs room for two while it is being sealed).
        let min_kib = (2 * (tropa_proto::MAX_FRAME_LEN + 4)).div_ceil(1024);
        if (self.connection_memory_kib as usize) < min_kib {
            return Err(ConfigError::Invalid(format!(
                "connection_memory_kib must be at least {min_kib}"
            )));
        }
        if u64::from(self.memory_budget_mib) * 1024 < u64::from(self.connection_memory_kib) {
            return Err(ConfigError::Invalid(
                "memory_budget_mib must hold at least one connection_memory_kib".into(),
            ));
        }
        if u64::from(self.memory_budget_mib) * 1024 * 1024 > u64::from(u32::MAX) {
            return Err(ConfigError::Invalid(
                "memory_budget_mib must be below 4096".into(),
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

    /// Writes the configuration as TOML.
    ///
    /// # Errors
    /// [`ConfigError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let text = format!(
            "# Tropa relay configuration. Every field is optional; see deploy/README.md.\n{text}"
        );
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
}

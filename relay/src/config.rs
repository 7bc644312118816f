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
    /// Envelopes one mailbox may hold.
    pub mailbox_quota: u32,
    /// Bytes of envelopes the relay may hold in total.
    pub disk_quota_bytes: u64,
    /// Hours an undelivered envelope is kept (default 21 days).
    pub envelope_ttl_hours: u32,
    /// Hours a mailbox may go unused before it is deleted (default 90 days).
    pub idle_mailbox_hours: u32,
    /// Seconds between expiry sweeps.
    pub sweep_interval_secs: u64,
    /// Requests per second each connection may make on average.
    pub rate_per_sec: u32,
    /// Requests a connection may burst above the average.
    pub rate_burst: u32,
    /// Concurrent connections the relay accepts.
    pub max_connections: u32,
    /// Concurrent connections from one IP address (counted in memory only).
    pub max_connections_per_ip: u32,
    /// Mailboxes the relay holds at most; creation fails with `QUOTA` beyond.
    pub max_mailboxes: u64,
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
            disk_quota_bytes: 8 * 1024 * 1024 * 1024,
            envelope_ttl_hours: 21 * 24,
            idle_mailbox_hours: 90 * 24,
            sweep_interval_secs: 600,
            rate_per_sec: 50,
            rate_burst: 200,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            max_mailboxes: 1_000_000,
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
        if self.mailbox_quota == 0
            || self.rate_per_sec == 0
            || self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.max_mailboxes == 0
        {
            return Err(ConfigError::Invalid(
                "mailbox_quota, rate_per_sec, max_connections, max_connections_per_ip and \
                 max_mailboxes must be at least 1"
                    .into(),
            ));
        }
        Ok(())
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

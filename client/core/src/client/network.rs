//! How a profile reaches its relays (DESIGN S3, §4): the transport (QUIC,
//! TCP+TLS, or `auto`), an optional SOCKS5 proxy such as Tor, and
//! connection isolation. Kept in the profile record; a front end may
//! override transport and proxy for one run (`tropa --transport tcp`,
//! `tropa --socks5 127.0.0.1:9050`) without saving them.
//!
//! This module decides defaults only; the engine decides which connection
//! carries what, and the relay client how to connect. It must never
//! resolve a relay's host name itself when a proxy is set.

use tropa_proto::RelayAddress;
use tropa_relay_client::{Socks5, TransportChoice};

use super::Client;
use crate::engine::Isolation;
use crate::error::ClientError;
use crate::records::ProfileRecord;
use crate::repo::Changes;

/// A profile's network settings, as saved and as in effect.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// How to reach relays.
    pub transport: TransportChoice,
    /// A proxy for every connection (TCP only then).
    pub socks5: Option<Socks5>,
    /// What the profile chose for isolation (`None`: the default).
    pub isolation_setting: Option<Isolation>,
}

impl Network {
    /// The isolation in effect: as chosen, else per contact with a proxy
    /// (a proxy such as Tor then puts each contact on its own circuit) and
    /// per profile without one (isolation costs a connection per contact).
    pub fn isolation(&self) -> Isolation {
        self.isolation_setting.unwrap_or(if self.socks5.is_some() {
            Isolation::Contact
        } else {
            Isolation::Profile
        })
    }

    /// Reads the settings of a profile record. A value this version cannot
    /// read is an error, never a silent fallback to a direct connection.
    pub(crate) fn of(rec: &ProfileRecord) -> Result<Network, ClientError> {
        let transport = if rec.transport.is_empty() {
            TransportChoice::default()
        } else {
            rec.transport
                .parse()
                .map_err(|_| ClientError::Corrupt("transport setting"))?
        };
        let socks5 = if rec.socks5.is_empty() {
            None
        } else {
            Some(
                rec.socks5
                    .parse()
                    .map_err(|_| ClientError::Corrupt("socks5 setting"))?,
            )
        };
        let isolation_setting = match rec.isolation.as_str() {
            "" => None,
            other => Some(parse_isolation(other).ok_or(ClientError::Corrupt("isolation setting"))?),
        };
        Ok(Network {
            transport,
            socks5,
            isolation_setting,
        })
    }
}

/// Reads an isolation setting: "profile" or "contact".
pub fn parse_isolation(s: &str) -> Option<Isolation> {
    match s {
        "profile" => Some(Isolation::Profile),
        "contact" => Some(Isolation::Contact),
        _ => None,
    }
}

/// The name of an isolation setting, as [`parse_isolation`] reads it.
pub fn isolation_name(i: Isolation) -> &'static str {
    match i {
        Isolation::Profile => "profile",
        Isolation::Contact => "contact",
    }
}

impl Client {
    /// The network settings in effect: the profile's, with this run's
    /// overrides (see [`Client::override_network`]).
    ///
    /// # Errors
    /// Storage, or a saved setting this version cannot read.
    pub fn network(&self) -> Result<Network, ClientError> {
        let mut net = self.saved_network()?;
        if let Some(t) = self.net_override.transport {
            net.transport = t;
        }
        if let Some(s) = &self.net_override.socks5 {
            net.socks5 = Some(s.clone());
        }
        Ok(net)
    }

    /// The network settings saved in the profile.
    ///
    /// # Errors
    /// Storage, or a saved setting this version cannot read.
    pub fn saved_network(&self) -> Result<Network, ClientError> {
        let rec = self
            .repo
            .profile()?
            .ok_or(ClientError::Corrupt("no profile record"))?;
        Network::of(&rec)
    }

    /// Uses `transport` and `socks5` (where given) for this client's runs
    /// instead of the saved settings, without saving them.
    pub fn override_network(&mut self, transport: Option<TransportChoice>, socks5: Option<Socks5>) {
        self.net_override = NetOverride { transport, socks5 };
    }

    /// Saves the transport. Runs already going keep theirs.
    ///
    /// # Errors
    /// Storage.
    pub fn set_transport(&self, transport: TransportChoice) -> Result<(), ClientError> {
        self.update_profile(|rec| {
            rec.transport = match transport {
                TransportChoice::Auto => String::new(),
                other => other.to_string(),
            };
        })
    }

    /// Saves the SOCKS5 proxy, `socks5://[user:pass@]host:port` or
    /// `host:port` as [`Socks5`] reads it (`None`: connect directly).
    ///
    /// # Errors
    /// [`ClientError::BadSetting`] for a proxy that does not parse; storage.
    pub fn set_socks5(&self, socks5: Option<&str>) -> Result<(), ClientError> {
        let url = match socks5 {
            Some(s) => {
                s.parse::<Socks5>()
                    .map_err(|e| ClientError::BadSetting(e.to_string()))?;
                s.trim().to_owned()
            }
            None => String::new(),
        };
        self.update_profile(|rec| rec.socks5 = url)
    }

    /// Saves the isolation (`None`: the default, see [`Network::isolation`]).
    ///
    /// # Errors
    /// Storage.
    pub fn set_isolation(&self, isolation: Option<Isolation>) -> Result<(), ClientError> {
        self.update_profile(|rec| {
            rec.isolation = isolation.map(isolation_name).unwrap_or_default().to_owned();
        })
    }

    /// Every relay new mailboxes may go on: the main one first, then those
    /// added with [`Client::add_relay`]. Each new invitation or accept
    /// picks one at random (existing contacts keep theirs).
    ///
    /// # Errors
    /// Storage.
    pub fn relays(&self) -> Result<Vec<RelayAddress>, ClientError> {
        let rec = self
            .repo
            .profile()?
            .ok_or(ClientError::Corrupt("no profile record"))?;
        let mut all = vec![self.relay.clone()];
        all.extend(rec.relays.iter().filter_map(|r| r.parse().ok()));
        Ok(all)
    }

    /// Adds `relay` to the relays new mailboxes may go on. Returns false if
    /// it is one already (the same host, port and key).
    ///
    /// # Errors
    /// Storage.
    pub fn add_relay(&self, relay: &RelayAddress) -> Result<bool, ClientError> {
        if self.relays()?.iter().any(|r| same_relay(r, relay)) {
            return Ok(false);
        }
        self.update_profile(|rec| rec.relays.push(relay.to_string()))?;
        Ok(true)
    }

    /// Stops putting new mailboxes on `relay` (the contacts that have one
    /// there keep it). Returns false if it was not an added relay; the main
    /// relay is changed with [`Client::set_relay`], never removed.
    ///
    /// # Errors
    /// Storage.
    pub fn remove_relay(&self, relay: &RelayAddress) -> Result<bool, ClientError> {
        let rec = self
            .repo
            .profile()?
            .ok_or(ClientError::Corrupt("no profile record"))?;
        let known = rec.relays.iter().any(|r| {
            r.parse::<RelayAddress>()
                .is_ok_and(|a| same_relay(&a, relay))
        });
        if !known {
            return Ok(false);
        }
        self.update_profile(|rec| {
            rec.relays.retain(|r| {
                !r.parse::<RelayAddress>()
                    .is_ok_and(|a| same_relay(&a, relay))
            });
        })?;
        Ok(true)
    }

    fn update_profile(&self, f: impl FnOnce(&mut ProfileRecord)) -> Result<(), ClientError> {
        let mut rec = self
            .repo
            .profile()?
            .ok_or(ClientError::Corrupt("no profile record"))?;
        f(&mut rec);
        let mut changes = Changes::new();
        changes.put_profile(&rec);
        self.repo.apply(changes)
    }
}

/// Whether two addresses name the same relay (passwords aside).
fn same_relay(a: &RelayAddress, b: &RelayAddress) -> bool {
    a.without_password() == b.without_password()
}

/// A run's overrides of the saved network settings.
#[derive(Clone, Debug, Default)]
pub(super) struct NetOverride {
    transport: Option<TransportChoice>,
    socks5: Option<Socks5>,
}

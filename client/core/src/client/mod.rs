//! The client: one unlocked profile and everything a front end does with
//! it. This module opens, creates and protects the profile; [`views`] is
//! what front ends show of it; [`relays`] is the work that needs relays
//! (sync, send, invite, accept), run by the engine until it is done.
//! Long-running front ends use [`crate::SyncHandle`] instead.
//!
//! Nothing here prints, logs message text, or keeps a secret outside a
//! zeroizing container longer than a call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use tropa_e2e::{Identity, IdentityPublic};
use tropa_proto::RelayAddress;
use zeroize::Zeroizing;

use crate::error::{ClientError, ProfileError};
use crate::records::ProfileRecord;
use crate::repo::{Changes, Repo};
use crate::shell::now;
use crate::store::{self, KdfParams, Kv, MemoryKv, Opened, Vault};

/// How long an invitation link stays valid.
pub const INVITE_TTL_SECS: u64 = 7 * 24 * 3600;
/// Longest alias.
pub const MAX_ALIAS_CHARS: usize = 32;

pub(crate) fn check_alias(alias: &str) -> Result<(), ClientError> {
    let n = alias.chars().count();
    if n == 0
        || n > MAX_ALIAS_CHARS
        || alias.chars().any(|c| {
            c.is_control() || crate::display::is_bidi_control(c) || crate::display::is_invisible(c)
        })
        || alias.trim() != alias
    {
        return Err(ClientError::BadAlias);
    }
    Ok(())
}

pub(crate) fn signing_key(secret: &[u8]) -> Option<SigningKey> {
    let arr: Zeroizing<[u8; 32]> = Zeroizing::new(secret.try_into().ok()?);
    Some(SigningKey::from_bytes(&arr))
}

/// An unlocked profile.
pub struct Client {
    repo: Arc<Repo>,
    /// The encrypted store (absent for an in-memory profile).
    vault: Option<Arc<Vault>>,
    identity: Identity,
    name: String,
    relay: RelayAddress,
    home: PathBuf,
    /// This run's network overrides (front-end flags), never saved.
    net_override: network::NetOverride,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

fn map_open(e: store::OpenError) -> ProfileError {
    match e {
        store::OpenError::NoProfile => ProfileError::NoProfile,
        store::OpenError::WrongPassphrase => ProfileError::WrongPassphrase,
        store::OpenError::Locked => ProfileError::Locked,
        other => ProfileError::Corrupt(other.to_string()),
    }
}

fn map_create(e: store::CreateError) -> ProfileError {
    match e {
        store::CreateError::AlreadyExists => ProfileError::Exists,
        store::CreateError::EmptyPassphrase => {
            ProfileError::BadPassphrase("the passphrase must not be empty")
        }
        other => ProfileError::Storage(other.to_string()),
    }
}

fn storage(e: ClientError) -> ProfileError {
    match e {
        ClientError::Profile(p) => p,
        other => ProfileError::Storage(other.to_string()),
    }
}

impl Client {
    /// Creates a profile in `home`.
    ///
    /// # Errors
    /// [`ProfileError`] if one exists, the name is bad, the passphrase is
    /// weak, or storage fails.
    pub fn init(
        home: &Path,
        passphrase: &[u8],
        name: &str,
        relay: &RelayAddress,
        kdf: KdfParams,
    ) -> Result<Client, ProfileError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(ProfileError::BadName);
        }
        crate::passphrase::check(passphrase, &[name])?;
        let vault = Arc::new(Vault::create(home, passphrase, kdf).map_err(map_create)?);
        Self::populate(Some(vault.clone()), vault, home, name, relay, None)
    }

    /// A new profile kept in `kv` (for simulations and tests: no
    /// passphrase, no files; `kv` is its durable state).
    ///
    /// # Errors
    /// [`ProfileError`] for a bad name or storage errors.
    pub fn in_memory(
        kv: Arc<MemoryKv>,
        name: &str,
        relay: &RelayAddress,
    ) -> Result<Client, ProfileError> {
        if let Some(rec) = Repo::new(kv.clone()).profile().map_err(storage)? {
            return Self::from_record(None, kv, Path::new(""), &rec);
        }
        Self::populate(None, kv, Path::new(""), name, relay, None)
    }

    fn populate(
        vault: Option<Arc<Vault>>,
        kv: Arc<dyn Kv>,
        home: &Path,
        name: &str,
        relay: &RelayAddress,
        network_of: Option<&ProfileRecord>,
    ) -> Result<Client, ProfileError> {
        let identity = Identity::generate(&mut rand::rng());
        let setting =
            |f: fn(&ProfileRecord) -> &String| network_of.map(|r| f(r).clone()).unwrap_or_default();
        let rec = ProfileRecord {
            name: name.to_owned(),
            relay: relay.to_string(),
            identity: identity.to_bytes().to_vec(),
            created_at: now(),
            metered: false,
            transport: setting(|r| &r.transport),
            socks5: setting(|r| &r.socks5),
            isolation: setting(|r| &r.isolation),
            tcp_relays: Vec::new(),
            relays: Vec::new(),
        };
        let repo = Arc::new(Repo::new(kv));
        let mut changes = Changes::new();
        changes.put_profile(&rec);
        repo.apply(changes).map_err(storage)?;
        Ok(Client {
            repo,
            vault,
            identity,
            name: name.to_owned(),
            relay: relay.clone(),
            home: home.to_path_buf(),
            net_override: network::NetOverride::default(),
        })
    }

    fn from_record(
        vault: Option<Arc<Vault>>,
        kv: Arc<dyn Kv>,
        home: &Path,
        rec: &ProfileRecord,
    ) -> Result<Client, ProfileError> {
        let identity = Identity::from_bytes(&rec.identity)
            .map_err(|_| ProfileError::Corrupt("identity".into()))?;
        let relay = rec
            .relay
            .parse()
            .map_err(|_| ProfileError::Corrupt("relay address".into()))?;
        Ok(Client {
            repo: Arc::new(Repo::new(kv)),
            vault,
            identity,
            name: rec.name.clone(),
            relay,
            home: home.to_path_buf(),
            net_override: network::NetOverride::default(),
        })
    }

    /// Unlocks the profile in `home`. With the duress passphrase the profile
    /// is wiped and a fresh one with the same name and relay is returned,
    /// indistinguishable to the caller from a normal open.
    ///
    /// # Errors
    /// [`ProfileError`]; `WrongPassphrase` leaves everything unchanged.
    pub fn open(home: &Path, passphrase: &[u8]) -> Result<Client, ProfileError> {
        let client = Self::open_unpurged(home, passphrase)?;
        client.purge_expired()?;
        Ok(client)
    }

    /// [`open`](Self::open) without deleting the messages whose timer ran
    /// out, for a front end whose first read is [`Client::snapshot`]
    /// (which deletes them in the same pass over the messages: a handler's
    /// profile holds 100,000 of them, and each pass costs half a second).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_unpurged(home: &Path, passphrase: &[u8]) -> Result<Client, ProfileError> {
        match Vault::open(home, passphrase).map_err(map_open)? {
            Opened::Unlocked(vault) => {
                let vault = Arc::new(vault);
                let rec = Repo::new(vault.clone())
                    .profile()
                    .map_err(storage)?
                    .ok_or_else(|| ProfileError::Corrupt("profile record missing".into()))?;
                Self::from_record(Some(vault.clone()), vault, home, &rec)
            }
            Opened::Duress { decoy, vault } => {
                let rec: ProfileRecord = prost::Message::decode(decoy.as_slice())
                    .map_err(|_| ProfileError::Corrupt("decoy".into()))?;
                let relay: RelayAddress = rec
                    .relay
                    .parse()
                    .map_err(|_| ProfileError::Corrupt("decoy".into()))?;
                let vault = Arc::new(vault);
                // The network settings go in the same write as the rest:
                // a crash in between must not leave a profile that
                // connects directly.
                Self::populate(
                    Some(vault.clone()),
                    vault,
                    home,
                    &rec.name,
                    &relay,
                    Some(&rec),
                )
            }
        }
    }

    /// Whether `home` holds a profile.
    pub fn exists(home: &Path) -> bool {
        Vault::exists(home)
    }

    /// Crypto-erases the profile in `home` (no passphrase needed).
    ///
    /// # Errors
    /// [`store::WipeError`] if files could not be removed.
    pub fn wipe(home: &Path) -> Result<(), store::WipeError> {
        store::wipe(home)
    }

    /// The profile directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The profile's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The profile's relay.
    pub fn relay(&self) -> &RelayAddress {
        &self.relay
    }

    /// Whether a relay answers at `address` with the key the address names.
    ///
    /// # Errors
    /// [`RelayError`]: unreachable, or another key (S11).
    pub async fn check_relay(
        address: &RelayAddress,
        net: &Network,
    ) -> Result<(), crate::error::RelayError> {
        let opts = crate::shell::connect_options(net, None, None, &mut Default::default());
        let conn = tropa_relay_client::RelayClient::connect_with(address, &opts).await?;
        conn.close().await;
        Ok(())
    }

    /// Makes `address` this profile's relay: new invitations and accepted
    /// links create mailboxes there. Existing contacts keep the mailboxes
    /// they have.
    ///
    /// # Errors
    /// Storage.
    pub fn set_relay(&mut self, address: &RelayAddress) -> Result<(), ClientError> {
        let mut rec = self
            .repo
            .profile()?
            .ok_or(ClientError::Corrupt("no profile record"))?;
        rec.relay = address.to_string();
        let mut changes = Changes::new();
        changes.put_profile(&rec);
        self.repo.apply(changes)?;
        self.relay = address.clone();
        Ok(())
    }

    /// This profile's identity public key.
    pub fn identity(&self) -> IdentityPublic {
        self.identity.public()
    }

    /// The profile's records (for tests).
    #[cfg(test)]
    pub(crate) fn repo(&self) -> Arc<Repo> {
        self.repo.clone()
    }

    fn vault(&self) -> Result<&Vault, ProfileError> {
        self.vault.as_deref().ok_or(ProfileError::BadPassphrase(
            "an in-memory profile has no passphrase",
        ))
    }

    /// Changes the passphrase.
    ///
    /// # Errors
    /// [`ProfileError::WeakPassphrase`], [`ProfileError::BadPassphrase`] or
    /// storage errors.
    pub fn change_passphrase(
        &self,
        new: &[u8],
        kdf: Option<KdfParams>,
    ) -> Result<(), ProfileError> {
        crate::passphrase::check(new, &[&self.name])?;
        self.vault()?
            .change_passphrase(new, kdf)
            .map_err(|e| ProfileError::BadPassphrase(passphrase_msg(&e)))
    }

    /// Sets a duress passphrase: entering it later wipes this profile and
    /// silently starts a fresh one with the same name and relay.
    ///
    /// # Errors
    /// [`ProfileError`] if it equals the main passphrase or storage fails.
    pub fn set_duress(&self, duress: &[u8]) -> Result<(), ProfileError> {
        // The decoy carries only what a fresh profile shows: name and relay.
        // (The vault gives the fresh profile this one's Argon2 parameters, so
        // it unlocks exactly as slowly; a different time would give it away.)
        // And how it reaches relays: a profile that went through Tor must
        // not connect directly after a duress unlock. (Settings changed
        // after this call are not in the decoy: set the duress passphrase
        // again after changing them.)
        let current = self.repo.profile().map_err(storage)?;
        let setting = |f: fn(&ProfileRecord) -> &String| {
            current.as_ref().map(|r| f(r).clone()).unwrap_or_default()
        };
        let decoy = ProfileRecord {
            name: self.name.clone(),
            relay: self.relay.to_string(),
            identity: Vec::new(),
            created_at: 0,
            metered: false,
            transport: setting(|r| &r.transport),
            socks5: setting(|r| &r.socks5),
            isolation: setting(|r| &r.isolation),
            tcp_relays: Vec::new(),
            relays: Vec::new(),
        };
        let encoded = Zeroizing::new(prost::Message::encode_to_vec(&decoy));
        self.vault()?
            .set_duress(duress, &encoded)
            .map_err(|e| ProfileError::BadPassphrase(passphrase_msg(&e)))
    }

    /// Whether the one-time notice `name` (e.g. a warning a front end shows
    /// once per profile) has not been shown yet; marks it shown.
    ///
    /// # Errors
    /// Storage errors.
    pub fn first_notice(&self, name: &str) -> Result<bool, ClientError> {
        if self.repo.notice_shown(name)? {
            return Ok(false);
        }
        let mut changes = Changes::new();
        changes.mark_notice(name);
        self.repo.apply(changes)?;
        Ok(true)
    }

    /// Deletes messages whose disappearing timer ran out.
    ///
    /// # Errors
    /// Storage errors.
    pub fn purge_expired(&self) -> Result<usize, ProfileError> {
        let mut msgs = self.repo.messages().map_err(storage)?;
        self.drop_expired(&mut msgs, now()).map_err(storage)
    }

    /// Deletes from the profile the messages of `msgs` whose timer ran out
    /// by `t`, and takes them out of `msgs`; returns how many went.
    pub(crate) fn drop_expired(
        &self,
        msgs: &mut Vec<crate::records::MessageRecord>,
        t: u64,
    ) -> Result<usize, ClientError> {
        let mut changes = Changes::new();
        let before = msgs.len();
        msgs.retain(|m| {
            let gone = m.expires_at != 0 && m.expires_at <= t;
            if gone {
                // An unconfirmed outgoing copy would keep the text alive (and
                // be resent): it disappears too.
                changes.remove_message(m).remove_outbox(&m.id);
            }
            !gone
        });
        self.repo.apply(changes)?;
        Ok(before - msgs.len())
    }
}

fn passphrase_msg(e: &store::PassphraseError) -> &'static str {
    match e {
        store::PassphraseError::DuressSameAsMain => {
            "the duress passphrase must differ from the main passphrase"
        }
        store::PassphraseError::SameAsDuress => {
            "the new passphrase must differ from the duress passphrase"
        }
        store::PassphraseError::EmptyPassphrase => "the passphrase must not be empty",
        _ => "could not change the passphrase",
    }
}

pub mod cases;
mod intake;
mod network;
mod reading;
mod relays;
mod settings;
mod shortlinks;
#[cfg(test)]
mod tests;
mod views;

pub(crate) use intake::find_request;
pub use intake::{
    AddressInfo, IntakeError, MAX_REQUEST_TEXT_LEN, RequestView, address_invitation,
    is_address_link,
};
pub use network::{Network, isolation_name, parse_isolation};
pub use reading::{InboxEntry, Page, SearchHit, SearchResults, Unread};
pub use relays::{SEND_LIMIT, Sent};
pub(crate) use shortlinks::invitation_link;
pub use shortlinks::{LinkResolveError, ResolvedLink};
pub use views::{ContactInfo, MessageStatus, MessageView, SafetyView};

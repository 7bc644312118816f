//! The client: one unlocked profile and everything a front end does with
//! it. Local work (contacts, messages, safety numbers, passphrases) reads
//! and writes the [`Repo`]; work that needs relays (sync, send, invite,
//! accept) runs the [`Engine`] in the [`crate::shell`] until it is done.
//! Long-running front ends use [`crate::SyncHandle`] instead.
//!
//! Nothing here prints, logs message text, or keeps a secret outside a
//! zeroizing container longer than a call.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rand::Rng as _;
use tokio::sync::{mpsc, oneshot};
use tropa_e2e::{Identity, IdentityPublic, safety_number};
use tropa_proto::RelayAddress;
use zeroize::Zeroizing;

use crate::engine::{Command, Engine, EngineConfig, Mode, Outcome};
use crate::error::{ClientError, ProfileError};
use crate::records::{ContactState, Direction, ProfileRecord, Status};
use crate::redact::redacted_debug;
use crate::repo::{Changes, Repo};
use crate::shell::{self, CommandMsg, Exits, now};
use crate::store::{self, KdfParams, Kv, MemoryKv, Opened, Vault};
use crate::sync::{ONE_SHOT_LIMIT, SyncEvent, SyncOptions, SyncReport};

/// How long an invitation link stays valid.
pub const INVITE_TTL_SECS: u64 = 7 * 24 * 3600;
/// Longest alias.
pub const MAX_ALIAS_CHARS: usize = 32;
/// Longest a `send` waits for the relay before leaving the text queued.
pub const SEND_LIMIT: Duration = Duration::from_secs(20);

pub(crate) fn check_alias(alias: &str) -> Result<(), ClientError> {
    let n = alias.chars().count();
    if n == 0 || n > MAX_ALIAS_CHARS || alias.chars().any(char::is_control) || alias.trim() != alias
    {
        return Err(ClientError::BadAlias);
    }
    Ok(())
}

pub(crate) fn signing_key(secret: &[u8]) -> Option<SigningKey> {
    let arr: Zeroizing<[u8; 32]> = Zeroizing::new(secret.try_into().ok()?);
    Some(SigningKey::from_bytes(&arr))
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    /// Outgoing, not yet accepted by a relay.
    Queued,
    /// Outgoing, stored by the recipient's relay; no receipt yet.
    Sent,
    /// Outgoing, the recipient's device confirmed it.
    Delivered,
    /// Incoming, not yet read.
    Unread,
    /// Incoming, read.
    Read,
}

impl MessageStatus {
    fn of(s: i32) -> Self {
        match Status::try_from(s) {
            Ok(Status::Queued) => MessageStatus::Queued,
            Ok(Status::Sent) => MessageStatus::Sent,
            Ok(Status::Delivered) => MessageStatus::Delivered,
            Ok(Status::Unread) | Err(_) => MessageStatus::Unread,
            Ok(Status::Read) => MessageStatus::Read,
        }
    }

    /// The word front ends show: `queued`, `sent`, `delivered`, `unread`, `read`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Unread => "unread",
            MessageStatus::Read => "read",
        }
    }
}

/// A contact as front ends show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ContactInfo {
    /// Alias.
    pub alias: String,
    /// Whether the handshake completed.
    pub established: bool,
    /// Whether the safety number was confirmed.
    pub verified: bool,
    /// Unread incoming messages.
    pub unread: usize,
    /// Outgoing messages without receipt yet.
    pub pending: usize,
    /// Disappearing-message timer (0 = off).
    pub timer_secs: u32,
    /// Envelopes dropped as tampered since the last `read`.
    pub dropped: u32,
}

/// A message as front ends show it.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageView {
    /// Hex of the 16-byte message id.
    pub id: String,
    /// The contact's alias.
    pub alias: String,
    /// Received or sent.
    pub incoming: bool,
    /// The text.
    pub text: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// Unix seconds: when it was queued (out) or received (in).
    pub at: u64,
}

/// A contact's safety number.
#[derive(Clone)]
pub struct SafetyView {
    /// 12 groups of 5 digits.
    pub groups: Vec<String>,
    /// Payload for a QR code.
    pub qr_payload: Vec<u8>,
    /// Whether it was confirmed before.
    pub verified: bool,
}

// Aliases and message text are what a seized log or crash report must never
// show.
redacted_debug!(ContactInfo: established, verified, unread, pending);
redacted_debug!(MessageView: id, incoming, status);
redacted_debug!(SafetyView: verified);

/// An unlocked profile.
pub struct Client {
    repo: Arc<Repo>,
    /// The encrypted store (absent for an in-memory profile).
    vault: Option<Arc<Vault>>,
    identity: Identity,
    name: String,
    relay: RelayAddress,
    home: PathBuf,
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
        Self::populate(Some(vault.clone()), vault, home, name, relay)
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
        Self::populate(None, kv, Path::new(""), name, relay)
    }

    fn populate(
        vault: Option<Arc<Vault>>,
        kv: Arc<dyn Kv>,
        home: &Path,
        name: &str,
        relay: &RelayAddress,
    ) -> Result<Client, ProfileError> {
        let identity = Identity::generate(&mut rand::rng());
        let rec = ProfileRecord {
            name: name.to_owned(),
            relay: relay.to_string(),
            identity: identity.to_bytes().to_vec(),
            created_at: now(),
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
        })
    }

    /// Unlocks the profile in `home`. With the duress passphrase the profile
    /// is wiped and a fresh one with the same name and relay is returned,
    /// indistinguishable to the caller from a normal open.
    ///
    /// # Errors
    /// [`ProfileError`]; `WrongPassphrase` leaves everything unchanged.
    pub fn open(home: &Path, passphrase: &[u8]) -> Result<Client, ProfileError> {
        match Vault::open(home, passphrase).map_err(map_open)? {
            Opened::Unlocked(vault) => {
                let vault = Arc::new(vault);
                let rec = Repo::new(vault.clone())
                    .profile()
                    .map_err(storage)?
                    .ok_or_else(|| ProfileError::Corrupt("profile record missing".into()))?;
                let client = Self::from_record(Some(vault.clone()), vault, home, &rec)?;
                client.purge_expired()?;
                Ok(client)
            }
            Opened::Duress { decoy, vault } => {
                let rec: ProfileRecord = prost::Message::decode(decoy.as_slice())
                    .map_err(|_| ProfileError::Corrupt("decoy".into()))?;
                let relay: RelayAddress = rec
                    .relay
                    .parse()
                    .map_err(|_| ProfileError::Corrupt("decoy".into()))?;
                let vault = Arc::new(vault);
                Self::populate(Some(vault.clone()), vault, home, &rec.name, &relay)
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

    /// This profile's identity public key.
    pub fn identity(&self) -> IdentityPublic {
        self.identity.public()
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
        let decoy = ProfileRecord {
            name: self.name.clone(),
            relay: self.relay.to_string(),
            identity: Vec::new(),
            created_at: 0,
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
        let t = now();
        let mut changes = Changes::new();
        let mut n = 0;
        for m in self.repo.messages().map_err(storage)? {
            if m.expires_at != 0 && m.expires_at <= t {
                // An unconfirmed outgoing copy would keep the text alive (and
                // be resent): it disappears too.
                changes.remove_message(&m).remove_outbox(&m.id);
                n += 1;
            }
        }
        self.repo.apply(changes).map_err(storage)?;
        Ok(n)
    }

    fn contact_by_alias(&self, alias: &str) -> Result<crate::records::ContactRecord, ClientError> {
        self.repo
            .contact_by_alias(alias)?
            .ok_or_else(|| ClientError::UnknownContact(alias.to_owned()))
    }

    /// All contacts, sorted by alias.
    ///
    /// # Errors
    /// Storage errors.
    pub fn contacts(&self) -> Result<Vec<ContactInfo>, ClientError> {
        let msgs = self.repo.messages()?;
        let mut out: Vec<ContactInfo> = self
            .repo
            .contacts()?
            .into_iter()
            .map(|c| {
                let of = |s: Status| {
                    msgs.iter()
                        .filter(|m| m.contact_id == c.id && m.status == s as i32)
                        .count()
                };
                ContactInfo {
                    unread: of(Status::Unread),
                    pending: of(Status::Queued) + of(Status::Sent),
                    alias: c.alias.clone(),
                    established: c.state == ContactState::Established as i32,
                    verified: c.verified,
                    timer_secs: c.timer_secs,
                    dropped: c.dropped,
                }
            })
            .collect();
        out.sort_by(|a, b| a.alias.cmp(&b.alias));
        Ok(out)
    }

    /// Messages with `alias` (or with everyone), oldest first.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn messages(&self, alias: Option<&str>) -> Result<Vec<MessageView>, ClientError> {
        let contacts = self.repo.contacts()?;
        let only = alias.map(|a| self.contact_by_alias(a)).transpose()?;
        let t = now();
        Ok(self
            .repo
            .messages()?
            .into_iter()
            .filter(|m| only.as_ref().is_none_or(|c| c.id == m.contact_id))
            .filter(|m| m.expires_at == 0 || m.expires_at > t)
            .map(|m| MessageView {
                id: hex::encode(&m.id),
                alias: contacts
                    .iter()
                    .find(|c| c.id == m.contact_id)
                    .map_or_else(String::new, |c| c.alias.clone()),
                incoming: m.direction == Direction::In as i32,
                text: m.text.clone(),
                status: MessageStatus::of(m.status),
                at: m.at,
            })
            .collect())
    }

    /// Marks the incoming messages of `alias` (or all) as read and resets
    /// the dropped-envelope counters shown to the user.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn mark_read(&self, alias: Option<&str>) -> Result<(), ClientError> {
        let only = alias.map(|a| self.contact_by_alias(a)).transpose()?;
        let mut changes = Changes::new();
        for mut m in self.repo.messages()? {
            if m.status == Status::Unread as i32
                && only.as_ref().is_none_or(|c| c.id == m.contact_id)
            {
                m.status = Status::Read as i32;
                changes.put_message(&m);
            }
        }
        for mut c in self.repo.contacts()? {
            if c.dropped > 0 && only.as_ref().is_none_or(|o| o.id == c.id) {
                c.dropped = 0;
                changes.put_contact(&c);
            }
        }
        self.repo.apply(changes)
    }

    /// The safety number with `alias`.
    ///
    /// # Errors
    /// Unknown or not-yet-established contact.
    pub fn safety(&self, alias: &str) -> Result<SafetyView, ClientError> {
        let c = self.contact_by_alias(alias)?;
        let peer = IdentityPublic::from_bytes(&c.identity)
            .map_err(|_| ClientError::NotEstablished(alias.to_owned()))?;
        let sn = safety_number(&self.identity.public(), &peer);
        Ok(SafetyView {
            groups: sn.groups().into_iter().map(str::to_owned).collect(),
            qr_payload: sn.qr_payload(),
            verified: c.verified,
        })
    }

    /// Marks `alias` as verified. With `typed` (the digits the other person
    /// reads out, spaces allowed) it is checked first and refused on mismatch.
    ///
    /// # Errors
    /// Unknown contact, mismatch.
    pub fn confirm_verified(&self, alias: &str, typed: Option<&str>) -> Result<(), ClientError> {
        let mut c = self.contact_by_alias(alias)?;
        let peer = IdentityPublic::from_bytes(&c.identity)
            .map_err(|_| ClientError::NotEstablished(alias.to_owned()))?;
        if let Some(t) = typed {
            safety_number(&self.identity.public(), &peer).verify_digits(t)?;
        }
        c.verified = true;
        let mut changes = Changes::new();
        changes.put_contact(&c);
        self.repo.apply(changes)
    }

    /// Sets the disappearing-message timer for messages sent to `alias`
    /// (0 turns it off). Each message carries its timer, so the recipient
    /// deletes it too.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn set_timer(&self, alias: &str, secs: u32) -> Result<(), ClientError> {
        let mut c = self.contact_by_alias(alias)?;
        c.timer_secs = secs;
        let mut changes = Changes::new();
        changes.put_contact(&c);
        self.repo.apply(changes)
    }

    /// The profile's records (for tests).
    #[cfg(test)]
    pub(crate) fn repo(&self) -> Arc<Repo> {
        self.repo.clone()
    }

    /// A sync engine on this profile (for a shell of one's own, such as a
    /// simulation; front ends use the methods below or [`crate::SyncHandle`]).
    pub fn engine(&self, mode: Mode, opts: SyncOptions) -> Engine {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        self.engine_seeded(mode, opts, seed)
    }

    /// [`engine`](Self::engine) with a fixed seed for its random numbers
    /// (simulations only: a real profile needs unpredictable ones).
    pub fn engine_seeded(&self, mode: Mode, opts: SyncOptions, seed: [u8; 32]) -> Engine {
        Engine::new(EngineConfig {
            repo: self.repo.clone(),
            identity: self.identity.clone(),
            relay: self.relay.clone(),
            opts,
            mode,
            seed,
        })
    }

    /// Receives and delivers until caught up (or for `opts.wait`),
    /// reporting events as they happen. Relays that cannot be reached are
    /// reported and skipped; when waiting they are retried with backoff.
    ///
    /// # Errors
    /// Storage errors only; network trouble is reported, not fatal.
    pub async fn sync(
        &mut self,
        opts: SyncOptions,
        events: Option<mpsc::UnboundedSender<SyncEvent>>,
    ) -> Result<SyncReport, ClientError> {
        let wait = opts.wait;
        let mut engine = self.engine(Mode::Sync, opts);
        let exits = Exits {
            when_finished: wait.is_none(),
            deadline: Instant::now() + wait.unwrap_or(ONE_SHOT_LIMIT),
            stop: None,
        };
        shell::run(&mut engine, events, None, Vec::new(), exits).await?;
        Ok(engine.report().clone())
    }

    /// Runs one command with an engine that delivers only what it queues.
    async fn run_command(
        &mut self,
        command: Command,
        limit: Duration,
    ) -> Result<(Outcome, SyncReport), ClientError> {
        let mut engine = self.engine(Mode::Deliver(BTreeSet::new()), SyncOptions::default());
        let (reply, rx) = oneshot::channel();
        let exits = Exits {
            when_finished: true,
            deadline: Instant::now() + limit,
            stop: None,
        };
        let first = vec![CommandMsg {
            command,
            reply: Some(reply),
        }];
        shell::run(&mut engine, None, None, first, exits).await?;
        let outcome = rx
            .await
            .unwrap_or(Err(ClientError::Corrupt("the command did not finish")))?;
        Ok((outcome, engine.report().clone()))
    }

    /// Queues a text for `alias` durably and tries to deposit it on that
    /// contact's relay at once, over one connection, subscribing to nothing.
    /// Returns the message id (hex) and what the attempt did: a refused or
    /// unreachable relay leaves the text queued for `sync`.
    ///
    /// # Errors
    /// Unknown or not yet established contact, empty or too long text,
    /// storage. Network trouble is in the report.
    pub async fn send(
        &mut self,
        alias: &str,
        text: &str,
    ) -> Result<(String, SyncReport), ClientError> {
        let command = Command::Send {
            alias: alias.to_owned(),
            text: text.to_owned(),
        };
        match self.run_command(command, SEND_LIMIT).await? {
            (Outcome::Queued { id }, report) => Ok((id, report)),
            _ => Err(ClientError::Corrupt("unexpected outcome")),
        }
    }

    /// Creates a mailbox on this profile's relay and a one-time invitation
    /// for it. Returns the `tropa:` link and the alias given to whoever
    /// accepts it.
    ///
    /// # Errors
    /// [`ClientError`] for a bad or taken alias, or relay failures.
    pub async fn invite(&mut self, alias: Option<&str>) -> Result<(String, String), ClientError> {
        self.invite_with_ttl(alias, INVITE_TTL_SECS).await
    }

    /// [`invite`](Self::invite) with a validity other than
    /// [`INVITE_TTL_SECS`] seconds.
    ///
    /// # Errors
    /// As [`invite`](Self::invite).
    pub async fn invite_with_ttl(
        &mut self,
        alias: Option<&str>,
        ttl_secs: u64,
    ) -> Result<(String, String), ClientError> {
        let command = Command::Invite {
            alias: alias.map(str::to_owned),
            ttl_secs,
        };
        match self.run_command(command, ONE_SHOT_LIMIT).await? {
            (Outcome::Invited { link, alias }, _) => Ok((link, alias)),
            _ => Err(ClientError::Corrupt("unexpected outcome")),
        }
    }

    /// Accepts an invitation: creates and secures the reply mailbox on this
    /// profile's relay, starts the session and queues `Hello`, then tries to
    /// deliver it. Returns whether the Hello was delivered now (else `sync`
    /// delivers it later).
    ///
    /// # Errors
    /// [`ClientError`]: bad or expired link, alias problems, a changed
    /// identity for an existing alias (refused), relay failures.
    pub async fn accept(&mut self, link: &str, alias: &str) -> Result<bool, ClientError> {
        let command = Command::Accept {
            link: link.to_owned(),
            alias: alias.to_owned(),
        };
        match self.run_command(command, ONE_SHOT_LIMIT).await? {
            (Outcome::Accepted { delivered, .. }, _) => Ok(delivered),
            _ => Err(ClientError::Corrupt("unexpected outcome")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A duress unlock must take as long as a normal one (the informational
    /// finding of the security review: it took ~1.5x, a third Argon2 run to
    /// create the fresh profile). Counted in Argon2 runs, not timed.
    #[test]
    fn a_duress_unlock_costs_what_a_normal_unlock_costs() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("p");
        let relay: RelayAddress = format!("tropa://{}@127.0.0.1:4433", "A".repeat(43))
            .parse()
            .unwrap();
        let main = b"plover gasket violin orchard";
        let duress = b"open sesame";
        let kdf = KdfParams::insecure_for_tests();
        let c = Client::init(&home, main, "Ana", &relay, kdf).unwrap();
        c.set_duress(duress).unwrap();
        drop(c);
        let before = store::derivations();
        drop(Client::open(&home, main).unwrap());
        let normal = store::derivations() - before;
        let before = store::derivations();
        let fresh = Client::open(&home, duress).unwrap();
        let under_duress = store::derivations() - before;
        assert_eq!(under_duress, normal);
        assert_eq!(fresh.name(), "Ana");
        assert_eq!(fresh.relay(), &relay);
        assert!(fresh.contacts().unwrap().is_empty());
        assert_eq!(
            fresh.vault().unwrap().kdf_params().unwrap(),
            kdf,
            "unlocks as slowly"
        );
        drop(fresh);
        // From now on the duress passphrase is the fresh profile's own.
        drop(Client::open(&home, duress).unwrap());
        assert!(matches!(
            Client::open(&home, main),
            Err(ProfileError::WrongPassphrase)
        ));
    }

    #[test]
    fn debug_never_shows_aliases_or_text() {
        let m = MessageView {
            id: "00".into(),
            alias: "handler-anna".into(),
            incoming: true,
            text: "meet at the old station".into(),
            status: MessageStatus::Unread,
            at: 0,
        };
        let c = ContactInfo {
            alias: "handler-anna".into(),
            established: true,
            verified: false,
            unread: 1,
            pending: 0,
            timer_secs: 0,
            dropped: 0,
        };
        let ev = crate::SyncEvent::Received(m.clone());
        let report = crate::SyncReport {
            refused: vec!["handler-anna: full".into()],
            ..Default::default()
        };
        for shown in [
            format!("{m:?}"),
            format!("{c:?}"),
            format!("{ev:?}"),
            format!("{report:?}"),
        ] {
            assert!(!shown.contains("anna"), "{shown}");
            assert!(!shown.contains("station"), "{shown}");
        }
    }
}

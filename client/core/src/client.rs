//! The client: one unlocked profile and everything a front end does with it
//! that does not need a long-lived network loop (that is [`crate::sync`]).
//!
//! Every write goes through the encrypted [`Vault`]; nothing here prints,
//! logs message text, or keeps a secret outside a zeroizing container longer
//! than a call.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use prost::Message;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use tropa_e2e::{
    ContentExt as _, Hello, Identity, IdentityPublic, Invitation, InviteParams, PendingInvitation,
    Session, safety_number,
};
use tropa_proto::RelayAddress;
use tropa_relay_client::RelayClient;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{ClientError, ProfileError};
use crate::records::{
    ContactRecord, ContactState, Direction, MessageRecord, OutboxKind, OutboxRecord, OwnMailbox,
    PendingRecord, ProfileRecord, Status, expiry, tree,
};
use crate::store::{self, Batch, KdfParams, Opened, Vault};

/// How long an invitation link stays valid.
pub const INVITE_TTL_SECS: u64 = 7 * 24 * 3600;
/// Longest alias.
pub const MAX_ALIAS_CHARS: usize = 32;

const PROFILE_KEY: &[u8] = b"profile";
const SEQ_KEY: &[u8] = b"seq";

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b
}

/// Key of a message record: contact id ‖ seq.
pub(crate) fn message_key(contact_id: &[u8], seq: u64) -> Vec<u8> {
    [contact_id, &seq.to_be_bytes()].concat()
}

fn check_alias(alias: &str) -> Result<(), ClientError> {
    let n = alias.chars().count();
    if n == 0 || n > MAX_ALIAS_CHARS || alias.chars().any(char::is_control) || alias.trim() != alias
    {
        return Err(ClientError::BadAlias);
    }
    Ok(())
}

/// A contact as front ends show it. `Debug` omits the alias.
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

/// A message as front ends show it. `Debug` omits the alias and the text.
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
    /// "queued", "sent", "delivered", "unread" or "read".
    pub status: &'static str,
    /// Unix seconds.
    pub at: u64,
}

/// A contact's safety number.
#[derive(Clone, Debug)]
pub struct SafetyView {
    /// 12 groups of 5 digits.
    pub groups: Vec<String>,
    /// Payload for a QR code.
    pub qr_payload: Vec<u8>,
    /// Whether it was confirmed before.
    pub verified: bool,
}

// Aliases and message text are what a seized log or crash report must never
// show; these Debug impls keep only what helps debugging.
impl std::fmt::Debug for ContactInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactInfo")
            .field("established", &self.established)
            .field("verified", &self.verified)
            .field("unread", &self.unread)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MessageView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageView")
            .field("id", &self.id)
            .field("incoming", &self.incoming)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn status_name(s: i32) -> &'static str {
    match Status::try_from(s) {
        Ok(Status::Queued) => "queued",
        Ok(Status::Sent) => "sent",
        Ok(Status::Delivered) => "delivered",
        Ok(Status::Unread) => "unread",
        Ok(Status::Read) => "read",
        Err(_) => "unknown",
    }
}

/// An unlocked profile.
pub struct Client {
    pub(crate) vault: Vault,
    pub(crate) identity: Identity,
    pub(crate) name: String,
    pub(crate) relay: RelayAddress,
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

impl Client {
    /// Creates a profile in `home`.
    ///
    /// # Errors
    /// [`ProfileError`] if one exists, the name is bad or storage fails.
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
        let vault = Vault::create(home, passphrase, kdf).map_err(map_create)?;
        Self::populate(vault, home, name, relay)
    }

    fn populate(
        vault: Vault,
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
        vault.put(tree::META, PROFILE_KEY, &rec.encode_to_vec())?;
        vault.flush()?;
        Ok(Client {
            vault,
            identity,
            name: name.to_owned(),
            relay: relay.clone(),
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
                let raw = vault
                    .get(tree::META, PROFILE_KEY)?
                    .ok_or_else(|| ProfileError::Corrupt("profile record missing".into()))?;
                let rec = ProfileRecord::decode(raw.as_slice())
                    .map_err(|_| ProfileError::Corrupt("profile record".into()))?;
                let identity = Identity::from_bytes(&rec.identity)
                    .map_err(|_| ProfileError::Corrupt("identity".into()))?;
                let relay = rec
                    .relay
                    .parse()
                    .map_err(|_| ProfileError::Corrupt("relay address".into()))?;
                let client = Client {
                    vault,
                    identity,
                    name: rec.name.clone(),
                    relay,
                    home: home.to_path_buf(),
                };
                client.purge_expired()?;
                Ok(client)
            }
            Opened::Duress { decoy, vault } => {
                let rec = ProfileRecord::decode(decoy.as_slice())
                    .map_err(|_| ProfileError::Corrupt("decoy".into()))?;
                let relay: RelayAddress = rec
                    .relay
                    .parse()
                    .map_err(|_| ProfileError::Corrupt("decoy".into()))?;
                Self::populate(vault, home, &rec.name, &relay)
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
        self.vault
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
        self.vault
            .set_duress(duress, &decoy.encode_to_vec())
            .map_err(|e| ProfileError::BadPassphrase(passphrase_msg(&e)))
    }

    /// Whether the one-time notice `name` (e.g. a warning a front end shows
    /// once per profile) has not been shown yet; marks it shown.
    ///
    /// # Errors
    /// Storage errors.
    pub fn first_notice(&self, name: &str) -> Result<bool, ClientError> {
        let key = [b"notice/".as_slice(), name.as_bytes()].concat();
        if self.vault.get(tree::META, &key)?.is_some() {
            return Ok(false);
        }
        self.vault.put(tree::META, &key, &[])?;
        Ok(true)
    }

    pub(crate) fn next_seq(&self) -> Result<u64, ClientError> {
        let cur = self
            .vault
            .get(tree::COUNTERS, SEQ_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        self.vault
            .put(tree::COUNTERS, SEQ_KEY, &(cur + 1).to_be_bytes())?;
        Ok(cur)
    }

    pub(crate) fn all_contacts(&self) -> Result<Vec<ContactRecord>, ClientError> {
        self.vault
            .iter(tree::CONTACTS)?
            .into_iter()
            .map(|(_, v)| {
                ContactRecord::decode(v.as_slice()).map_err(|_| ClientError::Corrupt("contact"))
            })
            .collect()
    }

    pub(crate) fn contact(&self, id: &[u8]) -> Result<Option<ContactRecord>, ClientError> {
        self.vault
            .get(tree::CONTACTS, id)?
            .map(|v| {
                ContactRecord::decode(v.as_slice()).map_err(|_| ClientError::Corrupt("contact"))
            })
            .transpose()
    }

    pub(crate) fn contact_by_alias(&self, alias: &str) -> Result<ContactRecord, ClientError> {
        self.all_contacts()?
            .into_iter()
            .find(|c| c.alias == alias)
            .ok_or_else(|| ClientError::UnknownContact(alias.to_owned()))
    }

    pub(crate) fn all_messages(&self) -> Result<Vec<MessageRecord>, ClientError> {
        let mut v: Vec<MessageRecord> = self
            .vault
            .iter(tree::MESSAGES)?
            .into_iter()
            .map(|(_, v)| {
                MessageRecord::decode(v.as_slice()).map_err(|_| ClientError::Corrupt("message"))
            })
            .collect::<Result<_, _>>()?;
        v.sort_by_key(|m| m.seq);
        Ok(v)
    }

    pub(crate) fn session(&self, contact_id: &[u8]) -> Result<Option<Session>, ClientError> {
        self.vault
            .get(tree::SESSIONS, contact_id)?
            .map(|v| Session::from_bytes(&v).map_err(|_| ClientError::Corrupt("session")))
            .transpose()
    }

    /// Deletes messages whose disappearing timer ran out.
    ///
    /// # Errors
    /// Storage errors.
    pub fn purge_expired(&self) -> Result<usize, ProfileError> {
        let t = now();
        let mut batch = Batch::new();
        let msgs = self
            .all_messages()
            .map_err(|e| ProfileError::Storage(e.to_string()))?;
        for m in msgs
            .iter()
            .filter(|m| m.expires_at != 0 && m.expires_at <= t)
        {
            batch.remove(tree::MESSAGES, &message_key(&m.contact_id, m.seq));
            // An unconfirmed outgoing copy would keep the text alive (and be
            // resent): it disappears too.
            batch.remove(tree::OUTBOX, &m.id);
        }
        let n = batch.len();
        if n > 0 {
            self.vault.apply(batch)?;
        }
        Ok(n)
    }

    /// All contacts, sorted by alias.
    ///
    /// # Errors
    /// Storage errors.
    pub fn contacts(&self) -> Result<Vec<ContactInfo>, ClientError> {
        let msgs = self.all_messages()?;
        let mut out: Vec<ContactInfo> = self
            .all_contacts()?
            .into_iter()
            .map(|c| ContactInfo {
                unread: msgs
                    .iter()
                    .filter(|m| m.contact_id == c.id && m.status == Status::Unread as i32)
                    .count(),
                pending: msgs
                    .iter()
                    .filter(|m| {
                        m.contact_id == c.id
                            && (m.status == Status::Queued as i32
                                || m.status == Status::Sent as i32)
                    })
                    .count(),
                alias: c.alias.clone(),
                established: c.state == ContactState::Established as i32,
                verified: c.verified,
                timer_secs: c.timer_secs,
                dropped: c.dropped,
            })
            .collect();
        out.sort_by(|a, b| a.alias.cmp(&b.alias));
        Ok(out)
    }

    fn unused_alias(&self) -> Result<String, ClientError> {
        let taken: Vec<String> = self
            .all_contacts()?
            .into_iter()
            .map(|c| c.alias.clone())
            .collect();
        Ok((1..)
            .map(|i| format!("contact{i}"))
            .find(|a| !taken.contains(a))
            .unwrap_or_else(|| "contact".into()))
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
        let alias = match alias {
            Some(a) => {
                check_alias(a)?;
                if self.contact_by_alias(a).is_ok() {
                    return Err(ClientError::AliasTaken(a.to_owned()));
                }
                a.to_owned()
            }
            None => self.unused_alias()?,
        };
        let conn = RelayClient::connect(&self.relay).await?;
        let (mailbox, created) = create_mailbox(&conn, &self.relay).await;
        let created = created?;
        conn.close().await;
        let reply_sender = SigningKey::generate(&mut rand::rng());
        let (pending, invitation) = PendingInvitation::create(
            &mut rand::rng(),
            &self.identity,
            InviteParams {
                relay: self.relay.without_password(),
                sender_id: created.sender_id.to_vec(),
                reply_sender_auth: reply_sender.verifying_key().to_bytes(),
                now: now(),
                ttl_secs,
            },
        )
        .map_err(|_| ClientError::Corrupt("invitation parameters"))?;
        let contact_id = random16();
        let contact = ContactRecord {
            id: contact_id.to_vec(),
            alias: alias.clone(),
            identity: Vec::new(),
            state: ContactState::Invited as i32,
            verified: false,
            send_relay: String::new(),
            send_sender_id: Vec::new(),
            send_auth_secret: reply_sender.to_bytes().to_vec(),
            recv_mailbox: created.recipient_id.to_vec(),
            timer_secs: 0,
            dropped: 0,
            created_at: now(),
        };
        let own = mailbox.into_record(&self.relay, &created, &contact_id, &pending.id());
        let pending_rec = PendingRecord {
            pending: pending.to_bytes().to_vec(),
            contact_id: contact_id.to_vec(),
        };
        let mut batch = Batch::new();
        batch
            .put(tree::CONTACTS, &contact_id, &contact.encode_to_vec())
            .put(tree::MAILBOXES, &created.recipient_id, &own.encode_to_vec())
            .put(tree::PENDING, &pending.id(), &pending_rec.encode_to_vec());
        self.vault.apply(batch)?;
        Ok((invitation.to_link(), alias))
    }

    /// Accepts an invitation: creates the reply mailbox on this profile's
    /// relay, runs the handshake and queues `Hello`, then tries to deliver it.
    /// Returns whether the Hello was delivered now (else `sync` retries).
    ///
    /// # Errors
    /// [`ClientError`]: bad or expired link, alias problems, a changed
    /// identity for an existing alias (refused), relay failures.
    pub async fn accept(&mut self, link: &str, alias: &str) -> Result<bool, ClientError> {
        check_alias(alias)?;
        let inv = Invitation::from_link(link)?;
        let t = now();
        if inv.is_expired(t) {
            return Err(ClientError::InvitationExpired);
        }
        if inv.inviter() == self.identity.public() {
            return Err(ClientError::OwnInvitation);
        }
        if let Ok(c) = self.contact_by_alias(alias) {
            if c.identity.is_empty() {
                return Err(ClientError::AliasTaken(alias.to_owned()));
            }
            let known = IdentityPublic::from_bytes(&c.identity)
                .map_err(|_| ClientError::Corrupt("contact identity"))?;
            // S10: a different key under a known name is refused, loudly.
            tropa_e2e::verify_peer(&known, &inv.inviter())
                .map_err(|_| ClientError::IdentityChanged(alias.to_owned()))?;
            return Err(ClientError::AliasTaken(alias.to_owned()));
        }
        // One-time: a second accept of the same link would create a session
        // the inviter never completes.
        let used_key = Sha256::digest(inv.to_link().as_bytes());
        if self.vault.get(tree::USED_INVITATIONS, &used_key)?.is_some() {
            return Err(ClientError::InvitationUsed);
        }
        let conn = RelayClient::connect(&self.relay).await?;
        let (mailbox, created) = create_mailbox(&conn, &self.relay).await;
        let created = created?;
        // Only the inviter may deposit into our reply mailbox.
        conn.secure(
            &mailbox.auth,
            &created.recipient_id,
            inv.reply_sender_auth(),
        )
        .await?;
        let sender_key = SigningKey::generate(&mut rand::rng());
        let hello = Hello {
            reply_relay: self.relay.without_password(),
            reply_sender_id: created.sender_id.to_vec(),
            sender_auth: sender_key.verifying_key().to_bytes(),
        };
        let (session, envelope) =
            Session::initiate(&mut rand::rng(), &self.identity, &inv, &hello, None, t)?;
        let contact_id = random16().to_vec();
        let contact = ContactRecord {
            id: contact_id.clone(),
            alias: alias.to_owned(),
            identity: inv.inviter().to_bytes().to_vec(),
            state: ContactState::Established as i32,
            verified: false,
            send_relay: inv.relay().to_string(),
            send_sender_id: inv.sender_id().to_vec(),
            send_auth_secret: sender_key.to_bytes().to_vec(),
            recv_mailbox: created.recipient_id.to_vec(),
            timer_secs: 0,
            dropped: 0,
            created_at: t,
        };
        let own = mailbox.into_record(&self.relay, &created, &contact_id, &[]);
        let outbox_id = random16();
        let seq = self.next_seq()?;
        let outbox = OutboxRecord::queued(
            OutboxKind::Handshake,
            contact_id.clone(),
            envelope.as_bytes().to_vec(),
            seq,
        );
        let mut batch = Batch::new();
        batch
            .put(tree::USED_INVITATIONS, &used_key, &[])
            .put(tree::CONTACTS, &contact_id, &contact.encode_to_vec())
            .put(tree::SESSIONS, &contact_id, &session.to_bytes())
            .put(tree::MAILBOXES, &created.recipient_id, &own.encode_to_vec())
            .put(tree::OUTBOX, &outbox_id, &outbox.encode_to_vec());
        self.vault.apply(batch)?;
        // Try to deliver the Hello now; if the inviter's relay is unreachable
        // it stays queued and `sync` delivers it later.
        let delivered = if inv.relay().fingerprint == self.relay.fingerprint
            && inv.relay().host_port() == self.relay.host_port()
        {
            self.try_deposit_handshake(&conn, &outbox_id, &contact, envelope.as_bytes())
                .await
        } else {
            match RelayClient::connect(inv.relay()).await {
                Ok(other) => {
                    let d = self
                        .try_deposit_handshake(&other, &outbox_id, &contact, envelope.as_bytes())
                        .await;
                    other.close().await;
                    d
                }
                Err(_) => false,
            }
        };
        conn.close().await;
        Ok(delivered)
    }

    async fn try_deposit_handshake(
        &self,
        conn: &RelayClient,
        outbox_id: &[u8],
        contact: &ContactRecord,
        envelope: &[u8],
    ) -> bool {
        let key = signing_key(&contact.send_auth_secret);
        let ok = conn
            .deposit(
                &contact.send_sender_id,
                bytes::Bytes::copy_from_slice(envelope),
                key.as_ref(),
            )
            .await
            .is_ok();
        ok && self.vault.remove(tree::OUTBOX, outbox_id).is_ok()
    }

    /// Queues a text for `alias`; `sync` (or the caller) delivers it.
    /// Returns the message id (hex).
    ///
    /// # Errors
    /// Unknown or not-yet-established contact, text too long, storage.
    pub fn queue_text(&self, alias: &str, text: &str) -> Result<String, ClientError> {
        let c = self.contact_by_alias(alias)?;
        if c.state != ContactState::Established as i32 {
            return Err(ClientError::NotEstablished(alias.to_owned()));
        }
        let content = tropa_e2e::Content::text_expiring(&mut rand::rng(), text, c.timer_secs)
            .map_err(|_| ClientError::TooLong {
                max: tropa_e2e::MAX_TEXT_LEN,
            })?;
        let t = now();
        let seq = self.next_seq()?;
        let msg = MessageRecord {
            id: content.id.clone(),
            contact_id: c.id.clone(),
            direction: Direction::Out as i32,
            text: text.to_owned(),
            status: Status::Queued as i32,
            at: t,
            expires_at: expiry(t, c.timer_secs),
            seq,
        };
        let out =
            OutboxRecord::queued(OutboxKind::Text, c.id.clone(), content.encode_to_vec(), seq);
        let key = message_key(&c.id, seq);
        let mut batch = Batch::new();
        batch
            .put(tree::MESSAGES, &key, &msg.encode_to_vec())
            .put(
                tree::MESSAGE_IDS,
                &[c.id.as_slice(), &content.id].concat(),
                &key,
            )
            .put(tree::OUTBOX, &content.id, &out.encode_to_vec());
        self.vault.apply(batch)?;
        Ok(hex::encode(&content.id))
    }

    /// Messages with `alias` (or with everyone), oldest first.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn messages(&self, alias: Option<&str>) -> Result<Vec<MessageView>, ClientError> {
        let contacts = self.all_contacts()?;
        let only = alias.map(|a| self.contact_by_alias(a)).transpose()?;
        let t = now();
        Ok(self
            .all_messages()?
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
                status: status_name(m.status),
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
        let mut batch = Batch::new();
        for mut m in self.all_messages()? {
            if m.status == Status::Unread as i32
                && only.as_ref().is_none_or(|c| c.id == m.contact_id)
            {
                m.status = Status::Read as i32;
                batch.put(
                    tree::MESSAGES,
                    &message_key(&m.contact_id, m.seq),
                    &m.encode_to_vec(),
                );
            }
        }
        for mut c in self.all_contacts()? {
            if c.dropped > 0 && only.as_ref().is_none_or(|o| o.id == c.id) {
                c.dropped = 0;
                batch.put(tree::CONTACTS, &c.id.clone(), &c.encode_to_vec());
            }
        }
        if !batch.is_empty() {
            self.vault.apply(batch)?;
        }
        Ok(())
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
        self.vault
            .put(tree::CONTACTS, &c.id.clone(), &c.encode_to_vec())?;
        self.vault.flush()?;
        Ok(())
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
        self.vault
            .put(tree::CONTACTS, &c.id.clone(), &c.encode_to_vec())?;
        self.vault.flush()?;
        Ok(())
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

pub(crate) fn signing_key(secret: &[u8]) -> Option<SigningKey> {
    let arr: Zeroizing<[u8; 32]> = Zeroizing::new(secret.try_into().ok()?);
    Some(SigningKey::from_bytes(&arr))
}

/// Fresh keys for a new mailbox of ours.
pub(crate) struct NewMailbox {
    pub(crate) auth: SigningKey,
    pub(crate) dh: StaticSecret,
}

impl NewMailbox {
    fn into_record(
        self,
        relay: &RelayAddress,
        created: &tropa_relay_client::CreatedMailbox,
        contact_id: &[u8],
        invite_id: &[u8],
    ) -> OwnMailbox {
        OwnMailbox {
            relay: relay.to_string(),
            recipient_id: created.recipient_id.to_vec(),
            auth_secret: self.auth.to_bytes().to_vec(),
            dh_secret: self.dh.to_bytes().to_vec(),
            relay_dh_pub: created.relay_dh_pub.to_vec(),
            contact_id: contact_id.to_vec(),
            invite_id: invite_id.to_vec(),
            secure_with: Vec::new(),
        }
    }
}

async fn create_mailbox(
    conn: &RelayClient,
    relay: &RelayAddress,
) -> (
    NewMailbox,
    Result<tropa_relay_client::CreatedMailbox, tropa_relay_client::RequestError>,
) {
    let mb = NewMailbox {
        auth: SigningKey::generate(&mut rand::rng()),
        dh: StaticSecret::random_from_rng(&mut rand::rng()),
    };
    let created = conn
        .create_mailbox(
            &mb.auth,
            &PublicKey::from(&mb.dh),
            relay.password.as_deref(),
        )
        .await;
    (mb, created)
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
        assert_eq!(fresh.vault.kdf_params().unwrap(), kdf, "unlocks as slowly");
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
            status: "unread",
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

//! The public intake address and contact requests (docs/protocol.md §12),
//! as front ends use them: the owner creates, shows and deletes the
//! address and triages the requests that arrive (accept as a contact,
//! reject); a requester sends a request with a first message to an
//! organisation's `TROPA:A/...` address. The decisions are the engine's
//! (`engine::intake`); this is the API around them.

pub use tropa_e2e::MAX_REQUEST_TEXT_LEN;
use tropa_e2e::{LinkKind, ShortLink};
use zeroize::Zeroizing;

use super::{Client, LinkResolveError, Network, check_alias};
use crate::engine::{Command, Outcome};
use crate::error::ClientError;
use crate::records::RequestRecord;
use crate::repo::{Changes, Repo};
use crate::sync::ONE_SHOT_LIMIT as RUN_LIMIT;

/// What can go wrong with addresses and requests, beyond relays and links.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The profile has no intake address.
    #[error("you have no public address; `tropa address create` makes one")]
    NoAddress,
    /// The profile has an intake address already (one per profile).
    #[error("you have a public address already: `tropa address show`")]
    AddressExists,
    /// The profile's relay does not know intake addresses (an older one).
    #[error("your relay cannot hold a public address: it needs a newer tropa-relay")]
    RelayTooOld,
    /// No waiting request has this id.
    #[error("no contact request {0:?} (see `tropa requests`)")]
    UnknownRequest(String),
    /// Several waiting requests start with this id.
    #[error("{0:?} matches several requests: give more of the id")]
    AmbiguousRequest(String),
    /// The request's own invitation has expired: it can no longer be
    /// accepted (the requester has to ask again).
    #[error("this request has expired (the requester must send a new one)")]
    RequestExpired,
    /// A short link that is a one-time invitation, where an address was
    /// expected.
    #[error("this is a one-time invitation, not an address: accept it with `tropa accept`")]
    NotAnAddress,
    /// The address is our own.
    #[error("this is your own address")]
    OwnAddress,
    /// The address has expired.
    #[error("this address has expired; ask the organisation for its current one")]
    AddressExpired,
    /// The address's relay refused the request for good: the address was
    /// deleted. The half-made contact was removed.
    #[error(
        "this address no longer takes requests (it was deleted); the request was not sent and the contact not added"
    )]
    AddressGone,
}

/// The profile's intake address as front ends show it. `Debug` hides the
/// link.
#[derive(Clone, PartialEq, Eq)]
pub struct AddressInfo {
    /// The short `TROPA:A/...` link to publish.
    pub link: String,
    /// When it was made (Unix seconds).
    pub created_at: u64,
    /// Until when the relay keeps the link data (Unix seconds; 0: not
    /// stored yet). A sync renews it once half of that time has passed.
    pub link_expires_at: u64,
    /// Requests waiting.
    pub requests: usize,
    /// Envelopes dropped because they were not valid requests.
    pub dropped: u32,
    /// Valid requests dropped because too many were waiting.
    pub overflow: u32,
}

impl std::fmt::Debug for AddressInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressInfo")
            .field("requests", &self.requests)
            .field("dropped", &self.dropped)
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

/// A contact request as front ends show it. `Debug` hides the text.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestView {
    /// The request id (hex, 64 characters).
    pub id: String,
    /// Its first 8 hex characters: what a user types.
    pub short_id: String,
    /// The first two groups of the safety number with the requester
    /// (compare them once the contact exists, or when they write again).
    pub safety_prefix: String,
    /// The requester's first message (their words: neutralise before
    /// showing).
    pub text: String,
    /// When it arrived (Unix seconds).
    pub received_at: u64,
    /// Until when it can be accepted (Unix seconds).
    pub expires_at: u64,
    /// A contact of ours with the requester's identity, if any (someone
    /// writing again, or a second request).
    pub known_as: Option<String>,
}

impl std::fmt::Debug for RequestView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestView")
            .field("short_id", &self.short_id)
            .finish_non_exhaustive()
    }
}

impl Drop for RequestView {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.text);
    }
}

/// The waiting request whose id (hex) is `id` or starts with it.
pub(crate) fn find_request(repo: &Repo, id: &str) -> Result<RequestRecord, ClientError> {
    let want = id.trim().to_lowercase();
    if want.is_empty() {
        return Err(IntakeError::UnknownRequest(id.to_owned()).into());
    }
    let mut found: Vec<RequestRecord> = repo
        .requests()?
        .into_iter()
        .filter(|r| hex::encode(&r.id).starts_with(&want))
        .collect();
    match found.len() {
        0 => Err(IntakeError::UnknownRequest(id.to_owned()).into()),
        1 => found.pop().ok_or(ClientError::Corrupt("request")),
        _ => Err(IntakeError::AmbiguousRequest(id.to_owned()).into()),
    }
}

/// Whether `link` is a short link to an intake address (`TROPA:A/...`).
pub fn is_address_link(link: &str) -> bool {
    link.trim()
        .parse::<ShortLink>()
        .is_ok_and(|l| l.kind() == LinkKind::Address)
}

/// Fetches an address's data from its relay (pinned by the link, as for
/// any short link) and returns its invitation as a long link, for
/// [`Command::SendRequest`].
///
/// # Errors
/// [`ClientError::Link`] (damaged, gone, relay unreachable),
/// [`IntakeError::NotAnAddress`] for a one-time invitation.
pub async fn address_invitation(
    link: &str,
    net: &Network,
) -> Result<Zeroizing<String>, ClientError> {
    let short: ShortLink = link.trim().parse().map_err(LinkResolveError::from)?;
    if short.kind() != LinkKind::Address {
        return Err(IntakeError::NotAnAddress.into());
    }
    let resolved = Client::resolve_link(link.trim(), net).await?;
    Ok(Zeroizing::new(resolved.invitation.to_link()))
}

impl Client {
    /// The profile's intake address, if it has one.
    ///
    /// # Errors
    /// Storage.
    pub fn address(&self) -> Result<Option<AddressInfo>, ClientError> {
        let Some(rec) = self.repo.active_address()? else {
            return Ok(None);
        };
        Ok(Some(AddressInfo {
            link: crate::engine::address_link(&rec)?.to_string(),
            created_at: rec.created_at,
            link_expires_at: if rec.link_stored_at == 0 {
                0
            } else {
                rec.link_stored_at.saturating_add(rec.link_ttl_secs)
            },
            requests: self.repo.requests()?.len(),
            dropped: rec.dropped,
            overflow: rec.overflow,
        }))
    }

    /// Creates the profile's intake address on its relay: an intake
    /// mailbox and a long-lived invitation, published as link data.
    /// Returns the `TROPA:A/...` link.
    ///
    /// # Errors
    /// [`IntakeError::AddressExists`], [`IntakeError::RelayTooOld`], relay
    /// failures.
    pub async fn create_address(&mut self) -> Result<String, ClientError> {
        match self.run_command(Command::CreateAddress, RUN_LIMIT).await?.0 {
            Outcome::AddressCreated { link } => Ok(link),
            _ => Err(ClientError::Corrupt("unexpected outcome")),
        }
    }

    /// Deletes the intake address: its link stops working, its requests
    /// go, contacts made through it stay. Returns whether the relay
    /// confirmed it (else the next sync asks it again; meanwhile nothing
    /// that arrives is opened).
    ///
    /// # Errors
    /// [`IntakeError::NoAddress`], storage.
    pub async fn delete_address(&mut self) -> Result<bool, ClientError> {
        match self.run_command(Command::DeleteAddress, RUN_LIMIT).await?.0 {
            Outcome::AddressDeleted { confirmed } => Ok(confirmed),
            _ => Err(ClientError::Corrupt("unexpected outcome")),
        }
    }

    /// The contact requests waiting, oldest first.
    ///
    /// # Errors
    /// Storage.
    pub fn requests(&self) -> Result<Vec<RequestView>, ClientError> {
        let contacts = self.repo.contacts()?;
        let mut recs = self.repo.requests()?;
        recs.sort_by(|a, b| a.received_at.cmp(&b.received_at).then(a.id.cmp(&b.id)));
        Ok(recs
            .iter()
            .map(|r| {
                let id = hex::encode(&r.id);
                RequestView {
                    short_id: id.chars().take(8).collect(),
                    id,
                    safety_prefix: r.safety_prefix.clone(),
                    text: r.text.clone(),
                    received_at: r.received_at,
                    expires_at: r.expires_at,
                    known_as: contacts
                        .iter()
                        .find(|c| !c.identity.is_empty() && c.identity == r.requester)
                        .map(|c| c.alias.clone()),
                }
            })
            .collect())
    }

    /// Accepts a contact request (`id`: its hex id or a unique prefix) and
    /// calls the requester `alias`: accepts the invitation they sent, with
    /// mailboxes of its own, and deletes the request. Returns whether the
    /// handshake reached their relay already (else `sync` delivers it).
    ///
    /// # Errors
    /// Unknown or ambiguous id, expired request, alias problems, relay
    /// failures (then the request stays).
    pub async fn accept_request(&mut self, id: &str, alias: &str) -> Result<bool, ClientError> {
        check_alias(alias)?;
        let command = Command::AcceptRequest {
            id: id.to_owned(),
            alias: alias.to_owned(),
        };
        self.run_command(command, RUN_LIMIT)
            .await?
            .0
            .into_accepted()
    }

    /// Rejects a contact request: it is deleted, and nothing is sent; the
    /// requester's invitation expires unused. The same request delivered
    /// again is dropped.
    ///
    /// # Errors
    /// Unknown or ambiguous id, storage.
    pub fn reject_request(&self, id: &str) -> Result<(), ClientError> {
        let rec = find_request(&self.repo, id)?;
        let mut c = Changes::new();
        c.remove_request(&rec.id);
        self.repo.apply(c)
    }

    /// Sends a contact request with the first message `text` to the
    /// organisation whose address is `link` (`TROPA:A/...`), calling them
    /// `alias`: fetches the address, makes a one-time invitation of ours
    /// that only the address's owner may answer, and deposits the sealed
    /// request. Returns whether the address's relay has it now (else it
    /// stays queued for `sync`). `alias` appears as an invitation until
    /// they accept.
    ///
    /// # Errors
    /// Link errors (damaged, gone, unreachable), not an address, alias
    /// problems, an empty or too long text, [`IntakeError::AddressGone`].
    pub async fn send_request(
        &mut self,
        link: &str,
        alias: &str,
        text: &str,
    ) -> Result<bool, ClientError> {
        check_alias(alias)?;
        if text.trim().is_empty() {
            return Err(ClientError::EmptyText);
        }
        let address = address_invitation(link, &self.network()?).await?;
        let command = Command::SendRequest {
            address: address.to_string(),
            alias: alias.to_owned(),
            text: text.to_owned(),
        };
        match self.run_command(command, RUN_LIMIT).await?.0 {
            Outcome::RequestSent { delivered, .. } => Ok(delivered),
            _ => Err(ClientError::Corrupt("unexpected outcome")),
        }
    }
}

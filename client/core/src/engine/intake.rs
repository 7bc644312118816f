//! Intake addresses and contact requests (docs/protocol.md §12), both sides.
//!
//! Owner. `address create`: an intake mailbox on our relay → the address's
//! long-lived invitation and its short link (kind `A`) → `PutLink` → the
//! address record and the mailbox in one batch → the link. A sync puts the
//! link data again once half of the time the relay granted has passed (the
//! relay caps it, 90 days by default). `address delete`: the pending half
//! and the waiting requests go at once (recorded requests can then no
//! longer be opened), then `DeleteLink` and `DeleteMailbox`; the record
//! stays, withdrawn, until the relay confirmed both (later syncs retry).
//!
//! Requests arrive on the intake mailbox: opened → dropped if their id was
//! handled already → stored (at most [`MAX_REQUESTS`]) with their id → acked.
//! Invalid ones are dropped and counted on the address, never shown as
//! contacts. Accepting one is accepting its embedded invitation
//! ([`Engine::accept`]), which gives the contact mailboxes of its own; the
//! request goes once the contact exists. Nothing links it to the address.
//!
//! Requester. `accept TROPA:A/...`: a mailbox on our relay → our own
//! one-time invitation, a placeholder contact (invited), the identity its
//! Hello must come from (the address's owner), and the sealed request to
//! deposit, all in one batch → the deposit, unsigned, into the address's
//! mailbox; retried byte for byte after a refusal or a kill (the same
//! envelope has the same request id, so the owner keeps it once).

use std::collections::BTreeMap;

mod address;
mod requester;

use ed25519_dalek::SigningKey;
use tropa_e2e::{Invitation, LinkKind, LinkSecret, PendingInvitation, ShortLink, open_request};
use tropa_proto::RelayAddress;
use tropa_relay_client::CreatedMailbox;
use x25519_dalek::StaticSecret;

use super::{Engine, Mode, Outcome, Reply, Ticket};
use crate::client::IntakeError;
use crate::error::{ClientError, Refusal, RelayError};
use crate::records::{AddressRecord, OwnMailbox, RequestRecord};
use crate::repo::Changes;
use crate::sync::SyncEvent;

/// How long an intake address is valid: its invitation's lifetime. The
/// link data on the relay lives as long as the relay allows and is put
/// again by syncs before it runs out.
pub const ADDRESS_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
/// Most contact requests kept waiting; beyond, new ones are dropped and
/// counted (the relay's per-address rate limit makes this take days).
pub const MAX_REQUESTS: usize = 500;
/// Most a refused request deposit waits before it is tried again, seconds.
const MAX_REQUEST_BACKOFF: u64 = 3600;
/// How often a waiting sync looks after the address (refresh, expiry).
const HOUSEKEEPING_SECS: u64 = 3600;

/// Fresh keys for a mailbox of ours.
pub(super) struct MailboxKeys {
    auth: SigningKey,
    dh: StaticSecret,
}

impl MailboxKeys {
    fn generate(rng: &mut rand::rngs::StdRng) -> Self {
        Self {
            auth: SigningKey::generate(rng),
            dh: StaticSecret::random_from_rng(rng),
        }
    }

    fn record(&self, relay: &RelayAddress, created: &CreatedMailbox) -> OwnMailbox {
        let mut mb = OwnMailbox::default();
        mb.relay = relay.to_string();
        mb.recipient_id = created.recipient_id.to_vec();
        mb.auth_secret = self.auth.to_bytes().to_vec();
        mb.dh_secret = self.dh.to_bytes().to_vec();
        mb.relay_dh_pub = created.relay_dh_pub.to_vec();
        mb
    }
}

/// A new address whose link data is being stored.
pub(super) struct NewAddress {
    ticket: Ticket,
    rec: AddressRecord,
    own: OwnMailbox,
    link: String,
}

/// A contact request of ours whose reply mailbox is being created.
pub(super) struct NewRequest {
    ticket: Ticket,
    alias: String,
    text: String,
    address: Invitation,
    keys: MailboxKeys,
}

/// Which half of a deleted address the relay is deleting.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Link,
    Mailbox,
}

/// Why the engine waits for a request of this module.
#[allow(clippy::large_enum_variant)]
pub(super) enum IntakeOp {
    /// The intake mailbox of a new address.
    AddressMailbox { ticket: Ticket, keys: MailboxKeys },
    /// The link data of a new address.
    AddressLink(Box<NewAddress>),
    /// The address's link data put again.
    Refresh { mailbox: Vec<u8> },
    /// One half of a deleted address deleted on the relay.
    Withdraw { mailbox: Vec<u8>, part: Part },
    /// Our reply mailbox for a request we make.
    RequestMailbox(Box<NewRequest>),
    /// A request of ours deposited into an address's mailbox.
    Deposit { contact_id: Vec<u8> },
}

/// A deletion a user waits for: how many answers are still due, and
/// whether every one confirmed.
struct Withdrawal {
    ticket: Option<Ticket>,
    waiting: u8,
    confirmed: bool,
}

/// What the engine keeps in memory about addresses and requests.
#[derive(Default)]
pub(super) struct IntakeState {
    /// Requests of ours being sent, by contact id: the command waiting.
    sending: BTreeMap<Vec<u8>, Ticket>,
    /// Request deposits tried (and not accepted) in this run.
    tried: std::collections::BTreeSet<Vec<u8>>,
    /// Accepts of requests, by ticket: the request to delete once done.
    accepting: BTreeMap<Ticket, Vec<u8>>,
    /// Address deletions in progress, by mailbox.
    withdrawing: BTreeMap<Vec<u8>, Withdrawal>,
    /// An address being created (one at a time).
    creating: bool,
    /// A refresh of the link data in flight.
    refreshing: bool,
    /// When the address was last looked after.
    checked_at: u64,
}

/// Whether a refusal means the thing asked about is gone already.
fn gone(e: &RelayError, part: Part) -> bool {
    match e.refusal() {
        // NO_LINK maps to NoMailbox.
        Some(Refusal::NoMailbox) => true,
        // An unknown mailbox and a bad signature both get AUTH_FAILED.
        Some(Refusal::AuthFailed) => part == Part::Mailbox,
        _ => false,
    }
}

fn misbehaved(what: &str) -> RelayError {
    RelayError::Misbehaved {
        detail: format!("no {what} in the answer"),
    }
}

fn random16(rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    let mut b = [0u8; 16];
    rand::Rng::fill_bytes(rng, &mut b);
    b.to_vec()
}

/// The short link of an address record (its secret, on its relay).
pub(crate) fn address_link(rec: &AddressRecord) -> Result<ShortLink, ClientError> {
    let relay: RelayAddress = rec
        .relay
        .parse()
        .map_err(|_| ClientError::Corrupt("address relay"))?;
    let secret: [u8; 16] = rec
        .link_secret
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::Corrupt("address link"))?;
    Ok(ShortLink::new(
        LinkKind::Address,
        &relay,
        LinkSecret::from_bytes(secret),
    ))
}

impl Engine {
    pub(super) fn on_intake_done(
        &mut self,
        op: IntakeOp,
        result: Result<Reply, RelayError>,
    ) -> Result<(), ClientError> {
        match op {
            IntakeOp::AddressMailbox { ticket, keys } => {
                self.address_mailbox_created(ticket, &keys, result)
            }
            IntakeOp::AddressLink(new) => self.address_link_stored(*new, result),
            IntakeOp::Refresh { mailbox } => {
                self.intake.refreshing = false;
                if let Ok(Reply::LinkStored(ttl)) = result
                    && let Some(mut rec) = self.repo.address(&mailbox)?
                    && !rec.withdrawn
                {
                    rec.link_stored_at = self.now;
                    rec.link_ttl_secs = ttl.as_secs();
                    let mut c = Changes::new();
                    c.put_address(&rec);
                    self.repo.apply(c)?;
                }
                // Otherwise the next sync tries again.
                Ok(())
            }
            IntakeOp::Withdraw { mailbox, part } => self.on_withdrawn(&mailbox, part, &result),
            IntakeOp::RequestMailbox(new) => self.request_mailbox_created(*new, result),
            IntakeOp::Deposit { contact_id } => self.on_request_deposited(&contact_id, result),
        }
    }

    /// Looks after addresses and requests: at the start of a sync and
    /// hourly in a waiting one. Refreshes the address's link data,
    /// finishes deletions the relay has not confirmed, forgets requests
    /// that can no longer be accepted (their ids stay while the address
    /// exists), and expected identities of invitations that are gone.
    pub(super) fn intake_housekeeping(&mut self) -> Result<(), ClientError> {
        if self.mode != Mode::Sync {
            return Ok(());
        }
        let first = self.intake.checked_at == 0;
        if !first && self.now < self.intake.checked_at.saturating_add(HOUSEKEEPING_SECS) {
            return Ok(());
        }
        self.intake.checked_at = self.now.max(1);
        self.refresh_address_link()?;
        if first {
            for rec in self.repo.addresses()? {
                if rec.withdrawn {
                    self.withdraw(&rec, None)?;
                }
            }
        }
        let grace = self.opts.invitation_grace.as_secs();
        let mut c = Changes::new();
        for r in self.repo.requests()? {
            if r.expires_at.saturating_add(grace) < self.now {
                c.remove_request(&r.id);
            }
        }
        for invite_id in self.repo.expected_identity_ids()? {
            if self.repo.pending_invitation(&invite_id)?.is_none() {
                c.forget_expected_identity(&invite_id);
            }
        }
        self.repo.apply(c)
    }

    // ----- owner: requests arriving ---------------------------------------

    /// Whether `rid` is the mailbox of an intake address of ours.
    pub(super) fn is_intake(&self, rid: &[u8]) -> Result<bool, ClientError> {
        Ok(self.repo.address(rid)?.is_some())
    }

    /// An envelope on the intake mailbox: open the request, drop it if it
    /// is invalid or known, store it otherwise (`changes` already marks the
    /// envelope processed; the caller acks it).
    pub(super) fn on_request(
        &mut self,
        rid: &[u8],
        plain: &[u8],
        mut changes: Changes,
    ) -> Result<(), ClientError> {
        let Some(mut addr) = self.repo.address(rid)? else {
            return self.repo.apply(changes);
        };
        if addr.withdrawn || addr.pending.is_empty() {
            return self.repo.apply(changes);
        }
        let pending = PendingInvitation::from_bytes(&addr.pending)
            .map_err(|_| ClientError::Corrupt("address"))?;
        let req = match open_request(&self.identity, &pending, plain, self.now) {
            Ok(r) => r,
            Err(e) => {
                addr.dropped = addr.dropped.saturating_add(1);
                changes.put_address(&addr);
                self.repo.apply(changes)?;
                self.report.requests_dropped += 1;
                self.emit(SyncEvent::RequestDropped {
                    reason: e.to_string(),
                });
                return Ok(());
            }
        };
        if self.repo.request_handled(&req.id)? {
            // Delivered again (a replay, or a redelivery after a lost ack).
            return self.repo.apply(changes);
        }
        if self.repo.requests()?.len() >= MAX_REQUESTS {
            addr.overflow = addr.overflow.saturating_add(1);
            changes.put_address(&addr);
            self.repo.apply(changes)?;
            self.report.requests_dropped += 1;
            self.emit(SyncEvent::RequestDropped {
                reason: format!("{MAX_REQUESTS} requests are waiting already"),
            });
            return Ok(());
        }
        let safety = tropa_e2e::safety_number(&self.identity.public(), &req.requester);
        let mut rec = RequestRecord::default();
        rec.id = req.id.to_vec();
        rec.requester = req.requester.to_bytes().to_vec();
        rec.invitation = req.invitation.to_encoded();
        rec.text.clone_from(&req.text);
        rec.received_at = self.now;
        rec.expires_at = req.invitation.expires_at();
        rec.safety_prefix = safety.groups()[..2].join(" ");
        // Its id stays while the address exists (docs/protocol.md §12.2):
        // the same envelope always opens again, with the same id.
        changes.put_request(&rec);
        self.repo.apply(changes)?;
        self.report.requests += 1;
        self.emit(SyncEvent::RequestReceived {
            id: hex::encode(&req.id[..4]),
        });
        Ok(())
    }

    /// Accepts a request: accepts its embedded invitation, exactly as a
    /// link; the request goes once that succeeded.
    pub(super) fn accept_request(
        &mut self,
        ticket: Ticket,
        id: &str,
        alias: &str,
    ) -> Result<(), ClientError> {
        let rec = match crate::client::find_request(&self.repo, id) {
            Ok(r) => r,
            Err(e) => {
                self.complete(ticket, Err(e));
                return Ok(());
            }
        };
        let Ok(inv) = Invitation::from_encoded(&rec.invitation) else {
            self.complete(ticket, Err(ClientError::Corrupt("request")));
            return Ok(());
        };
        if inv.is_expired(self.now) {
            self.complete(ticket, Err(IntakeError::RequestExpired.into()));
            return Ok(());
        }
        self.intake.accepting.insert(ticket, rec.id.clone());
        self.accept(ticket, &inv.to_link(), alias)
    }

    /// A command finished: an accepted request's record goes.
    pub(super) fn settle_request_accept(
        &mut self,
        ticket: Ticket,
        result: &Result<Outcome, ClientError>,
    ) {
        if let Some(id) = self.intake.accepting.remove(&ticket)
            && result.is_ok()
        {
            let mut c = Changes::new();
            c.remove_request(&id);
            // A storage error leaves the request listed; rejecting it then
            // removes it.
            let _ = self.repo.apply(c);
        }
    }
}

//! The mailbox service: the relay protocol's decisions, without I/O.
//!
//! [`Service::handle`] takes one decoded request, the connection's channel
//! binding and the current hour, and returns what to answer and what the
//! async shell must do (flush before answering, wake subscribers, start a
//! subscription). It never touches sockets, never logs identifiers and never
//! tells an unauthenticated party whether a mailbox exists (recipient
//! commands for unknown mailboxes fail exactly like bad signatures).

use std::sync::Arc;

use prost::Message;
use rand::Rng as _;
use subtle::ConstantTimeEq;
use tropa_proto::relay::{
    self, ErrorCode, RecipientCommand, Request, Response, recipient_command::Action, request,
    response,
};
use tropa_proto::{ENVELOPE_ID_LEN, ENVELOPE_SIZE, MAILBOX_ID_LEN, PROTOCOL_VERSION};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::Hour;
use crate::crypto::{self, ChannelBinding, SealingKey};
use crate::metrics::Metrics;
use crate::store::{EnvelopeId, MailboxRecord, RecipientId, Store, StoreError, StoreLimits};

/// Relay-wide limits and policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Envelopes one mailbox may hold.
    pub mailbox_quota: u32,
    /// Mailboxes the relay may hold.
    pub max_mailboxes: u64,
    /// Envelopes the relay may hold in total.
    pub total_quota: u64,
    /// Password required for `CreateMailbox`, if any.
    pub creation_password: Option<String>,
}

/// What the shell must do after [`Service::handle`].
#[derive(Debug)]
pub enum Outcome {
    /// Send this response and finish the stream.
    Reply(Response),
    /// Flush the store, then send `Accepted` and wake the mailbox's subscribers.
    /// If the flush fails, answer with an internal error instead.
    FlushThenAccept(RecipientId),
    /// Send `Ok` and keep the stream open for deliveries of this mailbox.
    Subscribe(Subscription),
}

/// A started subscription: which mailbox and how to seal its deliveries.
pub struct Subscription {
    /// The mailbox.
    pub recipient_id: RecipientId,
    /// Key for delivery re-encryption (S6).
    pub delivery_key: SealingKey,
    /// Key that opens what is stored.
    pub at_rest_key: SealingKey,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription(<redacted>)")
    }
}

/// Builds an error response.
pub fn error(code: ErrorCode, message: &str) -> Response {
    Response {
        result: Some(response::Result::Error(relay::Error {
            code: code as i32,
            message: message.to_owned(),
        })),
    }
}

fn ok() -> Response {
    Response {
        result: Some(response::Result::Ok(relay::Ok {})),
    }
}

fn auth_failed() -> Response {
    error(ErrorCode::AuthFailed, "authentication failed")
}

fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::NoMailbox => error(ErrorCode::NoMailbox, "no such mailbox"),
        StoreError::Quota => error(ErrorCode::Quota, "mailbox is full"),
        StoreError::DiskFull => error(ErrorCode::Quota, "relay storage is full"),
        StoreError::SecurityChanged => error(ErrorCode::AuthFailed, "deposit signature invalid"),
        StoreError::Collision | StoreError::Corrupt | StoreError::Backend(_) => {
            error(ErrorCode::Internal, "relay storage error, try again later")
        }
    }
}

fn id_of(raw: &[u8]) -> Option<[u8; MAILBOX_ID_LEN]> {
    raw.try_into().ok()
}

fn key32(raw: &[u8]) -> Option<[u8; 32]> {
    raw.try_into().ok()
}

/// The mailbox service.
pub struct Service {
    store: Arc<dyn Store>,
    policy: Policy,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// A service over `store`.
    pub fn new(store: Arc<dyn Store>, policy: Policy, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            policy,
            metrics,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Decides what to do with one request.
    pub fn handle(&self, req: Request, binding: &ChannelBinding, now: Hour) -> Outcome {
        if req.version != PROTOCOL_VERSION {
            return Outcome::Reply(error(
                ErrorCode::UnsupportedVersion,
                "unsupported protocol version",
            ));
        }
        match req.command {
            None => Outcome::Reply(error(ErrorCode::Malformed, "unknown or missing command")),
            Some(request::Command::CreateMailbox(c)) => Outcome::Reply(self.create(&c, now)),
            Some(request::Command::Deposit(d)) => self.deposit(&d, now),
            Some(request::Command::Signed(s)) => self.recipient(&s, binding, now),
        }
    }

    fn create(&self, c: &relay::CreateMailbox, now: Hour) -> Response {
        if let Some(want) = &self.policy.creation_password {
            let ok: bool = want.as_bytes().ct_eq(c.password.as_bytes()).into();
            if !ok {
                return error(ErrorCode::AuthFailed, "wrong mailbox creation password");
            }
        }
        let (Some(auth), Some(dh)) = (key32(&c.recipient_auth_pub), key32(&c.recipient_dh_pub))
        else {
            return error(ErrorCode::Malformed, "keys must be 32 bytes");
        };
        if ed25519_dalek::VerifyingKey::from_bytes(&auth).is_err() {
            return error(ErrorCode::Malformed, "invalid Ed25519 key");
        }
        if self.store.total_mailboxes() >= self.policy.max_mailboxes {
            return error(
                ErrorCode::Quota,
                "relay holds its maximum number of mailboxes",
            );
        }
        let mut rng = rand::rng();
        let relay_secret = StaticSecret::random_from_rng(&mut rng);
        let mut recipient_id = [0u8; MAILBOX_ID_LEN];
        let mut sender_id = [0u8; MAILBOX_ID_LEN];
        rng.fill_bytes(&mut recipient_id);
        rng.fill_bytes(&mut sender_id);
        let rec = MailboxRecord {
            recipient_auth_pub: auth.to_vec(),
            recipient_dh_pub: dh.to_vec(),
            relay_dh_secret: relay_secret.to_bytes().to_vec(),
            sender_id: sender_id.to_vec(),
            secured_sender: Vec::new(),
            active_hour: now,
            next_seq: 0,
            count: 0,
        };
        if let Err(e) = self.store.create_mailbox(&recipient_id, &rec) {
            return store_error(&e);
        }
        // A new mailbox must survive a crash once its creator has the IDs.
        if let Err(e) = self.store.flush() {
            return store_error(&e);
        }
        self.metrics.inc(&self.metrics.mailboxes_created);
        Response {
            result: Some(response::Result::Created(relay::MailboxCreated {
                recipient_id: recipient_id.to_vec().into(),
                sender_id: sender_id.to_vec().into(),
                relay_dh_pub: PublicKey::from(&relay_secret).to_bytes().to_vec().into(),
            })),
        }
    }

    fn deposit(&self, d: &relay::Deposit, now: Hour) -> Outcome {
        if d.envelope.len() > ENVELOPE_SIZE {
            return Outcome::Reply(error(ErrorCode::TooLarge, "envelope too large"));
        }
        if d.envelope.len() != ENVELOPE_SIZE {
            return Outcome::Reply(error(ErrorCode::Malformed, "envelope has the wrong size"));
        }
        let Some(sender_id) = id_of(&d.sender_id) else {
            return Outcome::Reply(error(ErrorCode::NoMailbox, "no such mailbox"));
        };
        let (rid, rec) = match self.store.mailbox_by_sender(&sender_id) {
            Ok(Some(found)) => found,
            Ok(None) => return Outcome::Reply(store_error(&StoreError::NoMailbox)),
            Err(e) => return Outcome::Reply(store_error(&e)),
        };
        if !rec.secured_sender.is_empty() {
            let signed = crypto::deposit_signed_bytes(&d.sender_id, &d.envelope);
            if !crypto::verify(&rec.secured_sender, &signed, &d.signature) {
                return Outcome::Reply(error(ErrorCode::AuthFailed, "deposit signature invalid"));
            }
        }
        let Some(secret) = key32(&rec.relay_dh_secret) else {
            return Outcome::Reply(store_error(&StoreError::Corrupt));
        };
        let at_rest = SealingKey::at_rest(&StaticSecret::from(secret), &rid);
        let limits = StoreLimits {
            mailbox_quota: self.policy.mailbox_quota,
            total_quota: self.policy.total_quota,
            // Re-checked inside the write: a `Secure` that lands between the
            // signature check above and the write must not let this through.
            secured_as_checked: rec.secured_sender.clone(),
        };
        let seal = |id: &EnvelopeId| at_rest.seal(id, &d.envelope);
        match self.store.put_envelope(&rid, now, &limits, &seal) {
            Ok(_) => {
                self.metrics.inc(&self.metrics.deposits);
                Outcome::FlushThenAccept(rid)
            }
            Err(e) => Outcome::Reply(store_error(&e)),
        }
    }

    fn recipient(&self, s: &relay::SignedCommand, binding: &ChannelBinding, now: Hour) -> Outcome {
        let Ok(cmd) = RecipientCommand::decode(s.command.as_ref()) else {
            return Outcome::Reply(error(ErrorCode::Malformed, "malformed recipient command"));
        };
        let Some(rid) = id_of(&cmd.recipient_id) else {
            return Outcome::Reply(auth_failed());
        };
        let rec = match self.store.mailbox(&rid) {
            Ok(Some(rec)) => rec,
            // Unknown mailbox and bad signature are indistinguishable.
            Ok(None) => return Outcome::Reply(auth_failed()),
            Err(e) => return Outcome::Reply(store_error(&e)),
        };
        let signed = crypto::recipient_signed_bytes(binding, &s.command);
        if !crypto::verify(&rec.recipient_auth_pub, &signed, &s.signature) {
            self.metrics.inc(&self.metrics.auth_failures);
            return Outcome::Reply(auth_failed());
        }
        if let Err(e) = self.store.touch(&rid, now) {
            return Outcome::Reply(store_error(&e));
        }
        let result = match cmd.action {
            None => return Outcome::Reply(error(ErrorCode::Malformed, "unknown action")),
            Some(Action::Subscribe(_)) => return self.subscribe(rid, &rec),
            Some(Action::Ack(a)) => {
                let Ok(id) = <[u8; ENVELOPE_ID_LEN]>::try_from(a.envelope_id.as_ref()) else {
                    return Outcome::Reply(error(ErrorCode::Malformed, "bad envelope id"));
                };
                // Acking twice is harmless: the client retries after losses.
                self.store.ack(&rid, &id).map(|_| {
                    self.metrics.inc(&self.metrics.acks);
                })
            }
            Some(Action::Secure(sec)) => match key32(&sec.sender_auth_pub) {
                Some(k) if ed25519_dalek::VerifyingKey::from_bytes(&k).is_ok() => {
                    self.store.secure(&rid, &k)
                }
                _ => return Outcome::Reply(error(ErrorCode::Malformed, "invalid sender key")),
            },
            Some(Action::Delete(_)) => self.store.delete_mailbox(&rid),
        };
        match result.and_then(|()| self.store.flush()) {
            Ok(()) => Outcome::Reply(ok()),
            Err(e) => Outcome::Reply(store_error(&e)),
        }
    }

    fn subscribe(&self, rid: RecipientId, rec: &MailboxRecord) -> Outcome {
        let (Some(secret), Some(peer)) =
            (key32(&rec.relay_dh_secret), key32(&rec.recipient_dh_pub))
        else {
            return Outcome::Reply(store_error(&StoreError::Corrupt));
        };
        let secret = StaticSecret::from(secret);
        Outcome::Subscribe(Subscription {
            recipient_id: rid,
            delivery_key: SealingKey::delivery(&secret, &PublicKey::from(peer), &rid),
            at_rest_key: SealingKey::at_rest(&secret, &rid),
        })
    }
}

/// Builds the delivery frame for one stored envelope (S6: fresh nonce, key
/// shared only with the recipient, so the bytes match neither the deposit nor
/// the stored form nor any earlier delivery).
///
/// # Errors
/// [`crypto::OpenError`] if the stored envelope does not open (corruption).
pub fn delivery(
    sub: &Subscription,
    env: &crate::store::StoredEnvelope,
) -> Result<Response, crypto::OpenError> {
    let plain = sub.at_rest_key.open(&env.id, &env.sealed)?;
    Ok(Response {
        result: Some(response::Result::Delivery(relay::Delivery {
            envelope_id: env.id.to_vec().into(),
            sealed: sub.delivery_key.seal(&env.id, &plain).into(),
        })),
    })
}

/// The `Accepted` response.
pub fn accepted() -> Response {
    Response {
        result: Some(response::Result::Accepted(relay::Accepted {})),
    }
}

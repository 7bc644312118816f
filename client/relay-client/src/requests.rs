//! Every request a client sends and how to read every answer, as pure
//! functions: no sockets, no clock, no state. [`crate::RelayClient`] sends
//! what these build; a simulation can hand them to a relay service directly.

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use prost::Message;
use std::time::Duration;
use tropa_proto::relay::{
    self, ErrorCode, RecipientCommand, Request, Response, recipient_command::Action, request,
    response,
};

use tropa_proto::{
    ENVELOPE_ID_LEN, LINK_DATA_SIZE, LINK_LOCATOR_LEN, MAILBOX_ID_LEN, PROTOCOL_VERSION,
};
use tropa_relay_protocol::crypto::{self, ChannelBinding, SealingKey};
use x25519_dalek::{PublicKey, StaticSecret};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The relay answered with an error.
    #[error("relay refused: {message} ({code:?})")]
    Relay {
        /// The error code.
        code: ErrorCode,
        /// The relay's explanation.
        message: String,
    },
    /// The connection failed or was closed.
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The connection over TCP failed or was closed, or the relay refused
    /// the stream (an HTTP/2 error).
    #[error("connection lost: {0}")]
    Http2(#[from] h2::Error),
    /// Writing the request failed.
    #[error("sending failed: {0}")]
    Write(#[from] tropa_relay_protocol::frame::WriteError),
    /// Reading the response failed.
    #[error("receiving failed: {0}")]
    Read(#[from] tropa_relay_protocol::frame::ReadError),
    /// The relay answered something this request does not expect.
    #[error("unexpected answer from the relay")]
    Unexpected,
    /// The relay did not answer in time.
    #[error("the relay did not answer in time")]
    Timeout,
}

impl RequestError {
    /// The relay's error code, if the relay answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RequestError::Relay { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A mailbox the relay just created.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedMailbox {
    /// Recipient-side ID (keep private).
    pub recipient_id: [u8; MAILBOX_ID_LEN],
    /// Sender-side ID (give to the sender).
    pub sender_id: [u8; MAILBOX_ID_LEN],
    /// The relay's DH key for this mailbox.
    pub relay_dh_pub: [u8; 32],
}

impl std::fmt::Debug for CreatedMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreatedMailbox(<ids redacted>)")
    }
}

/// One delivery as it arrived (still sealed under the delivery key).
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The envelope's ID, used to `Ack` it.
    pub envelope_id: [u8; ENVELOPE_ID_LEN],
    /// Nonce ‖ ciphertext ‖ tag.
    pub sealed: Bytes,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Delivery(<redacted>)")
    }
}

impl Delivery {
    /// Opens the delivery with the recipient's DH secret.
    ///
    /// # Errors
    /// [`crypto::OpenError`] if it was not sealed for this mailbox or was altered.
    pub fn open(
        &self,
        recipient_dh: &StaticSecret,
        relay_dh_pub: &[u8; 32],
        recipient_id: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, crypto::OpenError> {
        SealingKey::delivery(recipient_dh, &PublicKey::from(*relay_dh_pub), recipient_id)
            .open(&self.envelope_id, &self.sealed)
    }
}

/// What a subscription yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An envelope.
    Delivery(Delivery),
    /// Everything stored so far has been delivered.
    Idle,
}

fn request(command: request::Command) -> Request {
    Request {
        version: PROTOCOL_VERSION,
        command: Some(command),
    }
}

/// `CreateMailbox` for a mailbox whose recipient commands `auth` signs and
/// whose deliveries are sealed to `dh`.
pub fn create(auth: &SigningKey, dh: &PublicKey, password: Option<&str>) -> Request {
    create_kind(auth, dh, password, false)
}

/// `CreateMailbox` for an intake mailbox (a public contact address): open
/// to unsigned deposits from anyone, rate-limited per mailbox by the relay,
/// never securable. Answered like [`create`] (read it with [`created`]).
pub fn create_intake(auth: &SigningKey, dh: &PublicKey, password: Option<&str>) -> Request {
    create_kind(auth, dh, password, true)
}

fn create_kind(auth: &SigningKey, dh: &PublicKey, password: Option<&str>, intake: bool) -> Request {
    request(request::Command::CreateMailbox(relay::CreateMailbox {
        recipient_auth_pub: auth.verifying_key().to_bytes().to_vec().into(),
        recipient_dh_pub: dh.to_bytes().to_vec().into(),
        password: password.unwrap_or_default().to_owned(),
        intake,
    }))
}

/// `PutLink`: store (or, with the same `owner`, refresh) a short link's
/// `data` (exactly `LINK_DATA_SIZE` bytes) under `locator` for `ttl_secs`,
/// signed by `owner` for the connection with `binding`. `password` is the
/// relay's creation password, if it has one (a new link is a creation).
/// Read the answer with [`link_stored`].
pub fn put_link(
    binding: &ChannelBinding,
    owner: &SigningKey,
    locator: &[u8; LINK_LOCATOR_LEN],
    data: Bytes,
    ttl_secs: u32,
    password: Option<&str>,
) -> Request {
    let signature = crypto::sign_link_put(owner, binding, locator, ttl_secs, &data);
    request(request::Command::PutLink(relay::PutLink {
        locator: Bytes::copy_from_slice(locator),
        data,
        owner_auth_pub: owner.verifying_key().to_bytes().to_vec().into(),
        ttl_secs,
        signature: signature.to_vec().into(),
        password: password.unwrap_or_default().to_owned(),
    }))
}

/// `GetLink`: fetch a short link's data. Read the answer with [`link_data`].
pub fn get_link(locator: &[u8; LINK_LOCATOR_LEN]) -> Request {
    request(request::Command::GetLink(relay::GetLink {
        locator: Bytes::copy_from_slice(locator),
    }))
}

/// `DeleteLink`, signed by the link's `owner` for the connection with
/// `binding`. Answered `Ok` (read it with [`ok`]) or `NO_LINK`.
pub fn delete_link(
    binding: &ChannelBinding,
    owner: &SigningKey,
    locator: &[u8; LINK_LOCATOR_LEN],
) -> Request {
    let signature = crypto::sign_link_delete(owner, binding, locator);
    request(request::Command::DeleteLink(relay::DeleteLink {
        locator: Bytes::copy_from_slice(locator),
        signature: signature.to_vec().into(),
    }))
}

/// `Deposit`, signed by `signer` if the mailbox is secured.
pub fn deposit(sender_id: &[u8], envelope: Bytes, signer: Option<&SigningKey>) -> Request {
    let signature = signer
        .map(|k| crypto::sign_deposit(k, sender_id, &envelope).to_vec())
        .unwrap_or_default();
    request(request::Command::Deposit(relay::Deposit {
        sender_id: Bytes::copy_from_slice(sender_id),
        envelope,
        signature: signature.into(),
    }))
}

/// A recipient command signed for the connection with `binding`.
pub fn signed(
    binding: &ChannelBinding,
    auth: &SigningKey,
    recipient_id: &[u8],
    action: Action,
) -> Request {
    let command = RecipientCommand {
        recipient_id: Bytes::copy_from_slice(recipient_id),
        action: Some(action),
    }
    .encode_to_vec();
    let signature = crypto::sign_recipient(auth, binding, &command);
    request(request::Command::Signed(relay::SignedCommand {
        command: command.into(),
        signature: signature.to_vec().into(),
    }))
}

/// `Subscribe`.
pub fn subscribe(binding: &ChannelBinding, auth: &SigningKey, recipient_id: &[u8]) -> Request {
    signed(
        binding,
        auth,
        recipient_id,
        Action::Subscribe(relay::Subscribe {}),
    )
}

/// `Ack` of one delivered envelope.
pub fn ack(
    binding: &ChannelBinding,
    auth: &SigningKey,
    recipient_id: &[u8],
    envelope_id: &[u8],
) -> Request {
    ack_many(binding, auth, recipient_id, &[envelope_id])
}

/// `Ack` of several envelopes at once (at most [`tropa_proto::MAX_ACK_IDS`];
/// the caller splits longer lists). Empty `ids` makes an ack of nothing,
/// which the relay refuses as malformed.
pub fn ack_many(
    binding: &ChannelBinding,
    auth: &SigningKey,
    recipient_id: &[u8],
    ids: &[&[u8]],
) -> Request {
    let (first, more) = ids
        .split_first()
        .map_or((&[][..], &[][..]), |(f, m)| (*f, m));
    let action = Action::Ack(relay::Ack {
        envelope_id: Bytes::copy_from_slice(first),
        more_ids: more.iter().map(|id| Bytes::copy_from_slice(id)).collect(),
    });
    signed(binding, auth, recipient_id, action)
}

/// Reads the answer to an `Ack`: how many IDs the relay covered (0 from a
/// relay that reads only the first ID).
///
/// # Errors
/// [`RequestError`].
pub fn acked(resp: Response) -> Result<u32, RequestError> {
    match check(resp)? {
        response::Result::Ok(ok) => Ok(ok.acked),
        _ => Err(RequestError::Unexpected),
    }
}

/// `Secure`: from now on only deposits signed by `sender` are accepted.
pub fn secure(
    binding: &ChannelBinding,
    auth: &SigningKey,
    recipient_id: &[u8],
    sender: &[u8; 32],
) -> Request {
    let action = Action::Secure(relay::Secure {
        sender_auth_pub: Bytes::copy_from_slice(sender),
    });
    signed(binding, auth, recipient_id, action)
}

/// `DeleteMailbox`.
pub fn delete(binding: &ChannelBinding, auth: &SigningKey, recipient_id: &[u8]) -> Request {
    signed(
        binding,
        auth,
        recipient_id,
        Action::Delete(relay::DeleteMailbox {}),
    )
}

/// The answer, or the relay's error as [`RequestError::Relay`].
///
/// # Errors
/// [`RequestError::Relay`], or `Unexpected` for an empty answer.
pub fn check(resp: Response) -> Result<response::Result, RequestError> {
    match resp.result {
        Some(response::Result::Error(e)) => Err(RequestError::Relay {
            code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified),
            message: e.message,
        }),
        None => Err(RequestError::Unexpected),
        Some(r) => Ok(r),
    }
}

/// Reads the answer to [`create`].
///
/// # Errors
/// [`RequestError`].
pub fn created(resp: Response) -> Result<CreatedMailbox, RequestError> {
    let response::Result::Created(c) = check(resp)? else {
        return Err(RequestError::Unexpected);
    };
    let id = |b: &Bytes| b.as_ref().try_into().map_err(|_| RequestError::Unexpected);
    Ok(CreatedMailbox {
        recipient_id: id(&c.recipient_id)?,
        sender_id: id(&c.sender_id)?,
        relay_dh_pub: c
            .relay_dh_pub
            .as_ref()
            .try_into()
            .map_err(|_| RequestError::Unexpected)?,
    })
}

/// Reads the answer to [`deposit`].
///
/// # Errors
/// [`RequestError`].
pub fn accepted(resp: Response) -> Result<(), RequestError> {
    match check(resp)? {
        response::Result::Accepted(_) => Ok(()),
        _ => Err(RequestError::Unexpected),
    }
}

/// Reads the answer to [`put_link`]: the time to live the relay granted
/// (whole hours, at most its `max_link_ttl_hours`).
///
/// # Errors
/// [`RequestError`].
pub fn link_stored(resp: Response) -> Result<Duration, RequestError> {
    match check(resp)? {
        response::Result::LinkStored(s) => Ok(Duration::from_secs(u64::from(s.ttl_secs))),
        _ => Err(RequestError::Unexpected),
    }
}

/// Reads the answer to [`get_link`]: the link's data, exactly
/// `LINK_DATA_SIZE` bytes (anything else is `Unexpected`).
///
/// # Errors
/// [`RequestError`]; `Relay { code: NoLink, .. }` if there is no such link.
pub fn link_data(resp: Response) -> Result<Bytes, RequestError> {
    match check(resp)? {
        response::Result::LinkData(d) if d.data.len() == LINK_DATA_SIZE => Ok(d.data),
        _ => Err(RequestError::Unexpected),
    }
}

/// Reads the answer to a recipient command (also the first frame of a
/// subscription).
///
/// # Errors
/// [`RequestError`].
pub fn ok(resp: Response) -> Result<(), RequestError> {
    match check(resp)? {
        response::Result::Ok(_) => Ok(()),
        _ => Err(RequestError::Unexpected),
    }
}

/// Reads one frame of a subscription after its `Ok`.
///
/// # Errors
/// [`RequestError`].
pub fn event(resp: Response) -> Result<Event, RequestError> {
    match check(resp)? {
        response::Result::Delivery(d) => Ok(Event::Delivery(Delivery {
            envelope_id: d
                .envelope_id
                .as_ref()
                .try_into()
                .map_err(|_| RequestError::Unexpected)?,
            sealed: d.sealed,
        })),
        response::Result::Idle(_) => Ok(Event::Idle),
        _ => Err(RequestError::Unexpected),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answer(result: response::Result) -> Response {
        Response {
            result: Some(result),
        }
    }

    /// Link data of any other size than LINK_DATA_SIZE is the relay
    /// misbehaving, not data to hand to the decoder; NO_LINK keeps its code.
    #[test]
    fn link_answers_are_checked() {
        let data = |n: usize| {
            answer(response::Result::LinkData(relay::LinkData {
                data: Bytes::from(vec![1u8; n]),
            }))
        };
        assert_eq!(
            link_data(data(LINK_DATA_SIZE)).unwrap().len(),
            LINK_DATA_SIZE
        );
        for n in [0, LINK_DATA_SIZE - 1, LINK_DATA_SIZE + 1] {
            assert!(matches!(link_data(data(n)), Err(RequestError::Unexpected)));
        }
        let gone = answer(response::Result::Error(relay::Error {
            code: ErrorCode::NoLink as i32,
            message: "no such link".into(),
        }));
        assert_eq!(link_data(gone).unwrap_err().code(), Some(ErrorCode::NoLink));
        let stored = answer(response::Result::LinkStored(relay::LinkStored {
            ttl_secs: 7200,
        }));
        assert_eq!(link_stored(stored).unwrap(), Duration::from_secs(7200));
        assert!(matches!(
            link_stored(answer(response::Result::Ok(relay::Ok::default()))),
            Err(RequestError::Unexpected)
        ));
    }

    /// The builders sign what the relay checks: the put over binding,
    /// locator, TTL and data; the delete over binding and locator.
    #[test]
    fn link_requests_are_signed_for_the_connection() {
        let owner = SigningKey::from_bytes(&[7; 32]);
        let public = owner.verifying_key().to_bytes();
        let (binding, locator) = ([3u8; 32], [4u8; LINK_LOCATOR_LEN]);
        let data = Bytes::from(vec![5u8; LINK_DATA_SIZE]);
        let Some(request::Command::PutLink(p)) =
            put_link(&binding, &owner, &locator, data.clone(), 60, Some("pw")).command
        else {
            panic!("not a PutLink");
        };
        assert_eq!((p.ttl_secs, p.password.as_str()), (60, "pw"));
        assert_eq!(p.owner_auth_pub.as_ref(), public.as_slice());
        let signed = crypto::link_put_signed_bytes(&binding, &locator, 60, &data);
        assert!(crypto::verify(&public, &signed, &p.signature));
        let Some(request::Command::DeleteLink(d)) = delete_link(&binding, &owner, &locator).command
        else {
            panic!("not a DeleteLink");
        };
        let signed = crypto::link_delete_signed_bytes(&binding, &locator);
        assert!(crypto::verify(&public, &signed, &d.signature));
        let dh = PublicKey::from(&StaticSecret::from([8; 32]));
        let Some(request::Command::CreateMailbox(c)) = create_intake(&owner, &dh, None).command
        else {
            panic!("not a CreateMailbox");
        };
        assert!(c.intake);
    }
}

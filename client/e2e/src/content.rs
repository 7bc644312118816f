//! Content carried inside ratchet messages, and the joiner's `Hello`.

use prost::Message as _;
use rand_core::CryptoRng;
use tropa_proto::{MAILBOX_ID_LEN, RelayAddress};

pub use tropa_proto::e2e::content::Body;
pub use tropa_proto::e2e::{Content, Receipt, Text};

/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 16;

/// Largest protobuf-encoded [`Content`] that fits in an envelope (any type).
pub const MAX_CONTENT_LEN: usize = 14 * 1024;

/// Longest text (UTF-8 bytes) that [`ContentExt::text`] accepts.
pub const MAX_TEXT_LEN: usize = MAX_CONTENT_LEN - 64;

/// Most ids one receipt may carry (keeps the receipt under [`MAX_CONTENT_LEN`]).
pub const MAX_RECEIPT_IDS: usize = 512;

/// Largest protobuf-encoded `Hello` accepted.
pub const MAX_HELLO_LEN: usize = 640;

/// Content that cannot be built or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// The text is longer than [`MAX_TEXT_LEN`] bytes.
    #[error("text is {len} bytes, the most one message can carry is {max}")]
    TextTooLong {
        /// Length of the text in bytes.
        len: usize,
        /// [`MAX_TEXT_LEN`].
        max: usize,
    },
    /// The encoded content is longer than [`MAX_CONTENT_LEN`] bytes.
    #[error("content is {len} bytes encoded, the most one envelope can carry is {max}")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// [`MAX_CONTENT_LEN`].
        max: usize,
    },
    /// A receipt with no ids, more than [`MAX_RECEIPT_IDS`], or an id that is not 16 bytes.
    #[error("a receipt carries 1 to {MAX_RECEIPT_IDS} ids of 16 bytes")]
    BadReceipt,
    /// The message id is not 16 bytes.
    #[error("a message id is 16 bytes")]
    BadId,
    /// No body (unknown or missing content type).
    #[error("content has no body this version understands")]
    NoBody,
}

/// Constructors for [`Content`] (a prost type). Import the trait to write
/// `Content::text(&mut rng, "hi")`.
pub trait ContentExt: Sized {
    /// A text message with a fresh random id.
    fn text<R: CryptoRng + ?Sized>(rng: &mut R, text: &str) -> Result<Self, ContentError>;
    /// A text message that asks the recipient to delete it `secs` after reading.
    fn text_expiring<R: CryptoRng + ?Sized>(
        rng: &mut R,
        text: &str,
        secs: u32,
    ) -> Result<Self, ContentError>;
    /// A receipt for the given message ids, with a fresh random id of its own.
    fn receipt<R: CryptoRng + ?Sized>(
        rng: &mut R,
        ids: &[[u8; MESSAGE_ID_LEN]],
    ) -> Result<Self, ContentError>;
    /// The 16-byte id, if well-formed.
    fn message_id(&self) -> Option<[u8; MESSAGE_ID_LEN]>;
    /// Checks the size limit and field shapes (done by `seal` and `open`).
    fn validate(&self) -> Result<(), ContentError>;
}

fn random_id<R: CryptoRng + ?Sized>(rng: &mut R) -> Vec<u8> {
    let mut id = vec![0u8; MESSAGE_ID_LEN];
    rng.fill_bytes(&mut id);
    id
}

impl ContentExt for Content {
    fn text<R: CryptoRng + ?Sized>(rng: &mut R, text: &str) -> Result<Self, ContentError> {
        Self::text_expiring(rng, text, 0)
    }

    fn text_expiring<R: CryptoRng + ?Sized>(
        rng: &mut R,
        text: &str,
        secs: u32,
    ) -> Result<Self, ContentError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(ContentError::TextTooLong {
                len: text.len(),
                max: MAX_TEXT_LEN,
            });
        }
        Ok(Content {
            id: random_id(rng),
            body: Some(Body::Text(Text {
                text: text.to_owned(),
                expire_after_secs: secs,
                sent_at: 0,
            })),
        })
    }

    fn receipt<R: CryptoRng + ?Sized>(
        rng: &mut R,
        ids: &[[u8; MESSAGE_ID_LEN]],
    ) -> Result<Self, ContentError> {
        if ids.is_empty() || ids.len() > MAX_RECEIPT_IDS {
            return Err(ContentError::BadReceipt);
        }
        Ok(Content {
            id: random_id(rng),
            body: Some(Body::Receipt(Receipt {
                ids: ids.iter().map(|i| i.to_vec()).collect(),
            })),
        })
    }

    fn message_id(&self) -> Option<[u8; MESSAGE_ID_LEN]> {
        self.id.as_slice().try_into().ok()
    }

    fn validate(&self) -> Result<(), ContentError> {
        if self.id.len() != MESSAGE_ID_LEN {
            return Err(ContentError::BadId);
        }
        let len = self.encoded_len();
        if len > MAX_CONTENT_LEN {
            return Err(ContentError::TooLarge {
                len,
                max: MAX_CONTENT_LEN,
            });
        }
        match &self.body {
            None => Err(ContentError::NoBody),
            Some(Body::Text(_)) => Ok(()),
            Some(Body::Receipt(r)) => validate_receipt(r),
        }
    }
}

/// Checks the ids of a receipt, standalone ([`Body::Receipt`]) or carried
/// along with other content (`Plaintext.receipts`): 1 to
/// [`MAX_RECEIPT_IDS`] ids of [`MESSAGE_ID_LEN`] bytes each.
pub(crate) fn validate_receipt(r: &Receipt) -> Result<(), ContentError> {
    if r.ids.is_empty()
        || r.ids.len() > MAX_RECEIPT_IDS
        || r.ids.iter().any(|i| i.len() != MESSAGE_ID_LEN)
    {
        Err(ContentError::BadReceipt)
    } else {
        Ok(())
    }
}

/// The joiner's first message: where and how the inviter reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Relay of the joiner's reply mailbox.
    pub reply_relay: RelayAddress,
    /// Sender-side id of the joiner's reply mailbox ([`MAILBOX_ID_LEN`] bytes).
    pub reply_sender_id: Vec<u8>,
    /// Ed25519 public key the inviter secures its own mailbox with
    /// (opaque to this crate).
    pub sender_auth: [u8; 32],
}

/// A `Hello` that cannot be sent or was received malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The reply relay is not a valid relay address.
    #[error("the Hello's reply relay address is invalid")]
    BadRelay,
    /// The reply sender id is not 24 bytes.
    #[error("the Hello's reply sender id is not {MAILBOX_ID_LEN} bytes")]
    BadSenderId,
    /// The sender auth key is not 32 bytes.
    #[error("the Hello's sender auth key is not 32 bytes")]
    BadSenderAuth,
    /// Encoded, the Hello is longer than [`MAX_HELLO_LEN`].
    #[error("the Hello is too large")]
    TooLarge,
}

impl Hello {
    pub(crate) fn to_proto(&self) -> Result<tropa_proto::e2e::Hello, HelloError> {
        if self.reply_sender_id.len() != MAILBOX_ID_LEN {
            return Err(HelloError::BadSenderId);
        }
        let p = tropa_proto::e2e::Hello {
            reply_relay: self.reply_relay.to_string(),
            reply_sender_id: self.reply_sender_id.clone(),
            sender_auth: self.sender_auth.to_vec(),
        };
        if p.encoded_len() > MAX_HELLO_LEN {
            return Err(HelloError::TooLarge);
        }
        Ok(p)
    }

    pub(crate) fn from_proto(p: &tropa_proto::e2e::Hello) -> Result<Self, HelloError> {
        if p.encoded_len() > MAX_HELLO_LEN {
            return Err(HelloError::TooLarge);
        }
        let reply_relay: RelayAddress = p.reply_relay.parse().map_err(|_| HelloError::BadRelay)?;
        if p.reply_sender_id.len() != MAILBOX_ID_LEN {
            return Err(HelloError::BadSenderId);
        }
        let sender_auth: [u8; 32] = p
            .sender_auth
            .as_slice()
            .try_into()
            .map_err(|_| HelloError::BadSenderAuth)?;
        Ok(Self {
            reply_relay,
            reply_sender_id: p.reply_sender_id.clone(),
            sender_auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;

    #[test]
    fn limits() {
        let mut rng = TestRng::new(b"content");
        let max = "a".repeat(MAX_TEXT_LEN);
        let c = Content::text(&mut rng, &max).unwrap();
        assert!(c.encoded_len() <= MAX_CONTENT_LEN);
        c.validate().unwrap();
        let long = "a".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(
            Content::text(&mut rng, &long).unwrap_err(),
            ContentError::TextTooLong {
                len: MAX_TEXT_LEN + 1,
                max: MAX_TEXT_LEN
            }
        );
        let ids = vec![[7u8; 16]; MAX_RECEIPT_IDS];
        let r = Content::receipt(&mut rng, &ids).unwrap();
        r.validate().unwrap();
        assert!(Content::receipt(&mut rng, &[]).is_err());
        let mut bad = r.clone();
        if let Some(Body::Receipt(rc)) = &mut bad.body {
            rc.ids[3] = vec![1, 2, 3];
        }
        assert_eq!(bad.validate(), Err(ContentError::BadReceipt));
        let mut bad = c.clone();
        bad.id = vec![1; 15];
        assert_eq!(bad.validate(), Err(ContentError::BadId));
        bad.id = vec![1; 16];
        bad.body = None;
        assert_eq!(bad.validate(), Err(ContentError::NoBody));
        let mut bad = c;
        if let Some(Body::Text(t)) = &mut bad.body {
            t.text.push_str(&"b".repeat(100));
        }
        assert!(matches!(bad.validate(), Err(ContentError::TooLarge { .. })));
    }
}

//! Length-delimited framing: a 4-byte big-endian length, then that many bytes
//! of protobuf.
//!
//! The length is checked against [`MAX_FRAME_LEN`] *before* any buffer is
//! allocated, so a peer cannot make us reserve memory by lying about a length.
//! This module never reads more than one frame's worth of input.

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;

use crate::ENVELOPE_SIZE;

/// Largest frame body accepted in either direction: one envelope plus generous
/// room for the fields around it (IDs, signature, AEAD nonce and tag).
pub const MAX_FRAME_LEN: usize = ENVELOPE_SIZE + 1024;

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The announced length exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLarge(u64),
    /// The input ended before the announced length.
    #[error("frame truncated: {have} of {want} bytes")]
    Truncated {
        /// Bytes available.
        have: usize,
        /// Bytes announced.
        want: usize,
    },
    /// The body is not a valid protobuf message of the expected type.
    #[error("malformed frame: {0}")]
    Malformed(#[from] prost::DecodeError),
}

/// Encodes `msg` with its length prefix.
///
/// # Errors
/// [`FrameError::TooLarge`] if the encoded message is larger than the limit;
/// the peer would refuse it anyway.
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, FrameError> {
    let len = msg.encoded_len();
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len as u64));
    }
    let mut out = Vec::with_capacity(LEN_PREFIX + len);
    // `len <= MAX_FRAME_LEN` fits in u32.
    out.put_u32(len as u32);
    msg.encode_raw(&mut out);
    Ok(out)
}

/// Reads the length prefix and checks it against the limit.
///
/// # Errors
/// [`FrameError::TooLarge`] if the announced length is over the limit.
pub fn check_len(prefix: [u8; LEN_PREFIX]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix);
    if len as usize > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    Ok(len as usize)
}

/// Decodes one complete frame from `buf` (prefix included) and returns the
/// message and the number of bytes consumed. Trailing bytes are left alone.
///
/// # Errors
/// [`FrameError::Truncated`] if `buf` ends early, [`FrameError::TooLarge`] or
/// [`FrameError::Malformed`] as their names say.
pub fn decode<M: Message + Default>(buf: &[u8]) -> Result<(M, usize), FrameError> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
        return Err(FrameError::Truncated {
            have: buf.len(),
            want: LEN_PREFIX,
        });
    };
    let len = check_len(*prefix)?;
    let body = &buf[LEN_PREFIX..];
    if body.len() < len {
        return Err(FrameError::Truncated {
            have: body.len(),
            want: len,
        });
    }
    let msg = M::decode(&body[..len])?;
    Ok((msg, LEN_PREFIX + len))
}

/// Incremental decoder for a byte stream carrying several frames.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    /// Creates an empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] as soon as a complete length prefix announces
    /// more than the limit, so the caller can drop the stream before buffering
    /// more.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        self.buf.extend_from_slice(data);
        if let Some(prefix) = self.buf.first_chunk::<LEN_PREFIX>() {
            check_len(*prefix)?;
        }
        Ok(())
    }

    /// Returns the next complete frame, if one is buffered.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] or [`FrameError::Malformed`].
    pub fn next_frame<M: Message + Default>(&mut self) -> Result<Option<M>, FrameError> {
        let Some(prefix) = self.buf.first_chunk::<LEN_PREFIX>() else {
            return Ok(None);
        };
        let len = check_len(*prefix)?;
        if self.buf.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(LEN_PREFIX);
        let body = self.buf.split_to(len).freeze();
        Ok(Some(M::decode(body)?))
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::{self, Request, Response, request, response};
    use proptest::prelude::*;

    fn arb_bytes(max: usize) -> impl Strategy<Value = bytes::Bytes> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(bytes::Bytes::from)
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        let create = (arb_bytes(40), arb_bytes(40), ".{0,20}").prop_map(|(a, d, p)| {
            request::Command::CreateMailbox(relay::CreateMailbox {
                recipient_auth_pub: a,
                recipient_dh_pub: d,
                password: p,
                intake: false,
            })
        });
        let deposit =
            (arb_bytes(30), arb_bytes(ENVELOPE_SIZE), arb_bytes(70)).prop_map(|(s, e, sig)| {
                request::Command::Deposit(relay::Deposit {
                    sender_id: s,
                    envelope: e,
                    signature: sig,
                })
            });
        let signed = (arb_bytes(200), arb_bytes(70)).prop_map(|(c, s)| {
            request::Command::Signed(relay::SignedCommand {
                command: c,
                signature: s,
            })
        });
        (
            any::<u32>(),
            proptest::option::of(prop_oneof![create, deposit, signed]),
        )
            .prop_map(|(version, command)| Request { version, command })
    }

    fn arb_response() -> impl Strategy<Value = Response> {
        let err = (0i32..9, ".{0,40}")
            .prop_map(|(code, message)| response::Result::Error(relay::Error { code, message }));
        let created = (arb_bytes(24), arb_bytes(24), arb_bytes(32)).prop_map(|(r, s, d)| {
            response::Result::Created(relay::MailboxCreated {
                recipient_id: r,
                sender_id: s,
                relay_dh_pub: d,
            })
        });
        let delivery = (arb_bytes(16), arb_bytes(ENVELOPE_SIZE + 28)).prop_map(|(id, sealed)| {
            response::Result::Delivery(relay::Delivery {
                envelope_id: id,
                sealed,
            })
        });
        proptest::option::of(prop_oneof![
            Just(response::Result::Ok(relay::Ok::default())),
            Just(response::Result::Accepted(relay::Accepted {})),
            Just(response::Result::Idle(relay::Idle {})),
            err,
            created,
            delivery,
        ])
        .prop_map(|result| Response { result })
    }

    fn arb_recipient_command() -> impl Strategy<Value = relay::RecipientCommand> {
        use relay::recipient_command::Action;
        let action = prop_oneof![
            Just(Action::Subscribe(relay::Subscribe {})),
            (
                arb_bytes(20),
                proptest::collection::vec(arb_bytes(20), 0..3)
            )
                .prop_map(|(id, more)| Action::Ack(relay::Ack {
                    envelope_id: id,
                    more_ids: more
                })),
            arb_bytes(40).prop_map(|k| Action::Secure(relay::Secure { sender_auth_pub: k })),
            Just(Action::Delete(relay::DeleteMailbox {})),
        ];
        (arb_bytes(30), proptest::option::of(action)).prop_map(|(recipient_id, action)| {
            relay::RecipientCommand {
                recipient_id,
                action,
            }
        })
    }

    proptest! {
        #[test]
        fn request_round_trip(req in arb_request()) {
            let frame = encode(&req).expect("within limit");
            prop_assert_eq!(frame.len(), LEN_PREFIX + req.encoded_len());
            let (back, used) = decode::<Request>(&frame).expect("decodes");
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(back, req);
        }

        #[test]
        fn response_round_trip(resp in arb_response()) {
            let frame = encode(&resp).expect("within limit");
            let (back, used) = decode::<Response>(&frame).expect("decodes");
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(back, resp);
        }

        #[test]
        fn recipient_command_round_trip(cmd in arb_recipient_command()) {
            let bytes = cmd.encode_to_vec();
            prop_assert_eq!(bytes.len(), cmd.encoded_len());
            prop_assert_eq!(relay::RecipientCommand::decode(bytes.as_slice()).expect("decodes"), cmd);
        }

        /// Splitting a stream of frames at arbitrary points yields the same frames.
        #[test]
        fn stream_decoder_any_split(
            resps in proptest::collection::vec(arb_response(), 1..4),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let stream: Vec<u8> = resps.iter().flat_map(|r| encode(r).expect("fits")).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut dec = FrameDecoder::new();
            let mut out = Vec::new();
            for w in points.windows(2) {
                dec.push(&stream[w[0]..w[1]]).expect("valid lengths");
                while let Some(m) = dec.next_frame::<Response>().expect("valid frames") {
                    out.push(m);
                }
            }
            prop_assert_eq!(out, resps);
            prop_assert_eq!(dec.pending(), 0);
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Request>(&data);
            let mut dec = FrameDecoder::new();
            if dec.push(&data).is_ok() {
                let _ = dec.next_frame::<Request>();
            }
        }
    }

    #[test]
    fn oversized_length_rejected_before_allocation() {
        let mut frame = Vec::new();
        frame.put_u32(u32::MAX);
        assert_eq!(
            decode::<Request>(&frame),
            Err(FrameError::TooLarge(u64::from(u32::MAX)))
        );
        let mut dec = FrameDecoder::new();
        assert!(matches!(dec.push(&frame), Err(FrameError::TooLarge(_))));
        // Exactly at the limit is fine as far as the length goes.
        assert!(check_len((MAX_FRAME_LEN as u32).to_be_bytes()).is_ok());
        assert!(check_len((MAX_FRAME_LEN as u32 + 1).to_be_bytes()).is_err());
    }

    #[test]
    fn truncated_frame_reported() {
        let req = Request {
            version: 1,
            command: None,
        };
        let mut frame = encode(&req).expect("fits");
        frame.extend_from_slice(&[0x0a, 0x05]);
        // Pretend the body is longer than what follows.
        frame[3] = 10;
        assert!(matches!(
            decode::<Request>(&frame),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode::<Request>(&[0, 0]),
            Err(FrameError::Truncated { have: 2, want: 4 })
        ));
    }

    #[test]
    fn encode_refuses_oversized_message() {
        let req = Request {
            version: 1,
            command: Some(request::Command::Deposit(relay::Deposit {
                sender_id: bytes::Bytes::new(),
                envelope: bytes::Bytes::from(vec![0u8; MAX_FRAME_LEN + 1]),
                signature: bytes::Bytes::new(),
            })),
        };
        assert!(matches!(encode(&req), Err(FrameError::TooLarge(_))));
    }
}

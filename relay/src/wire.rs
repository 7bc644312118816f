//! Reading and writing length-delimited frames on QUIC streams.
//!
//! The length prefix is read and checked before the body buffer is allocated
//! (see `tropa_proto::framing`), so a peer cannot make either side allocate
//! more than `MAX_FRAME_LEN` per frame.

use prost::Message;
use tropa_proto::framing::{self, FrameError, LEN_PREFIX};

/// Why a frame could not be read from a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream ended cleanly before a new frame started.
    #[error("stream finished")]
    Finished,
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The frame is too large or does not decode.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection or stream failed.
    #[error("stream: {0}")]
    Stream(#[from] quinn::ReadError),
}

async fn read_exact_or(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    at_start: bool,
) -> Result<(), ReadError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(()),
        Err(quinn::ReadExactError::FinishedEarly(0)) if at_start => Err(ReadError::Finished),
        Err(quinn::ReadExactError::FinishedEarly(_)) => Err(ReadError::Truncated),
        Err(quinn::ReadExactError::ReadError(e)) => Err(ReadError::Stream(e)),
    }
}

/// Reads one frame and decodes it as `M`.
///
/// # Errors
/// [`ReadError`]; `Finished` if the stream ended before any byte of a frame.
pub async fn read_frame<M: Message + Default>(
    recv: &mut quinn::RecvStream,
) -> Result<M, ReadError> {
    let mut prefix = [0u8; LEN_PREFIX];
    read_exact_or(recv, &mut prefix, true).await?;
    let len = framing::check_len(prefix)?;
    let mut body = vec![0u8; len];
    read_exact_or(recv, &mut body, false).await?;
    Ok(M::decode(body.as_slice()).map_err(FrameError::from)?)
}

/// Why a frame could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The message is larger than the frame limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection or stream failed.
    #[error("stream: {0}")]
    Stream(#[from] quinn::WriteError),
}

/// Encodes and writes one frame.
///
/// # Errors
/// [`WriteError`].
pub async fn write_frame<M: Message>(
    send: &mut quinn::SendStream,
    msg: &M,
) -> Result<(), WriteError> {
    let bytes = framing::encode(msg)?;
    send.write_all(&bytes).await?;
    Ok(())
}

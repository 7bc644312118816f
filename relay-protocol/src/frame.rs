//! Reading and writing length-delimited frames on a byte stream (a QUIC
//! stream, later a TLS stream).
//!
//! The length prefix is read and checked before the body buffer is
//! allocated (see `tropa_proto::framing`), so a peer cannot make either side
//! allocate more than `MAX_FRAME_LEN` per frame. (The relay reads requests
//! with its own reader that also charges its memory budget first.)

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tropa_proto::framing::{self, FrameError, LEN_PREFIX};

/// Why a frame could not be read.
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
    /// The stream failed.
    #[error("stream: {0}")]
    Io(std::io::Error),
}

/// Reads into `buf` completely; `at_start` tells a clean end before the
/// first byte apart from a truncated frame.
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    at_start: bool,
) -> Result<(), ReadError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]).await {
            Ok(0) if got == 0 && at_start => return Err(ReadError::Finished),
            Ok(0) => return Err(ReadError::Truncated),
            Ok(n) => got += n,
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(())
}

/// Reads one frame and decodes it as `M`.
///
/// # Errors
/// [`ReadError`]; `Finished` if the stream ended before any byte of a frame.
pub async fn read_frame<M: Message + Default, R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<M, ReadError> {
    let mut prefix = [0u8; LEN_PREFIX];
    fill(r, &mut prefix, true).await?;
    let len = framing::check_len(prefix)?;
    let mut body = vec![0u8; len];
    fill(r, &mut body, false).await?;
    Ok(M::decode(bytes::Bytes::from(body)).map_err(FrameError::from)?)
}

/// Why a frame could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The message is larger than the frame limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream failed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes and writes one frame.
///
/// # Errors
/// [`WriteError`].
pub async fn write_frame<M: Message, W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &M,
) -> Result<(), WriteError> {
    let bytes = framing::encode(msg)?;
    w.write_all(&bytes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tropa_proto::relay::{Response, response};

    fn idle() -> Response {
        Response {
            result: Some(response::Result::Idle(tropa_proto::relay::Idle {})),
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_ends_are_told_apart() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &idle()).await.unwrap();
        write_frame(&mut buf, &idle()).await.unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read_frame::<Response, _>(&mut r).await.unwrap(), idle());
        assert_eq!(read_frame::<Response, _>(&mut r).await.unwrap(), idle());
        assert!(matches!(
            read_frame::<Response, _>(&mut r).await,
            Err(ReadError::Finished)
        ));
        let mut cut = &buf[..buf.len() / 2 + 1];
        read_frame::<Response, _>(&mut cut).await.unwrap();
        assert!(matches!(
            read_frame::<Response, _>(&mut cut).await,
            Err(ReadError::Truncated)
        ));
        let mut huge = &[0xffu8, 0xff, 0xff, 0xff, 0][..];
        assert!(matches!(
            read_frame::<Response, _>(&mut huge).await,
            Err(ReadError::Frame(FrameError::TooLarge(_)))
        ));
    }
}

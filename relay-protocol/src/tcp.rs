//! The TCP profile both ends share: where UDP is blocked (or the client goes
//! through a SOCKS5 proxy such as Tor, which carries only TCP), the relay
//! protocol runs over TCP + TLS 1.3 with the same pinned key, ALPN, channel
//! binding and frames as over QUIC.
//!
//! QUIC gives every request its own stream; over one TCP connection the
//! streams are HTTP/2 streams (the `h2` crate, not a home-made
//! multiplexer). HTTP/2 is used only as a multiplexer: one stream per
//! request (a subscription keeps its stream), the request's frame is the
//! stream's body one way and the answers are its body the other way, and
//! the headers carry nothing (a fixed method and path, no names, no
//! cookies). Its flow control is set like the QUIC profile's, so a peer can
//! make the other end buffer at most one frame per stream and
//! [`RELAY_CONNECTION_WINDOW`] per connection.
//!
//! This module holds the settings both ends must agree on, and
//! [`H2Writer`]/[`H2Reader`], which let [`crate::frame`] write and read an
//! HTTP/2 stream as a byte stream. It opens no socket and makes no
//! decision of the protocol.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Flow-control window of one stream, both ways: one whole frame and some
/// room, as the QUIC profile's stream window.
pub const STREAM_WINDOW: u32 = (tropa_proto::MAX_FRAME_LEN + 4096) as u32;
/// What the relay lets one connection have in flight towards it, all
/// streams together (the QUIC profile's receive window).
pub const RELAY_CONNECTION_WINDOW: u32 = 128 * 1024;
/// What a client lets one connection have in flight towards it: several
/// subscriptions' deliveries at once (the QUIC profile's).
pub const CLIENT_CONNECTION_WINDOW: u32 = 16 * STREAM_WINDOW;
/// The largest header block either end accepts: the headers carry only a
/// fixed method and path.
pub const MAX_HEADER_LIST: u32 = 1024;
/// The method and path of every stream's request head (they mean nothing;
/// HTTP/2 requires them).
pub const METHOD: &str = "POST";
/// See [`METHOD`].
pub const PATH: &str = "/";

fn io_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        e.into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"))
    } else {
        io::Error::new(io::ErrorKind::ConnectionReset, e)
    }
}

/// The sending half of an HTTP/2 stream as a byte sink. A write waits
/// until the peer's window has room and sends at most that much, so
/// nothing is buffered beyond what flow control allows (h2 itself would
/// buffer without bound). Shutting down ends the stream (END_STREAM).
#[derive(Debug)]
pub struct H2Writer {
    inner: h2::SendStream<Bytes>,
    ended: bool,
}

impl H2Writer {
    /// Wraps the sending half of a stream.
    pub fn new(inner: h2::SendStream<Bytes>) -> Self {
        Self {
            inner,
            ended: false,
        }
    }

    /// Aborts the stream (RST_STREAM with CANCEL): the peer's reads fail.
    pub fn reset(&mut self) {
        self.inner.send_reset(h2::Reason::CANCEL);
    }

    /// Waits until the peer resets the stream (it stopped reading, or it
    /// is gone). The QUIC profile's `stopped()`.
    pub async fn stopped(&mut self) {
        let _ = std::future::poll_fn(|cx| self.inner.poll_reset(cx)).await;
    }
}

impl AsyncWrite for H2Writer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.ended {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.inner.reserve_capacity(buf.len());
        // poll_capacity reports a change of capacity; capacity already
        // assigned is read with capacity().
        while self.inner.capacity() == 0 {
            match ready!(self.inner.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
        let n = self.inner.capacity().min(buf.len());
        self.inner
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(io_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection task writes what was sent; there is no buffer here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ended {
            self.ended = true;
            self.inner.send_data(Bytes::new(), true).map_err(io_error)?;
        }
        Poll::Ready(Ok(()))
    }
}

/// The receiving half of an HTTP/2 stream as a byte source. It holds at
/// most one DATA frame's bytes and gives the peer window back as it takes
/// them, so the peer can never have more than [`STREAM_WINDOW`] unread.
/// The stream's end reads as end of file.
#[derive(Debug)]
pub struct H2Reader {
    inner: h2::RecvStream,
    chunk: Bytes,
}

impl H2Reader {
    /// Wraps the receiving half of a stream.
    pub fn new(inner: h2::RecvStream) -> Self {
        Self {
            inner,
            chunk: Bytes::new(),
        }
    }
}

impl AsyncRead for H2Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.chunk.is_empty() {
            match ready!(self.inner.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    // The bytes are ours now (at most one DATA frame): the
                    // peer may send as many again.
                    let _ = self.inner.flow_control().release_capacity(chunk.len());
                    self.chunk = chunk;
                }
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.chunk.len().min(buf.remaining());
        buf.put_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn client_builder() -> h2::client::Builder {
        let mut b = h2::client::Builder::new();
        b.initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CLIENT_CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST);
        b
    }

    fn server_builder() -> h2::server::Builder {
        let mut b = h2::server::Builder::new();
        b.initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(RELAY_CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_concurrent_streams(16);
        b
    }

    /// Bytes no window of ours holds at once, both ways over one stream,
    /// arrive whole and in order: the writer waits for window instead of
    /// failing or buffering, and the reader gives window back.
    #[tokio::test]
    async fn a_stream_carries_more_than_its_windows_both_ways() {
        let (a, b) = tokio::io::duplex(4096);
        let big: Vec<u8> = (0..(4 * STREAM_WINDOW as usize + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let expect = big.clone();
        let server = tokio::spawn(async move {
            let mut conn = server_builder().handshake::<_, Bytes>(b).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            let mut r = H2Reader::new(req.into_body());
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, expect);
            let send = respond
                .send_response(http::Response::new(()), false)
                .unwrap();
            let mut w = H2Writer::new(send);
            w.write_all(&got).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let (send_req, conn) = client_builder().handshake::<_, Bytes>(a).await.unwrap();
        tokio::spawn(conn);
        let mut send_req = send_req.ready().await.unwrap();
        let head = http::Request::builder()
            .method(METHOD)
            .uri(PATH)
            .body(())
            .unwrap();
        let (resp, send) = send_req.send_request(head, false).unwrap();
        let mut w = H2Writer::new(send);
        w.write_all(&big).await.unwrap();
        w.shutdown().await.unwrap();
        let mut r = H2Reader::new(resp.await.unwrap().into_body());
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, big);
        server.await.unwrap();
    }

    /// A reset by the peer fails the reader (a cut request is never taken
    /// for a whole one), and `stopped` returns on the writer's side.
    #[tokio::test]
    async fn a_reset_fails_the_reader_and_wakes_the_writer() {
        let (a, b) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let mut conn = server_builder().handshake::<_, Bytes>(b).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            let send = respond
                .send_response(http::Response::new(()), false)
                .unwrap();
            let mut w = H2Writer::new(send);
            let mut r = H2Reader::new(req.into_body());
            // Whatever arrived before the reset may be dropped with it; the
            // read ends in an error either way, never in a clean end.
            let err = r.read_to_end(&mut Vec::new()).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
            tokio::time::timeout(std::time::Duration::from_secs(5), w.stopped())
                .await
                .expect("the writer sees the reset");
        });
        let (send_req, conn) = client_builder().handshake::<_, Bytes>(a).await.unwrap();
        tokio::spawn(conn);
        let mut send_req = send_req.ready().await.unwrap();
        let head = http::Request::builder()
            .method(METHOD)
            .uri(PATH)
            .body(())
            .unwrap();
        let (resp, send) = send_req.send_request(head, false).unwrap();
        let mut w = H2Writer::new(send);
        w.write_all(&[1, 2, 3]).await.unwrap();
        let _head = resp.await.unwrap();
        w.reset();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("the server side ends")
            .unwrap();
    }
}

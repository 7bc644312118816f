//! The two halves of a request stream, whatever carries them: a QUIC
//! bidirectional stream, or an HTTP/2 stream over TCP + TLS (the TCP
//! profile, [`super::tcp`]). The per-stream code in [`super::conn`] is
//! written once against these two traits, so every limit it enforces
//! (request budget, request timeout, one frame per subscription, the write
//! timeout) holds the same on both transports.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tropa_relay_protocol::tcp::{H2Reader, H2Writer};

/// Time a finished reply is kept until the peer has it (or gives up).
const REPLY_LINGER: Duration = Duration::from_secs(10);

/// The half the relay writes its answers on.
pub(crate) trait SendHalf: AsyncWrite + Unpin + Send + 'static {
    /// Ends the stream cleanly after what was written, and returns once the
    /// transport no longer needs this handle to deliver it.
    fn end(&mut self) -> impl Future<Output = ()> + Send + '_;
    /// Aborts the stream: the peer's reads fail.
    fn abort(&mut self);
    /// Waits until the peer stops reading the stream or is gone.
    fn peer_stopped(&mut self) -> impl Future<Output = ()> + Send + '_;
}

/// The half the relay reads the request from.
pub(crate) trait RecvHalf: AsyncRead + Unpin + Send + 'static {
    /// One request per stream: whatever the peer sends after it is
    /// discarded instead of buffered.
    fn stop_reading(self);
}

impl SendHalf for quinn::SendStream {
    async fn end(&mut self) {
        if quinn::SendStream::finish(self).is_ok() {
            // quinn retransmits only while the stream is alive: wait until
            // the peer has the reply (or gives up) before dropping.
            let _ = tokio::time::timeout(REPLY_LINGER, quinn::SendStream::stopped(self)).await;
        }
    }

    fn abort(&mut self) {
        let _ = quinn::SendStream::reset(self, 0u32.into());
    }

    async fn peer_stopped(&mut self) {
        let _ = quinn::SendStream::stopped(self).await;
    }
}

impl RecvHalf for quinn::RecvStream {
    fn stop_reading(mut self) {
        let _ = quinn::RecvStream::stop(&mut self, 0u32.into());
    }
}

impl SendHalf for H2Writer {
    async fn end(&mut self) {
        // END_STREAM is queued behind the data; h2 sends what is queued
        // after the handle is dropped, and TCP delivers it, so there is
        // nothing to wait for (H2Writer queues no more than the peer's
        // window allows).
        let _ = self.shutdown().await;
    }

    fn abort(&mut self) {
        self.reset();
    }

    async fn peer_stopped(&mut self) {
        self.stopped().await;
    }
}

impl RecvHalf for H2Reader {
    fn stop_reading(self) {
        // Dropping the receiving half makes h2 discard the stream's further
        // DATA and give its connection window back at once.
        drop(self);
    }
}

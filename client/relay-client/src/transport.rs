//! One established connection to a relay over either transport, and the
//! two halves of a request stream on it: what [`crate::RelayClient`] and
//! [`crate::Subscription`] hold, so that they never look at the transport.
//! QUIC streams are QUIC's own; TCP streams are HTTP/2 streams
//! ([`crate::tcp`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin as StdPin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tropa_proto::Fingerprint;
use tropa_relay_protocol::crypto::ChannelBinding;
use tropa_relay_protocol::tcp::H2Writer;

use crate::dial::ConnectError;
use crate::options::Transport;
use crate::requests::RequestError;
use crate::tcp::{TcpLink, TcpRecv};
use crate::tls::{self, Pin};

/// A connection whose handshake proved the relay holds a pinned key.
pub(crate) struct Connected {
    pub(crate) link: Link,
    /// The fingerprint of the key the relay proved it holds.
    pub(crate) fingerprint: Fingerprint,
    /// The connection's channel binding (TLS exporter).
    pub(crate) binding: ChannelBinding,
}

/// An established connection.
#[derive(Debug)]
pub(crate) enum Link {
    /// QUIC, with the endpoint (UDP socket) it runs on.
    Quic {
        endpoint: quinn::Endpoint,
        conn: quinn::Connection,
    },
    /// TLS over TCP with HTTP/2 streams.
    Tcp(TcpLink),
}

impl Link {
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Link::Quic { .. } => Transport::Quic,
            Link::Tcp(_) => Transport::Tcp,
        }
    }

    /// Opens a request stream. Waits while the relay allows no more open
    /// streams (the caller bounds the wait).
    pub(crate) async fn open(&self) -> Result<(SendHalf, RecvHalf), RequestError> {
        match self {
            Link::Quic { conn, .. } => {
                let (send, recv) = conn.open_bi().await?;
                Ok((SendHalf::Quic(send), RecvHalf::Quic(recv)))
            }
            Link::Tcp(link) => {
                let (send, recv) = link.open().await?;
                Ok((SendHalf::Tcp(send), RecvHalf::Tcp(recv)))
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Link::Quic { conn, .. } => conn.close_reason().is_some(),
            Link::Tcp(link) => link.is_closed(),
        }
    }

    /// Bytes sent and received: UDP payloads over QUIC, TCP payloads over
    /// TCP (TLS records, and the SOCKS5 exchange through a proxy).
    pub(crate) fn traffic(&self) -> (u64, u64) {
        match self {
            Link::Quic { conn, .. } => {
                let s = conn.stats();
                (s.udp_tx.bytes, s.udp_rx.bytes)
            }
            Link::Tcp(link) => link.traffic(),
        }
    }

    pub(crate) fn abort(&self) {
        match self {
            Link::Quic { conn, .. } => conn.close(0u32.into(), b"bye"),
            Link::Tcp(link) => link.abort(),
        }
    }

    /// Closes, and over QUIC waits up to `limit` for the close to reach the
    /// wire (over TCP the kernel sends the FIN on its own).
    pub(crate) async fn close_within(&self, limit: Duration) {
        match self {
            Link::Quic { endpoint, conn } => {
                conn.close(0u32.into(), b"bye");
                let _ = tokio::time::timeout(limit, endpoint.wait_idle()).await;
            }
            Link::Tcp(link) => link.abort(),
        }
    }
}

/// Connects over QUIC on `endpoint` and accepts only a relay whose key
/// `pin` accepts. Not bounded in time: the caller is.
pub(crate) async fn connect_quic(
    endpoint: quinn::Endpoint,
    pin: Pin,
    target: SocketAddr,
) -> Result<Connected, ConnectError> {
    let (config, mismatch) = tls::pin_config(pin)?;
    let connecting = endpoint.connect_with(config, target, crate::SERVER_NAME)?;
    let conn = match connecting.await {
        Err(_) if mismatch.load(std::sync::atomic::Ordering::Relaxed) => {
            return Err(ConnectError::WrongKey);
        }
        Err(e) => return Err(e.into()),
        Ok(conn) => conn,
    };
    // The key the relay proved it holds in this handshake. The verifier
    // already accepted it; checking again here keeps the reported
    // fingerprint and the pin from ever disagreeing.
    let seen = conn
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|certs| certs.first().and_then(tls::fingerprint_of_cert));
    let Some(fingerprint) = seen.filter(|fp| pin.accepts(fp)) else {
        conn.close(0u32.into(), b"wrong key");
        return Err(ConnectError::WrongKey);
    };
    let binding = tls::channel_binding(&conn)?;
    Ok(Connected {
        link: Link::Quic { endpoint, conn },
        fingerprint,
        binding,
    })
}

/// The sending half of a request stream.
#[derive(Debug)]
pub(crate) enum SendHalf {
    Quic(quinn::SendStream),
    Tcp(H2Writer),
}

impl SendHalf {
    /// Ends the request (QUIC's FIN, HTTP/2's END_STREAM).
    pub(crate) async fn finish(&mut self) {
        match self {
            SendHalf::Quic(s) => {
                let _ = s.finish();
            }
            SendHalf::Tcp(w) => {
                let _ = w.shutdown().await;
            }
        }
    }

    /// Whether the relay's answer may still be read after writing the
    /// request failed. Over TCP the relay may answer without reading the
    /// request (rate limited, busy) and then reset the stream with
    /// `NO_ERROR` (RFC 9113 §8.1), which fails a write still under way: the
    /// answer counts, not the write. Over QUIC a failed write ends the
    /// request, as it always has.
    pub(crate) fn answer_may_follow_a_failed_write(&self) -> bool {
        matches!(self, SendHalf::Tcp(_))
    }
}

impl AsyncWrite for SendHalf {
    fn poll_write(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SendHalf::Quic(s) => StdPin::new(s).poll_write(cx, buf).map_err(Into::into),
            SendHalf::Tcp(w) => StdPin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SendHalf::Quic(s) => StdPin::new(s).poll_flush(cx),
            SendHalf::Tcp(w) => StdPin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SendHalf::Quic(s) => StdPin::new(s).poll_shutdown(cx),
            SendHalf::Tcp(w) => StdPin::new(w).poll_shutdown(cx),
        }
    }
}

/// The receiving half of a request stream.
#[derive(Debug)]
pub(crate) enum RecvHalf {
    Quic(quinn::RecvStream),
    Tcp(TcpRecv),
}

impl AsyncRead for RecvHalf {
    fn poll_read(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RecvHalf::Quic(r) => StdPin::new(r).poll_read(cx, buf),
            RecvHalf::Tcp(r) => StdPin::new(r).poll_read(cx, buf),
        }
    }
}

/// Ends a subscription's stream both ways: over QUIC a FIN and a
/// STOP_SENDING, as before; over TCP a RST_STREAM (CANCEL), HTTP/2's way
/// of saying both.
pub(crate) fn cancel(send: &mut SendHalf, recv: &mut RecvHalf) {
    match (send, recv) {
        (SendHalf::Quic(s), RecvHalf::Quic(r)) => {
            let _ = s.finish();
            let _ = r.stop(0u32.into());
        }
        (SendHalf::Tcp(w), _) => w.reset(),
        // The halves of one stream are of one transport.
        (SendHalf::Quic(s), RecvHalf::Tcp(_)) => {
            let _ = s.finish();
        }
    }
}

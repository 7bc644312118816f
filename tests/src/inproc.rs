//! An in-process relay on loopback with a real sled store in a temp dir,
//! and helpers for tests that speak the relay protocol directly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tropa_proto::relay::{self, ErrorCode};
use tropa_proto::{ENVELOPE_SIZE, RelayAddress};
use tropa_relay::config::Config;
use tropa_relay::identity::RelayIdentity;
use tropa_relay::server::Server;
use tropa_relay::store::SledStore;
use tropa_relay_client::{RelayClient, RequestError};
use x25519_dalek::{PublicKey, StaticSecret};

/// A relay served by this test process.
pub struct Relay {
    /// Its address.
    pub address: RelayAddress,
    /// Its metrics endpoint, if configured.
    pub metrics: Option<std::net::SocketAddr>,
    /// Its data directory.
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Serves `cfg` (its listen address replaced by 127.0.0.1:0).
    pub async fn start(cfg: Config) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let identity = RelayIdentity::generate().unwrap();
        let store = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
        let cfg = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..cfg
        };
        let server = Server::bind(cfg, &identity, store).await.unwrap();
        let address = server.address().unwrap();
        let metrics = server.metrics_addr();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Relay {
            address,
            metrics,
            dir,
            stop: Some(tx),
            task,
        }
    }

    /// Shuts it down and returns its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.dir
    }
}

/// A mailbox created through [`mailbox`], with its secrets.
pub struct Mailbox {
    #[allow(missing_docs)]
    pub auth: SigningKey,
    #[allow(missing_docs)]
    pub dh: StaticSecret,
    #[allow(missing_docs)]
    pub rid: [u8; 24],
    #[allow(missing_docs)]
    pub sid: [u8; 24],
    #[allow(missing_docs)]
    pub relay_dh: [u8; 32],
}

/// Creates a mailbox on `c`.
pub async fn mailbox(c: &RelayClient) -> Mailbox {
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = StaticSecret::random_from_rng(&mut rand::rng());
    let m = c
        .create_mailbox(&auth, &PublicKey::from(&dh), None)
        .await
        .unwrap();
    assert_ne!(m.recipient_id, m.sender_id);
    Mailbox {
        auth,
        dh,
        rid: m.recipient_id,
        sid: m.sender_id,
        relay_dh: m.relay_dh_pub,
    }
}

/// A full-size envelope whose bytes depend on `fill`.
pub fn envelope(fill: u8) -> Bytes {
    // Not constant, so that a substring search is meaningful.
    Bytes::from(
        (0..ENVELOPE_SIZE)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(fill))
            .collect::<Vec<_>>(),
    )
}

/// The relay error code of a failed request.
pub fn code(r: Result<(), RequestError>) -> ErrorCode {
    r.unwrap_err().code().expect("relay error code")
}

/// The relay error code in a raw response.
pub fn resp_code(r: &relay::Response) -> Option<ErrorCode> {
    match &r.result {
        Some(relay::response::Result::Error(e)) => ErrorCode::try_from(e.code).ok(),
        _ => None,
    }
}

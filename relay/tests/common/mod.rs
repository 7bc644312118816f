//! Helpers shared by the relay's integration tests: an in-process relay on
//! loopback with a real sled store in a temp dir, mailboxes and envelopes.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tropa_proto::relay::{self, ErrorCode};
use tropa_proto::{ENVELOPE_SIZE, RelayAddress};
use tropa_relay::client::{RelayClient, RequestError};
use tropa_relay::config::Config;
use tropa_relay::identity::RelayIdentity;
use tropa_relay::server::Server;
use tropa_relay::store::SledStore;
use x25519_dalek::{PublicKey, StaticSecret};

pub struct Relay {
    pub address: RelayAddress,
    pub metrics: Option<std::net::SocketAddr>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
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

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.dir
    }
}

pub struct Mailbox {
    pub auth: SigningKey,
    pub dh: StaticSecret,
    pub rid: [u8; 24],
    pub sid: [u8; 24],
    pub relay_dh: [u8; 32],
}

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

pub fn envelope(fill: u8) -> Bytes {
    // Not constant, so that a substring search is meaningful.
    Bytes::from(
        (0..ENVELOPE_SIZE)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(fill))
            .collect::<Vec<_>>(),
    )
}

pub fn code(r: Result<(), RequestError>) -> ErrorCode {
    r.unwrap_err().code().expect("relay error code")
}

pub fn resp_code(r: &relay::Response) -> Option<ErrorCode> {
    match &r.result {
        Some(relay::response::Result::Error(e)) => ErrorCode::try_from(e.code).ok(),
        _ => None,
    }
}

//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/TARGET/`) from
//! real traffic: requests built by the relay client's own builders and sent
//! to a real relay process, the relay's answers and subscription frames as
//! read off the QUIC stream, a real invitation link, relay address,
//! `relay.toml` and profile key file. Ignored by default (it writes into the
//! source tree); run it when the protocol changes:
//!
//!     cargo test -p tropa-tests --test fuzz_seeds -- --ignored
//!
//! The structured targets (`envelope_open`, `relay_store`,
//! `client_records`) build their genuine inputs in their own fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tropa_proto::ENVELOPE_SIZE;
use tropa_proto::framing::{decode, encode};
use tropa_proto::relay::Response;
use tropa_relay_client::{RelayClient, requests, tls};
use tropa_tests::{Profile, RelayProcess, SecuredMailbox, raw_connection};
use x25519_dalek::{PublicKey, StaticSecret};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn seed(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(name), bytes).unwrap();
}

fn envelope(n: u8) -> Bytes {
    Bytes::from(
        (0..ENVELOPE_SIZE)
            .map(|i| (i as u8) ^ n)
            .collect::<Vec<_>>(),
    )
}

#[tokio::test]
#[ignore = "writes fuzz/corpus; run by hand when the protocol changes"]
async fn write_seed_corpora_from_real_traffic() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&tmp.path().join("relay"));
    let addr = relay.address.clone();

    seed("relay_address", "real", addr.to_string().as_bytes());
    let toml = std::fs::read(relay.data.join("relay.toml")).unwrap();
    seed("relay_config", "init", &toml);

    // Requests as the client builds them, with their real answers.
    let (_endpoint, conn) = raw_connection(&addr).await;
    let binding = tls::channel_binding(&conn).unwrap();
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = StaticSecret::random_from_rng(&mut rand::rng());
    let mut frames: Vec<(&str, Vec<u8>)> = Vec::new();
    let create = requests::create(&auth, &PublicKey::from(&dh), None);
    let resp = exchange(&conn, &encode(&create).unwrap()).await;
    let (decoded, _) = decode::<Response>(&resp).unwrap();
    let created = requests::created(decoded).unwrap();
    frames.push(("create", encode(&create).unwrap()));
    seed("relay_response", "created", &resp);
    let sender = SigningKey::generate(&mut rand::rng());
    let secure = requests::secure(
        &binding,
        &auth,
        &created.recipient_id,
        &sender.verifying_key().to_bytes(),
    );
    let resp = exchange(&conn, &encode(&secure).unwrap()).await;
    frames.push(("secure", encode(&secure).unwrap()));
    seed("relay_response", "ok", &resp);
    let deposit = requests::deposit(&created.sender_id, envelope(1), Some(&sender));
    let resp = exchange(&conn, &encode(&deposit).unwrap()).await;
    frames.push(("deposit", encode(&deposit).unwrap()));
    seed("relay_response", "accepted", &resp);
    let bad = requests::deposit(&created.sender_id, envelope(2), None);
    let resp = exchange(&conn, &encode(&bad).unwrap()).await;
    seed("relay_response", "refused", &resp);

    // A subscription's frames exactly as they come off the stream.
    let subscribe = requests::subscribe(&binding, &auth, &created.recipient_id);
    frames.push(("subscribe", encode(&subscribe).unwrap()));
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&encode(&subscribe).unwrap()).await.unwrap();
    let mut stream = Vec::new();
    while stream.len() < ENVELOPE_SIZE + 256 {
        match tokio::time::timeout(Duration::from_secs(5), recv.read_chunk(65536, true)).await {
            Ok(Ok(Some(chunk))) => stream.extend_from_slice(&chunk.bytes),
            _ => break,
        }
    }
    assert!(stream.len() > ENVELOPE_SIZE, "a delivery came");
    seed("relay_response", "subscription", &stream);
    seed("frame_splits", "subscription", &with_flag(true, &stream));

    let c = RelayClient::connect(&addr).await.unwrap();
    let mb = SecuredMailbox::create(&c).await;
    let ack = requests::ack(&binding, &mb.auth, &mb.ids.recipient_id, &[0u8; 16]);
    frames.push(("ack", encode(&ack).unwrap()));
    let delete = requests::delete(&binding, &mb.auth, &mb.ids.recipient_id);
    frames.push(("delete", encode(&delete).unwrap()));
    let mut all = Vec::new();
    for (name, bytes) in &frames {
        seed("relay_request", name, bytes);
        all.extend_from_slice(bytes);
    }
    seed("frame_splits", "requests", &with_flag(false, &all));

    // A real invitation link and a real key file, through the CLI.
    let alice = Profile::init(tmp.path(), "alice", &addr);
    let link = alice
        .tropa(&["invite", "--name", "bob", "--long"])
        .ok()
        .stdout;
    seed("invitation_link", "real", link.trim().as_bytes());
    let short = alice.tropa(&["invite", "--name", "carol"]).ok().stdout;
    seed("short_link", "real", short.trim().as_bytes());
    let key = std::fs::read(alice.home.join(tropa_client::store::KEY_FILE_NAME)).unwrap();
    seed("key_file", "real", &key);
    eprintln!("seeds written under {}", corpus("").display());
}

/// Sends one request frame on a new stream; the answer's bytes as read.
async fn exchange(conn: &quinn::Connection, frame: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(frame).await.unwrap();
    send.finish().unwrap();
    tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(64 * 1024))
        .await
        .unwrap()
        .unwrap()
}

/// A `frame_splits` input: the flag byte choosing requests or responses,
/// then the stream (`arbitrary` reads the cuts' count from the end; the
/// fuzzer finds its own cuts from there).
fn with_flag(response: bool, stream: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::from(response)];
    v.extend_from_slice(stream);
    v
}

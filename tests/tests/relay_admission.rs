//! Who gets in, and how much they may take: one address flooding the relay
//! with mailboxes and envelopes (H2 of the security review), and Initial
//! packets from clients that never complete a handshake (M1). In both
//! cases an honest client from another address, or from the same one,
//! must still be served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tropa_proto::relay::ErrorCode;
use tropa_relay::config::Config;
use tropa_relay_client::tls;
use tropa_relay_client::{CreatedMailbox, RelayClient};
use tropa_tests::inproc::{Relay, envelope};
use x25519_dalek::{PublicKey, StaticSecret};

const ENVELOPE: u64 = tropa_proto::ENVELOPE_SIZE as u64;

async fn create(c: &RelayClient) -> Result<(SigningKey, StaticSecret, CreatedMailbox), ErrorCode> {
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = StaticSecret::random_from_rng(&mut rand::rng());
    c.create_mailbox(&auth, &PublicKey::from(&dh), None)
        .await
        .map(|m| (auth, dh, m))
        .map_err(|e| e.code().expect("a relay error"))
}

/// H2: one address creates as many mailboxes as the relay lets it, secures
/// each with its own key and fills each until refused. An honest client
/// from another address can still create a mailbox, deposit and receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_cannot_push_others_into_quota() {
    let relay = Relay::start(Config {
        disk_quota_bytes: 1000 * ENVELOPE,
        mailbox_quota: 100,
        max_mailboxes: 40,
        rate_per_sec: 1000,
        rate_burst: 1000,
        ..Config::default()
    })
    .await;
    let flooder: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let honest: SocketAddr = "127.0.0.2:0".parse().unwrap();

    // Creation: new connections whenever one is refused, until a fresh
    // connection is refused too.
    let mut owned = Vec::new();
    let mut conn = RelayClient::connect_from(&relay.address, Some(flooder))
        .await
        .unwrap();
    let mut fresh = true;
    for _ in 0..200 {
        match create(&conn).await {
            Ok(m) => {
                owned.push(m);
                fresh = false;
            }
            Err(_) if fresh => break,
            Err(_) => {
                conn = RelayClient::connect_from(&relay.address, Some(flooder))
                    .await
                    .unwrap();
                fresh = true;
            }
        }
    }
    // Filling: each mailbox secured with the flooder's own key, then
    // deposits until the relay says no.
    let sender = SigningKey::generate(&mut rand::rng());
    let mut stored = 0;
    for (auth, _, m) in &owned {
        conn.secure(auth, &m.recipient_id, &sender.verifying_key().to_bytes())
            .await
            .unwrap();
        while conn
            .deposit(&m.sender_id, envelope(1), Some(&sender))
            .await
            .is_ok()
        {
            stored += 1;
        }
    }
    eprintln!(
        "the flood created {} mailboxes and stored {stored} envelopes",
        owned.len()
    );
    assert!(owned.len() < 40, "the flood must not reach max_mailboxes");

    let c = RelayClient::connect_from(&relay.address, Some(honest))
        .await
        .unwrap();
    let (auth, dh, m) = create(&c)
        .await
        .expect("an honest user can still create a mailbox");
    let their = SigningKey::generate(&mut rand::rng());
    c.secure(&auth, &m.recipient_id, &their.verifying_key().to_bytes())
        .await
        .unwrap();
    for i in 0..4 {
        c.deposit(&m.sender_id, envelope(i), Some(&their))
            .await
            .expect("an honest user's deposits are accepted");
    }
    let mut sub = c.subscribe(&auth, &m.recipient_id).await.unwrap();
    let d = sub.next().await.unwrap().unwrap();
    assert!(d.open(&dh, &m.relay_dh_pub, &m.recipient_id).is_ok());
    relay.stop().await;
}

/// The first datagrams (Initials with a ClientHello) of `n` QUIC clients,
/// each with its own connection ID, captured by a UDP socket posing as
/// the relay.
async fn captured_initials(relay: &tropa_proto::RelayAddress, n: usize) -> Vec<Vec<u8>> {
    let trap = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(tls::client_config(relay.fingerprint).unwrap());
    let mut pending = Vec::new();
    for _ in 0..n {
        let connecting = endpoint
            .connect(trap.local_addr().unwrap(), tropa_relay_client::SERVER_NAME)
            .unwrap();
        pending.push(tokio::spawn(connecting));
    }
    // Keep the first datagram of each connection (its Initial); quinn may
    // retransmit, so dedupe by the destination connection ID (bytes 6..).
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while out.len() < n {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), trap.recv_from(&mut buf))
            .await
            .expect("the clients send their Initials")
            .unwrap();
        let dcid_len = usize::from(buf[5]);
        if seen.insert(buf[6..6 + dcid_len].to_vec()) {
            out.push(buf[..len].to_vec());
        }
    }
    for p in pending {
        p.abort();
    }
    out
}

/// M1: Initials from clients that never finish (or cannot receive, as with
/// spoofed source addresses) must not take the connection slots of the
/// address they claim. Before the fix each one held a slot until the idle
/// timeout, so a few dozen packets locked everyone at that address out.
#[tokio::test]
async fn unanswered_initials_do_not_take_connection_slots() {
    let relay = Relay::start(Config {
        max_connections_per_ip: 8,
        ..Config::default()
    })
    .await;
    let target = relay.address.socket_addr().unwrap();
    let mut senders = Vec::new();
    for initial in captured_initials(&relay.address, 40).await {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&initial, target).await.unwrap();
        // Kept open but never read: the client does not answer.
        senders.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = tokio::time::timeout(
        Duration::from_secs(10),
        RelayClient::connect(&relay.address),
    )
    .await
    .expect("connecting must not hang")
    .expect("an honest client at the same address is still let in");
    create(&c).await.unwrap();
    drop(senders);
    relay.stop().await;
}

/// Streams cost the relay memory whether or not anything is sent on them,
/// so all connections together may hold only as many as the relay's stream
/// budget pays for (8 KiB each from as much again as `memory_budget_mib`).
/// Beyond it a new stream is answered "busy" at once; once streams close,
/// requests are served again.
#[tokio::test]
async fn open_streams_are_bounded_relay_wide() {
    let relay = Relay::start(Config {
        memory_budget_mib: 1,
        ..Config::default()
    })
    .await;
    let budget = (1024 * 1024 / tropa_relay::server::STREAM_COST) as usize;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(tls::client_config(relay.address.fingerprint).unwrap());
    let hog = endpoint
        .connect(
            relay.address.socket_addr().unwrap(),
            tropa_relay_client::SERVER_NAME,
        )
        .unwrap()
        .await
        .unwrap();
    // Each stream announces a frame and then stalls, holding its stream
    // until the relay's request timeout (`request_timeout_secs`, 30 s).
    let mut held = Vec::new();
    for _ in 0..budget {
        let (mut send, recv) = hog.open_bi().await.unwrap();
        send.write_all(&[0, 0]).await.unwrap();
        held.push((send, recv));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let honest = RelayClient::connect(&relay.address).await.unwrap();
    assert_eq!(
        create(&honest).await.err(),
        Some(ErrorCode::RateLimited),
        "the relay holds all the streams it may"
    );
    hog.close(0u32.into(), b"");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    create(&honest)
        .await
        .expect("closed streams give their budget back");
    relay.stop().await;
}

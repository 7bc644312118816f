//! A real `tropa-relay` process under memory attacks (issue: H1 of the
//! security review). The relay's resident memory is read from /proc while
//! hostile clients hold subscription streams they never read and request
//! streams that announce a full frame and then stall; an honest client
//! must keep working throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use prost::Message as _;
use tropa_proto::relay::{self, Request, recipient_command::Action, request};
use tropa_proto::{ENVELOPE_SIZE, MAX_FRAME_LEN, PROTOCOL_VERSION, RelayAddress};
use tropa_relay_client::RelayClient;
use tropa_relay_client::tls;
use tropa_relay_protocol::crypto;
use tropa_tests::{RelayProcess, SecuredMailbox, raw_connection, rss_kib};
use x25519_dalek::{PublicKey, StaticSecret};

/// Mailboxes the attacker fills.
const MAILBOXES: usize = 8;
/// Envelopes in each (the relay's old delivery batch).
const ENVELOPES: usize = 32;
/// Attacking connections that subscribe and never read.
const SUB_CONNECTIONS: usize = 8;
/// Attacking connections that announce frames and stall.
const STALL_CONNECTIONS: usize = 8;
/// Streams per attacking connection at most (the relay's per-connection
/// maximum; it grants fewer to a connection whose streams end).
const STREAMS: usize = tropa_relay::tls::MAX_STREAMS as usize;
/// The bound this test holds the relay to: resident memory may grow by at
/// most what the relay charges for the attackers' streams (so the charge
/// covers what a stream really costs; the request and delivery budgets the
/// attack also fills fit in the margin between the charge and the cost).
/// Before the memory budgets, this attack grew the relay by 375 MiB with
/// only 64 streams per connection.
const RSS_GROWTH_LIMIT_KIB: u64 = ((SUB_CONNECTIONS + STALL_CONNECTIONS) * STREAMS) as u64
    * tropa_relay::server::STREAM_COST as u64
    / 1024;

fn envelope(n: usize) -> Bytes {
    Bytes::from(
        (0..ENVELOPE_SIZE)
            .map(|i| (i as u8).wrapping_mul(13) ^ (n as u8))
            .collect::<Vec<_>>(),
    )
}

struct Owned {
    auth: SigningKey,
    rid: [u8; 24],
}

fn subscribe_request(binding: &crypto::ChannelBinding, mb: &Owned) -> Vec<u8> {
    let command = relay::RecipientCommand {
        recipient_id: Bytes::copy_from_slice(&mb.rid),
        action: Some(Action::Subscribe(relay::Subscribe {})),
    }
    .encode_to_vec();
    let signature = crypto::sign_recipient(&mb.auth, binding, &command);
    let req = Request {
        version: PROTOCOL_VERSION,
        command: Some(request::Command::Signed(relay::SignedCommand {
            command: command.into(),
            signature: signature.to_vec().into(),
        })),
    };
    tropa_proto::framing::encode(&req).unwrap()
}

type Held = (
    quinn::Endpoint,
    quinn::Connection,
    Vec<quinn::SendStream>,
    Vec<quinn::RecvStream>,
);

/// Opens `STREAMS` subscriptions over the attacker's mailboxes and never reads them.
async fn stalled_subscriber(addr: &RelayAddress, mailboxes: &[Owned]) -> Held {
    let (endpoint, conn) = raw_connection(addr).await;
    let binding = tls::channel_binding(&conn).unwrap();
    let mut sends = Vec::new();
    let mut recvs = Vec::new();
    for i in 0..STREAMS {
        // The relay grants streams as they are used (tls::INITIAL_STREAMS):
        // stop once it grants no more.
        let Ok(Ok((mut send, recv))) =
            tokio::time::timeout(Duration::from_secs(2), conn.open_bi()).await
        else {
            break;
        };
        let req = subscribe_request(&binding, &mailboxes[i % mailboxes.len()]);
        if send.write_all(&req).await.is_err() {
            break;
        }
        sends.push(send);
        recvs.push(recv);
    }
    (endpoint, conn, sends, recvs)
}

/// Opens `STREAMS` streams that announce a maximal frame and then send
/// nothing more.
async fn stalled_requester(addr: &RelayAddress) -> Held {
    let (endpoint, conn) = raw_connection(addr).await;
    let mut sends = Vec::new();
    let mut recvs = Vec::new();
    let prefix = u32::try_from(MAX_FRAME_LEN).unwrap().to_be_bytes();
    for _ in 0..STREAMS {
        // The relay grants streams as they are used (tls::INITIAL_STREAMS):
        // stop once it grants no more.
        let Ok(Ok((mut send, recv))) =
            tokio::time::timeout(Duration::from_secs(2), conn.open_bi()).await
        else {
            break;
        };
        if send.write_all(&prefix).await.is_err() {
            break;
        }
        sends.push(send);
        recvs.push(recv);
    }
    (endpoint, conn, sends, recvs)
}

/// An honest client's whole round trip: create, deposit, receive.
async fn honest_round_trip(addr: &RelayAddress) -> Duration {
    let start = Instant::now();
    let c = RelayClient::connect(addr).await.unwrap();
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = StaticSecret::random_from_rng(&mut rand::rng());
    let m = c
        .create_mailbox(&auth, &PublicKey::from(&dh), None)
        .await
        .unwrap();
    c.deposit(&m.sender_id, envelope(0xaa), None).await.unwrap();
    let mut sub = c.subscribe(&auth, &m.recipient_id).await.unwrap();
    let d = sub.next().await.unwrap().expect("a delivery");
    let plain = d.open(&dh, &m.relay_dh_pub, &m.recipient_id).unwrap();
    assert_eq!(plain.as_slice(), envelope(0xaa).as_ref());
    sub.close();
    c.close().await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriptions_and_requests_keep_relay_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // Loose request limits so the setup is not slowed by them: what is
    // tested is memory, not the rate limiter.
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &["rate_burst = 5000", "rate_per_sec = 5000"],
    );
    let addr = relay.address.clone();
    let pid = relay.child.id();

    // The attacker's own mailboxes, each holding a full old-style batch.
    let setup = std::sync::Arc::new(RelayClient::connect(&addr).await.unwrap());
    let mut mailboxes = Vec::new();
    for _ in 0..MAILBOXES {
        // Secured with the attacker's own sender key, as an open mailbox
        // holds only a few envelopes.
        let m = SecuredMailbox::create(&setup).await;
        // Concurrently, so the relay's flushes can share their syncs.
        let mut deposits = tokio::task::JoinSet::new();
        for n in 0..ENVELOPES {
            let (c, s, sid) = (setup.clone(), m.sender.clone(), m.ids.sender_id);
            deposits.spawn(async move { c.deposit(&sid, envelope(n), Some(&s)).await });
        }
        while let Some(r) = deposits.join_next().await {
            r.unwrap().unwrap();
        }
        mailboxes.push(Owned {
            rid: m.ids.recipient_id,
            auth: m.auth,
        });
    }
    std::sync::Arc::into_inner(setup).unwrap().close().await;
    let calm = honest_round_trip(&addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);

    let mut held = Vec::new();
    for _ in 0..SUB_CONNECTIONS {
        held.push(stalled_subscriber(&addr, &mailboxes).await);
    }
    for _ in 0..STALL_CONNECTIONS {
        held.push(stalled_requester(&addr).await);
    }
    // Let the relay do whatever it does with them, and watch its memory.
    let opened: Vec<usize> = held.iter().map(|h| h.2.len()).collect();
    eprintln!("streams held per attacking connection: {opened:?}");
    let mut peak = before;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_kib(pid));
    }
    let during = tokio::time::timeout(Duration::from_secs(20), honest_round_trip(&addr))
        .await
        .expect("an honest client must keep working during the attack");
    peak = peak.max(rss_kib(pid));
    let growth = peak.saturating_sub(before);
    eprintln!(
        "relay RSS before {before} KiB, peak {peak} KiB, growth {growth} KiB; \
         honest round trip {calm:?} calm, {during:?} under attack"
    );
    assert!(
        growth <= RSS_GROWTH_LIMIT_KIB,
        "relay memory grew by {growth} KiB under the attack (limit {RSS_GROWTH_LIMIT_KIB} KiB)"
    );
    drop(held);
}

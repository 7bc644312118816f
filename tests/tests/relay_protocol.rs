//! Relay protocol over real QUIC sockets on loopback with a real redb store
//! in a temp dir: the round trip, authentication, replay across connections,
//! bad input, quotas, rate limits and what lands on disk (S6, S12).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tropa_proto::PROTOCOL_VERSION;
use tropa_proto::relay::{self, ErrorCode, Request, recipient_command::Action, request};
use tropa_relay::config::Config;
use tropa_relay_client::{RelayClient, RequestError};
use tropa_tests::inproc::{Relay, code, envelope, mailbox, resp_code};
use x25519_dalek::{PublicKey, StaticSecret};

/// Every file under `dir`, concatenated.
fn disk_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.extend(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn round_trip_delivery_is_reencrypted_and_ack_deletes() {
    let relay = Relay::start(Config::default()).await;
    let recipient = RelayClient::connect(&relay.address).await.unwrap();
    let sender = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&recipient).await;
    let env = envelope(1);
    sender.deposit(&mb.sid, env.clone(), None).await.unwrap();

    let mut sub = recipient.subscribe(&mb.auth, &mb.rid).await.unwrap();
    let first = sub.next_event().await.unwrap().unwrap();
    assert!(matches!(first, tropa_relay_client::Event::Delivery(_)));
    assert!(matches!(
        sub.next_event().await.unwrap().unwrap(),
        tropa_relay_client::Event::Idle
    ));
    let tropa_relay_client::Event::Delivery(d) = first else {
        unreachable!()
    };
    assert_ne!(
        &d.sealed[..],
        &env[..],
        "delivery must not be the deposit bytes"
    );
    assert!(!contains(&d.sealed, &env[..64]));
    let plain = d.open(&mb.dh, &mb.relay_dh, &mb.rid).unwrap();
    assert_eq!(&plain[..], &env[..]);

    // A live push: deposit while subscribed.
    let env2 = envelope(2);
    sender.deposit(&mb.sid, env2.clone(), None).await.unwrap();
    let d2 = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        &d2.open(&mb.dh, &mb.relay_dh, &mb.rid).unwrap()[..],
        &env2[..]
    );

    // S6 at rest: neither the deposit nor the delivery bytes are on disk.
    let disk = disk_bytes(relay.dir.path());
    assert!(
        !contains(&disk, &env[..64]),
        "deposit bytes stored verbatim"
    );
    assert!(!contains(&disk, &d.sealed[16..80]), "delivery bytes stored");

    recipient
        .ack(&mb.auth, &mb.rid, &d.envelope_id)
        .await
        .unwrap();
    // Acking again is harmless.
    recipient
        .ack(&mb.auth, &mb.rid, &d.envelope_id)
        .await
        .unwrap();
    sub.close();

    // A new subscription redelivers only what was not acked, re-encrypted anew.
    let mut sub = recipient.subscribe(&mb.auth, &mb.rid).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(again.envelope_id, d2.envelope_id);
    assert_ne!(again.sealed, d2.sealed, "redelivery must use a fresh nonce");
    recipient
        .ack(&mb.auth, &mb.rid, &again.envelope_id)
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "nothing left to deliver"
    );

    // Delete: the mailbox is gone for senders too.
    recipient.delete(&mb.auth, &mb.rid).await.unwrap();
    assert_eq!(
        code(sender.deposit(&mb.sid, envelope(3), None).await),
        ErrorCode::NoMailbox
    );
    relay.stop().await;
}

#[tokio::test]
async fn deposits_before_and_after_secure() {
    let relay = Relay::start(Config::default()).await;
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&c).await;
    let sender_key = SigningKey::generate(&mut rand::rng());
    let stranger = SigningKey::generate(&mut rand::rng());
    c.deposit(&mb.sid, envelope(1), None).await.unwrap();
    c.secure(&mb.auth, &mb.rid, &sender_key.verifying_key().to_bytes())
        .await
        .unwrap();
    assert_eq!(
        code(c.deposit(&mb.sid, envelope(2), None).await),
        ErrorCode::AuthFailed
    );
    assert_eq!(
        code(c.deposit(&mb.sid, envelope(2), Some(&stranger)).await),
        ErrorCode::AuthFailed
    );
    c.deposit(&mb.sid, envelope(2), Some(&sender_key))
        .await
        .unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn recipient_commands_are_bound_to_the_connection() {
    let relay = Relay::start(Config::default()).await;
    let a = RelayClient::connect(&relay.address).await.unwrap();
    let b = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&a).await;
    // A signed Delete captured from connection a...
    let captured = a.signed(&mb.auth, &mb.rid, Action::Delete(relay::DeleteMailbox {}));
    // ...is refused on connection b,
    let err = b.send_expect_ok(&captured).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AuthFailed));
    // and the mailbox still exists: a deposit still works.
    b.deposit(&mb.sid, envelope(1), None).await.unwrap();
    // On its own connection it works.
    a.send_expect_ok(&captured).await.unwrap();

    // Wrong key, and unknown mailbox, fail the same way.
    let mb2 = mailbox(&a).await;
    let wrong = SigningKey::generate(&mut rand::rng());
    let e1 = a.delete(&wrong, &mb2.rid).await.unwrap_err();
    let e2 = a.delete(&mb2.auth, &[0u8; 24]).await.unwrap_err();
    assert_eq!(e1.code(), Some(ErrorCode::AuthFailed));
    assert_eq!(e1.to_string(), e2.to_string(), "must not reveal existence");
    relay.stop().await;
}

#[tokio::test]
async fn bad_input_gets_typed_errors_and_relay_keeps_serving() {
    let relay = Relay::start(Config::default()).await;
    let evil = RelayClient::connect(&relay.address).await.unwrap();
    let good = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&good).await;

    // Oversized length prefix.
    let r = evil.raw(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(resp_code(&r), Some(ErrorCode::TooLarge));
    // Truncated frame: announces 100 bytes, sends 3.
    let mut t = 100u32.to_be_bytes().to_vec();
    t.extend_from_slice(&[1, 2, 3]);
    let r = evil.raw(&t).await.unwrap();
    assert_eq!(resp_code(&r), Some(ErrorCode::Malformed));
    // Garbage body.
    let mut g = 8u32.to_be_bytes().to_vec();
    g.extend_from_slice(&[0xff; 8]);
    let r = evil.raw(&g).await.unwrap();
    assert_eq!(resp_code(&r), Some(ErrorCode::Malformed));
    // Unknown message type: a well-formed protobuf with only an unknown field.
    let unknown = Request {
        version: PROTOCOL_VERSION,
        command: None,
    };
    let mut frame = tropa_proto::framing::encode(&unknown).unwrap();
    frame.extend_from_slice(&[0xf8, 0x06, 0x01]); // field 111, varint 1
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let r = evil.raw(&frame).await.unwrap();
    assert_eq!(resp_code(&r), Some(ErrorCode::Malformed));
    // Unsupported version.
    let v9 = Request {
        version: 9,
        command: Some(request::Command::Deposit(relay::Deposit::default())),
    };
    let r = evil
        .raw(&tropa_proto::framing::encode(&v9).unwrap())
        .await
        .unwrap();
    assert_eq!(resp_code(&r), Some(ErrorCode::UnsupportedVersion));
    // Wrong envelope sizes.
    let mut big = envelope(0).to_vec();
    big.push(0);
    assert_eq!(
        code(good.deposit(&mb.sid, Bytes::from(big), None).await),
        ErrorCode::TooLarge
    );
    assert_eq!(
        code(
            good.deposit(&mb.sid, Bytes::from_static(b"short"), None)
                .await
        ),
        ErrorCode::Malformed
    );
    // Bad keys on create.
    let bad = Request {
        version: PROTOCOL_VERSION,
        command: Some(request::Command::CreateMailbox(relay::CreateMailbox {
            recipient_auth_pub: Bytes::from_static(b"short"),
            ..Default::default()
        })),
    };
    let r = evil
        .raw(&tropa_proto::framing::encode(&bad).unwrap())
        .await
        .unwrap();
    assert_eq!(resp_code(&r), Some(ErrorCode::Malformed));

    // The relay still serves: the honest client deposits and receives.
    good.deposit(&mb.sid, envelope(5), None).await.unwrap();
    let mut sub = good.subscribe(&mb.auth, &mb.rid).await.unwrap();
    assert!(sub.next().await.unwrap().is_some());
    relay.stop().await;
}

#[tokio::test]
async fn quota_and_rate_limit() {
    let relay = Relay::start(Config {
        mailbox_quota: 2,
        ..Config::default()
    })
    .await;
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&c).await;
    c.deposit(&mb.sid, envelope(1), None).await.unwrap();
    c.deposit(&mb.sid, envelope(2), None).await.unwrap();
    assert_eq!(
        code(c.deposit(&mb.sid, envelope(3), None).await),
        ErrorCode::Quota
    );
    relay.stop().await;

    let relay = Relay::start(Config {
        rate_per_sec: 1,
        rate_burst: 3,
        ..Config::default()
    })
    .await;
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&c).await;
    let mut limited = 0;
    for i in 0..6 {
        if let Err(e) = c.deposit(&mb.sid, envelope(i), None).await {
            assert_eq!(e.code(), Some(ErrorCode::RateLimited));
            limited += 1;
        }
    }
    assert!(
        limited >= 2,
        "burst of 3 at 1/s must refuse some of 7 requests"
    );
    // Another connection has its own budget.
    let other = RelayClient::connect(&relay.address).await.unwrap();
    other.deposit(&mb.sid, envelope(9), None).await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn creation_password_and_pinned_key() {
    let relay = Relay::start(Config {
        creation_password: Some("let-me-in".into()),
        ..Config::default()
    })
    .await;
    assert_eq!(relay.address.password.as_deref(), Some("let-me-in"));
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = PublicKey::from(&StaticSecret::random_from_rng(&mut rand::rng()));
    let e = c
        .create_mailbox(&auth, &dh, Some("nope"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::AuthFailed));
    let m = c
        .create_mailbox(&auth, &dh, Some("let-me-in"))
        .await
        .unwrap();
    // Deposits never need the password.
    c.deposit(&m.sender_id, envelope(1), None).await.unwrap();

    // A client with a different fingerprint refuses the relay.
    let mut wrong = relay.address.clone();
    wrong.fingerprint.0[0] ^= 1;
    let err = RelayClient::connect(&wrong).await.unwrap_err();
    assert!(
        matches!(err, tropa_relay_client::ConnectError::WrongKey),
        "{err}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn metrics_are_aggregate_counters_on_loopback() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let relay = Relay::start(Config {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    })
    .await;
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&c).await;
    c.deposit(&mb.sid, envelope(1), None).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(relay.metrics.unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(body.contains("tropa_relay_deposits_total 1\n"), "{body}");
    assert!(
        body.contains("tropa_relay_mailboxes_created_total 1\n"),
        "{body}"
    );
    assert!(body.contains("tropa_relay_envelopes 1\n"), "{body}");
    // Issue 15: usage against the limits, refusals by reason, the build.
    let d = Config::default();
    for want in [
        format!(
            "tropa_relay_envelope_bytes {}\n",
            tropa_proto::ENVELOPE_SIZE
        ),
        format!("tropa_relay_disk_quota_bytes {}\n", d.disk_quota_bytes),
        "tropa_relay_mailboxes 1\n".to_owned(),
        format!("tropa_relay_max_mailboxes {}\n", d.max_mailboxes),
        "tropa_relay_refusals_total{reason=\"quota\"} 0\n".to_owned(),
        "tropa_relay_refusals_total{reason=\"rate_limited\"} 0\n".to_owned(),
        format!(
            "tropa_relay_build_info{{version=\"{}\",store_format=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            tropa_relay::store::FORMAT_VERSION
        ),
    ] {
        assert!(body.contains(&want), "{want} not in {body}");
    }
    assert!(!body.contains("127.0.0.1"));
    relay.stop().await;
}

#[tokio::test]
async fn relay_wide_mailbox_limit() {
    let relay = Relay::start(Config {
        max_mailboxes: 2,
        ..Config::default()
    })
    .await;
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let first = mailbox(&c).await;
    mailbox(&c).await;
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = PublicKey::from(&StaticSecret::random_from_rng(&mut rand::rng()));
    let e = c.create_mailbox(&auth, &dh, None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Quota), "{e}");
    // Deleting one frees a place.
    c.delete(&first.auth, &first.rid).await.unwrap();
    c.create_mailbox(&auth, &dh, None).await.unwrap();
    relay.stop().await;
}

/// One request per stream: whatever a client sends after its request frame
/// is refused (the relay stops the stream) instead of being buffered, even
/// on a subscription stream, which stays open for as long as the client likes.
#[tokio::test]
async fn data_after_the_request_is_not_buffered() {
    let relay = Relay::start(Config::default()).await;
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&c).await;
    let req = c.signed(&mb.auth, &mb.rid, Action::Subscribe(relay::Subscribe {}));
    let mut bytes = tropa_proto::framing::encode(&req).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 4 * 1024 * 1024));
    let err = tokio::time::timeout(Duration::from_secs(10), c.raw(&bytes))
        .await
        .expect("the relay must stop the stream, not leave the write hanging")
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Write(_)),
        "expected the write to be stopped, got {err}"
    );
    // The connection is still usable.
    mailbox(&c).await;
    relay.stop().await;
}

/// L3 of the security review: a subscriber that forwards deliveries into a
/// bounded channel nobody drains stops reading, and flow control stops the
/// relay: the client holds a few frames, not the whole backlog.
#[tokio::test]
async fn a_subscriber_that_does_not_keep_up_holds_only_a_few_frames() {
    const BACKLOG: usize = 40;
    let relay = Relay::start(Config::default()).await;
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&c).await;
    let sender = SigningKey::generate(&mut rand::rng());
    c.secure(&mb.auth, &mb.rid, &sender.verifying_key().to_bytes())
        .await
        .unwrap();
    for i in 0..BACKLOG {
        c.deposit(&mb.sid, envelope(i as u8), Some(&sender))
            .await
            .unwrap();
    }
    let (_, before) = c.traffic();
    let sub = c.subscribe(&mb.auth, &mb.rid).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(sub.forward(tx, |e| e.is_ok()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = c.traffic().1 - before;
    let frame = tropa_proto::MAX_FRAME_LEN as u64;
    assert!(
        held < 8 * frame,
        "received {held} bytes ahead of processing (a frame is {frame})"
    );
    // Draining lets everything through.
    let mut got = 0;
    while got < BACKLOG + 1 {
        assert!(rx.recv().await.unwrap());
        got += 1;
    }
    reader.abort();
    relay.stop().await;
}

/// A request that arrives too slowly (a lossy mobile link) is answered
/// `TIMED_OUT`, which clients retry on a fresh connection, and never
/// `MALFORMED`, which they treat as a request that will not change: under
/// 30 % loss a deposit once got "request not understood" twice in a row and
/// waited out the refusal backoff (net_faults, CI of stop 19).
#[tokio::test]
async fn a_request_that_arrives_too_slowly_is_answered_timed_out() {
    let relay = Relay::start(Config {
        request_timeout_secs: 1,
        ..Config::default()
    })
    .await;
    let (_endpoint, conn) = tropa_tests::raw_connection(&relay.address).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    // The start of a frame, then nothing (the stream stays open).
    let mut partial = 100u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[1, 2, 3]);
    send.write_all(&partial).await.unwrap();
    let opened = std::time::Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        tropa_relay_protocol::frame::read_frame::<relay::Response, _>(&mut recv),
    )
    .await
    .expect("the relay answers a late request")
    .unwrap();
    assert!(opened.elapsed() >= Duration::from_millis(900));
    assert_eq!(resp_code(&resp), Some(ErrorCode::TimedOut));
    // The relay keeps serving.
    let c = RelayClient::connect(&relay.address).await.unwrap();
    mailbox(&c).await;
    relay.stop().await;
}

/// Issue 13: one signed ack covers many envelopes. 70 IDs go out as two
/// acks (64 + 6), every envelope is gone after, and an ack of more than
/// 64 IDs is refused as malformed without deleting anything.
#[tokio::test]
async fn one_ack_covers_many_envelopes() {
    let relay = Relay::start(Config {
        open_mailbox_quota: 100,
        ..Config::default()
    })
    .await;
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = mailbox(&c).await;
    for i in 0..70u8 {
        c.deposit(&mb.sid, envelope(i), None).await.unwrap();
    }
    let mut sub = c.subscribe(&mb.auth, &mb.rid).await.unwrap();
    let mut ids = Vec::new();
    while let tropa_relay_client::Event::Delivery(d) = sub.next_event().await.unwrap().unwrap() {
        ids.push(d.envelope_id);
    }
    sub.close();
    assert_eq!(ids.len(), 70);

    // 65 IDs in one ack: refused, and nothing deleted.
    let refs: Vec<&[u8]> = ids[..65].iter().map(|id| id.as_slice()).collect();
    let req = tropa_relay_client::requests::ack_many(c.binding(), &mb.auth, &mb.rid, &refs);
    let resp = c.exchange(&req).await.unwrap();
    assert_eq!(resp_code(&resp), Some(ErrorCode::Malformed));

    c.ack_many(&mb.auth, &mb.rid, &ids).await.unwrap();
    let mut sub = c.subscribe(&mb.auth, &mb.rid).await.unwrap();
    assert!(
        matches!(
            sub.next_event().await.unwrap().unwrap(),
            tropa_relay_client::Event::Idle
        ),
        "every envelope was acked"
    );
}

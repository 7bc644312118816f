//! The relay's TCP profile (issue 12): TCP + TLS 1.3 with the relay's key
//! and HTTP/2 as the multiplexer, beside QUIC on the same port number.
//! Real sockets on loopback against an in-process relay; the TCP side is
//! driven by hand ([`RawTcp`]: a pinned TLS client and an h2 client with
//! the profile's settings), frame by frame.
//!
//! What it proves: a whole round trip works over TCP (create, deposit,
//! subscribe, live delivery, ack); a signed command is bound to its TLS
//! connection; the relay's limits hold over TCP as over QUIC (the
//! per-address and total connection caps, counted over both transports
//! together; the handshake limit; the per-connection request rate; the
//! per-connection request budget; the relay-wide stream budget; a slow
//! reader losing its subscription); `quic = false` serves TCP only and
//! `tcp = false` refuses TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::io::AsyncWriteExt as _;
use tropa_proto::relay::{ErrorCode, Response};
use tropa_relay::config::Config;
use tropa_relay_client::requests::{self, Event};
use tropa_relay_client::{CreatedMailbox, RelayClient};
use tropa_relay_protocol::frame::{read_frame, write_frame};
use tropa_relay_protocol::tcp::{H2Reader, H2Writer};
use tropa_tests::inproc::{RawTcp, Relay, envelope, mailbox, resp_code};
use tropa_tests::raw_connection;
use x25519_dalek::{PublicKey, StaticSecret};

fn lo(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

fn with_metrics(cfg: Config) -> Config {
    Config {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..cfg
    }
}

/// A counter's value on the relay's metrics page.
async fn counter(relay: &Relay, name: &str) -> u64 {
    let page = relay.scrape().await;
    let prefix = format!("tropa_relay_{name}_total ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {page}"))
}

/// Creates a mailbox over `c`; returns its keys and the relay's answer.
async fn create(c: &RawTcp) -> (SigningKey, StaticSecret, CreatedMailbox) {
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = StaticSecret::random_from_rng(&mut rand::rng());
    let req = requests::create(&auth, &PublicKey::from(&dh), None);
    let m = requests::created(c.request(&req).await.unwrap()).unwrap();
    (auth, dh, m)
}

async fn deposit(c: &RawTcp, m: &CreatedMailbox, fill: u8) {
    let req = requests::deposit(&m.sender_id, envelope(fill), None);
    requests::accepted(c.request(&req).await.unwrap()).unwrap();
}

async fn frame(r: &mut H2Reader) -> Response {
    tokio::time::timeout(Duration::from_secs(10), read_frame(r))
        .await
        .expect("a frame in time")
        .unwrap()
}

async fn next_event(r: &mut H2Reader) -> Event {
    requests::event(frame(r).await).unwrap()
}

/// Subscribes to `m` over `c` and reads the relay's `Ok`.
async fn subscribe(c: &RawTcp, auth: &SigningKey, m: &CreatedMailbox) -> (H2Writer, H2Reader) {
    let (mut w, mut r) = c.open().await.unwrap();
    write_frame(
        &mut w,
        &requests::subscribe(&c.binding, auth, &m.recipient_id),
    )
    .await
    .unwrap();
    w.shutdown().await.unwrap();
    requests::ok(frame(&mut r).await).unwrap();
    (w, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_over_tcp() {
    let relay = Relay::start(with_metrics(Config::default())).await;
    let port = relay.address.socket_addr().unwrap().port();
    assert_eq!(
        relay.tcp.unwrap().port(),
        port,
        "TCP listens on the port the UDP socket got"
    );
    let c = relay.tcp_from(None).await.unwrap();
    let (auth, dh, m) = create(&c).await;
    deposit(&c, &m, 1).await;
    let (_w, mut sub) = subscribe(&c, &auth, &m).await;
    let Event::Delivery(first) = next_event(&mut sub).await else {
        panic!("the stored envelope first");
    };
    let open = |d: &requests::Delivery| d.open(&dh, &m.relay_dh_pub, &m.recipient_id).unwrap();
    assert_eq!(open(&first).as_slice(), envelope(1).as_ref());
    assert_eq!(next_event(&mut sub).await, Event::Idle);

    // A deposit on another stream of the same connection reaches the live
    // subscription.
    deposit(&c, &m, 2).await;
    let Event::Delivery(second) = next_event(&mut sub).await else {
        panic!("the new envelope");
    };
    assert_eq!(open(&second).as_slice(), envelope(2).as_ref());
    assert_eq!(next_event(&mut sub).await, Event::Idle);
    for d in [&first, &second] {
        let ack = requests::ack(&c.binding, &auth, &m.recipient_id, &d.envelope_id);
        requests::ok(c.request(&ack).await.unwrap()).unwrap();
    }
    // Acked means gone: a new subscription (it replaces the old one) finds
    // nothing.
    let (_w2, mut again) = subscribe(&c, &auth, &m).await;
    assert_eq!(next_event(&mut again).await, Event::Idle);

    // QUIC is served beside it, and the metrics count both, in aggregate.
    let q = RelayClient::connect(&relay.address).await.unwrap();
    mailbox(&q).await;
    assert_eq!(counter(&relay, "tcp_connections").await, 1);
    assert_eq!(counter(&relay, "connections").await, 2);
    assert!(!relay.scrape().await.contains("127.0.0.1"));
    relay.stop().await;
}

/// The TCP profile's request head is the fixed `POST /`: any other stream
/// is reset, and the connection keeps serving.
#[tokio::test]
async fn a_stream_that_is_not_post_slash_is_reset() {
    let relay = Relay::start(Config::default()).await;
    let c = relay.tcp_from(None).await.unwrap();
    assert!(c.open_as("GET", "/").await.is_err());
    assert!(c.open_as("POST", "/mailbox").await.is_err());
    create(&c).await;
    relay.stop().await;
}

/// A recipient command signed on one connection is refused on another TCP
/// connection and over QUIC, and a QUIC one over TCP: the binding is the
/// TLS exporter of the connection it was signed for.
#[tokio::test]
async fn a_signed_command_is_bound_to_its_tcp_connection() {
    let relay = Relay::start(Config::default()).await;
    let a = relay.tcp_from(None).await.unwrap();
    let b = relay.tcp_from(None).await.unwrap();
    assert_ne!(a.binding, b.binding);
    let (auth, _dh, m) = create(&a).await;
    let captured = requests::subscribe(&a.binding, &auth, &m.recipient_id);

    let on_b = b.request(&captured).await.unwrap();
    assert_eq!(resp_code(&on_b), Some(ErrorCode::AuthFailed));

    let (_endpoint, q) = raw_connection(&relay.address).await;
    let (mut send, mut recv) = q.open_bi().await.unwrap();
    write_frame(&mut send, &captured).await.unwrap();
    send.finish().unwrap();
    let over_quic: Response = read_frame(&mut recv).await.unwrap();
    assert_eq!(resp_code(&over_quic), Some(ErrorCode::AuthFailed));

    let quic_binding = tropa_relay_client::tls::channel_binding(&q).unwrap();
    let from_quic = requests::subscribe(&quic_binding, &auth, &m.recipient_id);
    let on_a = a.request(&from_quic).await.unwrap();
    assert_eq!(resp_code(&on_a), Some(ErrorCode::AuthFailed));

    // On its own connection it is good.
    requests::ok(a.request(&captured).await.unwrap()).unwrap();
    relay.stop().await;
}

/// `max_connections_per_ip` and `max_connections` count QUIC and TCP
/// connections together; a refused TCP connection is closed before any
/// TLS work, and a closed one gives its slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_count_quic_and_tcp_together() {
    let relay = Relay::start(Config {
        max_connections_per_ip: 3,
        ..Config::default()
    })
    .await;
    let _q1 = RelayClient::connect(&relay.address).await.unwrap();
    let _q2 = RelayClient::connect(&relay.address).await.unwrap();
    let t1 = relay.tcp_from(Some(lo(1))).await.unwrap();
    assert_eq!(relay.peer_ips(), vec![lo(1)]);
    assert!(
        relay.tcp_from(Some(lo(1))).await.is_err(),
        "a fourth connection from the address, over TCP"
    );
    assert!(
        RelayClient::connect(&relay.address).await.is_err(),
        "a fourth connection from the address, over QUIC"
    );
    create(&t1).await;
    let other = relay.tcp_from(Some(lo(2))).await.unwrap();
    create(&other).await;
    let mut seen = relay.peer_ips();
    seen.sort();
    assert_eq!(seen, vec![lo(1), lo(2)]);

    drop(t1);
    let start = Instant::now();
    let back = loop {
        match relay.tcp_from(Some(lo(1))).await {
            Ok(c) => break c,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                eprintln!("slot not back yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("a closed TCP connection gives its slot back: {e}"),
        }
    };
    create(&back).await;
    relay.stop().await;

    let relay = Relay::start(Config {
        max_connections: 2,
        ..Config::default()
    })
    .await;
    let _q = RelayClient::connect(&relay.address).await.unwrap();
    let _t = relay.tcp_from(Some(lo(2))).await.unwrap();
    assert!(relay.tcp_from(Some(lo(3))).await.is_err());
    let from3 = Some("127.0.0.3:0".parse().unwrap());
    assert!(
        RelayClient::connect_from(&relay.address, from3)
            .await
            .is_err()
    );
    relay.stop().await;
}

/// TCP connections that never start TLS hold their address's slots only
/// for the 10 s handshake limit, so silent sockets cannot lock an address
/// (or the relay) out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_connections_give_their_slots_back() {
    let relay = Relay::start(Config {
        max_connections_per_ip: 2,
        ..Config::default()
    })
    .await;
    let tcp = relay.tcp.unwrap();
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(tcp).await.unwrap());
    }
    let start = Instant::now();
    while relay.peer_ips().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(relay.tcp_from(None).await.is_err(), "both slots are held");
    let c = loop {
        match relay.tcp_from(None).await {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the silent connections still hold their slots: {e}"),
        }
    };
    eprintln!("slots back after {:?}", start.elapsed());
    create(&c).await;
    drop(silent);
    relay.stop().await;
}

/// The per-connection request rate holds over TCP: beyond the burst, a
/// stream is answered `RATE_LIMITED`; another connection has its own.
#[tokio::test]
async fn the_request_rate_is_limited_per_tcp_connection() {
    let relay = Relay::start(Config {
        rate_per_sec: 1,
        rate_burst: 5,
        ..Config::default()
    })
    .await;
    let c = relay.tcp_from(None).await.unwrap();
    let probe = requests::get_link(&[7; tropa_proto::LINK_LOCATOR_LEN]);
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(resp_code(&c.request(&probe).await.unwrap()));
    }
    eprintln!("answers: {codes:?}");
    assert!(codes[..5].iter().all(|c| *c == Some(ErrorCode::NoLink)));
    assert!(codes.contains(&Some(ErrorCode::RateLimited)));
    let d = relay.tcp_from(None).await.unwrap();
    let fresh = d.request(&probe).await.unwrap();
    assert_eq!(resp_code(&fresh), Some(ErrorCode::NoLink));
    relay.stop().await;
}

/// Memory per connection over TCP: requests that announce a whole frame
/// and stall hold the connection's request budget, so beyond it a request
/// is answered busy at once, while another connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requests_over_tcp_spend_only_their_connections_budget() {
    let relay = Relay::start(Config::default()).await;
    let fits = Config::default().connection_memory_kib as usize * 1024 / tropa_proto::MAX_FRAME_LEN;
    let extra = 5;
    let hog = relay.tcp_from(None).await.unwrap();
    let prefix = u32::try_from(tropa_proto::MAX_FRAME_LEN)
        .unwrap()
        .to_be_bytes();
    let mut readers = tokio::task::JoinSet::new();
    let mut writers = Vec::new();
    for _ in 0..fits + extra {
        let (mut w, mut r) = hog.open().await.unwrap();
        w.write_all(&prefix).await.unwrap();
        writers.push(w);
        readers.spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), read_frame::<Response, _>(&mut r))
                .await
                .ok()
                .map(|f| resp_code(&f.unwrap()))
        });
    }
    let mut busy = 0;
    while let Some(answer) = readers.join_next().await {
        match answer.unwrap() {
            None => {}
            Some(Some(ErrorCode::RateLimited)) => busy += 1,
            other => panic!("a stalled request got {other:?}"),
        }
    }
    eprintln!("{fits} stalled requests fit the connection's budget; {busy} were answered busy");
    assert_eq!(busy, extra);
    let other = relay.tcp_from(None).await.unwrap();
    create(&other).await;
    drop(writers);
    relay.stop().await;
}

/// The relay-wide stream budget holds over TCP: HTTP/2 streams that stall
/// hold it like QUIC streams (relay_admission::open_streams_are_bounded_relay_wide),
/// a new stream on either transport is answered busy beyond it, and
/// closing them gives it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tcp_streams_are_bounded_relay_wide() {
    let relay = Relay::start(Config {
        memory_budget_mib: 1,
        ..Config::default()
    })
    .await;
    let budget = (1024 * 1024 / tropa_relay::server::STREAM_COST) as usize;
    let hog = relay.tcp_from(None).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..budget {
        let (mut w, r) = hog.open().await.unwrap();
        w.write_all(&[0, 0]).await.unwrap();
        held.push((w, r));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let honest = relay.tcp_from(Some(lo(2))).await.unwrap();
    let probe = requests::get_link(&[1; tropa_proto::LINK_LOCATOR_LEN]);
    let answer = honest.request(&probe).await.unwrap();
    assert_eq!(resp_code(&answer), Some(ErrorCode::RateLimited));
    let q = RelayClient::connect(&relay.address).await.unwrap();
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = PublicKey::from(&StaticSecret::random_from_rng(&mut rand::rng()));
    let over_quic = q.create_mailbox(&auth, &dh, None).await;
    assert_eq!(
        over_quic.err().and_then(|e| e.code()),
        Some(ErrorCode::RateLimited)
    );

    drop(held);
    drop(hog);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = honest.request(&probe).await.unwrap();
    assert_eq!(resp_code(&answer), Some(ErrorCode::NoLink));
    relay.stop().await;
}

/// A client that stops reading its subscription over TCP loses it after
/// the relay's 20 s write timeout (the stream is reset: never a clean end,
/// never more than the stream window let through), and the connection
/// keeps serving: a new subscription gets every envelope, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_over_tcp_loses_its_subscription() {
    let relay = Relay::start(with_metrics(Config::default())).await;
    let c = relay.tcp_from(None).await.unwrap();
    let (auth, dh, m) = create(&c).await;
    for fill in 0..4 {
        deposit(&c, &m, fill).await;
    }
    // Subscribe and read nothing: the relay can put the `Ok` and one
    // delivery in the stream's window, and then waits.
    let (mut w, mut stalled) = c.open().await.unwrap();
    write_frame(
        &mut w,
        &requests::subscribe(&c.binding, &auth, &m.recipient_id),
    )
    .await
    .unwrap();
    let start = Instant::now();
    while counter(&relay, "write_timeouts").await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "the relay gives up on a reader that does not read"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("subscription dropped after {:?}", start.elapsed());
    let mut frames = 0;
    let end = loop {
        match tokio::time::timeout(
            Duration::from_secs(5),
            read_frame::<Response, _>(&mut stalled),
        )
        .await
        .expect("the reset stream ends at once")
        {
            Ok(_) => frames += 1,
            Err(e) => break e,
        }
    };
    eprintln!("{frames} frames before the reset: {end}");
    assert!(frames <= 2, "at most the Ok and one delivery got through");

    let (_w, mut sub) = subscribe(&c, &auth, &m).await;
    let mut got = Vec::new();
    while let Event::Delivery(d) = next_event(&mut sub).await {
        got.push(d.open(&dh, &m.relay_dh_pub, &m.recipient_id).unwrap()[0]);
    }
    let want: Vec<u8> = (0..4).map(|fill| envelope(fill)[0]).collect();
    assert_eq!(got, want);
    relay.stop().await;
}

/// `quic = false`: the relay serves TCP on `listen` and holds no UDP socket.
#[tokio::test]
async fn a_relay_with_quic_off_serves_tcp_only() {
    let relay = Relay::start(Config {
        quic: false,
        ..Config::default()
    })
    .await;
    let tcp = relay.tcp.expect("TCP on");
    assert_eq!(relay.address.socket_addr().unwrap().port(), tcp.port());
    std::net::UdpSocket::bind(("127.0.0.1", tcp.port())).expect("no UDP socket on the port");
    let c = relay.tcp_from(None).await.unwrap();
    create(&c).await;
    relay.stop().await;
}

/// `tcp = false`: nothing listens for TCP on the relay's port; QUIC works.
#[tokio::test]
async fn a_relay_with_tcp_off_refuses_tcp() {
    let relay = Relay::start(Config {
        tcp: false,
        ..Config::default()
    })
    .await;
    assert!(relay.tcp.is_none());
    let port = relay.address.socket_addr().unwrap().port();
    let err = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let q = RelayClient::connect(&relay.address).await.unwrap();
    mailbox(&q).await;
    relay.stop().await;
}

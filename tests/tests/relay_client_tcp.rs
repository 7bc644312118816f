//! The relay client over the TCP profile (issue 12): `RelayClient` with
//! `ConnectOptions`, against real relays on loopback.
//!
//! What it proves: a whole round trip works over TCP with the ordinary
//! client API (create, secure, signed deposits, subscribe with live
//! delivery, acks, short links: every channel-bound command), and the
//! connection's byte counters and close work; a wrong key over TCP is
//! `WrongKey` (full address and short-link prefix), whatever the choice;
//! `auto` against a relay that serves no UDP gets QUIC's 3 s head start and
//! then connects over TCP, and `prefer = tcp` connects over TCP at once;
//! through a real SOCKS5 proxy (microsocks) the relay only ever sees the
//! proxy's address, with and without a username and password, and a proxy
//! that is unreachable, refuses the credentials or cannot reach the relay
//! is a typed error naming the proxy; a dropped client's connection ends;
//! a "busy" answer over TCP reaches the caller as the relay's answer.
//!
//! Not here: that PINGs keep an idle TCP connection past the relay's 120 s
//! idle timeout. The relay's timeout is a constant, so the driver's
//! keep-alive is tested in virtual time in the crate
//! (`tcp::tests::the_driver_pings_and_drops_a_silent_peer`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tropa_proto::relay::ErrorCode;
use tropa_proto::{Fingerprint, LINK_DATA_SIZE, RelayAddress};
use tropa_relay::config::Config;
use tropa_relay_client::requests::Event;
use tropa_relay_client::{
    ConnectError, ConnectOptions, QUIC_FALLBACK_AFTER, RelayClient, Socks5, Transport,
    TransportChoice,
};
use tropa_tests::inproc::{Relay, envelope, mailbox};
use tropa_tests::microsocks::Microsocks;
use tropa_tests::{RelayProcess, SecuredMailbox};

fn lo(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

fn tcp() -> ConnectOptions {
    ConnectOptions {
        transport: TransportChoice::Tcp,
        ..ConnectOptions::default()
    }
}

fn via(proxy: &Socks5) -> ConnectOptions {
    ConnectOptions {
        socks5: Some(proxy.clone()),
        ..ConnectOptions::default()
    }
}

/// Connects as `opts` say; prints and returns how long it took.
async fn timed(addr: &RelayAddress, opts: &ConnectOptions, what: &str) -> (RelayClient, Duration) {
    let start = Instant::now();
    let c = RelayClient::connect_with(addr, opts)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let took = start.elapsed();
    eprintln!("{what}: connected over {} in {took:?}", c.transport());
    (c, took)
}

/// Deposits `n` envelopes signed by the mailbox's sender over `by`, and
/// receives them over `on` (a subscription and an ack each).
async fn deliver(m: &SecuredMailbox, by: &RelayClient, on: &RelayClient, n: u8) {
    for fill in 0..n {
        by.deposit(&m.ids.sender_id, envelope(fill), Some(&m.sender))
            .await
            .unwrap();
    }
    let got = m.receive(on, n.into()).await;
    let want: Vec<Vec<u8>> = (0..n).map(|fill| envelope(fill).to_vec()).collect();
    assert_eq!(got, want);
}

/// The ordinary client API over TCP against a relay process: every signed
/// (channel-bound) command works, a live delivery reaches a subscription,
/// acked means gone, and the byte counters and `abort` work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path());
    let (c, _) = timed(&relay.address, &tcp(), "tcp").await;
    assert_eq!(c.transport(), Transport::Tcp);
    assert_eq!(c.fingerprint(), relay.address.fingerprint);
    let (sender, _) = timed(&relay.address, &tcp(), "a second tcp").await;
    assert_ne!(c.binding(), sender.binding());

    let m = SecuredMailbox::create(&c).await;
    deliver(&m, &sender, &c, 3).await;

    // A live delivery on a subscription, then Idle; after the ack nothing
    // is left.
    let mut sub = c.subscribe(&m.auth, &m.ids.recipient_id).await.unwrap();
    assert_eq!(sub.next_event().await.unwrap(), Some(Event::Idle));
    sender
        .deposit(&m.ids.sender_id, envelope(9), Some(&m.sender))
        .await
        .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a live delivery in time")
        .unwrap()
        .expect("a delivery");
    let plain = live
        .open(&m.dh, &m.ids.relay_dh_pub, &m.ids.recipient_id)
        .unwrap();
    assert_eq!(plain.as_slice(), envelope(9).as_ref());
    c.ack(&m.auth, &m.ids.recipient_id, &live.envelope_id)
        .await
        .unwrap();
    sub.close();
    let mut again = c.subscribe(&m.auth, &m.ids.recipient_id).await.unwrap();
    assert_eq!(again.next_event().await.unwrap(), Some(Event::Idle));
    again.close();

    // Short links: a signed put and delete, and a get.
    let owner = ed25519_dalek::SigningKey::generate(&mut rand::rng());
    let locator = [5u8; tropa_proto::LINK_LOCATOR_LEN];
    let data = bytes::Bytes::from(vec![7u8; LINK_DATA_SIZE]);
    c.put_link(&owner, &locator, data.clone(), 3600, None)
        .await
        .unwrap();
    assert_eq!(sender.get_link(&locator).await.unwrap(), data);
    c.delete_link(&owner, &locator).await.unwrap();
    let gone = sender.get_link(&locator).await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::NoLink));

    // A command signed for one TCP connection is refused on another.
    let captured = c.signed(
        &m.auth,
        &m.ids.recipient_id,
        tropa_proto::relay::recipient_command::Action::Delete(tropa_proto::relay::DeleteMailbox {}),
    );
    let refused = sender.send_expect_ok(&captured).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::AuthFailed));
    c.delete(&m.auth, &m.ids.recipient_id).await.unwrap();

    let (sent, received) = c.traffic();
    eprintln!("tcp traffic: {sent} bytes sent, {received} received");
    // Four full envelopes came in; the request frames went out.
    assert!(
        received > 4 * tropa_proto::ENVELOPE_SIZE as u64,
        "{received}"
    );
    assert!(sent > 0);
    assert!(!c.is_closed());
    c.abort();
    assert!(c.is_closed());
    assert!(
        mailbox_fails(&c).await,
        "a closed connection serves nothing"
    );
    sender.close().await;
}

async fn mailbox_fails(c: &RelayClient) -> bool {
    let auth = ed25519_dalek::SigningKey::generate(&mut rand::rng());
    let dh = x25519_dalek::StaticSecret::random_from_rng(&mut rand::rng());
    c.create_mailbox(&auth, &x25519_dalek::PublicKey::from(&dh), None)
        .await
        .is_err()
}

/// A relay address whose fingerprint names another key.
fn wrong(addr: &RelayAddress) -> RelayAddress {
    let mut fp = addr.fingerprint;
    fp.0[0] ^= 1;
    RelayAddress {
        fingerprint: Fingerprint(fp.0),
        ..addr.clone()
    }
}

/// Whoever answers over TCP with another key than the address names is
/// `WrongKey`, whatever the transport choice; a short link's prefix is
/// pinned over TCP as over QUIC.
#[tokio::test]
async fn a_wrong_key_over_tcp_is_wrong_key() {
    let relay = Relay::start(Config::default()).await;
    let bad = wrong(&relay.address);
    let prefer_tcp = ConnectOptions {
        prefer: Some(Transport::Tcp),
        ..ConnectOptions::default()
    };
    for (what, opts) in [
        ("tcp", tcp()),
        ("auto", ConnectOptions::default()),
        ("auto, tcp first", prefer_tcp.clone()),
    ] {
        let start = Instant::now();
        let err = RelayClient::connect_with(&bad, &opts).await.unwrap_err();
        eprintln!("{what}: {err} after {:?}", start.elapsed());
        assert!(matches!(err, ConnectError::WrongKey), "{what}: {err}");
    }

    let host = &relay.address.host;
    let port = relay.address.port;
    let prefix = relay.address.fingerprint.prefix();
    let c = RelayClient::connect_prefix_with(host, port, &prefix, &tcp())
        .await
        .unwrap();
    assert_eq!(c.transport(), Transport::Tcp);
    assert_eq!(c.fingerprint(), relay.address.fingerprint);
    mailbox(&c).await;
    let other = bad.fingerprint.prefix();
    let err = RelayClient::connect_prefix_with(host, port, &other, &prefer_tcp)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::WrongKey), "{err}");
    relay.stop().await;
}

/// `auto` against a relay process that serves no UDP (`quic = false`):
/// QUIC gets no answer, TCP starts after QUIC's head start and connects;
/// with `prefer = tcp` (what worked last time) TCP goes first and connects
/// at once. Against a relay that serves both, `auto` takes QUIC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_tcp_when_udp_gets_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(dir.path(), &["quic = false"]);
    let (c, took) = timed(&relay.address, &ConnectOptions::default(), "auto").await;
    assert_eq!(c.transport(), Transport::Tcp);
    assert!(took >= QUIC_FALLBACK_AFTER, "QUIC had its head start");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let m = SecuredMailbox::create(&c).await;
    deliver(&m, &c, &c, 2).await;

    let remembered = ConnectOptions {
        prefer: Some(c.transport()),
        ..ConnectOptions::default()
    };
    let (again, took) = timed(&relay.address, &remembered, "auto, tcp first").await;
    assert_eq!(again.transport(), Transport::Tcp);
    assert!(
        took < QUIC_FALLBACK_AFTER,
        "no head start to wait out: {took:?}"
    );
    mailbox(&again).await;
    drop(relay);

    let both = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(both.path());
    let (q, _) = timed(&relay.address, &ConnectOptions::default(), "auto, both").await;
    assert_eq!(q.transport(), Transport::Quic);
    mailbox(&q).await;
}

/// A `microsocks` SOCKS5 proxy on 127.0.0.1 whose own connections leave
/// from 127.0.0.2, so the relay can tell the proxy's address from the
/// client's.
/// Through the proxy the relay sees only the proxy's address (127.0.0.2),
/// never the client's (127.0.0.1, which it does see on a direct
/// connection), and everything works: `auto` with a proxy means TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_socks5_the_relay_sees_only_the_proxy() {
    let Some(proxy) = Microsocks::start(None) else {
        return;
    };
    let relay = Relay::start(Config::default()).await;
    let opts = via(&proxy.socks5(None));
    let (c, _) = timed(&relay.address, &opts, "socks5").await;
    let (sender, _) = timed(&relay.address, &opts, "a second socks5").await;
    assert_eq!(c.transport(), Transport::Tcp);
    let m = SecuredMailbox::create(&c).await;
    deliver(&m, &sender, &c, 2).await;
    assert_eq!(relay.peer_ips(), vec![lo(2)], "only the proxy's address");

    let quic = ConnectOptions {
        transport: TransportChoice::Quic,
        ..opts.clone()
    };
    let err = RelayClient::connect_with(&relay.address, &quic)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::QuicThroughSocks5), "{err}");

    // The contrast: a direct connection shows the relay the client's own
    // address.
    let direct = RelayClient::connect_with(&relay.address, &tcp())
        .await
        .unwrap();
    let mut seen = relay.peer_ips();
    seen.sort();
    assert_eq!(seen, vec![lo(1), lo(2)]);
    // A dropped client's connection ends (nothing keeps its driver alive),
    // and the relay gives the address its slot back.
    drop(direct);
    let start = Instant::now();
    while relay.peer_ips().contains(&lo(1)) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a dropped TCP client still holds its connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("dropped connection gone after {:?}", start.elapsed());
    c.close().await;
    sender.close().await;
    relay.stop().await;
}

/// Beyond the relay-wide stream budget the relay answers "busy" without
/// reading the request and resets the stream: the client over TCP reports
/// the relay's answer (`RATE_LIMITED`), even for a full envelope whose
/// writing the reset may cut short, and is served again once the streams
/// are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_answer_over_tcp_is_the_relays_answer() {
    use tokio::io::AsyncWriteExt as _;
    let relay = Relay::start(Config {
        memory_budget_mib: 1,
        ..Config::default()
    })
    .await;
    let c = RelayClient::connect_with(&relay.address, &tcp())
        .await
        .unwrap();
    let m = SecuredMailbox::create(&c).await;
    let budget = (1024 * 1024 / tropa_relay::server::STREAM_COST) as usize;
    let hog = relay.tcp_from(Some(lo(3))).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..budget {
        let (mut w, r) = hog.open().await.unwrap();
        w.write_all(&[0, 0]).await.unwrap();
        held.push((w, r));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for fill in 0..8 {
        let busy = c
            .deposit(&m.ids.sender_id, envelope(fill), Some(&m.sender))
            .await
            .unwrap_err();
        assert_eq!(busy.code(), Some(ErrorCode::RateLimited), "{busy:?}");
    }
    drop(held);
    drop(hog);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.deposit(&m.ids.sender_id, envelope(1), Some(&m.sender))
        .await
        .unwrap();
    relay.stop().await;
}

/// A proxy that wants a username and password: the right ones work (and
/// the relay still sees only the proxy), a wrong password or none is
/// `ProxyAuth` naming the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_with_a_username_and_password() {
    let creds = ("contact-1", "s3cret");
    let Some(proxy) = Microsocks::start(Some(creds)) else {
        return;
    };
    let relay = Relay::start(Config::default()).await;
    let (c, _) = timed(&relay.address, &via(&proxy.socks5(Some(creds))), "user").await;
    mailbox(&c).await;
    assert_eq!(relay.peer_ips(), vec![lo(2)]);

    let name = proxy.addr.to_string();
    for (what, given) in [
        ("a wrong password", Some(("contact-1", "wrong"))),
        ("no credentials", None),
    ] {
        let err = RelayClient::connect_with(&relay.address, &via(&proxy.socks5(given)))
            .await
            .unwrap_err();
        eprintln!("{what}: {err}");
        assert!(
            matches!(&err, ConnectError::ProxyAuth { proxy, .. } if *proxy == name),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains(&name), "{err}");
    }
    c.close().await;
    relay.stop().await;
}

/// A proxy that is not there is `ProxyUnreachable`, and a proxy that
/// cannot reach the relay is `Proxy`, both naming the proxy: never taken
/// for an unreachable relay.
#[tokio::test]
async fn proxy_failures_name_the_proxy() {
    let relay = Relay::start(Config::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let nobody: Socks5 = closed.to_string().parse().unwrap();
    let err = RelayClient::connect_with(&relay.address, &via(&nobody))
        .await
        .unwrap_err();
    eprintln!("no proxy: {err}");
    assert!(
        matches!(&err, ConnectError::ProxyUnreachable { proxy, .. } if *proxy == closed.to_string()),
        "{err:?}"
    );

    let Some(proxy) = Microsocks::start(None) else {
        relay.stop().await;
        return;
    };
    let address = relay.address.clone();
    relay.stop().await;
    let err = RelayClient::connect_with(&address, &via(&proxy.socks5(None)))
        .await
        .unwrap_err();
    eprintln!("relay gone behind the proxy: {err}");
    assert!(
        matches!(&err, ConnectError::Proxy { proxy: p, .. } if *p == proxy.addr.to_string()),
        "{err:?}"
    );
}

//! Short invitation links (issue 11) with real `tropa` and `tropa-relay`
//! processes: `tropa invite` prints a `TROPA:I/...` link of at most 100
//! characters (and a QR code that fits 40 columns); another profile
//! accepts it and both write to each other; the relay's link data is gone
//! once the Hello arrived, so the link then fails with a clear error; the
//! long link still works; a link whose fingerprint prefix is not the
//! relay's is refused before the relay sees so much as a finished
//! handshake; damaged, tampered-with and unreachable links each get their
//! own error; and the relay's directory holds neither the link's locator,
//! its data, nor anything else a privacy scan looks for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tropa_client::{Client, LinkResolveError, Network};
use tropa_e2e::{LinkKind, LinkSecret, ShortLink};
use tropa_proto::RelayAddress;
use tropa_proto::relay::ErrorCode;
use tropa_relay_client::RelayClient;
use tropa_tests::{Profile, RelayProcess, files_containing};

/// The relay with its metrics on a loopback TCP port; returns the port.
fn relay_with_metrics(data: &std::path::Path) -> (RelayProcess, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let metrics = format!("metrics_listen = \"127.0.0.1:{port}\"");
    (RelayProcess::start_with(data, &[&metrics]), port)
}

/// The relay's counter `tropa_relay_NAME_total`, read from its metrics.
fn counter(port: u16, name: &str) -> u64 {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let key = format!("tropa_relay_{name}_total ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

/// `tropa invite` on `p` with `args`: the link it printed (first line).
fn invite(p: &Profile, args: &[&str]) -> String {
    let mut all = vec!["invite"];
    all.extend_from_slice(args);
    let out = p.tropa(&all).ok().stdout;
    out.lines().next().unwrap().trim().to_owned()
}

/// What a link's relay serves for it, fetched the way a joiner does.
async fn fetch(link: &ShortLink) -> Result<bytes::Bytes, tropa_relay_client::RequestError> {
    let c = RelayClient::connect_prefix(link.host(), link.port(), &link.fingerprint_prefix())
        .await
        .unwrap();
    let r = c.get_link(&link.locator()).await;
    c.close().await;
    r
}

/// Bob writes to Alice and Alice back, each reading the other's text.
fn both_ways(alice: &Profile, bob: &Profile, tag: &str) {
    bob.tropa_input(&["send", "alice"], &format!("from bob {tag}\n"))
        .ok();
    alice.tropa(&["sync"]).ok();
    let read = alice.tropa(&["read", "bob"]).ok().stdout;
    assert!(read.contains(&format!("from bob {tag}")), "{read}");
    alice
        .tropa_input(&["send", "bob"], &format!("from alice {tag}\n"))
        .ok();
    bob.tropa(&["sync"]).ok();
    let read = bob.tropa(&["read", "alice"]).ok().stdout;
    assert!(read.contains(&format!("from alice {tag}")), "{read}");
}

#[test]
fn a_short_link_connects_two_profiles_and_is_gone_once_used() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, metrics) = relay_with_metrics(&dir.path().join("relay"));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    let carol = Profile::init(dir.path(), "carol", &relay.address);
    let rt = tokio::runtime::Runtime::new().unwrap();

    let text = invite(&alice, &["--name", "bob"]);
    eprintln!("short link: {} characters: {text}", text.len());
    assert!(text.starts_with("TROPA:I/"), "{text}");
    assert!(text.len() <= 100, "{} characters", text.len());
    let link: ShortLink = text.parse().unwrap();
    assert!(link.matches_relay(&relay.address));
    assert_eq!(counter(metrics, "links_stored"), 1);

    // Before it is used: the relay serves the data; its directory holds
    // neither the locator nor the bytes (sealed again at rest).
    let data = rt.block_on(fetch(&link)).unwrap();
    let started = Instant::now();
    bob.tropa_input(&["accept", "--name", "alice"], &format!("{text}\n"))
        .ok();
    eprintln!("accept of a short link: {:?}", started.elapsed());
    let joined = alice.tropa(&["sync"]).ok();
    assert!(joined.stdout.contains("1 joined"), "{joined:?}");
    assert_eq!(counter(metrics, "links_deleted"), 1);
    let gone = rt.block_on(fetch(&link)).unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::NoLink), "{gone}");
    both_ways(&alice, &bob, "over a short link");

    // The same link again: its data is gone, and the error says why.
    let again = carol.tropa_input(&["accept", "--name", "alice"], &text);
    assert_eq!(again.code, 6, "{again:?}");
    assert!(again.stderr.contains("no longer works"), "{again:?}");
    assert!(again.stderr.contains("already used"), "{again:?}");
    let err = rt
        .block_on(Client::resolve_link(&text, &Network::default()))
        .unwrap_err();
    assert!(matches!(err, LinkResolveError::Gone), "{err:?}");

    // Privacy scan (as `cli.rs` does for mailboxes): no locator, no link
    // data, no secret, no link text, no alias or name on the relay's disk.
    let locator = link.locator();
    let secret = *link.secret().as_bytes();
    for (what, needle) in [
        ("the locator", &locator[..]),
        ("the link data", &data[..64]),
        ("the link data's end", &data[data.len() - 64..]),
        ("the secret", &secret[..]),
        ("the link", text.as_bytes()),
        (
            "the link in lower case",
            text.to_ascii_lowercase().as_bytes(),
        ),
        ("an alias", b"alice".as_slice()),
        ("a message", b"over a short link".as_slice()),
    ] {
        assert!(
            files_containing(&relay.data, needle).is_empty(),
            "the relay's directory holds {what}"
        );
    }
    // The profiles hold the locator only sealed in their store.
    for p in [&alice, &bob] {
        assert!(files_containing(&p.home, &locator).is_empty());
        assert!(files_containing(&p.home, text.as_bytes()).is_empty());
    }
}

#[test]
fn a_long_link_still_works_and_an_older_form_is_printed_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    let long = invite(&alice, &["--name", "bob", "--long"]);
    assert!(long.starts_with("tropa:invite#"), "{long}");
    assert!(long.len() > 1000, "{} characters", long.len());
    bob.tropa_input(&["accept", "--name", "alice"], &long).ok();
    let joined = alice.tropa(&["sync"]).ok();
    assert!(joined.stdout.contains("1 joined"), "{joined:?}");
    both_ways(&alice, &bob, "over a long link");
}

/// The link's QR code at 40 columns: every line of `invite --qr` fits, and
/// the half blocks are a QR code of at most 37 modules with a quiet zone
/// of one module and its three finder patterns.
#[test]
fn the_qr_code_of_a_short_link_fits_40_columns() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let out = alice.tropa(&["invite", "--name", "bob", "--qr"]).ok();
    let mut lines = out.stdout.lines();
    let link = lines.next().unwrap();
    assert!(link.len() <= 100, "{link}");
    let qr: Vec<&str> = lines.collect();
    // The link itself wraps on two lines at 40 columns; the code must not.
    for l in &qr {
        assert!(
            l.chars().count() <= 40,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    // Light modules are blocks (for a dark terminal); two rows per line.
    let mut rows: Vec<Vec<bool>> = Vec::new();
    for l in &qr {
        let (top, bottom): (Vec<bool>, Vec<bool>) = l
            .chars()
            .map(|c| match c {
                ' ' => (false, false),
                '▀' => (true, false),
                '▄' => (false, true),
                '█' => (true, true),
                other => panic!("not a half block: {other:?}"),
            })
            .unzip();
        rows.push(top);
        rows.push(bottom);
    }
    let side = qr[0].chars().count();
    rows.truncate(side);
    let modules = side - 2;
    eprintln!(
        "{} characters; QR {modules} modules (version {}), {side} columns, {} lines",
        link.len(),
        (modules - 17) / 4,
        qr.len()
    );
    assert!([21, 25, 29, 33, 37].contains(&modules), "{modules} modules");
    assert_eq!(qr.len(), side.div_ceil(2));
    assert!(rows.iter().all(|r| r.len() == side));
    let light = |r: usize, c: usize| rows[r][c];
    for i in 0..side {
        for (r, c) in [(0, i), (side - 1, i), (i, 0), (i, side - 1)] {
            assert!(light(r, c), "quiet zone at {r},{c}");
        }
    }
    for (r0, c0) in [(1, 1), (1, side - 8), (side - 8, 1)] {
        for i in 0..7 {
            for j in 0..7 {
                let dark = i == 0
                    || i == 6
                    || j == 0
                    || j == 6
                    || (2..5).contains(&i) && (2..5).contains(&j);
                assert_eq!(!light(r0 + i, c0 + j), dark, "finder at {r0},{c0} +{i},{j}");
            }
        }
    }
}

/// A link naming the relay's host and port with another relay's
/// fingerprint prefix: the connection is refused in the TLS handshake, so
/// the relay never completes a connection, let alone sees the locator.
#[test]
fn a_link_with_another_fingerprint_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, metrics) = relay_with_metrics(&dir.path().join("relay"));
    let other = RelayProcess::start(&dir.path().join("other"));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    let link: ShortLink = invite(&alice, &["--name", "bob"]).parse().unwrap();
    let forged_relay = RelayAddress {
        fingerprint: other.address.fingerprint,
        ..relay.address.clone()
    };
    let forged = ShortLink::new(LinkKind::Invite, &forged_relay, link.secret().clone()).to_string();
    let before = ["connections", "link_fetches", "errors"].map(|n| counter(metrics, n));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(Client::resolve_link(&forged, &Network::default()))
        .unwrap_err();
    assert!(matches!(err, LinkResolveError::WrongKey), "{err:?}");
    let r = bob.tropa_input(&["accept", "--name", "alice"], &forged);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("another key"), "{r:?}");
    assert!(r.stderr.contains("damaged"), "{r:?}");

    let after = ["connections", "link_fetches", "errors"].map(|n| counter(metrics, n));
    assert_eq!(before, after, "connections, fetches, errors");
    // The real link still works afterwards.
    bob.tropa_input(&["accept", "--name", "alice"], &link.to_string())
        .ok();
}

/// Every other way a short link fails has its own error: garbage, a link
/// whose data is not sealed with it (someone else's data under the
/// locator), and a relay that is not there.
#[test]
fn damaged_tampered_and_unreachable_links_get_their_own_errors() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let make = |secret: &LinkSecret| {
        ShortLink::new(LinkKind::Invite, &relay.address, secret.clone()).to_string()
    };

    for bad in [
        "TROPA:I/",
        "TROPA:I/127.0.0.1:1/AAAA/BBBB",
        "TROPA:X/a:1/b/c",
    ] {
        let err = rt
            .block_on(Client::resolve_link(bad, &Network::default()))
            .unwrap_err();
        assert!(
            matches!(err, LinkResolveError::BadLink(_)),
            "{bad}: {err:?}"
        );
        let r = bob.tropa_input(&["accept", "--name", "alice"], bad);
        assert_eq!(r.code, 6, "{bad}: {r:?}");
        assert!(r.stderr.contains("invalid invitation link"), "{r:?}");
    }

    // 2048 bytes under the right locator, but not sealed with the link's
    // key: stored by someone who knows the locator only.
    let secret = LinkSecret::generate(&mut rand::rng());
    rt.block_on(async {
        let c = RelayClient::connect(&relay.address).await.unwrap();
        let owner = SigningKey::generate(&mut rand::rng());
        let junk = bytes::Bytes::from(vec![7u8; tropa_proto::LINK_DATA_SIZE]);
        c.put_link(&owner, &secret.locator(), junk, 3600, None)
            .await
            .unwrap();
        c.close().await;
    });
    let err = rt
        .block_on(Client::resolve_link(&make(&secret), &Network::default()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            LinkResolveError::NotMatching(tropa_e2e::LinkDataError::Undecryptable)
        ),
        "{err:?}"
    );
    let r = bob.tropa_input(&["accept", "--name", "alice"], &make(&secret));
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("does not match"), "{r:?}");

    // The relay is gone: unreachable, which is worth trying again (exit 5).
    let link = make(&LinkSecret::generate(&mut rand::rng()));
    relay.kill9();
    let started = Instant::now();
    let r = bob.tropa_input(&["accept", "--name", "alice"], &link);
    eprintln!(
        "unreachable link relay reported after {:?}",
        started.elapsed()
    );
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains("cannot reach the relay this link names"),
        "{r:?}"
    );
}

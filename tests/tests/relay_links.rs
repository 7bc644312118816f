//! Short links' data and intake mailboxes (issue 11) against real
//! `tropa-relay` processes over QUIC, through the relay client's methods:
//! a link is stored by its owner, fetched over a connection pinned only by
//! the 16-byte fingerprint prefix a short link carries (and refused by a
//! relay with another key), replaced or deleted by its owner only, kept
//! across kill -9, and never on the relay's disk as the locator or the
//! bytes clients exchange; an intake mailbox takes unsigned deposits from
//! anyone up to its rate limit and cannot be secured.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use rand::Rng as _;
use tropa_proto::relay::ErrorCode;
use tropa_proto::{ENVELOPE_SIZE, FingerprintPrefix, LINK_DATA_SIZE, LINK_LOCATOR_LEN};
use tropa_relay_client::{ConnectError, RelayClient, RequestError, requests};
use tropa_tests::{RelayProcess, files_containing};
use x25519_dalek::{PublicKey, StaticSecret};

fn locator() -> [u8; LINK_LOCATOR_LEN] {
    let mut l = [0u8; LINK_LOCATOR_LEN];
    rand::rng().fill_bytes(&mut l);
    l
}

/// Link data that is not constant, so a substring search means something.
fn link_data(fill: u8) -> Bytes {
    Bytes::from(
        (0..LINK_DATA_SIZE)
            .map(|i| (i as u8).wrapping_mul(29).wrapping_add(fill))
            .collect::<Vec<_>>(),
    )
}

fn code<T: std::fmt::Debug>(r: Result<T, RequestError>) -> ErrorCode {
    r.unwrap_err().code().expect("a relay error code")
}

const WEEK: u32 = 7 * 24 * 3600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_fetched_over_a_prefix_pinned_connection_and_only_its_owner_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(&dir.path().join("relay"), &["max_links = 2"]);
    let other_relay = RelayProcess::start(&dir.path().join("other"));
    let addr = &relay.address;

    let owner = SigningKey::generate(&mut rand::rng());
    let l = locator();
    let inviter = RelayClient::connect(addr).await.unwrap();
    let granted = inviter
        .put_link(&owner, &l, link_data(1), WEEK, None)
        .await
        .unwrap();
    assert_eq!(granted, Duration::from_secs(u64::from(WEEK)));

    // The joiner knows only host, port and the 16-byte prefix.
    let prefix = addr.fingerprint.prefix();
    let joiner = RelayClient::connect_prefix(&addr.host, addr.port, &prefix)
        .await
        .unwrap();
    assert_eq!(joiner.fingerprint(), addr.fingerprint, "the full key");
    assert_eq!(joiner.address(), &addr.without_password());
    assert_eq!(joiner.get_link(&l).await.unwrap(), link_data(1));
    assert_eq!(code(joiner.get_link(&locator()).await), ErrorCode::NoLink);

    // A relay with another key is refused, whether it answers at the
    // link's address or the prefix is off by one byte.
    let (host, port) = (&other_relay.address.host, other_relay.address.port);
    let err = RelayClient::connect_prefix(host, port, &prefix)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::WrongKey), "{err}");
    let mut off = prefix;
    off.0[15] ^= 1;
    let err = RelayClient::connect_prefix(&addr.host, addr.port, &off)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::WrongKey), "{err}");
    // The other relay's own prefix works there (the pin is not "any key").
    let there = other_relay.address.fingerprint.prefix();
    let c = RelayClient::connect_prefix(host, port, &there)
        .await
        .unwrap();
    assert_eq!(c.fingerprint(), other_relay.address.fingerprint);
    assert_eq!(code(c.get_link(&l).await), ErrorCode::NoLink, "not there");

    // Only the owner replaces it; a stranger changes nothing.
    let stranger = SigningKey::generate(&mut rand::rng());
    assert_eq!(
        code(
            joiner
                .put_link(&stranger, &l, link_data(9), WEEK, None)
                .await
        ),
        ErrorCode::AuthFailed
    );
    assert_eq!(
        code(joiner.delete_link(&stranger, &l).await),
        ErrorCode::AuthFailed
    );
    inviter
        .put_link(&owner, &l, link_data(2), 3600, None)
        .await
        .unwrap();
    assert_eq!(joiner.get_link(&l).await.unwrap(), link_data(2));

    // Wrong sizes.
    let mut big = link_data(3).to_vec();
    big.push(0);
    let short = Bytes::from(vec![3u8; LINK_DATA_SIZE - 1]);
    let fresh = locator();
    for (data, want) in [
        (Bytes::from(big), ErrorCode::TooLarge),
        (short, ErrorCode::Malformed),
    ] {
        assert_eq!(
            code(inviter.put_link(&owner, &fresh, data, WEEK, None).await),
            want
        );
    }
    // The relay holds at most max_links = 2.
    inviter
        .put_link(&owner, &fresh, link_data(4), WEEK, None)
        .await
        .unwrap();
    assert_eq!(
        code(
            inviter
                .put_link(&owner, &locator(), link_data(5), WEEK, None)
                .await
        ),
        ErrorCode::Quota
    );

    // A delete signed on one connection is worthless on another...
    let captured = requests::delete_link(inviter.binding(), &owner, &l);
    let replayed = joiner.send_expect_ok(&captured).await.unwrap_err();
    assert_eq!(replayed.code(), Some(ErrorCode::AuthFailed));
    assert_eq!(joiner.get_link(&l).await.unwrap(), link_data(2));
    // ...and the owner deletes it from any connection of its own.
    let owner_again = RelayClient::connect(addr).await.unwrap();
    owner_again.delete_link(&owner, &l).await.unwrap();
    assert_eq!(code(joiner.get_link(&l).await), ErrorCode::NoLink);
    assert_eq!(
        code(owner_again.delete_link(&owner, &l).await),
        ErrorCode::NoLink
    );
    // Its place is free again.
    inviter
        .put_link(&owner, &locator(), link_data(6), WEEK, None)
        .await
        .unwrap();
}

/// Links survive kill -9 once `LinkStored` was answered; the data
/// directory holds neither the locator nor the bytes put and fetched (only
/// a hash of the locator and the data sealed again under a key derived from
/// it), and the log holds no locator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_survive_kill9_and_the_data_dir_holds_no_locator_or_link_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let relay = RelayProcess::start(&data);
    let owner = SigningKey::generate(&mut rand::rng());
    let links: Vec<_> = (0..5u8).map(|i| (locator(), link_data(i))).collect();
    let c = RelayClient::connect(&relay.address).await.unwrap();
    for (l, d) in &links {
        c.put_link(&owner, l, d.clone(), WEEK, None).await.unwrap();
    }
    relay.kill9();
    drop(c);

    let relay = RelayProcess::start(&data);
    let addr = &relay.address;
    let c = RelayClient::connect_prefix(&addr.host, addr.port, &addr.fingerprint.prefix())
        .await
        .unwrap();
    for (l, d) in &links {
        assert_eq!(&c.get_link(l).await.unwrap(), d, "every stored link");
    }
    let log = relay.stderr();
    for (l, d) in &links {
        assert!(files_containing(&data, l).is_empty(), "locator on disk");
        assert!(files_containing(&data, &d[..64]).is_empty(), "data on disk");
        assert!(!log.contains(&hex::encode(l)), "locator in the log");
    }
    let (status, _) = relay.terminate(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()));
}

/// An intake mailbox takes unsigned deposits from any connection up to its
/// burst, then RATE_LIMITED (per mailbox, not per connection); it cannot be
/// secured; its owner receives everything accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_mailbox_is_open_to_all_rate_limited_and_never_secured() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &["intake_deposit_burst = 3", "intake_deposits_per_hour = 1"],
    );
    let addr = &relay.address;
    let owner = RelayClient::connect(addr).await.unwrap();
    let auth = SigningKey::generate(&mut rand::rng());
    let dh = StaticSecret::random_from_rng(&mut rand::rng());
    let mb = owner
        .create_intake_mailbox(&auth, &PublicKey::from(&dh), None)
        .await
        .unwrap();
    let envelope = |n: u8| Bytes::from(vec![n; ENVELOPE_SIZE]);
    for n in 0..3u8 {
        // Each request comes from its own connection, as strangers' do.
        let stranger = RelayClient::connect(addr).await.unwrap();
        stranger
            .deposit(&mb.sender_id, envelope(n), None)
            .await
            .unwrap();
    }
    let stranger = RelayClient::connect(addr).await.unwrap();
    assert_eq!(
        code(stranger.deposit(&mb.sender_id, envelope(3), None).await),
        ErrorCode::RateLimited
    );
    // An ordinary mailbox on the same relay is not affected.
    let plain = owner
        .create_mailbox(&auth, &PublicKey::from(&dh), None)
        .await
        .unwrap();
    stranger
        .deposit(&plain.sender_id, envelope(4), None)
        .await
        .unwrap();
    // Securing an intake mailbox is refused.
    let sender = SigningKey::generate(&mut rand::rng());
    let refused = owner
        .secure(&auth, &mb.recipient_id, &sender.verifying_key().to_bytes())
        .await;
    assert_eq!(code(refused), ErrorCode::Malformed);
    // The owner receives the three it took.
    let mut sub = owner.subscribe(&auth, &mb.recipient_id).await.unwrap();
    let mut got = Vec::new();
    while let Ok(Ok(Some(d))) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
        got.push(d.open(&dh, &mb.relay_dh_pub, &mb.recipient_id).unwrap()[0]);
        if got.len() == 3 {
            break;
        }
    }
    assert_eq!(got, vec![0, 1, 2]);
}

/// The fingerprint prefix a short link carries is the first 16 bytes of
/// the full fingerprint (as the address module defines it).
#[test]
fn the_prefix_is_the_first_16_bytes() {
    let fp = tropa_proto::Fingerprint([7; 32]);
    assert_eq!(fp.prefix(), FingerprintPrefix([7; 16]));
}

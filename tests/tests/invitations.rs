//! Invitation lifecycle with real relay processes: one-time use, expiry of
//! unused invitations, and the grace period for a Hello that arrives after
//! the invitation expired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tropa_relay_client::RelayClient;
use tropa_tests::{Profile, RelayProcess};

/// L1 of the security review: Bob accepts Alice's invitation just before it
/// expires; Alice syncs only after it expired. She must accept the Hello
/// (within the grace period) instead of dropping it as expired, since Bob
/// already believes they are connected.
#[test]
fn a_hello_sent_before_expiry_is_accepted_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let link = {
        let mut c = alice.open();
        rt.block_on(c.invite_with_ttl(Some("bob"), 3)).unwrap().0
    };
    bob.tropa(&["accept", &link, "--name", "alice"]).ok();
    std::thread::sleep(Duration::from_millis(4100));
    let report = alice.sync_with(tropa_client::SyncOptions::default());
    assert_eq!((report.joined, report.dropped), (1, 0), "{report:?}");
    bob.tropa(&["send", "alice", "made it"]).ok();
    alice.tropa(&["sync"]).ok();
    let read = alice.tropa(&["read", "bob"]).ok();
    assert!(read.stdout.contains("made it"), "{read:?}");
}

#[test]
fn an_invitation_is_used_once_and_expires_unused() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let bob = Profile::init(dir.path(), "bob", &relay.address);
    let carol = Profile::init(dir.path(), "carol", &relay.address);

    // Accepting the same link twice (under another name) is refused.
    let link = alice
        .tropa(&["invite", "--name", "bob"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    bob.tropa(&["accept", &link, "--name", "alice"]).ok();
    let again = bob.tropa(&["accept", &link, "--name", "alice2"]);
    assert_eq!(again.code, 6, "{again:?}");
    assert!(again.stderr.contains("already accepted"), "{again:?}");

    // An invitation nobody accepts expires: its secrets, its placeholder
    // contact and its relay mailbox are deleted.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let link = {
        let mut c = alice.open();
        rt.block_on(c.invite_with_ttl(Some("nobody"), 1)).unwrap().0
    };
    let inv = tropa_e2e::Invitation::from_link(&link).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let late = carol.tropa(&["accept", &link, "--name", "alice"]);
    assert_eq!(late.code, 6, "{late:?}");
    assert!(late.stderr.contains("expired"), "{late:?}");
    let mut c = alice.open();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = tropa_client::SyncOptions {
        invitation_grace: Duration::ZERO,
        ..Default::default()
    };
    rt.block_on(c.sync(opts, Some(tx))).unwrap();
    let mut expired = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let tropa_client::SyncEvent::InvitationExpired { alias } = ev {
            expired.push(alias);
        }
    }
    assert_eq!(expired, vec!["nobody".to_owned()]);
    let aliases: Vec<String> = c.contacts().unwrap().into_iter().map(|c| c.alias).collect();
    assert_eq!(aliases, vec!["bob".to_owned()]);
    drop(c);
    let err = rt
        .block_on(async {
            let r = RelayClient::connect(inv.relay()).await.unwrap();
            r.deposit(
                inv.sender_id(),
                vec![0u8; tropa_proto::ENVELOPE_SIZE].into(),
                None,
            )
            .await
        })
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(tropa_proto::relay::ErrorCode::NoMailbox),
        "{err}"
    );
}

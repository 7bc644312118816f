//! A handler with many contacts on one relay: every mailbox is subscribed on
//! one connection, and acks and deposits must still get through (a
//! subscription holds a stream for good; the relay used to allow 64 streams
//! per connection, and requests waited for a free one forever).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tropa_relay_client::RelayClient;
use tropa_tests::{Profile, RelayProcess};

const MAILBOXES: usize = 70;

#[test]
fn seventy_mailboxes_on_one_relay_all_work() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &[
            "creation_burst_per_connection = 1000",
            "creation_burst_per_address = 1000",
            "rate_burst = 1000",
        ],
    );
    let alice = Profile::init(dir.path(), "alice", &relay.address);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut client = alice.open();
    let mut last = String::new();
    rt.block_on(async {
        let (handle, _events) =
            tropa_client::SyncHandle::start(&client, tropa_client::SyncOptions::default());
        for i in 0..MAILBOXES {
            last = handle.invite(Some(&format!("c{i}"))).await.unwrap().0;
        }
        handle.stop().await.unwrap();
    });
    // Someone deposits into the last invitation's (open) mailbox.
    let inv = tropa_e2e::Invitation::from_link(&last).unwrap();
    rt.block_on(async {
        let c = RelayClient::connect(inv.relay()).await.unwrap();
        c.deposit(
            inv.sender_id(),
            vec![7u8; tropa_proto::ENVELOPE_SIZE].into(),
            None,
        )
        .await
        .unwrap();
    });
    let start = Instant::now();
    let report = rt
        .block_on(client.sync(tropa_client::SyncOptions::default(), None))
        .unwrap();
    assert_eq!(report.dropped, 1, "the 70th mailbox was read: {report:?}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the sync finished by itself, not at its deadline ({:?})",
        start.elapsed()
    );
}

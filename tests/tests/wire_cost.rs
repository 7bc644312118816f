//! What commands cost on the wire, through a counting UDP proxy in front of
//! a real relay. On metered data every byte a command makes the relay send
//! is paid for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tropa_tests::udp_proxy::UdpProxy;
use tropa_tests::{Profile, RelayProcess, connect_profiles};

/// A one-shot `sync` that received a delivery must close its connection
/// properly before exiting. Before, the process exited before its close
/// frame left, and the relay went on retransmitting its last unacknowledged
/// data to the dead address: the recipient's `sync` cost 29.7–46.7 KB down
/// instead of 18.7 KB (tests/tools/text-cost.sh).
#[test]
fn a_finished_sync_leaves_the_relay_nothing_to_resend() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let proxy = UdpProxy::start(relay.address.socket_addr().unwrap());
    let via = tropa_proto::RelayAddress::new(relay.address.fingerprint, proxy.addr);
    let alice = Profile::init(dir.path(), "alice", &via);
    let bob = Profile::init(dir.path(), "bob", &via);
    connect_profiles(&alice, "bob", &bob, "alice");
    for round in 0..3 {
        bob.tropa_input(&["send", "alice"], &format!("round {round}"))
            .ok();
        let started = Instant::now();
        alice.tropa(&["sync"]).ok();
        let exited = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let log = proxy.log();
        let in_sync: usize = log
            .iter()
            .filter(|d| !d.up && d.at >= started && d.at <= exited)
            .map(|d| d.len)
            .sum();
        let after: usize = log
            .iter()
            .filter(|d| !d.up && d.at > exited + Duration::from_millis(200))
            .filter(|d| d.at < exited + Duration::from_secs(2))
            .map(|d| d.len)
            .sum();
        assert_eq!(
            after, 0,
            "round {round}: the relay sent {after} bytes after the sync exited ({in_sync} during it)"
        );
        assert!(in_sync < 22_000, "round {round}: {in_sync} bytes down");
    }
}

//! The operator's deploy files as shipped: the systemd unit's exposure
//! score (`systemd-analyze security --offline=yes`, when installed; CI
//! installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::process::Command;

/// The score the unit must not exceed. 1.1 now: what is left is
/// IPAddressDeny= (a public relay accepts any address, and `deny any,
/// allow any` would only fool the score), PrivateNetwork= and the
/// Internet address families (a relay needs the network) and
/// RootDirectory= (not verified under a running systemd here).
const MAX_EXPOSURE: f64 = 1.1;

#[test]
fn the_systemd_unit_scores_at_most_the_stated_exposure() {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/tropa-relay.service");
    let Ok(out) = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", unit])
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for tropa-relay.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in: {text}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} above {MAX_EXPOSURE}: {text}"
    );
}

//! `tropa config`: the metered setting is off by default, kept in the
//! profile across commands, shown plainly and as JSON, and a wrong value
//! is a usage error that changes nothing. No relay is needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use tropa_tests::Profile;

#[test]
fn metered_is_off_by_default_and_config_sets_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay: tropa_proto::RelayAddress = format!("tropa://{}@127.0.0.1:9", "A".repeat(43))
        .parse()
        .unwrap();
    let p = Profile::init_offline(dir.path(), "alice", &relay);
    assert_eq!(p.tropa(&["config"]).ok().stdout, "metered: off\n");
    let on = p.tropa(&["config", "metered", "on"]).ok();
    assert!(on.stderr.starts_with("metered: on\n"), "{on:?}");
    assert!(on.stderr.contains("5 min"), "{on:?}");
    assert_eq!(p.tropa(&["config", "show"]).ok().stdout, "metered: on\n");
    let json: serde_json::Value =
        serde_json::from_str(&p.tropa(&["--json", "config"]).ok().stdout).unwrap();
    assert_eq!(json, serde_json::json!({ "metered": true }));
    let bad = p.tropa(&["config", "metered", "maybe"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert_eq!(p.tropa(&["config"]).ok().stdout, "metered: on\n");
    p.tropa(&["config", "metered", "off"]).ok();
    assert_eq!(p.tropa(&["config"]).ok().stdout, "metered: off\n");
    // The relay address is left alone.
    assert_eq!(p.tropa(&["relay"]).ok().stdout.trim(), relay.to_string());
}

//! `tropa config`: the metered setting is off by default, kept in the
//! profile across commands, shown plainly and as JSON, and a wrong value
//! is a usage error that changes nothing; the same for the network
//! settings (transport, SOCKS5 proxy, isolation). No relay is needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use tropa_tests::Profile;

#[test]
fn metered_is_off_by_default_and_config_sets_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay: tropa_proto::RelayAddress = format!("tropa://{}@127.0.0.1:9", "A".repeat(43))
        .parse()
        .unwrap();
    let p = Profile::init_offline(dir.path(), "alice", &relay);
    let settings = |metered: &str| {
        format!("metered: {metered}\ntransport: auto\nsocks5: off\nisolation: profile (default)\n")
    };
    assert_eq!(p.tropa(&["config"]).ok().stdout, settings("off"));
    let on = p.tropa(&["config", "metered", "on"]).ok();
    assert!(on.stderr.starts_with("metered: on\n"), "{on:?}");
    assert!(on.stderr.contains("5 min"), "{on:?}");
    assert_eq!(p.tropa(&["config", "show"]).ok().stdout, settings("on"));
    let json: serde_json::Value =
        serde_json::from_str(&p.tropa(&["--json", "config"]).ok().stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "metered": true,
            "transport": "auto",
            "socks5": null,
            "isolation": "profile",
        })
    );
    let bad = p.tropa(&["config", "metered", "maybe"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert_eq!(p.tropa(&["config"]).ok().stdout, settings("on"));
    p.tropa(&["config", "metered", "off"]).ok();
    assert_eq!(p.tropa(&["config"]).ok().stdout, settings("off"));
    // The relay address is left alone.
    assert_eq!(p.tropa(&["relay"]).ok().stdout.trim(), relay.to_string());
}

/// The network settings: a proxy makes isolation per contact by default,
/// its password is never shown, QUIC and a proxy do not go together, and
/// garbage is a usage error that changes nothing.
#[test]
fn network_settings_are_kept_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let relay: tropa_proto::RelayAddress = format!("tropa://{}@127.0.0.1:9", "A".repeat(43))
        .parse()
        .unwrap();
    let p = Profile::init_offline(dir.path(), "alice", &relay);
    let shown = |p: &Profile| p.tropa(&["config"]).ok().stdout;
    p.tropa(&["config", "transport", "tcp"]).ok();
    p.tropa(&["config", "socks5", "socks5://user:s3cret@127.0.0.1:9050"])
        .ok();
    let out = shown(&p);
    assert_eq!(
        out,
        "metered: off\ntransport: tcp\nsocks5: socks5://127.0.0.1:9050\nisolation: contact (default)\n"
    );
    assert!(!out.contains("s3cret"));
    let quic = p.tropa(&["config", "transport", "quic"]);
    assert_eq!(quic.code, 2, "{quic:?}");
    assert!(quic.stderr.contains("QUIC cannot go through"), "{quic:?}");
    for bad in [
        vec!["config", "socks5", "http://127.0.0.1:9050"],
        vec!["config", "socks5", "127.0.0.1"],
        vec!["config", "transport", "carrier-pigeon"],
        vec!["config", "isolation", "sometimes"],
    ] {
        let r = p.tropa(&bad);
        assert_eq!(r.code, 2, "{bad:?}: {r:?}");
    }
    // A proxy that is not there: the error says so (nothing listens on
    // port 1 here), and nothing goes around it.
    let down = p.tropa(&["--socks5", "127.0.0.1:1", "sync"]);
    assert_eq!(down.code, 5, "{down:?}");
    assert!(
        down.stderr
            .contains("through the SOCKS5 proxy socks5://127.0.0.1:1 (is it running?)"),
        "{down:?}"
    );
    p.tropa(&["config", "isolation", "profile"]).ok();
    assert!(shown(&p).ends_with("isolation: profile\n"));
    p.tropa(&["config", "socks5", "off"]).ok();
    p.tropa(&["config", "isolation", "default"]).ok();
    assert_eq!(
        shown(&p),
        "metered: off\ntransport: tcp\nsocks5: off\nisolation: profile (default)\n"
    );
}

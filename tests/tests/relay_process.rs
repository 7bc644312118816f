//! The `tropa-relay` binary as a real process: address printing, restart
//! after kill -9 keeps every accepted envelope, graceful SIGTERM, and logs
//! without client addresses or mailbox IDs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use tropa_proto::ENVELOPE_SIZE;
use tropa_relay_client::RelayClient;
use tropa_tests::{RelayProcess, SecuredMailbox, bin, files_containing};

fn envelope(n: u8) -> Bytes {
    Bytes::from(
        (0..ENVELOPE_SIZE)
            .map(|i| (i as u8).wrapping_mul(17) ^ n)
            .collect::<Vec<_>>(),
    )
}

#[test]
fn init_address_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let out = Command::new(bin("tropa-relay"))
        .args(["init", "--data"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:4999"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let addr: tropa_proto::RelayAddress = printed.trim().parse().unwrap();
    assert_eq!(addr.port, 4999);
    let out = Command::new(bin("tropa-relay"))
        .args(["address", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), printed);
    // The key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("relay.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "relay.key readable by others");
    }
    // A second init refuses, clearly.
    let out = Command::new(bin("tropa-relay"))
        .args(["init", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already a relay data directory"));
    // Running a directory that is not a relay fails with a hint.
    let out = Command::new(bin("tropa-relay"))
        .args(["run", "--data"])
        .arg(dir.path().join("nothing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tropa-relay init"));
}

#[test]
fn no_arguments_runs_the_default_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("default");
    let out = Command::new(bin("tropa-relay"))
        .args(["init", "--data"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut child = Command::new(bin("tropa-relay"))
        .env("TROPA_RELAY_DATA", &data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: tropa_proto::RelayAddress = line.trim().parse().unwrap();
    assert_ne!(addr.port, 0, "the printed address carries the real port");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_kill9_keeps_every_accepted_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let relay = RelayProcess::start(&data);
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = SecuredMailbox::create(&c).await;
    let n = 20u8;
    for i in 0..n {
        c.deposit(&mb.ids.sender_id, envelope(i), Some(&mb.sender))
            .await
            .unwrap();
    }
    // Every deposit above got `Accepted`. Now crash without any warning.
    relay.kill9();
    drop(c);

    let relay = RelayProcess::start(&data);
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let got = mb.receive(&c, usize::from(n)).await;
    let want: Vec<Vec<u8>> = (0..n).map(|i| envelope(i).to_vec()).collect();
    assert_eq!(got, want, "all accepted envelopes, in order");

    // Privacy of what the relay wrote: no client address or IDs in the logs,
    // no deposit bytes on disk.
    let log = relay.stderr();
    assert!(!log.contains("127.0.0.1"), "log mentions an address: {log}");
    for id in [&mb.ids.recipient_id[..], &mb.ids.sender_id[..]] {
        let hexid: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!log.contains(&hexid));
    }
    assert!(files_containing(&data, &envelope(3)[..64]).is_empty());

    let (status, took) = relay.terminate(Duration::from_secs(5));
    let status = status.expect("relay exits within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5));
}

/// Issue 15: an operator sets public_host in relay.toml. A value the relay
/// cannot put in an address is refused by `check` and by `run` (exit 4,
/// naming the key and its line) instead of being dropped silently; once it
/// is right, `address` prints it at once.
#[test]
fn check_refuses_a_bad_public_host_and_address_follows_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let relay = |args: &[&str]| {
        let out = Command::new(bin("tropa-relay"))
            .args(args)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let out = Command::new(bin("tropa-relay"))
        .args(["init", "--data"])
        .arg(&data)
        .args(["--listen", "0.0.0.0:4998"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let toml_path = data.join("relay.toml");
    let written = std::fs::read_to_string(&toml_path).unwrap();
    assert!(written.contains("# public_host = "), "{written}");
    let lines = written.lines().count();
    for bad in [
        "2001:db8::1",
        "https://relay.example.org",
        "relay.example.org:4998",
    ] {
        std::fs::write(&toml_path, format!("{written}public_host = {bad:?}\n")).unwrap();
        for cmd in ["check", "run", "address"] {
            let (code, stdout, stderr) = relay(&[cmd]);
            assert_eq!(code, 4, "{cmd} {bad}: {stdout} {stderr}");
            assert!(
                stderr.contains(&format!("relay.toml line {}: public_host", lines + 1)),
                "{cmd} {bad}: {stderr}"
            );
            assert!(!stdout.contains("tropa://"), "{cmd} {bad}: {stdout}");
        }
    }
    std::fs::write(
        &toml_path,
        format!("{written}public_host = \"relay.example.org\"\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = relay(&["check"]);
    assert_eq!(code, 0);
    assert!(
        stdout.trim().ends_with("@relay.example.org:4998"),
        "{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    // The example from the documentation and a private address pass the
    // syntax check but are flagged: users elsewhere cannot reach them.
    for (host, says) in [("203.0.113.7", "documentation"), ("10.0.0.5", "private")] {
        std::fs::write(&toml_path, format!("{written}public_host = {host:?}\n")).unwrap();
        let (code, stdout, stderr) = relay(&["check"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(&format!("@{host}:4998")), "{stdout}");
        assert!(
            stderr.contains("warning: public_host") && stderr.contains(says),
            "{host}: {stderr}"
        );
    }
    std::fs::write(
        &toml_path,
        format!("{written}public_host = \"relay.example.org\"\n"),
    )
    .unwrap();
    let (code, stdout, _) = relay(&["address"]);
    assert_eq!(code, 0);
    assert!(
        stdout.trim().ends_with("@relay.example.org:4998"),
        "{stdout}"
    );
}

/// Issue 15: a data directory whose store is in a newer format (an upgrade
/// rolled back, or a directory copied from a newer relay) is refused with
/// words that say what to do, and left as it was; the same directory in
/// this build's format runs.
#[test]
fn a_store_from_a_newer_relay_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    drop(RelayProcess::start(&data));
    let store = data.join("store.redb");
    tropa_relay::store::stamp_redb_format_for_tests(&store, 99).unwrap();
    let out = Command::new(bin("tropa-relay"))
        .args(["run", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no address printed");
    assert!(
        stderr.contains("written by a newer tropa-relay (store format 99"),
        "{stderr}"
    );
    tropa_relay::store::stamp_redb_format_for_tests(&store, tropa_relay::store::FORMAT_VERSION)
        .unwrap();
    // `start` panics unless the relay prints its address.
    drop(RelayProcess::start(&data));
}

/// Issue 15: the backup and move procedure of deploy/README.md, as an
/// operator runs it: stop the relay (SIGTERM), copy the whole data
/// directory to another machine, start it there. The relay keeps its key
/// (same fingerprint) and every pending envelope.
#[tokio::test]
async fn a_stopped_relay_copied_elsewhere_keeps_its_key_and_envelopes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let relay = RelayProcess::start(&data);
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let mb = SecuredMailbox::create(&c).await;
    for i in 0..5u8 {
        c.deposit(&mb.ids.sender_id, envelope(i), Some(&mb.sender))
            .await
            .unwrap();
    }
    drop(c);
    let fingerprint = relay.address.fingerprint;
    let (status, _) = relay.terminate(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "clean stop");

    // "Another machine": a copy made with cp -a, the original gone.
    let moved = dir.path().join("new-server");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::remove_dir_all(&data).unwrap();

    let relay = RelayProcess::start(&moved);
    assert_eq!(
        relay.address.fingerprint, fingerprint,
        "same key, same address"
    );
    let c = RelayClient::connect(&relay.address).await.unwrap();
    let want: Vec<Vec<u8>> = (0..5u8).map(|i| envelope(i).to_vec()).collect();
    assert_eq!(
        mb.receive(&c, 5).await,
        want,
        "every pending envelope, in order"
    );
}

//! Profile-level tests: unlock costs and what `Debug` shows.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::client::views::{ContactInfo, MessageStatus, MessageView};

/// A duress unlock must take as long as a normal one (the informational
/// finding of the security review: it took ~1.5x, a third Argon2 run to
/// create the fresh profile). Counted in Argon2 runs, not timed.
#[test]
fn a_duress_unlock_costs_what_a_normal_unlock_costs() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("p");
    let relay: RelayAddress = format!("tropa://{}@127.0.0.1:4433", "A".repeat(43))
        .parse()
        .unwrap();
    let main = b"plover gasket violin orchard";
    let duress = b"open sesame";
    let kdf = KdfParams::insecure_for_tests();
    let c = Client::init(&home, main, "Ana", &relay, kdf).unwrap();
    c.set_duress(duress).unwrap();
    drop(c);
    let before = store::derivations();
    drop(Client::open(&home, main).unwrap());
    let normal = store::derivations() - before;
    let before = store::derivations();
    let fresh = Client::open(&home, duress).unwrap();
    let under_duress = store::derivations() - before;
    assert_eq!(under_duress, normal);
    assert_eq!(fresh.name(), "Ana");
    assert_eq!(fresh.relay(), &relay);
    assert!(fresh.contacts().unwrap().is_empty());
    assert_eq!(
        fresh.vault().unwrap().kdf_params().unwrap(),
        kdf,
        "unlocks as slowly"
    );
    drop(fresh);
    // From now on the duress passphrase is the fresh profile's own.
    drop(Client::open(&home, duress).unwrap());
    assert!(matches!(
        Client::open(&home, main),
        Err(ProfileError::WrongPassphrase)
    ));
}

#[test]
fn debug_never_shows_aliases_or_text() {
    let m = MessageView {
        id: "00".into(),
        alias: "handler-anna".into(),
        incoming: true,
        text: "meet at the old station".into(),
        status: MessageStatus::Unread,
        at: 0,
        sent_at: 0,
    };
    let c = ContactInfo {
        alias: "handler-anna".into(),
        established: true,
        verified: false,
        unread: 1,
        pending: 0,
        timer_secs: 0,
        dropped: 0,
        broken: false,
        invitation_expires_at: 0,
    };
    let ev = crate::SyncEvent::Received(m.clone());
    let report = crate::SyncReport {
        refused: vec!["handler-anna: full".into()],
        ..Default::default()
    };
    for shown in [
        format!("{m:?}"),
        format!("{c:?}"),
        format!("{ev:?}"),
        format!("{report:?}"),
    ] {
        assert!(!shown.contains("anna"), "{shown}");
        assert!(!shown.contains("station"), "{shown}");
    }
}

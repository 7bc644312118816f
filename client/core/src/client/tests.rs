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
        expires_at: 0,
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
        relay: String::new(),
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

/// Case work is stored in the profile, survives a restart, enforces the
/// two-evaluator rule, and goes when the contact goes.
#[test]
fn case_work_persists_and_clearing_needs_two_evaluators() {
    use crate::client::cases::{CaseStatus, Verdict, VettingError};
    use crate::records::{ContactRecord, ContactState};
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("p");
    let relay: RelayAddress = format!("tropa://{}@127.0.0.1:4433", "A".repeat(43))
        .parse()
        .unwrap();
    let pass = b"plover gasket violin orchard";
    let c = Client::init(&home, pass, "Desk", &relay, KdfParams::insecure_for_tests()).unwrap();
    let id = vec![7u8; 16];
    let mut changes = Changes::new();
    let mut karim = ContactRecord::default();
    karim.id = id.clone();
    karim.alias = "Karim".into();
    karim.state = ContactState::Established as i32;
    karim.created_at = 5;
    changes.put_contact(&karim);
    c.repo().apply(changes).unwrap();

    assert_eq!(c.case("karim").unwrap().summary.status, CaseStatus::New);
    c.add_case_note("karim", "met at the border office")
        .unwrap();
    c.set_case_status("Karim", CaseStatus::Vetting).unwrap();
    c.add_evaluation("Karim", "Amira", Verdict::Pass, "documents match")
        .unwrap();
    c.add_evaluation("Karim", "AMIRA", Verdict::Pass, "again")
        .unwrap();
    let refused = c.set_case_status("Karim", CaseStatus::Cleared).unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Vetting(VettingError::NeedsTwoEvaluations { passes: 1 })
        ),
        "{refused:?}"
    );
    assert!(matches!(
        c.add_case_note("Karim", "  \n "),
        Err(ClientError::Vetting(VettingError::BadNote))
    ));
    // Empty, or with invisible characters that would make "another" Amira.
    for name in [
        "",
        "Amira\u{200b}",
        "Am\u{ad}ira",
        "Amira\u{feff}",
        "Ami\u{2060}ra",
    ] {
        assert!(
            matches!(
                c.add_evaluation("Karim", name, Verdict::Pass, ""),
                Err(ClientError::Vetting(VettingError::BadEvaluator))
            ),
            "{name:?}"
        );
    }
    c.set_starred("Karim", true).unwrap();
    drop(c);

    let c = Client::open(&home, pass).unwrap();
    let case = c.case("Karim").unwrap();
    assert_eq!(
        case.summary.status,
        CaseStatus::Vetting,
        "refusal changed nothing"
    );
    assert!(case.summary.starred);
    assert_eq!(case.notes.len(), 1);
    assert_eq!(case.notes[0].text, "met at the border office");
    assert_eq!(case.evaluations.len(), 2);
    assert!(case.clearing_blocked.is_some());
    c.add_evaluation("Karim", "Jonas", Verdict::Pass, "interview ok")
        .unwrap();
    c.set_case_status("Karim", CaseStatus::Cleared).unwrap();
    let list = c.cases().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, CaseStatus::Cleared);
    // A later fail takes the clearing back: the case returns to vetting.
    c.add_evaluation("Karim", "Lea", Verdict::Fail, "unit does not exist")
        .unwrap();
    assert_eq!(c.case("Karim").unwrap().summary.status, CaseStatus::Vetting);
    c.add_evaluation("Karim", "Lea", Verdict::Pass, "checked again")
        .unwrap();
    c.set_case_status("Karim", CaseStatus::Cleared).unwrap();
    assert!(list[0].last_activity >= case.summary.last_activity);

    // The desk's one-pass snapshot agrees with the separate views, and
    // deletes what has disappeared.
    let message = |seq: u64, expires_at: u64| crate::records::MessageRecord {
        id: vec![seq as u8; 16],
        contact_id: id.clone(),
        direction: crate::records::Direction::In as i32,
        text: format!("text {seq}"),
        status: crate::records::Status::Unread as i32,
        at: 10,
        expires_at,
        seq,
        sent_at: 10,
    };
    let mut changes = Changes::new();
    changes
        .put_message(&message(1, 0))
        .put_message(&message(2, 1));
    c.repo().apply(changes).unwrap();
    let (cases, messages) = c.snapshot().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "text 1");
    assert_eq!(cases[0].summary.unread, 1);
    let summaries: Vec<_> = cases.iter().map(|v| v.summary.clone()).collect();
    assert_eq!(summaries, c.cases().unwrap());
    assert_eq!(cases[0], c.case("Karim").unwrap());
    assert_eq!(messages, c.messages(None).unwrap());
    assert_eq!(
        c.repo().messages().unwrap().len(),
        1,
        "the expired one is gone"
    );
    c.mark_read_ids("Karim", &[messages[0].id.clone(), "not hex".into()])
        .unwrap();
    assert_eq!(c.case("Karim").unwrap().summary.unread, 0);

    let mut changes = Changes::new();
    changes.remove_contact(&id);
    c.repo().apply(changes).unwrap();
    assert!(
        c.repo().case(&id).unwrap().is_none(),
        "case work goes with the contact"
    );
}

/// An alias with an invisible character would look like another contact's
/// ("Karim" and "Kar\u{200b}im"): refused.
#[test]
fn aliases_with_invisible_characters_are_refused() {
    for alias in [
        "Kar\u{200b}im",
        "Karim\u{feff}",
        "Ka\u{ad}rim",
        "Karim\u{2066}",
    ] {
        assert!(
            matches!(check_alias(alias), Err(ClientError::BadAlias)),
            "{alias:?}"
        );
    }
    assert!(check_alias("Karim").is_ok());
}

/// A duress unlock keeps the network settings saved before the duress
/// passphrase was set: a profile that went through Tor must not start
/// connecting directly because it was wiped. (Settings changed after it
/// are not in the decoy; the CLI says to set the duress passphrase again.)
#[test]
fn a_duress_unlock_keeps_the_proxy_and_isolation() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("p");
    let relay: RelayAddress = format!("tropa://{}@127.0.0.1:4433", "A".repeat(43))
        .parse()
        .unwrap();
    let main = b"plover gasket violin orchard";
    let duress = b"open sesame";
    let c = Client::init(&home, main, "Ana", &relay, KdfParams::insecure_for_tests()).unwrap();
    c.set_socks5(Some("127.0.0.1:9050")).unwrap();
    c.set_transport(crate::TransportChoice::Tcp).unwrap();
    c.set_isolation(Some(crate::Isolation::Contact)).unwrap();
    c.set_duress(duress).unwrap();
    drop(c);
    let fresh = Client::open(&home, duress).unwrap();
    assert!(fresh.contacts().unwrap().is_empty(), "a fresh profile");
    let net = fresh.saved_network().unwrap();
    assert_eq!(
        net.socks5.map(|s| s.proxy).as_deref(),
        Some("127.0.0.1:9050")
    );
    assert_eq!(net.transport, crate::TransportChoice::Tcp);
    assert_eq!(net.isolation_setting, Some(crate::Isolation::Contact));
}

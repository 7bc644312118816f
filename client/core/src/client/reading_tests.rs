//! Reading on a small screen: inbox order and counts, paging, marking only
//! what was shown, search ignoring case (and writing nothing), excerpts.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;
use crate::records::{ContactRecord, ContactState, Direction};
use crate::store::{KdfParams, MemoryKv};

fn relay() -> tropa_proto::RelayAddress {
    format!("tropa://{}@127.0.0.1:4433", "A".repeat(43))
        .parse()
        .unwrap()
}

/// Adds contacts `aliases` (contact i has id [i; 16]).
fn contacts(c: &Client, aliases: &[&str]) {
    let mut changes = Changes::new();
    for (i, alias) in aliases.iter().enumerate() {
        let mut r = ContactRecord::default();
        r.id = vec![i as u8; 16];
        r.alias = (*alias).into();
        r.state = ContactState::Established as i32;
        changes.put_contact(&r);
    }
    c.repo().apply(changes).unwrap();
}

/// Stores a message from or to contact `who`; `seq` orders them and is
/// also its id and its time.
fn message(c: &Client, who: u8, seq: u64, text: &str, status: Status) {
    message_at(c, who, seq, 1_000 + seq, text, status);
}

fn message_at(c: &Client, who: u8, seq: u64, at: u64, text: &str, status: Status) {
    let m = MessageRecord {
        id: seq.to_be_bytes().repeat(2),
        contact_id: vec![who; 16],
        direction: if matches!(status, Status::Unread | Status::Read) {
            Direction::In as i32
        } else {
            Direction::Out as i32
        },
        text: text.into(),
        status: status as i32,
        at,
        expires_at: 0,
        seq,
        sent_at: at,
    };
    let mut changes = Changes::new();
    changes.put_message(&m);
    c.repo().apply(changes).unwrap();
}

fn memory_client() -> Client {
    Client::in_memory(Arc::new(MemoryKv::new()), "Me", &relay()).unwrap()
}

fn texts(msgs: &[MessageView]) -> Vec<&str> {
    msgs.iter().map(|m| m.text.as_str()).collect()
}

#[test]
fn the_inbox_lists_unread_first_newest_first_then_the_rest() {
    let c = memory_client();
    contacts(&c, &["anna", "boris", "chen", "dana", "erin"]);
    message(&c, 0, 1, "a1", Status::Unread);
    message(&c, 0, 2, "a2", Status::Unread);
    message(&c, 1, 3, "b1", Status::Unread);
    message(&c, 2, 4, "c1", Status::Read);
    message(&c, 2, 5, "to chen", Status::Delivered);
    // Arrived in the same second as boris's (one sync), but after it.
    message_at(&c, 4, 6, 1_003, "e1", Status::Unread);
    let inbox = c.inbox().unwrap();
    let order: Vec<(&str, usize, u64)> = inbox
        .iter()
        .map(|e| (e.contact.alias.as_str(), e.contact.unread, e.last_at))
        .collect();
    // erin's message arrived last, then boris's; chen was active after
    // anna, but has nothing new; dana has no message at all.
    assert_eq!(
        order,
        vec![
            ("erin", 1, 1_003),
            ("boris", 1, 1_003),
            ("anna", 2, 1_002),
            ("chen", 0, 1_005),
            ("dana", 0, 0)
        ]
    );
    assert_eq!(inbox[1].last_unread_at, 1_003);
    assert_eq!(inbox[3].last_unread_at, 0);
    // The counts agree with `contacts`.
    let mut from_inbox: Vec<ContactInfo> = inbox.into_iter().map(|e| e.contact).collect();
    from_inbox.sort_by(|a, b| a.alias.cmp(&b.alias));
    assert_eq!(from_inbox, c.contacts().unwrap());
}

#[test]
fn pages_go_back_from_the_newest_and_marking_read_takes_only_what_was_shown() {
    let c = memory_client();
    contacts(&c, &["anna", "boris"]);
    for seq in 1..=45 {
        message(&c, 0, seq, &format!("m{seq}"), Status::Unread);
    }
    message(&c, 1, 46, "not anna's", Status::Unread);
    let first = c.page("ANNA", 20, 1).unwrap();
    assert_eq!(first.messages.len(), 20);
    assert_eq!(first.messages[0].text, "m26");
    assert_eq!(first.messages[19].text, "m45");
    assert_eq!((first.older, first.older_unread, first.newer), (25, 25, 0));
    let second = c.page("anna", 20, 2).unwrap();
    assert_eq!(texts(&second.messages)[..2], ["m6", "m7"]);
    assert_eq!((second.older, second.newer), (5, 20));
    let last = c.page("anna", 20, 3).unwrap();
    assert_eq!(texts(&last.messages), ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!((last.older, last.older_unread, last.newer), (0, 0, 40));
    let past = c.page("anna", 20, 4).unwrap();
    assert!(past.messages.is_empty());
    assert_eq!((past.older, past.newer), (0, 45));
    assert_eq!(c.page("anna", usize::MAX, 1).unwrap().messages.len(), 45);
    assert_eq!(c.page("anna", usize::MAX, 2).unwrap().messages.len(), 0);
    assert!(matches!(
        c.page("nobody", 20, 1),
        Err(ClientError::UnknownContact { .. })
    ));

    c.mark_shown_read(Some("anna"), &first.messages).unwrap();
    let anna = c.contact("anna").unwrap();
    assert_eq!(anna.unread, 25, "the 25 older ones were not shown");
    assert_eq!(c.contact("boris").unwrap().unread, 1);
    let again = c.page("anna", 20, 1).unwrap();
    assert!(
        again
            .messages
            .iter()
            .all(|m| m.status == super::super::MessageStatus::Read)
    );
    assert_eq!(again.older_unread, 25);
}

#[test]
fn unread_comes_oldest_first_a_few_at_a_time() {
    let c = memory_client();
    contacts(&c, &["anna", "boris"]);
    message(&c, 0, 1, "a1", Status::Read);
    message(&c, 0, 2, "a2", Status::Unread);
    message(&c, 1, 3, "b1", Status::Unread);
    message(&c, 0, 4, "out", Status::Sent);
    message(&c, 0, 5, "a3", Status::Unread);
    let u = c.unread(2).unwrap();
    assert_eq!(texts(&u.messages), ["a2", "b1"]);
    assert_eq!(u.messages[1].alias, "boris");
    assert_eq!(u.more, 1);
    c.mark_shown_read(None, &u.messages).unwrap();
    let u = c.unread(2).unwrap();
    assert_eq!(texts(&u.messages), ["a3"]);
    assert_eq!(u.more, 0);
    c.mark_shown_read(None, &u.messages).unwrap();
    assert!(c.unread(2).unwrap().messages.is_empty());
}

#[test]
fn search_ignores_case_in_any_script_and_keeps_the_newest_hits() {
    let c = memory_client();
    contacts(&c, &["anna", "boris"]);
    message(&c, 0, 1, "The Checkpoint moved north", Status::Read);
    message(&c, 1, 2, "no such word here", Status::Read);
    message(&c, 1, 3, "checkpoint? which one", Status::Unread);
    message(&c, 0, 4, "past the CHECKPOINT now", Status::Delivered);
    message(&c, 1, 5, "Привет, КПП закрыт", Status::Read);
    message(&c, 1, 6, "İstanbul bus at six", Status::Read);

    let all = c.search("checkPOINT", None, 10).unwrap();
    assert_eq!(all.total, 3);
    let found: Vec<(&str, &str)> = all
        .hits
        .iter()
        .map(|h| (h.message.alias.as_str(), &h.message.text[h.start..h.end]))
        .collect();
    assert_eq!(
        found,
        [
            ("anna", "Checkpoint"),
            ("boris", "checkpoint"),
            ("anna", "CHECKPOINT")
        ]
    );
    // The newest two, still oldest first; the total counts them all.
    let newest = c.search("checkpoint", None, 2).unwrap();
    assert_eq!(newest.total, 3);
    assert_eq!(newest.hits[0].message.text, "checkpoint? which one");
    // One contact only, whatever the case of its alias.
    let boris = c.search("CHECKPOINT", Some("Boris"), 10).unwrap();
    assert_eq!(boris.total, 1);
    // Cyrillic folds too; "İ" lowercases to two characters and still maps
    // back onto the original text.
    let h = &c.search("кпп", None, 10).unwrap().hits[0];
    assert_eq!(&h.message.text[h.start..h.end], "КПП");
    let h = &c.search("i̇stanbul", None, 10).unwrap().hits[0];
    assert_eq!(&h.message.text[h.start..h.end], "İstanbul");
    let h = &c.search("stanbul", None, 10).unwrap().hits[0];
    assert_eq!(&h.message.text[h.start..h.end], "stanbul");
    for nothing in ["", "   ", "absent"] {
        assert_eq!(c.search(nothing, None, 10).unwrap().total, 0, "{nothing:?}");
    }
    assert!(matches!(
        c.search("x", Some("nobody"), 10),
        Err(ClientError::UnknownContact { .. })
    ));
}

/// Search leaves the profile on disk exactly as it was: no index, no
/// record of the query, no message marked read.
#[test]
fn search_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("p");
    let pass = b"plover gasket violin orchard";
    let c = Client::init(&home, pass, "Me", &relay(), KdfParams::insecure_for_tests()).unwrap();
    contacts(&c, &["anna"]);
    for seq in 1..=30 {
        message(&c, 0, seq, &format!("checkpoint {seq}"), Status::Unread);
    }
    drop(c);
    let c = Client::open(&home, pass).unwrap();
    let files = || {
        let mut v: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
        let mut dirs = vec![home.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    v.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        v.sort();
        v
    };
    let before = files();
    assert!(!before.is_empty());
    let found = c.search("CHECKPOINT 2", None, 5).unwrap();
    assert_eq!(found.total, 11, "2 and 20 to 29");
    assert_eq!(c.search("checkpoint", Some("anna"), 5).unwrap().total, 30);
    assert!(files() == before, "search changed the profile's files");
    assert_eq!(c.contact("anna").unwrap().unread, 30);
}

fn hit(text: &str, needle: &str) -> SearchHit {
    let (start, end) = find_folded(text, &fold(needle).0).unwrap();
    SearchHit {
        message: MessageView {
            id: String::new(),
            alias: "anna".into(),
            incoming: true,
            text: text.into(),
            status: super::super::MessageStatus::Read,
            at: 0,
            sent_at: 0,
            expires_at: 0,
        },
        start,
        end,
    }
}

#[test]
fn excerpts_fit_the_width_and_keep_the_match_in_view() {
    let long = "We waited all night at the station. Then the checkpoint \
                moved north of the river and the bus could pass at six.";
    for width in [12, 20, 28, 40] {
        let e = hit(long, "CHECKPOINT").excerpt(width);
        assert!(e.chars().count() <= width, "{width}: {e:?}");
        assert!(e.contains("checkpoint"), "{width}: {e:?}");
        assert!(e.starts_with('…') && e.ends_with('…'), "{width}: {e:?}");
    }
    assert_eq!(
        hit(long, "checkpoint").excerpt(28),
        "…the checkpoint moved…"
    );
    // Short text is shown whole; at the start or end, only one side is cut.
    assert_eq!(
        hit("see the checkpoint", "see").excerpt(40),
        "see the checkpoint"
    );
    assert_eq!(hit(long, "we waited").excerpt(20), "We waited all night…");
    assert_eq!(hit(long, "at six.").excerpt(20), "…could pass at six.");
    // One line, and safe for a terminal: newlines become spaces, escape
    // sequences and direction overrides are shown, not obeyed.
    let e = hit("line one\nline two \u{1b}[2J \u{202e}gpj", "two").excerpt(40);
    assert!(!e.contains('\n') && !e.contains('\u{1b}') && !e.contains('\u{202e}'));
    assert!(e.contains("line one line two \\u{1b}[2J"), "{e:?}");
    // A match longer than the room: its beginning.
    let e = hit(
        "x checkpoint-checkpoint-checkpoint y",
        "checkpoint-checkpoint-c",
    )
    .excerpt(12);
    assert_eq!(e, "…checkpoint…");
    assert_eq!(hit("abc", "b").excerpt(0), "");
}

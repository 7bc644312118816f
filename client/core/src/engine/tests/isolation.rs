//! Connection isolation (S3): with `isolation = contact`, each contact's
//! subscriptions and deposits travel on a connection of their own, so a
//! relay never serves two contacts' mailboxes on one connection; with
//! `profile`, one connection per relay carries everything.

use super::*;
use crate::engine::links::Group;

/// Alice of [`pair`] with a second contact, Carol, whose incoming mailbox
/// is on the same relay as Alice's mailbox from Bob.
fn alice_with_carol(isolation: Option<Isolation>) -> (Side, Vec<u8>, MailboxId) {
    let (alice, _) = pair();
    let carol = contact(30, "carol", 4434, vec![3; 32]);
    let rid: MailboxId = [31; 24];
    let mut c = Changes::new();
    c.put_contact(&carol).put_mailbox(&OwnMailbox {
        relay: relay(4433).to_string(),
        recipient_id: rid.to_vec(),
        auth_secret: vec![32; 32],
        dh_secret: vec![33; 32],
        relay_dh_pub: vec![34; 32],
        contact_id: carol.id.clone(),
        invite_id: Vec::new(),
        // A `Secure` still owed: it must go on Carol's connection.
        secure_with: vec![35; 32],
    });
    alice.client.repo().apply(c).unwrap();
    alice.client.set_isolation(isolation).unwrap();
    (alice, carol.id.clone(), rid)
}

fn connect_keys(actions: &[Action]) -> Vec<RelayKey> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { relay, .. } => Some(relay.clone()),
            _ => None,
        })
        .collect()
}

/// The connection each mailbox command (`Secure`, `Delete`, `Ack`) in
/// `actions` goes on, with its mailbox.
fn mailbox_commands(actions: &[Action]) -> Vec<(RelayKey, MailboxId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request {
                relay,
                request:
                    Request::Secure { mailbox, .. }
                    | Request::Delete { mailbox, .. }
                    | Request::Ack { mailbox, .. },
                ..
            } => Some((relay.clone(), *mailbox)),
            _ => None,
        })
        .collect()
}

fn subscriptions(actions: &[Action]) -> Vec<(RelayKey, MailboxId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Subscribe { relay, mailbox, .. } => Some((relay.clone(), *mailbox)),
            _ => None,
        })
        .collect()
}

#[test]
fn with_contact_isolation_each_contact_has_its_own_connection() {
    let (alice, carol_id, carol_rid) = alice_with_carol(Some(Isolation::Contact));
    let bob_id = vec![10u8; 16];
    let mut e = engine(&alice, Mode::Sync);
    let a = e.handle(Input::Start, NOW).unwrap();
    let keys = connect_keys(&a);
    // Two connections to the same relay, one per contact.
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.as_str() == key(4433).as_str()));
    let bob_link = RelayKey::on(&relay(4433), Group::Contact(bob_id.clone()));
    let carol_link = RelayKey::on(&relay(4433), Group::Contact(carol_id.clone()));
    assert!(keys.contains(&bob_link) && keys.contains(&carol_link));

    // Each connection subscribes to its contact's mailbox only.
    let a = e
        .handle(
            Input::Connected {
                relay: carol_link.clone(),
                transport: Transport::Tcp,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(subscriptions(&a), vec![(carol_link.clone(), carol_rid)]);
    assert_eq!(mailbox_commands(&a), vec![(carol_link.clone(), carol_rid)]);
    let a = e
        .handle(
            Input::Connected {
                relay: bob_link.clone(),
                transport: Transport::Tcp,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(subscriptions(&a), vec![(bob_link, alice.rid)]);

    // A text to Bob (the contact called "peer") goes on a connection of
    // his to his relay, not on Carol's and not on a shared one.
    let a = send(&mut e, "hello");
    let peer_link = RelayKey::on(&relay(4434), Group::Contact(bob_id));
    assert_eq!(connect_keys(&a), vec![peer_link.clone()]);
    let a = e
        .handle(
            Input::Connected {
                relay: peer_link.clone(),
                transport: Transport::Tcp,
            },
            NOW,
        )
        .unwrap();
    let on: Vec<&RelayKey> = a
        .iter()
        .filter_map(|a| match a {
            Action::Request {
                relay,
                request: Request::Deposit { .. },
                ..
            } => Some(relay),
            _ => None,
        })
        .collect();
    assert_eq!(on, vec![&peer_link]);
    assert_eq!(e.report().connections.len(), 3);

    // Forgetting Carol deletes her mailbox on her connection, not Bob's.
    let command = Command::Forget {
        alias: "carol".into(),
    };
    let a = e
        .handle(Input::Command { ticket: 2, command }, NOW)
        .unwrap();
    assert_eq!(mailbox_commands(&a), vec![(carol_link, carol_rid)]);
}

#[test]
fn without_isolation_one_connection_carries_every_contact() {
    let (alice, _, carol_rid) = alice_with_carol(None);
    let mut e = engine(&alice, Mode::Sync);
    let a = e.handle(Input::Start, NOW).unwrap();
    assert_eq!(connect_keys(&a), vec![key(4433)]);
    let a = e
        .handle(
            Input::Connected {
                relay: key(4433),
                transport: Transport::Quic,
            },
            NOW,
        )
        .unwrap();
    let mut subs: Vec<MailboxId> = subscriptions(&a).into_iter().map(|(_, m)| m).collect();
    subs.sort_unstable();
    let mut want = vec![alice.rid, carol_rid];
    want.sort_unstable();
    assert_eq!(subs, want);
}

/// What reached a relay is remembered in the profile and tried first by
/// the next run; QUIC working again forgets it.
#[test]
fn the_transport_that_worked_is_tried_first_next_time() {
    let (alice, _) = pair();
    let prefer = |actions: &[Action]| {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Connect { prefer, .. } => Some(*prefer),
                _ => None,
            })
            .flatten()
    };
    let mut e = engine(&alice, Mode::Sync);
    assert_eq!(prefer(&e.handle(Input::Start, NOW).unwrap()), None);
    e.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Tcp,
        },
        NOW,
    )
    .unwrap();
    let mut e = engine(&alice, Mode::Sync);
    assert_eq!(
        prefer(&e.handle(Input::Start, NOW).unwrap()),
        Some(Transport::Tcp)
    );
    e.handle(
        Input::Connected {
            relay: key(4433),
            transport: Transport::Quic,
        },
        NOW,
    )
    .unwrap();
    let mut e = engine(&alice, Mode::Sync);
    assert_eq!(prefer(&e.handle(Input::Start, NOW).unwrap()), None);
}

/// Under isolation a request that belongs to nobody yet (here: creating an
/// invitation's mailbox) gets a connection of its own, and that
/// connection is closed and forgotten once its request is answered: it
/// neither stays open nor is reconnected later.
#[test]
fn a_connection_made_for_one_request_is_closed_after_it() {
    let (alice, _, _) = alice_with_carol(Some(Isolation::Contact));
    let mut e = engine(&alice, Mode::Deliver(BTreeSet::new()));
    e.handle(Input::Start, NOW).unwrap();
    let command = Command::Invite {
        alias: Some("dora".into()),
        ttl_secs: 3600,
    };
    let a = e
        .handle(Input::Command { ticket: 5, command }, NOW)
        .unwrap();
    let once = connect_keys(&a);
    assert_eq!(once.len(), 1, "{once:?}");
    assert!(matches!(once[0].group(), Group::Once(_)), "{once:?}");
    let a = e
        .handle(
            Input::Connected {
                relay: once[0].clone(),
                transport: Transport::Tcp,
            },
            NOW,
        )
        .unwrap();
    let op = a
        .iter()
        .find_map(|a| match a {
            Action::Request {
                op,
                relay,
                request: Request::Create { .. },
            } if *relay == once[0] => Some(*op),
            _ => None,
        })
        .expect("the mailbox is created on its own connection");
    let created = tropa_relay_client::CreatedMailbox {
        recipient_id: [61; 24],
        sender_id: [62; 24],
        relay_dh_pub: [63; 32],
    };
    let a = e
        .handle(
            Input::Done {
                op,
                result: Ok(Reply::Created(created)),
            },
            NOW,
        )
        .unwrap();
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Disconnect { relay } if *relay == once[0])),
        "the one-request connection is closed"
    );
    // The link data goes on another connection of its own, not this one.
    let next = connect_keys(&a);
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(next[0] != once[0] && matches!(next[0].group(), Group::Once(_)));
    // Nothing reconnects the closed one later, even in a waiting run.
    let a = e.handle(Input::Tick, NOW + 3600).unwrap();
    assert!(!connect_keys(&a).contains(&once[0]));
}

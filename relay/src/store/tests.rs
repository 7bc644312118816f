//! One suite, run against both stores, so they cannot drift apart.

#![allow(clippy::unwrap_used)]

use super::*;

const LIMITS: StoreLimits = StoreLimits {
    mailbox_quota: 3,
    total_quota: 5,
    open_mailbox_quota: 2,
    open_total_quota: 3,
    secured_as_checked: Vec::new(),
};

const KEEP: SweepPolicy = SweepPolicy {
    ttl_hours: 1000,
    idle_hours: 1000,
    unused_hours: 1000,
};

pub(crate) fn record(sender: u8, hour: Hour) -> MailboxRecord {
    MailboxRecord {
        recipient_auth_pub: vec![1; 32],
        recipient_dh_pub: vec![2; 32],
        relay_dh_secret: vec![3; 32],
        sender_id: vec![sender; 24],
        secured_sender: Vec::new(),
        active_hour: hour,
        next_seq: 0,
        count: 0,
        created_hour: hour,
        fresh: true,
        intake: false,
    }
}

pub(crate) fn link(owner: u8, expires_hour: Hour) -> LinkRecord {
    LinkRecord {
        owner_auth_pub: vec![owner; 32],
        expires_hour,
        sealed: vec![owner; 40],
    }
}

fn put(s: &dyn Store, rid: &RecipientId, hour: Hour) -> Result<EnvelopeId, StoreError> {
    let secured = s.mailbox(rid)?.map(|r| r.secured_sender.clone());
    let limits = StoreLimits {
        secured_as_checked: secured.unwrap_or_default(),
        ..LIMITS
    };
    s.put_envelope(rid, hour, &limits, &|id| id.to_vec())
}

fn all(s: &dyn Store, rid: &RecipientId) -> Vec<EnvelopeId> {
    let mut out = Vec::new();
    let mut from = 0;
    while let (Some(e), _) = s.next_envelope(rid, from).unwrap() {
        from = seq_of(&e.id) + 1;
        out.push(e.id);
    }
    out
}

/// How each on-disk store is opened in a data directory.
type Open = fn(&std::path::Path) -> std::sync::Arc<dyn Store>;
const DISK: [Open; 2] = [
    |p| std::sync::Arc::new(SledStore::open(p).unwrap()),
    |p| std::sync::Arc::new(RedbStore::open(&p.join("store.redb")).unwrap()),
];

fn both(test: impl Fn(&dyn Store)) {
    test(&MemoryStore::new());
    for open in DISK {
        let dir = tempfile::tempdir().unwrap();
        test(&*open(dir.path()));
    }
}

#[test]
fn create_lookup_secure_delete() {
    both(|s| {
        let rid = [9u8; 24];
        s.create_mailbox(&rid, &record(4, 10)).unwrap();
        assert!(matches!(
            s.create_mailbox(&rid, &record(5, 10)),
            Err(StoreError::Collision)
        ));
        assert!(matches!(
            s.create_mailbox(&[8; 24], &record(4, 10)),
            Err(StoreError::Collision)
        ));
        assert_eq!(s.totals().mailboxes, 1, "collisions are not counted");
        let (found, rec) = s.mailbox_by_sender(&[4; 24]).unwrap().unwrap();
        assert_eq!(found, rid);
        assert!(rec.is_open() && rec.fresh);
        put(s, &rid, 10).unwrap();
        assert_eq!(s.totals().open_envelopes, 1);
        s.secure(&rid, &[7; 32]).unwrap();
        let rec = s.mailbox(&rid).unwrap().unwrap();
        assert_eq!(rec.secured_sender, vec![7; 32]);
        assert!(!rec.fresh, "securing uses the mailbox");
        assert_eq!(
            s.totals().open_envelopes,
            0,
            "secured envelopes are not open ones"
        );
        // A deposit authorised while the mailbox was open fails once secured.
        assert!(matches!(
            s.put_envelope(&rid, 10, &LIMITS, &|id| id.to_vec()),
            Err(StoreError::SecurityChanged)
        ));
        s.delete_mailbox(&rid).unwrap();
        assert!(s.mailbox(&rid).unwrap().is_none());
        assert!(s.mailbox_by_sender(&[4; 24]).unwrap().is_none());
        assert_eq!(s.totals(), Totals::default());
        assert!(matches!(s.delete_mailbox(&rid), Err(StoreError::NoMailbox)));
    });
}

#[test]
fn quotas_order_and_ack() {
    both(|s| {
        let (a, b) = ([1u8; 24], [2u8; 24]);
        s.create_mailbox(&a, &record(11, 0)).unwrap();
        s.create_mailbox(&b, &record(12, 0)).unwrap();
        s.secure(&a, &[7; 32]).unwrap();
        s.secure(&b, &[7; 32]).unwrap();
        assert!(matches!(put(s, &[3; 24], 0), Err(StoreError::NoMailbox)));
        let ids: Vec<_> = (0..3).map(|_| put(s, &a, 0).unwrap()).collect();
        assert!(matches!(put(s, &a, 0), Err(StoreError::Quota)));
        put(s, &b, 0).unwrap();
        put(s, &b, 0).unwrap();
        assert!(matches!(put(s, &b, 0), Err(StoreError::DiskFull)));
        assert_eq!(all(s, &a), ids, "FIFO order");
        let (next, _) = s.next_envelope(&a, seq_of(&ids[1])).unwrap();
        assert_eq!(next.unwrap().id, ids[1]);
        // A guessed ID with the right sequence number but wrong random half fails.
        let mut forged = ids[0];
        forged[15] ^= 1;
        assert!(!s.ack(&a, &forged).unwrap());
        assert!(s.ack(&a, &ids[0]).unwrap());
        assert!(!s.ack(&a, &ids[0]).unwrap());
        assert_eq!(s.totals().envelopes, 4);
        put(s, &a, 0).unwrap();
    });
}

/// Open mailboxes (anyone may deposit) hold only a few envelopes each and
/// a small share of the relay together, so a flood into open mailboxes
/// cannot take the space secured conversations need.
#[test]
fn open_mailboxes_have_their_own_small_quota() {
    both(|s| {
        let (a, b, c) = ([1u8; 24], [2u8; 24], [3u8; 24]);
        for (rid, sid) in [(a, 11), (b, 12), (c, 13)] {
            s.create_mailbox(&rid, &record(sid, 0)).unwrap();
        }
        put(s, &a, 0).unwrap();
        put(s, &a, 0).unwrap();
        assert!(
            matches!(put(s, &a, 0), Err(StoreError::Quota)),
            "open quota 2"
        );
        put(s, &b, 0).unwrap();
        assert!(
            matches!(put(s, &c, 0), Err(StoreError::DiskFull)),
            "open share 3 of 5"
        );
        // A secured mailbox still has room.
        s.secure(&c, &[7; 32]).unwrap();
        put(s, &c, 0).unwrap();
        // Securing moves a mailbox's envelopes out of the open share.
        s.secure(&a, &[7; 32]).unwrap();
        assert_eq!(s.totals().open_envelopes, 1);
        put(s, &b, 0).unwrap();
        assert_eq!(s.totals().open_envelopes, 2);
        // Acks and deletion give the share back.
        let first = all(s, &b)[0];
        assert!(s.ack(&b, &first).unwrap());
        assert_eq!(s.totals().open_envelopes, 1);
        s.delete_mailbox(&b).unwrap();
        assert_eq!(s.totals().open_envelopes, 0);
    });
}

#[test]
fn sweep_expires_by_ttl_idleness_and_disuse() {
    both(|s| {
        let (a, b) = ([1u8; 24], [2u8; 24]);
        s.create_mailbox(&a, &record(11, 100)).unwrap();
        s.create_mailbox(&b, &record(12, 100)).unwrap();
        s.touch(&a, 100).unwrap();
        s.touch(&b, 100).unwrap();
        put(s, &a, 100).unwrap();
        put(s, &a, 105).unwrap();
        let ttl = SweepPolicy {
            ttl_hours: 10,
            ..KEEP
        };
        // Nothing is older than 10 hours at hour 110.
        assert_eq!(s.sweep(110, &ttl).unwrap(), SweepStats::default());
        // At 111 the envelope from hour 100 is past its TTL.
        let st = s.sweep(111, &ttl).unwrap();
        assert_eq!(st.expired_envelopes, 1);
        assert_eq!(all(s, &a).len(), 1);
        // Mailbox b has been idle since hour 100, a active since 105.
        let idle = SweepPolicy {
            idle_hours: 5,
            ..KEEP
        };
        let st = s.sweep(106, &idle).unwrap();
        assert_eq!(st.expired_mailboxes, 1);
        assert!(s.mailbox(&b).unwrap().is_none());
        assert!(s.mailbox(&a).unwrap().is_some());
    });
}

/// A mailbox nobody ever subscribed to or secured goes once an invitation
/// for it would have expired, even if deposits keep it "active"; a used
/// one does not.
#[test]
fn unused_mailboxes_are_removed_even_if_deposits_keep_them_active() {
    both(|s| {
        let (unused, used) = ([1u8; 24], [2u8; 24]);
        s.create_mailbox(&unused, &record(11, 100)).unwrap();
        s.create_mailbox(&used, &record(12, 100)).unwrap();
        s.touch(&used, 100).unwrap();
        put(s, &unused, 150).unwrap();
        let policy = SweepPolicy {
            unused_hours: 48,
            ..KEEP
        };
        assert_eq!(s.sweep(148, &policy).unwrap(), SweepStats::default());
        let st = s.sweep(149, &policy).unwrap();
        assert_eq!(st.unused_mailboxes, 1);
        assert_eq!(st.expired_envelopes, 1);
        assert!(s.mailbox(&unused).unwrap().is_none());
        assert!(s.mailbox(&used).unwrap().is_some());
        assert_eq!(s.totals().open_envelopes, 0);
    });
}

#[test]
fn sled_reopen_keeps_everything_and_recounts() {
    for reopen in DISK {
        let dir = tempfile::tempdir().unwrap();
        let (rid, open) = ([5u8; 24], [6u8; 24]);
        {
            let s = reopen(dir.path());
            s.create_mailbox(&rid, &record(6, 0)).unwrap();
            s.create_mailbox(&open, &record(7, 0)).unwrap();
            s.secure(&rid, &[7; 32]).unwrap();
            put(&*s, &rid, 0).unwrap();
            put(&*s, &open, 0).unwrap();
            s.put_link(&[1; 32], &link(1, 10), 0, 10).unwrap();
            s.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(
            s.totals(),
            Totals {
                mailboxes: 2,
                envelopes: 2,
                open_envelopes: 1,
                links: 1,
            }
        );
        assert_eq!(all(&*s, &rid).len(), 1);
    }
}

/// The relay-wide counters must match the trees whatever runs at once:
/// deletions racing acks and `Secure` (a drifting open-envelope counter
/// would refuse every invitation's Hello as "relay storage is full").
#[test]
fn counters_survive_deletes_racing_acks_and_secures() {
    let limits = StoreLimits {
        mailbox_quota: 100,
        total_quota: 1_000_000,
        open_mailbox_quota: 100,
        open_total_quota: 1_000_000,
        secured_as_checked: Vec::new(),
    };
    for open in DISK {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path());
            for round in 0..40u8 {
                let rids: Vec<RecipientId> = (0..8u8)
                    .map(|i| {
                        [
                            round, i, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                            18, 19, 20, 21, 22,
                        ]
                    })
                    .collect();
                let mut ids = Vec::new();
                for (i, rid) in rids.iter().enumerate() {
                    let mut rec = record(0, 0);
                    rec.sender_id = vec![
                        round,
                        u8::try_from(i).unwrap(),
                        0xee,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                    ];
                    s.create_mailbox(rid, &rec).unwrap();
                    for _ in 0..6 {
                        ids.push((
                            *rid,
                            s.put_envelope(rid, 0, &limits, &|id| id.to_vec()).unwrap(),
                        ));
                    }
                }
                std::thread::scope(|t| {
                    let a = s.clone();
                    let r = rids.clone();
                    t.spawn(move || {
                        for rid in &r {
                            let _ = a.delete_mailbox(rid);
                        }
                    });
                    let b = s.clone();
                    let acked = ids.clone();
                    t.spawn(move || {
                        for (rid, id) in &acked {
                            let _ = b.ack(rid, id);
                        }
                    });
                    let c = s.clone();
                    let r = rids.clone();
                    t.spawn(move || {
                        for rid in &r {
                            let _ = c.secure(rid, &[7; 32]);
                        }
                    });
                });
            }
            let counted = s.totals();
            drop(s);
            let recount = open(dir.path()).totals();
            assert_eq!(counted, recount, "counters drifted from the trees");
        }
    }
}

/// Issue 11: a link is stored, replaced by its owner only, refused to
/// another owner while it lives and when the relay holds its maximum, and
/// deleted only by its owner; an expired link counts as absent.
#[test]
fn links_put_replace_owner_limit_delete() {
    both(|s| {
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert!(s.link(&a).unwrap().is_none());
        s.put_link(&a, &link(7, 100), 50, 2).unwrap();
        assert_eq!(s.link(&a).unwrap(), Some(link(7, 100)));
        // The owner replaces it (a refresh), without counting it again.
        let mut newer = link(7, 200);
        newer.sealed = vec![9; 40];
        s.put_link(&a, &newer, 60, 2).unwrap();
        assert_eq!(s.link(&a).unwrap(), Some(newer.clone()));
        assert_eq!(s.totals().links, 1);
        // Another owner may not, while it lives.
        assert!(matches!(
            s.put_link(&a, &link(8, 300), 60, 2),
            Err(StoreError::LinkOwner)
        ));
        assert_eq!(s.link(&a).unwrap(), Some(newer));
        s.put_link(&b, &link(8, 100), 60, 2).unwrap();
        assert!(matches!(
            s.put_link(&c, &link(8, 100), 60, 2),
            Err(StoreError::TooManyLinks)
        ));
        assert_eq!(s.totals().links, 2);
        // Only its owner deletes it.
        assert!(!s.delete_link(&b, &[7; 32]).unwrap());
        assert!(s.delete_link(&b, &[8; 32]).unwrap());
        assert!(!s.delete_link(&b, &[8; 32]).unwrap());
        assert!(s.link(&b).unwrap().is_none());
        assert_eq!(s.totals().links, 1);
        // Once expired, anyone may take the locator over (it is not counted twice).
        s.put_link(&a, &link(8, 400), 201, 1).unwrap();
        assert_eq!(s.link(&a).unwrap().unwrap().owner_auth_pub, vec![8; 32]);
        assert_eq!(s.totals().links, 1);
    });
}

/// Links are removed by the sweep after their last hour, not before;
/// mailboxes and envelopes are untouched by it.
#[test]
fn sweep_removes_expired_links() {
    both(|s| {
        s.create_mailbox(&[1; 24], &record(11, 100)).unwrap();
        s.touch(&[1; 24], 100).unwrap();
        s.put_link(&[1; 32], &link(1, 110), 100, 10).unwrap();
        s.put_link(&[2; 32], &link(2, 120), 100, 10).unwrap();
        assert_eq!(s.sweep(110, &KEEP).unwrap(), SweepStats::default());
        let st = s.sweep(111, &KEEP).unwrap();
        assert_eq!(st.expired_links, 1);
        assert!(s.link(&[1; 32]).unwrap().is_none());
        assert!(s.link(&[2; 32]).unwrap().is_some());
        assert_eq!(s.totals().links, 1);
        assert_eq!(s.totals().mailboxes, 1);
    });
}

/// An intake mailbox takes unsigned deposits, yet is not "open" for the
/// quotas: it has the quota of a secured mailbox and does not count in the
/// open share (its flood control is the service's per-mailbox rate limit).
#[test]
fn intake_mailboxes_use_the_secured_quota() {
    both(|s| {
        let rid = [4u8; 24];
        let mut rec = record(14, 0);
        rec.intake = true;
        s.create_mailbox(&rid, &rec).unwrap();
        let rec = s.mailbox(&rid).unwrap().unwrap();
        assert!(rec.intake && !rec.is_open() && !rec.needs_signature());
        // Open quota 2 and open share 3 do not apply; the mailbox quota 3 does.
        for _ in 0..3 {
            put(s, &rid, 0).unwrap();
        }
        assert!(matches!(put(s, &rid, 0), Err(StoreError::Quota)));
        assert_eq!(s.totals().open_envelopes, 0);
    });
}

/// A batch of writes ([`Store::apply`]): one result per op in order, a
/// refused op (quota, unknown mailbox) writes nothing and does not stop
/// the others, and the counters follow what was written.
#[test]
fn a_batch_applies_each_op_on_its_own() {
    both(|s| {
        let (rid, other) = ([1u8; 24], [2u8; 24]);
        s.create_mailbox(&rid, &record(1, 0)).unwrap();
        s.create_mailbox(&other, &record(2, 0)).unwrap();
        s.secure(&rid, &[7; 32]).unwrap();
        let limits = StoreLimits {
            secured_as_checked: vec![7; 32],
            ..LIMITS
        };
        let deposit = |r: RecipientId| WriteOp::Deposit {
            recipient_id: r,
            hour: 3,
            limits: limits.clone(),
            seal: Box::new(|id: &EnvelopeId| id.to_vec()),
        };
        // The mailbox quota is 3: the fourth deposit is refused.
        let ops = vec![
            deposit(rid),
            deposit(rid),
            deposit([9u8; 24]),
            deposit(rid),
            deposit(rid),
        ];
        let results = s.apply(&ops);
        assert_eq!(results.len(), 5);
        assert!(matches!(results[0], Ok(Written::Envelope(_))));
        assert!(matches!(results[1], Ok(Written::Envelope(_))));
        assert!(matches!(results[2], Err(StoreError::NoMailbox)));
        assert!(matches!(results[3], Ok(Written::Envelope(_))));
        assert!(matches!(results[4], Err(StoreError::Quota)));
        assert_eq!(all(s, &rid).len(), 3);
        assert_eq!(s.totals().envelopes, 3);
        let Ok(Written::Envelope(first)) = results[0] else {
            unreachable!()
        };
        let recipient = |action| WriteOp::Recipient {
            recipient_id: rid,
            hour: 4,
            action,
        };
        let results = s.apply(&[
            recipient(RecipientWrite::Ack(vec![first])),
            recipient(RecipientWrite::Ack(vec![first, first])),
            WriteOp::Recipient {
                recipient_id: other,
                hour: 4,
                action: RecipientWrite::Delete,
            },
            WriteOp::Recipient {
                recipient_id: other,
                hour: 4,
                action: RecipientWrite::Touch,
            },
        ]);
        assert!(matches!(results[0], Ok(Written::Acked(1))));
        assert!(matches!(results[1], Ok(Written::Acked(0))), "acked twice");
        assert!(matches!(results[2], Ok(Written::Done)));
        assert!(
            matches!(results[3], Err(StoreError::NoMailbox)),
            "deleted before"
        );
        assert_eq!(all(s, &rid).len(), 2);
        assert_eq!(s.mailbox(&rid).unwrap().unwrap().active_hour, 4);
        assert!(s.mailbox(&other).unwrap().is_none());
        assert_eq!(s.totals().envelopes, 2);
        assert_eq!(s.totals().mailboxes, 1);
    });
}

/// From the review of issue 13: one mailbox record that no longer decodes
/// must not stop the sweep for everyone else (redb sweeps in transactions;
/// an error inside one aborts it). Its expired envelopes go too, and the
/// other mailboxes expire as usual.
#[test]
fn a_corrupt_record_does_not_stop_the_sweep() {
    use ::redb::TableDefinition;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    let (bad, good) = ([1u8; 24], [2u8; 24]);
    {
        let s = RedbStore::open(&file).unwrap();
        for (rid, sender) in [(bad, 1u8), (good, 2u8)] {
            let mut rec = record(sender, 0);
            rec.fresh = false;
            s.create_mailbox(&rid, &rec).unwrap();
            put(&s, &rid, 0).unwrap();
        }
    }
    {
        let db = ::redb::Database::create(&file).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(TableDefinition::<&[u8], &[u8]>::new("mailboxes"))
            .unwrap()
            .insert(bad.as_slice(), [0xffu8; 7].as_slice())
            .unwrap();
        w.commit().unwrap();
    }
    let s = RedbStore::open(&file).unwrap();
    let expire_all = SweepPolicy {
        ttl_hours: 10,
        idle_hours: 10,
        unused_hours: 10,
    };
    let stats = s.sweep(100, &expire_all).unwrap();
    assert!(stats.corrupt >= 1, "{stats:?}");
    assert!(
        s.mailbox(&good).unwrap().is_none(),
        "the good mailbox expired"
    );
    assert!(all(&s, &good).is_empty());
    assert!(
        all(&s, &bad).is_empty(),
        "the corrupt mailbox's envelope expired"
    );
}

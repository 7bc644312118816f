//! Short links and intake mailboxes (issue 11), against the in-memory
//! store with the time passed in.

use rand::Rng as _;
use tropa_proto::{LINK_DATA_SIZE, LINK_LOCATOR_LEN};

use super::*;

type Locator = [u8; LINK_LOCATOR_LEN];

fn locator() -> Locator {
    let mut l = [0u8; LINK_LOCATOR_LEN];
    rand::rng().fill_bytes(&mut l);
    l
}

fn data(fill: u8) -> Bytes {
    Bytes::from(
        (0..LINK_DATA_SIZE)
            .map(|i| (i as u8).wrapping_mul(7) ^ fill)
            .collect::<Vec<_>>(),
    )
}

fn put_request(
    binding: &ChannelBinding,
    owner: &SigningKey,
    locator: &[u8],
    data: Bytes,
    ttl_secs: u32,
) -> Request {
    let signature = crypto::sign_link_put(owner, binding, locator, ttl_secs, &data);
    request(request::Command::PutLink(relay::PutLink {
        locator: Bytes::copy_from_slice(locator),
        data,
        owner_auth_pub: owner.verifying_key().to_bytes().to_vec().into(),
        ttl_secs,
        signature: signature.to_vec().into(),
        password: String::new(),
    }))
}

fn delete_request(binding: &ChannelBinding, owner: &SigningKey, locator: &[u8]) -> Request {
    let signature = crypto::sign_link_delete(owner, binding, locator);
    request(request::Command::DeleteLink(relay::DeleteLink {
        locator: Bytes::copy_from_slice(locator),
        signature: signature.to_vec().into(),
    }))
}

fn get_request(locator: &[u8]) -> Request {
    request(request::Command::GetLink(relay::GetLink {
        locator: Bytes::copy_from_slice(locator),
    }))
}

impl Fixture {
    fn at(&self, req: Request, hour: Hour) -> Response {
        let now = Now {
            hour,
            instant: self.now.instant,
        };
        reply(self.handle(req, &self.peer, now)).0
    }

    /// Puts a link; the granted TTL in seconds, or the error code.
    fn put(&self, owner: &SigningKey, l: &Locator, d: Bytes, ttl: u32) -> Result<u32, ErrorCode> {
        let (resp, durable, _) = reply(self.handle(
            put_request(&BINDING, owner, l, d, ttl),
            &self.peer,
            self.now,
        ));
        match resp.result {
            Some(response::Result::LinkStored(s)) => {
                assert!(durable, "a link is durable before it is confirmed");
                Ok(s.ttl_secs)
            }
            _ => Err(code(&resp).unwrap()),
        }
    }

    fn get_at(&self, l: &Locator, hour: Hour) -> Result<Bytes, ErrorCode> {
        let resp = self.at(get_request(l), hour);
        match resp.result {
            Some(response::Result::LinkData(d)) => Ok(d.data),
            _ => Err(code(&resp).unwrap()),
        }
    }

    fn get(&self, l: &Locator) -> Result<Bytes, ErrorCode> {
        self.get_at(l, self.now.hour)
    }

    fn delete(&self, req: Request) -> Option<ErrorCode> {
        let (resp, durable, _) = reply(self.handle(req, &self.peer, self.now));
        if resp == ok() {
            assert!(durable, "a deletion is durable before it is confirmed");
        }
        code(&resp)
    }

    fn deposit_at(&self, mb: &Mailbox, instant: Instant) -> Response {
        let now = Now {
            hour: self.now.hour,
            instant,
        };
        let req = request(request::Command::Deposit(relay::Deposit {
            sender_id: mb.sid.to_vec().into(),
            envelope: Bytes::from(vec![1u8; ENVELOPE_SIZE]),
            signature: Bytes::new(),
        }));
        reply(self.handle(req, &self.peer, now)).0
    }
}

#[test]
fn put_get_replace_and_wrong_owner() {
    let f = fixture(Policy::default());
    let owner = SigningKey::generate(&mut rand::rng());
    let l = locator();
    assert_eq!(f.get(&l), Err(ErrorCode::NoLink), "never stored");
    assert_eq!(f.put(&owner, &l, data(1), 7 * 24 * 3600), Ok(7 * 24 * 3600));
    assert_eq!(f.get(&l).unwrap(), data(1));
    // Its owner replaces it.
    assert_eq!(f.put(&owner, &l, data(2), 3600), Ok(3600));
    assert_eq!(f.get(&l).unwrap(), data(2));
    // Anyone else is refused and changes nothing.
    let other = SigningKey::generate(&mut rand::rng());
    assert_eq!(f.put(&other, &l, data(3), 3600), Err(ErrorCode::AuthFailed));
    assert_eq!(f.get(&l).unwrap(), data(2));
    // A put signed for another connection's binding is refused.
    let req = put_request(&[8; 32], &owner, &l, data(4), 3600);
    assert_eq!(code(&f.at(req, f.now.hour)), Some(ErrorCode::AuthFailed));
    // A signature over other data than sent is refused.
    let mut req = put_request(&BINDING, &owner, &l, data(4), 3600);
    if let Some(request::Command::PutLink(p)) = &mut req.command {
        p.data = data(5);
    }
    assert_eq!(code(&f.at(req, f.now.hour)), Some(ErrorCode::AuthFailed));
    assert_eq!(f.get(&l).unwrap(), data(2));
    assert_eq!(f.service.store().totals().links, 1);
}

#[test]
fn delete_needs_the_owner_signature_on_this_connection() {
    let f = fixture(Policy::default());
    let owner = SigningKey::generate(&mut rand::rng());
    let l = locator();
    f.put(&owner, &l, data(1), 3600).unwrap();
    let stranger = SigningKey::generate(&mut rand::rng());
    assert_eq!(
        f.delete(delete_request(&BINDING, &stranger, &l)),
        Some(ErrorCode::AuthFailed)
    );
    assert_eq!(
        f.delete(delete_request(&[9; 32], &owner, &l)),
        Some(ErrorCode::AuthFailed),
        "a signature from another connection"
    );
    // A signature for another locator does not delete this one.
    let mut wrong = delete_request(&BINDING, &owner, &locator());
    if let Some(request::Command::DeleteLink(d)) = &mut wrong.command {
        d.locator = Bytes::copy_from_slice(&l);
    }
    assert_eq!(f.delete(wrong), Some(ErrorCode::AuthFailed));
    assert_eq!(f.get(&l).unwrap(), data(1), "still there");
    assert_eq!(f.delete(delete_request(&BINDING, &owner, &l)), None);
    assert_eq!(f.get(&l), Err(ErrorCode::NoLink));
    assert_eq!(
        f.delete(delete_request(&BINDING, &owner, &l)),
        Some(ErrorCode::NoLink)
    );
    assert_eq!(f.service.store().totals().links, 0);
}

/// The TTL is rounded up to hours and capped; a link is served for at
/// least its TTL and at most an hour more, then never again, even before
/// the sweep removes it.
#[test]
fn links_expire_and_the_ttl_is_capped() {
    let f = fixture(Policy {
        max_link_ttl_hours: 48,
        ..Policy::default()
    });
    let owner = SigningKey::generate(&mut rand::rng());
    let (short, long) = (locator(), locator());
    assert_eq!(f.put(&owner, &short, data(1), 1), Ok(3600), "rounded up");
    assert_eq!(
        f.put(&owner, &long, data(2), u32::MAX),
        Ok(48 * 3600),
        "capped"
    );
    let h = f.now.hour;
    assert!(f.get_at(&short, h + 1).is_ok());
    assert_eq!(f.get_at(&short, h + 2), Err(ErrorCode::NoLink));
    assert!(f.get_at(&long, h + 48).is_ok());
    assert_eq!(f.get_at(&long, h + 49), Err(ErrorCode::NoLink));
    let stats = f
        .service
        .store()
        .sweep(
            h + 2,
            &crate::store::SweepPolicy {
                ttl_hours: 1000,
                idle_hours: 1000,
                unused_hours: 1000,
            },
        )
        .unwrap();
    assert_eq!(stats.expired_links, 1);
    assert_eq!(f.service.store().totals().links, 1);
}

#[test]
fn malformed_link_requests_get_typed_errors() {
    let f = fixture(Policy::default());
    let owner = SigningKey::generate(&mut rand::rng());
    let l = locator();
    let mut big = data(1).to_vec();
    big.push(0);
    assert_eq!(
        f.put(&owner, &l, Bytes::from(big), 3600),
        Err(ErrorCode::TooLarge)
    );
    assert_eq!(
        f.put(&owner, &l, Bytes::from(vec![1u8; LINK_DATA_SIZE - 1]), 3600),
        Err(ErrorCode::Malformed)
    );
    assert_eq!(f.put(&owner, &l, data(1), 0), Err(ErrorCode::Malformed));
    let short = put_request(&BINDING, &owner, &l[..31], data(1), 3600);
    assert_eq!(code(&f.at(short, f.now.hour)), Some(ErrorCode::Malformed));
    let mut bad_key = put_request(&BINDING, &owner, &l, data(1), 3600);
    if let Some(request::Command::PutLink(p)) = &mut bad_key.command {
        p.owner_auth_pub = Bytes::from_static(&[1; 31]);
    }
    assert_eq!(code(&f.at(bad_key, f.now.hour)), Some(ErrorCode::Malformed));
    let get = get_request(&[1; 33]);
    assert_eq!(code(&f.at(get, f.now.hour)), Some(ErrorCode::Malformed));
    let del = delete_request(&BINDING, &owner, &[1; 5]);
    assert_eq!(f.delete(del), Some(ErrorCode::Malformed));
    assert_eq!(f.service.store().totals().links, 0, "nothing was stored");
}

/// A relay-wide cap on links, and new links pay from the creation budget
/// like mailboxes; refreshing an existing link pays nothing.
#[test]
fn too_many_links_and_the_creation_budget() {
    let f = fixture(Policy {
        max_links: 2,
        ..Policy::default()
    });
    let owner = SigningKey::generate(&mut rand::rng());
    let (a, b) = (locator(), locator());
    f.put(&owner, &a, data(1), 3600).unwrap();
    f.put(&owner, &b, data(1), 3600).unwrap();
    assert_eq!(
        f.put(&owner, &locator(), data(1), 3600),
        Err(ErrorCode::Quota)
    );
    assert_eq!(f.put(&owner, &a, data(2), 3600), Ok(3600), "a refresh fits");

    let f = fixture(Policy {
        creation_burst_per_connection: 3,
        ..Policy::default()
    });
    f.create();
    f.put(&owner, &a, data(1), 3600).unwrap();
    f.put(&owner, &b, data(1), 3600).unwrap();
    assert_eq!(
        f.put(&owner, &locator(), data(1), 3600),
        Err(ErrorCode::RateLimited),
        "a mailbox and two links spent the burst of 3"
    );
    assert_eq!(f.create_on(&f.peer).err(), Some(ErrorCode::RateLimited));
    for fill in 0..5 {
        assert_eq!(f.put(&owner, &a, data(fill), 3600), Ok(3600));
    }
}

#[test]
fn put_link_needs_the_creation_password() {
    let f = fixture(Policy {
        creation_password: Some("open-sesame".into()),
        ..Policy::default()
    });
    let owner = SigningKey::generate(&mut rand::rng());
    let l = locator();
    assert_eq!(f.put(&owner, &l, data(1), 3600), Err(ErrorCode::AuthFailed));
    let mut req = put_request(&BINDING, &owner, &l, data(1), 3600);
    if let Some(request::Command::PutLink(p)) = &mut req.command {
        p.password = "open-sesame".into();
    }
    assert!(matches!(
        f.at(req, f.now.hour).result,
        Some(response::Result::LinkStored(_))
    ));
    // Fetching never needs it.
    assert_eq!(f.get(&l).unwrap(), data(1));
}

/// An intake mailbox takes unsigned deposits beyond the open quota, up to
/// its own burst; then RATE_LIMITED until its budget refills. Other
/// mailboxes are not affected.
#[test]
fn intake_deposits_are_rate_limited_per_mailbox() {
    let f = fixture(Policy {
        intake_deposits_per_hour: 60,
        intake_deposit_burst: 10,
        open_mailbox_quota: 8,
        ..Policy::default()
    });
    let intake = f.create_kind(&f.peer, true).unwrap();
    let other = f.create_kind(&f.peer, true).unwrap();
    let open = f.create();
    let t0 = f.now.instant;
    for i in 0..10 {
        assert_eq!(f.deposit_at(&intake, t0), accepted(), "deposit {i}");
    }
    assert_eq!(
        code(&f.deposit_at(&intake, t0)),
        Some(ErrorCode::RateLimited)
    );
    assert_eq!(f.deposit_at(&other, t0), accepted(), "its own budget");
    assert_eq!(f.deposit(&open, 1, None), accepted(), "not an intake one");
    // One a minute on average.
    let later = t0 + Duration::from_secs(61);
    assert_eq!(f.deposit_at(&intake, later), accepted());
    assert_eq!(
        code(&f.deposit_at(&intake, later)),
        Some(ErrorCode::RateLimited)
    );
    assert_eq!(
        f.service
            .metrics
            .intake_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // Everything accepted is delivered.
    let sub = f.subscribe(&intake);
    assert_eq!(f.drain(&sub, &intake).len(), 11);
}

#[test]
fn an_intake_mailbox_cannot_be_secured() {
    let f = fixture(Policy::default());
    let intake = f.create_kind(&f.peer, true).unwrap();
    let sender = SigningKey::generate(&mut rand::rng());
    let (resp, ..) = reply(f.signed(
        &intake,
        Action::Secure(relay::Secure {
            sender_auth_pub: sender.verifying_key().to_bytes().to_vec().into(),
        }),
    ));
    assert_eq!(code(&resp), Some(ErrorCode::Malformed));
    // Still open to anyone, unsigned.
    assert_eq!(f.deposit(&intake, 1, None), accepted());
    let rec = f.service.store().mailbox(&intake.rid).unwrap().unwrap();
    assert!(rec.intake && rec.secured_sender.is_empty());
    // An ordinary mailbox still can be.
    let normal = f.create();
    let (resp, ..) = reply(f.signed(
        &normal,
        Action::Secure(relay::Secure {
            sender_auth_pub: sender.verifying_key().to_bytes().to_vec().into(),
        }),
    ));
    assert_eq!(resp, ok());
}

/// The per-mailbox budgets live in a bounded table: once it is full of
/// budgets still refilling, a further intake mailbox is refused (fail
/// closed) instead of growing it; budgets that refilled are forgotten and
/// make room.
#[test]
fn the_intake_budget_table_is_bounded() {
    let f = fixture(Policy {
        intake_deposits_per_hour: 3600,
        intake_deposit_burst: 2,
        max_tracked_intake: 3,
        ..Policy::default()
    });
    let boxes: Vec<Mailbox> = (0..4)
        .map(|_| f.create_kind(&f.peer, true).unwrap())
        .collect();
    let t0 = f.now.instant;
    for mb in &boxes[..3] {
        assert_eq!(f.deposit_at(mb, t0), accepted());
    }
    assert_eq!(f.service.tracked_intake(), 3);
    assert_eq!(
        code(&f.deposit_at(&boxes[3], t0)),
        Some(ErrorCode::RateLimited),
        "table full"
    );
    assert_eq!(f.service.tracked_intake(), 3);
    // Two seconds later every bucket has refilled (one a second, burst 2).
    let later = t0 + Duration::from_secs(2);
    assert_eq!(f.deposit_at(&boxes[3], later), accepted());
    assert!(f.service.tracked_intake() <= 3);
    f.service.prune(Now {
        instant: later + Duration::from_secs(2),
        ..f.now
    });
    assert_eq!(f.service.tracked_intake(), 0);
}

//! The service against an in-memory store: no sockets, no disk, the time
//! passed in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;

use super::*;
use crate::store::MemoryStore;

const BINDING: ChannelBinding = [7u8; 32];

struct Fixture {
    service: Service,
    peer: Peer,
    now: Now,
}

fn fixture(policy: Policy) -> Fixture {
    let service = Service::new(
        Arc::new(MemoryStore::new()),
        policy,
        Arc::new(Metrics::default()),
    );
    let now = Now {
        hour: 500_000,
        instant: Instant::now(),
    };
    let peer = service.peer(BINDING, "192.0.2.1".parse().unwrap(), now);
    Fixture { service, peer, now }
}

struct Mailbox {
    auth: SigningKey,
    dh: StaticSecret,
    rid: RecipientId,
    sid: [u8; 24],
    relay_dh: [u8; 32],
}

fn request(command: request::Command) -> Request {
    Request {
        version: PROTOCOL_VERSION,
        command: Some(command),
    }
}

fn reply(o: Outcome) -> (Response, bool, Option<RecipientId>) {
    match o {
        Outcome::Reply {
            response,
            durable,
            wake,
        } => (response, durable, wake),
        Outcome::Subscribe { .. } | Outcome::Write { .. } => panic!("expected a reply"),
    }
}

fn code(r: &Response) -> Option<ErrorCode> {
    match &r.result {
        Some(response::Result::Error(e)) => ErrorCode::try_from(e.code).ok(),
        _ => None,
    }
}

impl Fixture {
    /// [`Service::handle`], with its writes carried out as the server's
    /// commit thread would.
    fn handle(&self, req: Request, peer: &Peer, now: Now) -> Outcome {
        self.service.settle(self.service.handle(req, peer, now))
    }

    fn create_on(&self, peer: &Peer) -> Result<Mailbox, ErrorCode> {
        self.create_kind(peer, false)
    }

    fn create_kind(&self, peer: &Peer, intake: bool) -> Result<Mailbox, ErrorCode> {
        let auth = SigningKey::generate(&mut rand::rng());
        let dh = StaticSecret::random_from_rng(&mut rand::rng());
        let (resp, durable, _) = reply(self.handle(
            request(request::Command::CreateMailbox(relay::CreateMailbox {
                recipient_auth_pub: auth.verifying_key().to_bytes().to_vec().into(),
                recipient_dh_pub: PublicKey::from(&dh).to_bytes().to_vec().into(),
                password: String::new(),
                intake,
            })),
            peer,
            self.now,
        ));
        match resp.result {
            Some(response::Result::Created(c)) => {
                assert!(
                    durable,
                    "a created mailbox must be durable before it is announced"
                );
                Ok(Mailbox {
                    auth,
                    dh,
                    rid: c.recipient_id.as_ref().try_into().unwrap(),
                    sid: c.sender_id.as_ref().try_into().unwrap(),
                    relay_dh: c.relay_dh_pub.as_ref().try_into().unwrap(),
                })
            }
            _ => Err(code(&resp).unwrap()),
        }
    }

    fn create(&self) -> Mailbox {
        self.create_on(&self.peer).unwrap()
    }

    fn deposit(&self, mb: &Mailbox, fill: u8, signer: Option<&SigningKey>) -> Response {
        let envelope = Bytes::from(vec![fill; ENVELOPE_SIZE]);
        let signature = signer
            .map(|k| crypto::sign_deposit(k, &mb.sid, &envelope).to_vec())
            .unwrap_or_default();
        let (resp, durable, wake) = reply(self.handle(
            request(request::Command::Deposit(relay::Deposit {
                sender_id: mb.sid.to_vec().into(),
                envelope,
                signature: signature.into(),
            })),
            &self.peer,
            self.now,
        ));
        if matches!(resp.result, Some(response::Result::Accepted(_))) {
            assert!(durable, "Accepted only once durable");
            assert_eq!(wake, Some(mb.rid), "subscribers are woken");
        }
        resp
    }

    fn signed(&self, mb: &Mailbox, action: Action) -> Outcome {
        let command = RecipientCommand {
            recipient_id: mb.rid.to_vec().into(),
            action: Some(action),
        }
        .encode_to_vec();
        let signature = crypto::sign_recipient(&mb.auth, &BINDING, &command);
        self.handle(
            request(request::Command::Signed(relay::SignedCommand {
                command: command.into(),
                signature: signature.to_vec().into(),
            })),
            &self.peer,
            self.now,
        )
    }

    fn subscribe(&self, mb: &Mailbox) -> Subscription {
        match self.signed(mb, Action::Subscribe(relay::Subscribe {})) {
            Outcome::Subscribe { sub, .. } => sub,
            Outcome::Reply { response, .. } => panic!("subscribe refused: {response:?}"),
            Outcome::Write { .. } => panic!("subscribe wrote"),
        }
    }

    /// Every delivery of `sub` from the start, opened by the recipient.
    fn drain(&self, sub: &Subscription, mb: &Mailbox) -> Vec<(EnvelopeId, Vec<u8>)> {
        let mut out = Vec::new();
        let mut cursor = 0;
        while let Some(d) = self.service.next_delivery(sub, cursor).unwrap() {
            cursor = d.next_seq;
            let Some(response::Result::Delivery(del)) = d.frame.result else {
                panic!("not a delivery");
            };
            let id: EnvelopeId = del.envelope_id.as_ref().try_into().unwrap();
            let key = SealingKey::delivery(&mb.dh, &PublicKey::from(mb.relay_dh), &mb.rid);
            out.push((id, key.open(&id, &del.sealed).unwrap().to_vec()));
        }
        out
    }
}

mod links;

#[test]
fn deposit_deliver_ack_round_trip() {
    let f = fixture(Policy::default());
    let mb = f.create();
    for fill in 1..=3 {
        assert!(matches!(
            f.deposit(&mb, fill, None).result,
            Some(response::Result::Accepted(_))
        ));
    }
    let sub = f.subscribe(&mb);
    let got = f.drain(&sub, &mb);
    assert_eq!(
        got.iter().map(|(_, e)| e[0]).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "in order, opened by the recipient's key"
    );
    // Two deliveries of one envelope never share bytes (S6).
    let a = f.service.next_delivery(&sub, 0).unwrap().unwrap();
    let b = f.service.next_delivery(&sub, 0).unwrap().unwrap();
    assert_ne!(a.frame, b.frame);
    let ack = |ids: &[EnvelopeId]| {
        Action::Ack(relay::Ack {
            envelope_id: ids[0].to_vec().into(),
            more_ids: ids[1..].iter().map(|id| id.to_vec().into()).collect(),
        })
    };
    let acked = |n| Response {
        result: Some(response::Result::Ok(relay::Ok { acked: n })),
    };
    let (resp, durable, _) = reply(f.signed(&mb, ack(&[got[0].0])));
    assert_eq!(resp, acked(1));
    assert!(durable, "an ack is made durable before it is confirmed");
    assert_eq!(f.drain(&sub, &mb).len(), 2);
    // One ack for several envelopes, an already acked one among them.
    let (resp, ..) = reply(f.signed(&mb, ack(&[got[1].0, got[0].0, got[2].0])));
    assert_eq!(resp, acked(3), "every ID is counted");
    assert!(f.drain(&sub, &mb).is_empty());
    // At most MAX_ACK_IDS in one ack.
    let many = vec![got[0].0; tropa_proto::MAX_ACK_IDS + 1];
    let (resp, ..) = reply(f.signed(&mb, ack(&many)));
    assert_eq!(code(&resp), Some(ErrorCode::Malformed));
    let (resp, ..) = reply(f.signed(&mb, ack(&many[1..])));
    assert_eq!(resp, acked(64));
}

#[test]
fn the_cursor_skips_envelopes_that_do_not_open() {
    let f = fixture(Policy::default());
    let mb = f.create();
    f.deposit(&mb, 1, None);
    // A record damaged on disk: the at-rest seal no longer authenticates.
    let limits = StoreLimits {
        mailbox_quota: 10,
        total_quota: 10,
        open_mailbox_quota: 10,
        open_total_quota: 10,
        secured_as_checked: Vec::new(),
    };
    f.service
        .store()
        .put_envelope(&mb.rid, f.now.hour, &limits, &|_| vec![0u8; 100])
        .unwrap();
    f.deposit(&mb, 3, None);
    let sub = f.subscribe(&mb);
    let got: Vec<u8> = f.drain(&sub, &mb).iter().map(|(_, e)| e[0]).collect();
    assert_eq!(got, vec![1, 3]);
    assert_eq!(
        f.service
            .metrics
            .corrupt_envelopes
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn secured_mailboxes_take_only_signed_deposits() {
    let f = fixture(Policy::default());
    let mb = f.create();
    let sender = SigningKey::generate(&mut rand::rng());
    let (resp, ..) = reply(f.signed(
        &mb,
        Action::Secure(relay::Secure {
            sender_auth_pub: sender.verifying_key().to_bytes().to_vec().into(),
        }),
    ));
    assert_eq!(resp, ok());
    assert_eq!(code(&f.deposit(&mb, 1, None)), Some(ErrorCode::AuthFailed));
    let other = SigningKey::generate(&mut rand::rng());
    assert_eq!(
        code(&f.deposit(&mb, 1, Some(&other))),
        Some(ErrorCode::AuthFailed)
    );
    assert_eq!(f.deposit(&mb, 1, Some(&sender)), accepted());
}

#[test]
fn unknown_mailbox_and_bad_signature_look_the_same() {
    let f = fixture(Policy::default());
    let mb = f.create();
    let stranger = Mailbox {
        auth: SigningKey::generate(&mut rand::rng()),
        ..f.create()
    };
    let ghost = Mailbox {
        rid: [0xee; 24],
        ..f.create()
    };
    let bad_sig = reply(f.signed(&stranger, Action::Delete(relay::DeleteMailbox {}))).0;
    let unknown = reply(f.signed(&ghost, Action::Delete(relay::DeleteMailbox {}))).0;
    assert_eq!(bad_sig, unknown);
    assert_eq!(code(&bad_sig), Some(ErrorCode::AuthFailed));
    // A signature made for another connection's binding is refused too.
    let other = f.service.peer([8; 32], "192.0.2.1".parse().unwrap(), f.now);
    let command = RecipientCommand {
        recipient_id: mb.rid.to_vec().into(),
        action: Some(Action::Delete(relay::DeleteMailbox {})),
    }
    .encode_to_vec();
    let signature = crypto::sign_recipient(&mb.auth, &BINDING, &command);
    let (resp, ..) = reply(f.handle(
        request(request::Command::Signed(relay::SignedCommand {
            command: command.into(),
            signature: signature.to_vec().into(),
        })),
        &other,
        f.now,
    ));
    assert_eq!(code(&resp), Some(ErrorCode::AuthFailed));
}

/// H2: one address cannot create mailboxes without limit, per connection
/// or by opening new connections; the budget refills with time, and other
/// addresses are not affected.
#[test]
fn creation_is_rate_limited_per_connection_and_per_address() {
    let policy = Policy {
        creations_per_hour: 60,
        creation_burst_per_address: 5,
        creation_burst_per_connection: 3,
        ..Policy::default()
    };
    let f = fixture(policy);
    for _ in 0..3 {
        f.create();
    }
    assert_eq!(
        f.create_on(&f.peer).err(),
        Some(ErrorCode::RateLimited),
        "per connection"
    );
    let second = f.service.peer(BINDING, "192.0.2.1".parse().unwrap(), f.now);
    f.create_on(&second).unwrap();
    f.create_on(&second).unwrap();
    assert_eq!(
        f.create_on(&second).err(),
        Some(ErrorCode::RateLimited),
        "per address, across connections"
    );
    let elsewhere = f.service.peer(BINDING, "192.0.2.2".parse().unwrap(), f.now);
    f.create_on(&elsewhere).unwrap();
    // A minute later the address has one more.
    let later = Fixture {
        now: Now {
            instant: f.now.instant + Duration::from_secs(61),
            ..f.now
        },
        ..f
    };
    let third = later
        .service
        .peer(BINDING, "192.0.2.1".parse().unwrap(), later.now);
    later.create_on(&third).unwrap();
    assert_eq!(later.create_on(&third).err(), Some(ErrorCode::RateLimited));
    // Pruning forgets only budgets that have refilled.
    later.service.prune(Now {
        instant: later.now.instant + Duration::from_secs(3600),
        ..later.now
    });
    assert!(later.service.creations.lock().unwrap().is_empty());
}

/// H2: open mailboxes hold a few envelopes each; once the relay is half
/// full, the other half is shared equally by mailboxes, so a fat mailbox is
/// refused while a thin one still has room.
#[test]
fn open_quota_and_pressure_quota() {
    let policy = Policy {
        mailbox_quota: 10,
        open_mailbox_quota: 2,
        total_quota: 20,
        open_total_quota: 20,
        ..Policy::default()
    };
    let f = fixture(policy);
    let open = f.create();
    assert_eq!(f.deposit(&open, 1, None), accepted());
    assert_eq!(f.deposit(&open, 1, None), accepted());
    assert_eq!(code(&f.deposit(&open, 1, None)), Some(ErrorCode::Quota));
    let sender = SigningKey::generate(&mut rand::rng());
    let secure = |mb: &Mailbox| {
        f.signed(
            mb,
            Action::Secure(relay::Secure {
                sender_auth_pub: sender.verifying_key().to_bytes().to_vec().into(),
            }),
        )
    };
    let fat = f.create();
    secure(&fat);
    // 2 stored: the fat mailbox gets its full 10 up to half of 20...
    let mut n = 0;
    while f.deposit(&fat, 2, Some(&sender)) == accepted() {
        n += 1;
    }
    // ... and then its share: 20 / (2 * 2 mailboxes) = 5, which it exceeds.
    assert_eq!(n, 9, "refused once past half full and above its share");
    let thin = f.create();
    secure(&thin);
    assert_eq!(
        f.deposit(&thin, 3, Some(&sender)),
        accepted(),
        "a thin mailbox still has room"
    );
}

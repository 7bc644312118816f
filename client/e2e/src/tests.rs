//! Behaviour tests: handshake, ratchet, sealed sender, tampering, replay, expiry.

use proptest::prelude::*;
use prost::Message as _;

use crate::test_rng::TestRng;
use crate::*;

pub(crate) const NOW: u64 = 1_750_000_000;
pub(crate) const TTL: u64 = 7 * 24 * 3600;

pub(crate) fn relay(port: u16) -> tropa_proto::RelayAddress {
    format!("tropa://{}@relay.example:{port}", "A".repeat(43))
        .parse()
        .unwrap()
}

pub(crate) struct Setup {
    pub(crate) inviter: Identity,
    pub(crate) joiner: Identity,
    pub(crate) pending: PendingInvitation,
    pub(crate) invitation: Invitation,
    pub(crate) hello: Hello,
}

pub(crate) fn setup(rng: &mut TestRng) -> Setup {
    let inviter = Identity::generate(rng);
    let joiner = Identity::generate(rng);
    let (pending, invitation) = PendingInvitation::create(
        rng,
        &inviter,
        InviteParams {
            relay: relay(4433),
            sender_id: vec![0xa1; 24],
            reply_sender_auth: [0xa2; 32],
            now: NOW,
            ttl_secs: TTL,
        },
    )
    .unwrap();
    let hello = Hello {
        reply_relay: relay(4434),
        reply_sender_id: vec![0xb1; 24],
        sender_auth: [0xb2; 32],
    };
    Setup {
        inviter,
        joiner,
        pending,
        invitation,
        hello,
    }
}

/// A connected pair: (joiner session, inviter session).
pub(crate) fn pair(rng: &mut TestRng) -> (Session, Session) {
    let s = setup(rng);
    let first = Content::text(rng, "hello").unwrap();
    let (j, env) =
        Session::initiate(rng, &s.joiner, &s.invitation, &s.hello, Some(&first), NOW).unwrap();
    let (i, _, _, _) = Session::accept(rng, &s.inviter, &s.pending, env.as_bytes(), NOW).unwrap();
    (j, i)
}

fn text_of(c: &Content) -> &str {
    match &c.body {
        Some(Body::Text(t)) => &t.text,
        _ => panic!("not a text"),
    }
}

fn msg(rng: &mut TestRng, s: &mut Session, text: &str) -> Envelope {
    let c = Content::text(rng, text).unwrap();
    s.seal(rng, &c).unwrap()
}

#[test]
fn handshake_and_conversation() {
    let mut rng = TestRng::new(b"conversation");
    let s = setup(&mut rng);
    let link = s.invitation.to_link();
    assert!(link.starts_with("tropa:invite#"));
    let inv = Invitation::from_link(&link).unwrap();
    assert_eq!(inv, s.invitation);
    assert_eq!(inv.sender_id(), &[0xa1; 24]);
    assert_eq!(inv.reply_sender_auth(), &[0xa2; 32]);
    assert_eq!(inv.relay(), &relay(4433));
    assert_eq!(inv.inviter(), s.inviter.public());

    let first = Content::text(&mut rng, "first").unwrap();
    let (mut j, env) =
        Session::initiate(&mut rng, &s.joiner, &inv, &s.hello, Some(&first), NOW + 10).unwrap();
    assert_eq!(env.as_bytes().len(), ENVELOPE_SIZE);
    assert_eq!(env.kind(), EnvelopeKind::Initial);
    assert_eq!(
        EnvelopeKind::of(env.as_bytes()),
        Some(EnvelopeKind::Initial)
    );
    let pending = PendingInvitation::from_bytes(&s.pending.to_bytes()).unwrap();
    let (mut i, joiner_pub, hello, got_first) =
        Session::accept(&mut rng, &s.inviter, &pending, env.as_bytes(), NOW + 20).unwrap();
    assert_eq!(joiner_pub, s.joiner.public());
    assert_eq!(hello, s.hello);
    assert_eq!(got_first.as_ref(), Some(&first));
    assert_eq!(i.peer_identity(), s.joiner.public());
    assert_eq!(j.peer_identity(), s.inviter.public());
    assert_eq!(i.own_identity(), s.inviter.public());

    // Joiner keeps talking before any reply (same chain).
    let e = msg(&mut rng, &mut j, "j2");
    assert_eq!(text_of(&i.open(e.as_bytes()).unwrap()), "j2");
    // Ping-pong across many DH ratchet steps.
    for round in 0..5 {
        let e = msg(&mut rng, &mut i, &format!("i{round}"));
        assert_eq!(e.kind(), EnvelopeKind::Ratchet);
        assert_eq!(text_of(&j.open(e.as_bytes()).unwrap()), format!("i{round}"));
        let e2 = msg(&mut rng, &mut i, "again");
        assert_eq!(text_of(&j.open(e2.as_bytes()).unwrap()), "again");
        let e = msg(&mut rng, &mut j, &format!("j{round}"));
        assert_eq!(text_of(&i.open(e.as_bytes()).unwrap()), format!("j{round}"));
    }
    // Receipts travel too.
    let id = first.message_id().unwrap();
    let r = Content::receipt(&mut rng, &[id]).unwrap();
    let e = i.seal(&mut rng, &r).unwrap();
    assert_eq!(j.open(e.as_bytes()).unwrap(), r);
    assert_eq!(i.skipped_keys(), 0);
    assert_eq!(j.skipped_keys(), 0);
}

#[test]
fn initial_message_without_content() {
    let mut rng = TestRng::new(b"no-content");
    let s = setup(&mut rng);
    let (_, env) =
        Session::initiate(&mut rng, &s.joiner, &s.invitation, &s.hello, None, NOW).unwrap();
    let (_, _, _, first) =
        Session::accept(&mut rng, &s.inviter, &s.pending, env.as_bytes(), NOW).unwrap();
    assert!(first.is_none());
}

/// S4 and S5: no long-term identifier appears in any envelope, and every
/// envelope has the same size whatever it carries.
#[test]
fn sealed_sender_and_uniform_size() {
    let mut rng = TestRng::new(b"sealed-sender");
    let s = setup(&mut rng);
    let first = Content::text(&mut rng, "").unwrap();
    let (mut j, env0) = Session::initiate(
        &mut rng,
        &s.joiner,
        &s.invitation,
        &s.hello,
        Some(&first),
        NOW,
    )
    .unwrap();
    let (mut i, _, _, _) =
        Session::accept(&mut rng, &s.inviter, &s.pending, env0.as_bytes(), NOW).unwrap();
    let mut envs = vec![env0];
    for k in 0..4 {
        let big = "x".repeat(if k % 2 == 0 { 0 } else { MAX_TEXT_LEN });
        let e = msg(&mut rng, &mut i, &big);
        j.open(e.as_bytes()).unwrap();
        envs.push(e);
        let e = msg(&mut rng, &mut j, "short");
        i.open(e.as_bytes()).unwrap();
        envs.push(e);
    }
    let mut secrets: Vec<(&str, Vec<u8>)> = vec![
        ("joiner identity", s.joiner.public().to_bytes().to_vec()),
        ("inviter identity", s.inviter.public().to_bytes().to_vec()),
        ("invitation sender_id", s.invitation.sender_id().to_vec()),
        (
            "reply sender auth",
            s.invitation.reply_sender_auth().to_vec(),
        ),
        ("hello sender id", s.hello.reply_sender_id.clone()),
        ("hello sender auth", s.hello.sender_auth.to_vec()),
        ("hello relay", s.hello.reply_relay.to_string().into_bytes()),
    ];
    secrets.push(("joiner ed25519", s.joiner.public().ed25519().to_vec()));
    secrets.push(("joiner x25519", s.joiner.public().x25519().to_vec()));
    secrets.push(("inviter ed25519", s.inviter.public().ed25519().to_vec()));
    secrets.push(("inviter x25519", s.inviter.public().x25519().to_vec()));
    for (n, e) in envs.iter().enumerate() {
        assert_eq!(e.as_bytes().len(), ENVELOPE_SIZE, "envelope {n} size");
        for (what, needle) in &secrets {
            for w in needle.windows(8) {
                assert!(
                    !e.as_bytes().windows(8).any(|x| x == w),
                    "{what} visible in envelope {n}"
                );
            }
        }
    }
    // The scan can fail: a planted identity key is found.
    let mut planted = envs[1].as_bytes().to_vec();
    planted[100..164].copy_from_slice(&s.joiner.public().to_bytes());
    assert!(
        planted
            .windows(8)
            .any(|x| x == &s.joiner.public().to_bytes()[..8])
    );
}

fn snapshot(s: &Session) -> Vec<u8> {
    s.to_bytes().to_vec()
}

/// Every single-bit flip in any region is rejected and leaves the session unchanged.
#[test]
fn tampering_is_rejected_without_state_change() {
    let mut rng = TestRng::new(b"tamper");
    let (mut j, mut i) = pair(&mut rng);
    let e = msg(&mut rng, &mut j, "secret");
    let before = snapshot(&i);
    // type, nonce, header, header tag, body start, padding area, body tag
    let positions = [
        0usize, 1, 12, 13, 40, 52, 68, 69, 70, 200, 9000, 16367, 16368, 16383,
    ];
    for &p in &positions {
        for bit in [0u8, 7] {
            let mut bad = e.as_bytes().to_vec();
            bad[p] ^= 1 << bit;
            let err = i.open(&bad).unwrap_err();
            let expected = match p {
                0 => [OpenError::UnknownType, OpenError::UnexpectedInitial],
                1..=68 => [OpenError::UnknownHeader, OpenError::UnknownHeader],
                _ => [OpenError::Tampered, OpenError::Tampered],
            };
            assert!(expected.contains(&err), "pos {p}: {err:?}");
            assert_eq!(snapshot(&i), before, "state changed after tamper at {p}");
        }
    }
    assert_eq!(
        i.open(&e.as_bytes()[..100]).unwrap_err(),
        OpenError::BadSize
    );
    let mut long = e.as_bytes().to_vec();
    long.push(0);
    assert_eq!(i.open(&long).unwrap_err(), OpenError::BadSize);
    assert_eq!(snapshot(&i), before);
    assert_eq!(text_of(&i.open(e.as_bytes()).unwrap()), "secret");
}

/// Tampering with a message on a new chain (DH ratchet step) also leaves
/// the state untouched, and the genuine message still opens.
#[test]
fn tampering_on_new_chain_is_rejected_without_state_change() {
    let mut rng = TestRng::new(b"tamper-new-chain");
    let (mut j, mut i) = pair(&mut rng);
    let e = msg(&mut rng, &mut i, "reply on a new chain");
    let before = snapshot(&j);
    for p in [20usize, 80, 16380] {
        let mut bad = e.as_bytes().to_vec();
        bad[p] ^= 0x10;
        assert!(j.open(&bad).is_err());
        assert_eq!(snapshot(&j), before);
    }
    assert_eq!(
        text_of(&j.open(e.as_bytes()).unwrap()),
        "reply on a new chain"
    );
}

#[test]
fn replays_are_rejected() {
    let mut rng = TestRng::new(b"replay");
    let (mut j, mut i) = pair(&mut rng);
    // Current chain.
    let e1 = msg(&mut rng, &mut j, "1");
    let e2 = msg(&mut rng, &mut j, "2");
    let e3 = msg(&mut rng, &mut j, "3");
    i.open(e1.as_bytes()).unwrap();
    assert_eq!(
        i.open(e1.as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
    // Out of order: e3 then e2 (via skipped key), then both replayed.
    i.open(e3.as_bytes()).unwrap();
    assert_eq!(i.skipped_keys(), 1);
    i.open(e2.as_bytes()).unwrap();
    assert_eq!(i.skipped_keys(), 0);
    let before = snapshot(&i);
    assert_eq!(
        i.open(e2.as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
    assert_eq!(
        i.open(e3.as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
    assert_eq!(snapshot(&i), before);
    // After a ratchet step the old chain's messages are still recognised.
    let r = msg(&mut rng, &mut i, "r");
    j.open(r.as_bytes()).unwrap();
    let e4 = msg(&mut rng, &mut j, "4");
    i.open(e4.as_bytes()).unwrap();
    assert_eq!(
        i.open(e1.as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
    assert_eq!(
        i.open(e4.as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
    assert_eq!(
        j.open(r.as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
}

#[test]
fn redelivered_initial_envelope_is_recognised() {
    let mut rng = TestRng::new(b"initial-replay");
    let s = setup(&mut rng);
    let (mut j, env) =
        Session::initiate(&mut rng, &s.joiner, &s.invitation, &s.hello, None, NOW).unwrap();
    let (mut i, _, _, _) =
        Session::accept(&mut rng, &s.inviter, &s.pending, env.as_bytes(), NOW).unwrap();
    assert_eq!(
        i.open(env.as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
    // A joiner never accepts initial envelopes.
    assert_eq!(
        j.open(env.as_bytes()).unwrap_err(),
        OpenError::UnexpectedInitial
    );
    // Another joiner's initial envelope is not "already processed".
    let other = Identity::generate(&mut rng);
    let (_, env2) =
        Session::initiate(&mut rng, &other, &s.invitation, &s.hello, None, NOW).unwrap();
    assert_eq!(
        i.open(env2.as_bytes()).unwrap_err(),
        OpenError::UnexpectedInitial
    );
}

#[test]
fn expired_invitation_is_refused() {
    let mut rng = TestRng::new(b"expired");
    let s = setup(&mut rng);
    let late = NOW + TTL + 1;
    assert_eq!(
        Session::initiate(&mut rng, &s.joiner, &s.invitation, &s.hello, None, late).unwrap_err(),
        HandshakeError::Expired
    );
    let (_, env) = Session::initiate(
        &mut rng,
        &s.joiner,
        &s.invitation,
        &s.hello,
        None,
        NOW + TTL,
    )
    .unwrap();
    let too_late = late + INVITATION_GRACE_SECS;
    assert_eq!(
        Session::accept(&mut rng, &s.inviter, &s.pending, env.as_bytes(), too_late).unwrap_err(),
        HandshakeError::Expired
    );
    assert!(Session::accept(&mut rng, &s.inviter, &s.pending, env.as_bytes(), NOW + TTL).is_ok());
}

#[test]
fn handshake_negative_cases() {
    let mut rng = TestRng::new(b"handshake-neg");
    let s = setup(&mut rng);
    let (_, env) =
        Session::initiate(&mut rng, &s.joiner, &s.invitation, &s.hello, None, NOW).unwrap();
    // Own invitation.
    assert_eq!(
        Session::initiate(&mut rng, &s.inviter, &s.invitation, &s.hello, None, NOW).unwrap_err(),
        HandshakeError::OwnInvitation
    );
    // Another invitation's pending keys.
    let (other_pending, _) = PendingInvitation::create(
        &mut rng,
        &s.inviter,
        InviteParams {
            relay: relay(1),
            sender_id: vec![1; 24],
            reply_sender_auth: [1; 32],
            now: NOW,
            ttl_secs: TTL,
        },
    )
    .unwrap();
    assert_eq!(
        Session::accept(&mut rng, &s.inviter, &other_pending, env.as_bytes(), NOW).unwrap_err(),
        HandshakeError::Undecryptable
    );
    // Pending invitation of another identity.
    assert_eq!(
        Session::accept(&mut rng, &s.joiner, &s.pending, env.as_bytes(), NOW).unwrap_err(),
        HandshakeError::WrongIdentity
    );
    // Size and type.
    assert_eq!(
        Session::accept(&mut rng, &s.inviter, &s.pending, &env.as_bytes()[1..], NOW).unwrap_err(),
        HandshakeError::BadSize
    );
    let mut t = env.as_bytes().to_vec();
    t[0] = TYPE_RATCHET;
    assert_eq!(
        Session::accept(&mut rng, &s.inviter, &s.pending, &t, NOW).unwrap_err(),
        HandshakeError::NotInitial
    );
    // A flipped bit anywhere: ephemeral key, KEM ciphertext, encrypted identity,
    // identity tag, ratchet header, body, body tag.
    for p in [
        1usize, 20, 33, 600, 1120, 1121, 1184, 1185, 1200, 1201, 1215, 1269, 5000, 16383,
    ] {
        let mut bad = env.as_bytes().to_vec();
        bad[p] ^= 0x04;
        let err = Session::accept(&mut rng, &s.inviter, &s.pending, &bad, NOW).unwrap_err();
        let ok = match p {
            1..=1200 => err == HandshakeError::Undecryptable,
            1201..=1268 => err == HandshakeError::Open(OpenError::UnknownHeader),
            _ => err == HandshakeError::Open(OpenError::Tampered),
        };
        assert!(ok, "pos {p}: {err:?}");
    }
    // Invalid Hello.
    let mut bad_hello = s.hello.clone();
    bad_hello.reply_sender_id = vec![1; 23];
    assert_eq!(
        Session::initiate(&mut rng, &s.joiner, &s.invitation, &bad_hello, None, NOW).unwrap_err(),
        HandshakeError::Hello(HelloError::BadSenderId)
    );
    // Oversized first content.
    let mut big = Content::text(&mut rng, "x").unwrap();
    big.body = Some(Body::Text(Text {
        text: "y".repeat(MAX_CONTENT_LEN),
        expire_after_secs: 0,
        sent_at: 0,
    }));
    assert!(matches!(
        Session::initiate(
            &mut rng,
            &s.joiner,
            &s.invitation,
            &s.hello,
            Some(&big),
            NOW
        ),
        Err(HandshakeError::Content(ContentError::TooLarge { .. }))
    ));
}

#[test]
fn identity_change_is_surfaced() {
    // A known contact comes back (e.g. via a new invitation) with another key.
    let mut rng = TestRng::new(b"identity-change");
    let s = setup(&mut rng);
    let known = s.joiner.public();
    let impostor = Identity::generate(&mut rng);
    let (_, env) =
        Session::initiate(&mut rng, &impostor, &s.invitation, &s.hello, None, NOW).unwrap();
    let (_, seen, _, _) =
        Session::accept(&mut rng, &s.inviter, &s.pending, env.as_bytes(), NOW).unwrap();
    let err = verify_peer(&known, &seen).unwrap_err();
    assert_eq!(err.seen, impostor.public());
    assert_ne!(
        safety_number(&known, &s.inviter.public()),
        safety_number(&seen, &s.inviter.public())
    );
}

#[test]
fn too_many_skipped_and_limits() {
    let mut rng = TestRng::new(b"skip");
    let (mut j, mut i) = pair(&mut rng);
    let mut envs = Vec::new();
    for _ in 0..(MAX_SKIP + 2) {
        envs.push(msg(&mut rng, &mut j, "m"));
    }
    let before = snapshot(&i);
    // Message index MAX_SKIP + 1 would need MAX_SKIP + 1 skipped keys.
    assert_eq!(
        i.open(envs[MAX_SKIP as usize + 1].as_bytes()).unwrap_err(),
        OpenError::TooManySkipped
    );
    assert_eq!(snapshot(&i), before);
    // Exactly MAX_SKIP is fine.
    i.open(envs[MAX_SKIP as usize].as_bytes()).unwrap();
    assert_eq!(i.skipped_keys(), MAX_SKIP as usize);
    // The skipped ones still open, once.
    i.open(envs[0].as_bytes()).unwrap();
    i.open(envs[500].as_bytes()).unwrap();
    assert_eq!(
        i.open(envs[500].as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
    assert_eq!(i.skipped_keys(), MAX_SKIP as usize - 2);
    // Round trip with many skipped keys.
    let mut back = Session::from_bytes(&i.to_bytes()).unwrap();
    back.open(envs[999].as_bytes()).unwrap();
}

#[test]
fn skipped_keys_expire_after_ratchet_steps() {
    let mut rng = TestRng::new(b"expiry");
    let (mut j, mut i) = pair(&mut rng);
    let lost = msg(&mut rng, &mut j, "lost for a while");
    let later = msg(&mut rng, &mut j, "later");
    i.open(later.as_bytes()).unwrap();
    assert_eq!(i.skipped_keys(), 1);
    for step in 0..MAX_SKIPPED_AGE_STEPS {
        assert_eq!(i.skipped_keys(), 1, "still kept at step {step}");
        let e = msg(&mut rng, &mut i, "ping");
        j.open(e.as_bytes()).unwrap();
        let e = msg(&mut rng, &mut j, "pong");
        i.open(e.as_bytes()).unwrap();
    }
    assert_eq!(
        i.skipped_keys(),
        0,
        "expired after {MAX_SKIPPED_AGE_STEPS} steps"
    );
    assert_eq!(
        i.open(lost.as_bytes()).unwrap_err(),
        OpenError::UnknownHeader
    );
}

#[test]
fn skipped_key_store_is_bounded() {
    let mut rng = TestRng::new(b"bounded");
    let (mut j, mut i) = pair(&mut rng);
    // Three chains of MAX_SKIP - 1 lost messages each: at most MAX_SKIPPED_KEYS kept.
    let mut oldest = None;
    for _ in 0..3 {
        for k in 0..(MAX_SKIP - 1) {
            let e = msg(&mut rng, &mut j, "lost");
            if oldest.is_none() && k == 0 {
                oldest = Some(e);
            }
        }
        let e = msg(&mut rng, &mut j, "arrives");
        i.open(e.as_bytes()).unwrap();
        let r = msg(&mut rng, &mut i, "reply");
        j.open(r.as_bytes()).unwrap();
    }
    assert_eq!(i.skipped_keys(), MAX_SKIPPED_KEYS);
    // The oldest were evicted first.
    assert_eq!(
        i.open(oldest.unwrap().as_bytes()).unwrap_err(),
        OpenError::AlreadyProcessed
    );
}

#[test]
fn lost_messages_across_ratchet_steps() {
    let mut rng = TestRng::new(b"lost-across-steps");
    let (mut j, mut i) = pair(&mut rng);
    let a1 = msg(&mut rng, &mut j, "a1");
    let a2 = msg(&mut rng, &mut j, "a2");
    i.open(a1.as_bytes()).unwrap();
    let b1 = msg(&mut rng, &mut i, "b1");
    j.open(b1.as_bytes()).unwrap();
    let a3 = msg(&mut rng, &mut j, "a3"); // new chain, PN = 2
    assert_eq!(text_of(&i.open(a3.as_bytes()).unwrap()), "a3");
    assert_eq!(i.skipped_keys(), 1);
    assert_eq!(text_of(&i.open(a2.as_bytes()).unwrap()), "a2");
    assert_eq!(i.skipped_keys(), 0);
}

#[test]
fn malformed_plaintexts_are_rejected() {
    let mut rng = TestRng::new(b"malformed");
    let (j, i) = pair(&mut rng);
    let cases: Vec<(Vec<u8>, OpenError)> = {
        let good = tropa_proto::e2e::Plaintext {
            hello: None,
            content: Some(Content::text(&mut rng, "ok").unwrap()),
            ..Default::default()
        }
        .encode_to_vec();
        let with_len = |m: &[u8]| {
            let mut v = (m.len() as u16).to_be_bytes().to_vec();
            v.extend_from_slice(m);
            v
        };
        let mut nonzero_pad = with_len(&good);
        nonzero_pad.push(0);
        nonzero_pad.push(1);
        let hello = tropa_proto::e2e::Plaintext {
            hello: Some(tropa_proto::e2e::Hello::default()),
            content: Some(Content::text(&mut rng, "ok").unwrap()),
            ..Default::default()
        }
        .encode_to_vec();
        let no_content = tropa_proto::e2e::Plaintext::default().encode_to_vec();
        let bad_id = tropa_proto::e2e::Plaintext {
            hello: None,
            content: Some(Content {
                id: vec![1; 3],
                body: Some(Body::Text(Text::default())),
            }),
            ..Default::default()
        }
        .encode_to_vec();
        vec![
            (with_len(&good), OpenError::UnknownType), // placeholder: the good case
            (nonzero_pad, OpenError::Malformed),
            (vec![0xff, 0xff], OpenError::Malformed),
            (with_len(&[0xff, 0xff, 0xff]), OpenError::Malformed),
            (with_len(&hello), OpenError::Malformed),
            (with_len(&no_content), OpenError::Malformed),
            (
                with_len(&bad_id),
                OpenError::BadContent(ContentError::BadId),
            ),
        ]
    };
    for (k, (body, expected)) in cases.into_iter().enumerate() {
        let mut j2 = j.clone();
        let mut i2 = i.clone();
        let e = j2.seal_raw(&mut rng, &body);
        let before = snapshot(&i2);
        let got = i2.open(e.as_bytes());
        if k == 0 {
            assert_eq!(text_of(&got.unwrap()), "ok");
        } else {
            assert_eq!(got.unwrap_err(), expected, "case {k}");
            assert_eq!(snapshot(&i2), before);
        }
    }
}

#[test]
fn seal_refuses_oversized_content_without_state_change() {
    let mut rng = TestRng::new(b"oversize");
    let (mut j, _) = pair(&mut rng);
    let before = snapshot(&j);
    let mut c = Content::text(&mut rng, "x").unwrap();
    c.body = Some(Body::Text(Text {
        text: "y".repeat(MAX_CONTENT_LEN),
        expire_after_secs: 0,
        sent_at: 0,
    }));
    assert!(matches!(
        j.seal(&mut rng, &c),
        Err(SealError::Content(ContentError::TooLarge { .. }))
    ));
    assert_eq!(snapshot(&j), before);
}

#[test]
fn foreign_session_envelopes_are_unknown() {
    let mut rng = TestRng::new(b"foreign");
    let (mut j1, _) = pair(&mut rng);
    let (_, mut i2) = pair(&mut rng);
    let e = msg(&mut rng, &mut j1, "not for you");
    assert_eq!(i2.open(e.as_bytes()).unwrap_err(), OpenError::UnknownHeader);
}

#[test]
fn state_round_trips_and_redaction() {
    let mut rng = TestRng::new(b"state");
    let (mut j, mut i) = pair(&mut rng);
    let e = msg(&mut rng, &mut i, "x");
    j.open(e.as_bytes()).unwrap();
    let jb = j.to_bytes();
    let mut j2 = Session::from_bytes(&jb).unwrap();
    assert_eq!(j2.to_bytes(), jb);
    let e = msg(&mut rng, &mut j2, "from restored");
    assert_eq!(text_of(&i.open(e.as_bytes()).unwrap()), "from restored");
    // Bad state bytes.
    assert_eq!(
        Session::from_bytes(&jb[..jb.len() - 1]).unwrap_err(),
        StateError::Truncated
    );
    let mut v = jb.to_vec();
    v.push(1);
    assert_eq!(
        Session::from_bytes(&v).unwrap_err(),
        StateError::TrailingBytes
    );
    v[0] = 0;
    assert_eq!(Session::from_bytes(&v).unwrap_err(), StateError::BadVersion);
    // Debug prints no key bytes.
    let dbg = format!("{j:?} {:?}", setup(&mut rng).pending);
    assert!(dbg.contains("redacted"));
    for w in jb[1 + 128..].windows(4) {
        assert!(!dbg.contains(&hex::encode(w)), "state bytes in Debug");
    }
    let s = setup(&mut rng);
    let pb = s.pending.to_bytes();
    let dbg = format!("{:?}", s.pending);
    for w in pb[1 + 16 + 64..].windows(4) {
        assert!(!dbg.contains(&hex::encode(w)));
    }
    assert_eq!(PendingInvitation::from_bytes(&pb).unwrap().to_bytes(), pb);
    assert_eq!(
        PendingInvitation::from_bytes(&pb[..10]).unwrap_err(),
        StateError::Truncated
    );
}

#[test]
fn link_errors() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut rng = TestRng::new(b"links");
    let s = setup(&mut rng);
    let link = s.invitation.to_link();
    let payload = link.strip_prefix(LINK_PREFIX).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
    let proto = tropa_proto::e2e::Invitation::decode(
        &raw[..raw.len() - crate::invitation::LINK_CHECKSUM_LEN],
    )
    .unwrap();
    let with_sum = |bytes: &[u8]| {
        let mut b = bytes.to_vec();
        b.extend_from_slice(&crate::invitation::link_checksum(bytes));
        format!("{LINK_PREFIX}{}", URL_SAFE_NO_PAD.encode(b))
    };
    let enc = |p: &tropa_proto::e2e::Invitation| with_sum(&p.encode_to_vec());
    let with = |f: &dyn Fn(&mut tropa_proto::e2e::Invitation)| {
        let mut p = proto.clone();
        f(&mut p);
        Invitation::from_link(&enc(&p)).unwrap_err()
    };
    assert!(Invitation::from_link(&format!("  {link}\n")).is_ok());
    assert_eq!(
        Invitation::from_link("https://x#y").unwrap_err(),
        LinkError::BadScheme
    );
    assert_eq!(
        Invitation::from_link("tro").unwrap_err(),
        LinkError::BadScheme
    );
    assert_eq!(
        Invitation::from_link("tropa:other#abc").unwrap_err(),
        LinkError::NotAnInvitation
    );
    assert_eq!(
        Invitation::from_link("tropa:invite").unwrap_err(),
        LinkError::NotAnInvitation
    );
    assert_eq!(
        Invitation::from_link("tropa:invite#a+b/").unwrap_err(),
        LinkError::BadBase64
    );
    assert_eq!(
        Invitation::from_link(&format!("{LINK_PREFIX}{}", "A".repeat(MAX_LINK_LEN))).unwrap_err(),
        LinkError::TooLong
    );
    assert_eq!(
        Invitation::from_link(&with_sum(&[0xff, 0xff])).unwrap_err(),
        LinkError::BadProtobuf
    );
    assert_eq!(
        Invitation::from_link(&format!("{LINK_PREFIX}{}", URL_SAFE_NO_PAD.encode([1, 2])))
            .unwrap_err(),
        LinkError::BadChecksum,
        "shorter than a checksum"
    );
    // A link with any one character changed, dropped or doubled is refused
    // (before the checksum, a change in most fields went unnoticed and
    // produced a contact that could never work).
    let chars: Vec<char> = payload.chars().collect();
    for i in 0..chars.len() {
        let mut changed = chars.clone();
        changed[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let mut dropped = chars.clone();
        dropped.remove(i);
        let mut doubled = chars.clone();
        doubled.insert(i, chars[i]);
        for variant in [changed, dropped, doubled] {
            let link = format!("{LINK_PREFIX}{}", variant.iter().collect::<String>());
            assert!(
                matches!(
                    Invitation::from_link(&link),
                    Err(LinkError::BadChecksum | LinkError::BadBase64)
                ),
                "character {i}"
            );
        }
    }
    assert_eq!(with(&|p| p.version = 2), LinkError::UnsupportedVersion(2));
    assert_eq!(with(&|p| p.version = 0), LinkError::UnsupportedVersion(0));
    assert_eq!(
        with(&|p| p.inviter_identity.pop().map(drop).unwrap_or(())),
        LinkError::BadIdentityKey
    );
    assert_eq!(with(&|p| p.prekey.truncate(31)), LinkError::BadPrekey);
    assert_eq!(with(&|p| p.prekey = vec![0; 32]), LinkError::BadPrekey);
    assert_eq!(with(&|p| p.kem_key.truncate(1000)), LinkError::BadKemKey);
    // A coefficient >= q fails the FIPS 203 modulus check.
    assert_eq!(
        with(&|p| p.kem_key[..2].copy_from_slice(&[0xff, 0xff])),
        LinkError::BadKemKey
    );
    assert!(matches!(
        with(&|p| p.relay = "http://x".into()),
        LinkError::BadRelayAddress(_)
    ));
    assert_eq!(with(&|p| p.sender_id.push(0)), LinkError::BadSenderId);
    assert_eq!(
        with(&|p| p.reply_sender_auth.clear()),
        LinkError::BadReplySenderAuth
    );
    assert_eq!(
        with(&|p| p.expires_at = p.created_at - 1),
        LinkError::BadValidity
    );
    // InviteParams validation.
    let bad = PendingInvitation::create(
        &mut rng,
        &s.inviter,
        InviteParams {
            relay: relay(1),
            sender_id: vec![0; 23],
            reply_sender_auth: [0; 32],
            now: NOW,
            ttl_secs: TTL,
        },
    );
    assert_eq!(bad.unwrap_err(), InviteError::BadSenderId);
}

/// A scripted conversation step for the property tests.
#[derive(Debug, Clone)]
enum Step {
    /// The joiner (true) or inviter (false) seals a message into its outbox.
    Send(bool),
    /// Deliver the pending message at this index (mod len) of that side's outbox.
    Deliver(bool, usize),
    /// Drop the pending message at this index (lost).
    Lose(bool, usize),
    /// Serialise and reload that side's session.
    Reload(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<bool>().prop_map(Step::Send),
        4 => (any::<bool>(), any::<usize>()).prop_map(|(a, b)| Step::Deliver(a, b)),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(a, b)| Step::Lose(a, b)),
        1 => any::<bool>().prop_map(Step::Reload),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any interleaving of sends, out-of-order deliveries, losses and state
    /// reloads: every delivered message opens exactly once with the right
    /// content, and a second delivery is reported as already processed.
    #[test]
    fn out_of_order_delivery(seed in any::<[u8; 8]>(), steps in prop::collection::vec(step(), 1..60)) {
        let mut rng = TestRng::new(&seed);
        let (j, i) = pair(&mut rng);
        let mut sess = [j, i]; // index 0 = joiner, 1 = inviter
        let mut outbox: [Vec<(Envelope, String)>; 2] = [Vec::new(), Vec::new()];
        let mut delivered: [Vec<Envelope>; 2] = [Vec::new(), Vec::new()];
        let mut counter = 0u32;
        for st in steps {
            match st {
                Step::Send(side) => {
                    let k = usize::from(!side);
                    counter += 1;
                    let text = format!("m{counter}");
                    let e = msg(&mut rng, &mut sess[k], &text);
                    outbox[k].push((e, text));
                }
                Step::Deliver(side, idx) => {
                    let k = usize::from(!side);
                    if outbox[k].is_empty() { continue; }
                    let (e, text) = outbox[k].remove(idx % outbox[k].len());
                    let c = sess[1 - k].open(e.as_bytes()).unwrap();
                    prop_assert_eq!(text_of(&c), text.as_str());
                    prop_assert_eq!(sess[1 - k].open(e.as_bytes()).unwrap_err(), OpenError::AlreadyProcessed);
                    delivered[k].push(e);
                }
                Step::Lose(side, idx) => {
                    let k = usize::from(!side);
                    if outbox[k].is_empty() { continue; }
                    outbox[k].remove(idx % outbox[k].len());
                }
                Step::Reload(side) => {
                    let k = usize::from(!side);
                    let b = sess[k].to_bytes();
                    sess[k] = Session::from_bytes(&b).unwrap();
                    prop_assert_eq!(sess[k].to_bytes(), b);
                }
            }
        }
        // Drain: everything still pending opens.
        for k in 0..2 {
            for (e, text) in std::mem::take(&mut outbox[k]) {
                let c = sess[1 - k].open(e.as_bytes()).unwrap();
                prop_assert_eq!(text_of(&c), text.as_str());
            }
            for e in &delivered[k] {
                prop_assert!(sess[1 - k].open(e.as_bytes()).is_err());
            }
        }
    }

    /// Session state survives serialisation at any point, byte for byte.
    #[test]
    fn state_round_trip(seed in any::<[u8; 8]>(), sends in 0usize..6, skip in 0usize..4) {
        let mut rng = TestRng::new(&seed);
        let (mut j, mut i) = pair(&mut rng);
        let mut pending = Vec::new();
        for _ in 0..sends + skip {
            pending.push(msg(&mut rng, &mut j, "p"));
        }
        for e in pending.iter().skip(skip) {
            i.open(e.as_bytes()).unwrap();
        }
        for s in [&j, &i] {
            let b = s.to_bytes();
            let back = Session::from_bytes(&b).unwrap();
            prop_assert_eq!(back.to_bytes(), b);
        }
        let mut i2 = Session::from_bytes(&i.to_bytes()).unwrap();
        for e in pending.iter().take(skip) {
            let c = i2.open(e.as_bytes()).unwrap();
            prop_assert_eq!(text_of(&c), "p");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Link parsing never panics on arbitrary input.
    #[test]
    fn from_link_never_panics(s in "\\PC{0,300}", tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Invitation::from_link(&s);
        use base64::Engine as _;
        let link = format!("{LINK_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tail));
        let _ = Invitation::from_link(&link);
    }

    /// A flip of any single bit of a valid envelope is rejected and leaves the
    /// session unchanged; the genuine envelope still opens afterwards.
    #[test]
    fn any_bit_flip_is_rejected(seed in any::<[u8; 8]>(), pos in 0usize..ENVELOPE_SIZE, bit in 0u8..8, new_chain in any::<bool>()) {
        let mut rng = TestRng::new(&seed);
        let (mut j, mut i) = pair(&mut rng);
        let (sender, receiver) = if new_chain { (&mut i, &mut j) } else { (&mut j, &mut i) };
        let e = msg(&mut rng, sender, "payload");
        let before = snapshot(receiver);
        let mut bad = e.as_bytes().to_vec();
        bad[pos] ^= 1 << bit;
        prop_assert!(receiver.open(&bad).is_err());
        prop_assert_eq!(snapshot(receiver), before);
        prop_assert!(receiver.open(e.as_bytes()).is_ok());
    }

    /// Random bytes never panic `open` or `accept`.
    #[test]
    fn random_envelopes_never_panic(seed in any::<[u8; 8]>(), ty in 0u8..4) {
        let mut rng = TestRng::new(&seed);
        let s = setup(&mut rng);
        let (mut j, _) = pair(&mut rng);
        let mut bytes = vec![0u8; ENVELOPE_SIZE];
        rand_core::Rng::fill_bytes(&mut rng, &mut bytes);
        bytes[0] = ty;
        prop_assert!(j.open(&bytes).is_err());
        prop_assert!(Session::accept(&mut rng, &s.inviter, &s.pending, &bytes, NOW).is_err());
    }
}

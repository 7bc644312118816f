//! Contact requests: the round trip into a real contact, replay ids,
//! tampering of every region of the envelope, and each refusal (wrong
//! identity, someone else's invitation, oversized text, a Hello instead of
//! a request and the reverse, expiry, one's own address).

use super::*;
use crate::envelope::{INITIAL_ID, INITIAL_RATCHET};
use crate::test_rng::TestRng;
use crate::tests::{NOW, relay};
use crate::{Content, ContentExt, Hello, InviteParams};

/// An intake address lives for years.
const ADDRESS_TTL: u64 = 10 * 365 * 24 * 3600;
/// The requester's own one-time invitation.
const INVITE_TTL: u64 = 30 * 24 * 3600;

struct Intake {
    owner: Identity,
    pending: PendingInvitation,
    address: Invitation,
    requester: Identity,
    requester_pending: PendingInvitation,
    own: Invitation,
}

fn invite(
    rng: &mut TestRng,
    who: &Identity,
    port: u16,
    ttl_secs: u64,
) -> (PendingInvitation, Invitation) {
    PendingInvitation::create(
        rng,
        who,
        InviteParams {
            relay: relay(port),
            sender_id: vec![port as u8; 24],
            reply_sender_auth: [port as u8; 32],
            now: NOW,
            ttl_secs,
        },
    )
    .unwrap()
}

fn intake(rng: &mut TestRng) -> Intake {
    let owner = Identity::generate(rng);
    let requester = Identity::generate(rng);
    let (pending, address) = invite(rng, &owner, 4433, ADDRESS_TTL);
    let (requester_pending, own) = invite(rng, &requester, 4434, INVITE_TTL);
    Intake {
        owner,
        pending,
        address,
        requester,
        requester_pending,
        own,
    }
}

/// An initial envelope to `address` with any plaintext (bypassing the
/// checks of `seal_request`, as a hostile requester would).
fn craft(
    rng: &mut TestRng,
    from: &Identity,
    address: &Invitation,
    plaintext: tropa_proto::e2e::Plaintext,
) -> Vec<u8> {
    Session::initiate_plaintext(rng, from, address, &plaintext, NOW)
        .unwrap()
        .1
        .into_vec()
}

fn request_pt(invitation: &Invitation, text: &str) -> tropa_proto::e2e::Plaintext {
    tropa_proto::e2e::Plaintext {
        request: Some(tropa_proto::e2e::ContactRequest {
            invitation: invitation.to_encoded(),
            text: text.into(),
        }),
        ..Default::default()
    }
}

#[test]
fn a_request_opens_and_accepting_it_makes_a_contact() {
    let mut rng = TestRng::new(b"request round trip");
    let t = intake(&mut rng);
    let text = "Я дезертир, мне нужна помощь.";
    let env = seal_request(&mut rng, &t.requester, &t.address, &t.own, text, NOW).unwrap();
    assert_eq!(env.as_bytes().len(), ENVELOPE_SIZE);
    assert_eq!(env.as_bytes()[0], crate::TYPE_INITIAL);
    let req = open_request(&t.owner, &t.pending, env.as_bytes(), NOW + 60).unwrap();
    assert_eq!(req.requester, t.requester.public());
    assert_eq!(req.invitation, t.own);
    assert_eq!(req.text, text);
    assert_eq!(
        req.id,
        sha256(&[b"tropa/v1/request-id", &env.as_bytes()[1..33]])
    );
    let shown = format!("{req:?}");
    assert!(!shown.contains("дезертир"), "Debug hides the text: {shown}");

    // Accepting: the owner accepts the embedded invitation like a link;
    // the requester accepts the Hello with its own pending invitation.
    let hello = Hello {
        reply_relay: relay(4500),
        reply_sender_id: vec![0x33; 24],
        sender_auth: [0x44; 32],
    };
    let first = Content::text(&mut rng, "We read you. Welcome.").unwrap();
    let (mut owner_s, env) = Session::initiate(
        &mut rng,
        &t.owner,
        &req.invitation,
        &hello,
        Some(&first),
        NOW + 120,
    )
    .unwrap();
    let (mut req_s, peer, got_hello, got_first) = Session::accept(
        &mut rng,
        &t.requester,
        &t.requester_pending,
        env.as_bytes(),
        NOW + 180,
    )
    .unwrap();
    assert_eq!(
        peer,
        t.address.inviter(),
        "the Hello comes from the address's identity"
    );
    assert_eq!((got_hello, got_first), (hello, Some(first)));
    let reply = Content::text(&mut rng, "Thank you").unwrap();
    let e = req_s.seal(&mut rng, &reply).unwrap();
    assert_eq!(owner_s.open(e.as_bytes()).unwrap(), reply);
}

#[test]
fn a_replayed_request_has_the_same_id_and_another_request_another() {
    let mut rng = TestRng::new(b"request replay");
    let t = intake(&mut rng);
    let env = seal_request(&mut rng, &t.requester, &t.address, &t.own, "hi", NOW).unwrap();
    let a = open_request(&t.owner, &t.pending, env.as_bytes(), NOW).unwrap();
    let b = open_request(&t.owner, &t.pending, env.as_bytes(), NOW + 3600).unwrap();
    assert_eq!(
        a, b,
        "the address is reusable: the same envelope opens again, same id"
    );
    let env2 = seal_request(&mut rng, &t.requester, &t.address, &t.own, "hi", NOW).unwrap();
    let c = open_request(&t.owner, &t.pending, env2.as_bytes(), NOW).unwrap();
    assert_ne!(a.id, c.id);
    assert_eq!((a.requester, a.text), (c.requester, c.text));
}

#[test]
fn tampering_with_any_region_is_refused() {
    let mut rng = TestRng::new(b"request tamper");
    let t = intake(&mut rng);
    let env = seal_request(&mut rng, &t.requester, &t.address, &t.own, "hello", NOW)
        .unwrap()
        .into_vec();
    let r = INITIAL_RATCHET;
    let regions = [
        ("type", 0),
        ("ephemeral key", 1),
        ("ephemeral key end", 32),
        ("ML-KEM ciphertext", 33),
        ("ML-KEM ciphertext middle", 600),
        ("ML-KEM ciphertext end", INITIAL_ID - 1),
        ("encrypted identity", INITIAL_ID),
        ("identity tag", r - 1),
        ("nonce", r),
        ("header", r + 12),
        ("header tag", r + 52),
        ("body start", r + 68),
        ("body (request)", r + 200),
        ("body (padding)", 9000),
        ("body end", ENVELOPE_SIZE - 17),
        ("body tag", ENVELOPE_SIZE - 16),
        ("body tag end", ENVELOPE_SIZE - 1),
    ];
    for (name, pos) in regions {
        let mut bad = env.clone();
        bad[pos] ^= 0x01;
        let err = open_request(&t.owner, &t.pending, &bad, NOW).unwrap_err();
        assert!(matches!(err, RequestError::Handshake(_)), "{name}: {err:?}");
    }
    assert_eq!(
        open_request(&t.owner, &t.pending, &env[..ENVELOPE_SIZE - 1], NOW),
        Err(RequestError::Handshake(HandshakeError::BadSize))
    );
    // The genuine envelope still opens: nothing was consumed.
    open_request(&t.owner, &t.pending, &env, NOW).unwrap();
}

#[test]
fn wrong_identity_or_wrong_address_is_refused() {
    let mut rng = TestRng::new(b"request wrong identity");
    let t = intake(&mut rng);
    let env = seal_request(&mut rng, &t.requester, &t.address, &t.own, "hi", NOW).unwrap();
    let stranger = Identity::generate(&mut rng);
    assert_eq!(
        open_request(&stranger, &t.pending, env.as_bytes(), NOW),
        Err(RequestError::Handshake(HandshakeError::WrongIdentity))
    );
    // The owner's other address does not open it.
    let (other_pending, _) = invite(&mut rng, &t.owner, 4433, ADDRESS_TTL);
    assert_eq!(
        open_request(&t.owner, &other_pending, env.as_bytes(), NOW),
        Err(RequestError::Handshake(HandshakeError::Undecryptable))
    );
}

#[test]
fn an_invitation_of_someone_else_is_refused() {
    let mut rng = TestRng::new(b"request mismatch");
    let t = intake(&mut rng);
    let third = Identity::generate(&mut rng);
    let (_, theirs) = invite(&mut rng, &third, 4435, INVITE_TTL);
    assert_eq!(
        seal_request(&mut rng, &t.requester, &t.address, &theirs, "hi", NOW),
        Err(RequestError::ForeignInvitation)
    );
    // A hostile requester who embeds it anyway is caught by the owner.
    let env = craft(
        &mut rng,
        &t.requester,
        &t.address,
        request_pt(&theirs, "hi"),
    );
    assert_eq!(
        open_request(&t.owner, &t.pending, &env, NOW),
        Err(RequestError::InviterMismatch)
    );
    let mut pt = request_pt(&t.own, "hi");
    if let Some(r) = &mut pt.request {
        r.invitation = b"not an invitation".to_vec();
    }
    let env = craft(&mut rng, &t.requester, &t.address, pt);
    assert_eq!(
        open_request(&t.owner, &t.pending, &env, NOW),
        Err(RequestError::BadInvitation(crate::LinkError::BadProtobuf))
    );
}

#[test]
fn the_text_is_limited_on_both_sides() {
    let mut rng = TestRng::new(b"request text");
    let t = intake(&mut rng);
    // 500 two-byte characters: exactly the limit in bytes.
    let max = "ж".repeat(MAX_REQUEST_TEXT_LEN / 2);
    let env = seal_request(&mut rng, &t.requester, &t.address, &t.own, &max, NOW).unwrap();
    assert_eq!(
        open_request(&t.owner, &t.pending, env.as_bytes(), NOW)
            .unwrap()
            .text,
        max
    );
    let long = format!("{max}a");
    let too_long = || RequestError::TextTooLong {
        len: MAX_REQUEST_TEXT_LEN + 1,
        max: MAX_REQUEST_TEXT_LEN,
    };
    assert_eq!(
        seal_request(&mut rng, &t.requester, &t.address, &t.own, &long, NOW),
        Err(too_long())
    );
    let env = craft(
        &mut rng,
        &t.requester,
        &t.address,
        request_pt(&t.own, &long),
    );
    assert_eq!(
        open_request(&t.owner, &t.pending, &env, NOW),
        Err(too_long())
    );
}

#[test]
fn a_hello_is_not_a_request_and_a_request_is_not_a_hello() {
    let mut rng = TestRng::new(b"request versus hello");
    let t = intake(&mut rng);
    let hello = Hello {
        reply_relay: relay(4500),
        reply_sender_id: vec![0x33; 24],
        sender_auth: [0x44; 32],
    };
    let (_, normal) =
        Session::initiate(&mut rng, &t.requester, &t.address, &hello, None, NOW).unwrap();
    assert_eq!(
        open_request(&t.owner, &t.pending, normal.as_bytes(), NOW),
        Err(RequestError::HelloPresent)
    );
    let req = seal_request(&mut rng, &t.requester, &t.address, &t.own, "hi", NOW).unwrap();
    assert_eq!(
        Session::accept(&mut rng, &t.owner, &t.pending, req.as_bytes(), NOW).unwrap_err(),
        HandshakeError::ContactRequest
    );
    // A request with a Hello beside it is neither.
    let mut both = request_pt(&t.own, "hi");
    both.hello = Some(tropa_proto::e2e::Hello {
        reply_relay: relay(4500).to_string(),
        reply_sender_id: vec![0x33; 24],
        sender_auth: vec![0x44; 32],
    });
    let env = craft(&mut rng, &t.requester, &t.address, both);
    assert_eq!(
        open_request(&t.owner, &t.pending, &env, NOW),
        Err(RequestError::HelloPresent)
    );
    assert_eq!(
        Session::accept(&mut rng, &t.owner, &t.pending, &env, NOW).unwrap_err(),
        HandshakeError::ContactRequest
    );
    // Neither a Hello nor a request.
    let env = craft(&mut rng, &t.requester, &t.address, Default::default());
    assert_eq!(
        open_request(&t.owner, &t.pending, &env, NOW),
        Err(RequestError::MissingRequest)
    );
    // A request with content or receipts beside it.
    let mut with_content = request_pt(&t.own, "hi");
    with_content.content = Some(Content::text(&mut rng, "extra").unwrap());
    let mut with_receipts = request_pt(&t.own, "hi");
    with_receipts.receipts = Some(crate::Receipt {
        ids: vec![vec![1; 16]],
    });
    for pt in [with_content, with_receipts] {
        let env = craft(&mut rng, &t.requester, &t.address, pt);
        assert_eq!(
            open_request(&t.owner, &t.pending, &env, NOW),
            Err(RequestError::UnexpectedContent)
        );
    }
}

#[test]
fn expired_addresses_expired_invitations_and_ones_own_address_are_refused() {
    let mut rng = TestRng::new(b"request expiry");
    let t = intake(&mut rng);
    let after = t.address.expires_at() + 1;
    assert_eq!(
        seal_request(&mut rng, &t.requester, &t.address, &t.own, "hi", after),
        Err(RequestError::InvitationExpired),
        "the requester's own invitation expired first"
    );
    let (_, long_own) = invite(&mut rng, &t.requester, 4434, ADDRESS_TTL * 2);
    assert_eq!(
        seal_request(&mut rng, &t.requester, &t.address, &long_own, "hi", after),
        Err(RequestError::AddressExpired)
    );
    let env = seal_request(&mut rng, &t.requester, &t.address, &long_own, "hi", NOW).unwrap();
    let grace_end = t.address.expires_at() + crate::INVITATION_GRACE_SECS;
    open_request(&t.owner, &t.pending, env.as_bytes(), grace_end).unwrap();
    assert_eq!(
        open_request(&t.owner, &t.pending, env.as_bytes(), grace_end + 1),
        Err(RequestError::AddressExpired)
    );
    // A request whose invitation has expired can never be accepted.
    let env = seal_request(&mut rng, &t.requester, &t.address, &t.own, "hi", NOW).unwrap();
    let own_end = t.own.expires_at();
    open_request(&t.owner, &t.pending, env.as_bytes(), own_end).unwrap();
    assert_eq!(
        open_request(&t.owner, &t.pending, env.as_bytes(), own_end + 1),
        Err(RequestError::InvitationExpired)
    );
    // The owner cannot request contact with itself.
    let (_, owners_own) = invite(&mut rng, &t.owner, 4436, INVITE_TTL);
    assert_eq!(
        seal_request(&mut rng, &t.owner, &t.address, &owners_own, "hi", NOW),
        Err(RequestError::OwnAddress)
    );
}

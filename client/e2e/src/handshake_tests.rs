//! Handshake properties beyond the happy path: what a tampered link reveals,
//! and the inviter's grace period after expiry.

use crate::envelope::{INITIAL_CT, INITIAL_EK, INITIAL_ID, INITIAL_RATCHET};
use crate::primitives::{LABEL_HELLO_KEY, NONCE_LEN, TAG_LEN, dh, hkdf, open_in_place};
use crate::session::transcript;
use crate::test_rng::TestRng;
use crate::tests::{NOW, TTL, relay, setup};
use crate::*;

/// Tries to open the `enc_identity` field of an initial envelope with `key`.
fn opens_identity(env: &[u8], key: &[u8; 32]) -> Option<[u8; 64]> {
    let mut id = [0u8; 64];
    id.copy_from_slice(&env[INITIAL_ID..INITIAL_ID + 64]);
    let tag: [u8; TAG_LEN] = env[INITIAL_ID + 64..INITIAL_RATCHET].try_into().ok()?;
    open_in_place(key, &[0u8; NONCE_LEN], &[&env[..INITIAL_ID]], &mut id, &tag).ok()?;
    Some(id)
}

fn derive(th: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 32];
    hkdf(th, &parts.concat(), LABEL_HELLO_KEY, &mut k);
    k
}

/// L2 of the security review: someone who swaps the one-time prekey and
/// the KEM key of a link for their own, keeping the real inviter's
/// identity, holds every secret but the inviter's. With those they must
/// not be able to read the joiner's identity key from the Hello (the
/// handshake then fails, but the identity would already have leaked).
#[test]
fn a_tampered_link_does_not_reveal_the_joiners_identity() {
    let mut rng = TestRng::new(b"tampered link");
    let s = setup(&mut rng);
    let attacker = Identity::generate(&mut rng);
    let (theirs, their_link) = PendingInvitation::create(
        &mut rng,
        &attacker,
        InviteParams {
            relay: relay(4433),
            sender_id: vec![0xa1; 24],
            reply_sender_auth: [0xa2; 32],
            now: NOW,
            ttl_secs: TTL,
        },
    )
    .unwrap();
    let mut tampered = s.invitation.clone();
    tampered.prekey = their_link.prekey;
    tampered.kem_key = their_link.kem_key.clone();
    let (_, env) = Session::initiate(&mut rng, &s.joiner, &tampered, &s.hello, None, NOW).unwrap();
    let env = env.as_bytes();
    let ek: [u8; 32] = env[INITIAL_EK..INITIAL_CT].try_into().unwrap();
    let ct = &env[INITIAL_CT..INITIAL_ID];

    // Everything the attacker can compute.
    let ss = theirs.decapsulate(ct).unwrap();
    let dh3 = dh(theirs.prekey_secret(), &ek).unwrap();
    let th = transcript(
        &tampered.inviter,
        &tampered.prekey,
        &tampered.kem_key[..],
        &ek,
        ct,
    );
    let with_own_identity = dh(attacker.x_secret(), &ek).unwrap();
    let candidates = [
        derive(&th, &[&dh3[..], &ss[..]]),
        derive(&th, &[&with_own_identity[..], &dh3[..], &ss[..]]),
        derive(&th, &[&dh3[..], &dh3[..], &ss[..]]),
    ];
    for (i, k) in candidates.iter().enumerate() {
        assert_eq!(
            opens_identity(env, k),
            None,
            "candidate {i} opened the joiner's identity"
        );
    }
    // Control: the real inviter, who holds IK_I's secret, can open it
    // (so the failures above are not a broken decryption).
    let dh2 = dh(s.inviter.x_secret(), &ek).unwrap();
    let real = derive(&th, &[&dh2[..], &dh3[..], &ss[..]]);
    assert_eq!(
        opens_identity(env, &real),
        Some(s.joiner.public().to_bytes())
    );
}

/// L1: a joiner who accepts just before expiry must not be dropped by the
/// inviter for a Hello that arrives just after: the inviter accepts for
/// [`INVITATION_GRACE_SECS`] past `expires_at`; the joiner refuses at once.
#[test]
fn the_inviter_accepts_a_hello_within_the_grace_period() {
    let mut rng = TestRng::new(b"grace");
    let s = setup(&mut rng);
    let expiry = NOW + TTL;
    assert_eq!(
        Session::initiate(
            &mut rng,
            &s.joiner,
            &s.invitation,
            &s.hello,
            None,
            expiry + 1
        )
        .unwrap_err(),
        HandshakeError::Expired,
        "the joiner refuses an expired link"
    );
    let (_, env) =
        Session::initiate(&mut rng, &s.joiner, &s.invitation, &s.hello, None, expiry).unwrap();
    let late = expiry + INVITATION_GRACE_SECS;
    assert!(
        Session::accept(&mut rng, &s.inviter, &s.pending, env.as_bytes(), late).is_ok(),
        "a Hello from before expiry is accepted within the grace period"
    );
    assert_eq!(
        Session::accept(&mut rng, &s.inviter, &s.pending, env.as_bytes(), late + 1).unwrap_err(),
        HandshakeError::Expired,
        "but not after it"
    );
}

//! Envelopes a peer (or a relay) hands to a live session: the header path
//! (garbage, tampered genuine envelopes, replays, skipped keys across a DH
//! ratchet step), the inviter's handshake path (tampered initial
//! envelopes), and the body path (every content that validates round-trips).
//!
//! Properties checked, not just "no panic": a changed byte never opens; a
//! failed open leaves the session exactly as it was; a genuine envelope
//! opens once and never twice.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tropa_e2e::{
    Content, ContentExt as _, ENVELOPE_SIZE, Hello, Identity, InviteParams, PendingInvitation,
    Session,
};

const NOW: u64 = 1_750_000_000;

struct Fixture {
    inviter: Identity,
    pending: PendingInvitation,
    initial: Vec<u8>,
    /// The inviter's session after one exchange each way.
    receiver: Session,
    /// The joiner's session (sends `fresh`).
    sender: Session,
    /// Sent by the joiner, not yet opened by `receiver` (one chain, in order).
    fresh: Vec<Vec<u8>>,
    /// Already opened by `receiver`.
    old: Vec<u8>,
}

fn relay(port: u16) -> tropa_proto::RelayAddress {
    format!("tropa://{}@relay.example:{port}", "A".repeat(43))
        .parse()
        .expect("fixture address")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(14);
        let inviter = Identity::generate(&mut rng);
        let joiner = Identity::generate(&mut rng);
        let params = InviteParams {
            relay: relay(4433),
            sender_id: vec![0xa1; 24],
            reply_sender_auth: [0xa2; 32],
            now: NOW,
            ttl_secs: 3600,
        };
        let (pending, invitation) =
            PendingInvitation::create(&mut rng, &inviter, params).expect("invite");
        let hello = Hello {
            reply_relay: relay(4434),
            reply_sender_id: vec![0xb1; 24],
            sender_auth: [0xb2; 32],
        };
        let first = Content::text(&mut rng, "first").expect("text");
        let (mut j, initial) =
            Session::initiate(&mut rng, &joiner, &invitation, &hello, Some(&first), NOW)
                .expect("initiate");
        let (mut i, _, _, _) =
            Session::accept(&mut rng, &inviter, &pending, initial.as_bytes(), NOW).expect("accept");
        let seal = |s: &mut Session, rng: &mut StdRng, t: &str| -> Vec<u8> {
            let c = Content::text(rng, t).expect("text");
            s.seal(rng, &c).expect("seal").as_bytes().to_vec()
        };
        let old = seal(&mut j, &mut rng, "m1");
        i.open(&old).expect("open m1");
        let r1 = seal(&mut i, &mut rng, "r1");
        j.open(&r1).expect("open r1");
        let fresh = (0..4)
            .map(|n| seal(&mut j, &mut rng, &format!("e{n}")))
            .collect();
        Fixture {
            inviter,
            pending,
            initial: initial.as_bytes().to_vec(),
            receiver: i,
            sender: j,
            fresh,
            old,
        }
    })
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Open a genuine envelope (fresh ones by index, then the old one),
    /// with these bytes xored in at these offsets.
    Open { which: u8, flips: Vec<(u16, u8)> },
    /// Open whatever the fuzzer made (padded or cut to the envelope size
    /// unless `keep_len`).
    Raw { bytes: Vec<u8>, keep_len: bool },
    /// The inviter accepting a (possibly tampered) initial envelope.
    Accept { flips: Vec<(u16, u8)> },
    /// A content that validates must survive seal and open unchanged.
    Body { encoded: Vec<u8> },
}

fn tamper(genuine: &[u8], flips: &[(u16, u8)]) -> (Vec<u8>, bool) {
    let mut env = genuine.to_vec();
    for &(at, x) in flips {
        env[usize::from(at) % ENVELOPE_SIZE] ^= x;
    }
    let changed = env != genuine;
    (env, changed)
}

fuzz_target!(|ops: Vec<Op>| {
    let f = fixture();
    let mut receiver = f.receiver.clone();
    let mut opened = [false; 4];
    for op in ops.into_iter().take(16) {
        let before = receiver.to_bytes();
        let result = match op {
            Op::Open { which, flips } => {
                let idx = usize::from(which) % (f.fresh.len() + 1);
                let genuine = f.fresh.get(idx).unwrap_or(&f.old);
                let (env, changed) = tamper(genuine, &flips);
                let r = receiver.open(&env);
                if changed {
                    assert!(r.is_err(), "a tampered envelope opened");
                } else if idx < f.fresh.len() && !opened[idx] {
                    let c = r.as_ref().expect("a genuine envelope did not open");
                    assert_eq!(c.message_id().map(|_| ()), Some(()));
                    opened[idx] = true;
                } else {
                    assert!(r.is_err(), "an envelope opened twice");
                }
                r.map(|_| ())
            }
            Op::Raw {
                mut bytes,
                keep_len,
            } => {
                if !keep_len {
                    bytes.resize(ENVELOPE_SIZE, 0);
                }
                let r = receiver.open(&bytes);
                assert!(r.is_err(), "fuzzer bytes opened");
                r.map(|_| ())
            }
            Op::Accept { flips } => {
                let (env, changed) = tamper(&f.initial, &flips);
                let mut rng = StdRng::seed_from_u64(1);
                let r = Session::accept(&mut rng, &f.inviter, &f.pending, &env, NOW);
                assert_eq!(r.is_ok(), !changed, "accept: tampered={changed}");
                continue;
            }
            Op::Body { encoded } => {
                let Ok(content) = Content::decode(encoded.as_slice()) else {
                    continue;
                };
                let mut sender = f.sender.clone();
                let mut rng = StdRng::seed_from_u64(2);
                let Ok(env) = sender.seal(&mut rng, &content) else {
                    continue;
                };
                let mut r = f.receiver.clone();
                let back = r.open(env.as_bytes()).expect("sealed content did not open");
                assert_eq!(back, content);
                continue;
            }
        };
        if result.is_err() {
            assert!(
                *receiver.to_bytes() == *before,
                "a failed open changed the session"
            );
        }
    }
});

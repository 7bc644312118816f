//! Criterion benchmarks of tropa-e2e, each next to a raw baseline in the same run.
//!
//! `cargo bench -p tropa-e2e -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tropa_e2e::{
    Content, ContentExt, ENVELOPE_SIZE, Hello, Identity, Invitation, InviteParams, MAX_TEXT_LEN,
    PendingInvitation, Session,
};

const NOW: u64 = 1_750_000_000;

fn relay(port: u16) -> tropa_proto::RelayAddress {
    format!("tropa://{}@relay.example:{port}", "A".repeat(43))
        .parse()
        .unwrap()
}

fn invite(rng: &mut rand::rngs::ThreadRng, inviter: &Identity) -> (PendingInvitation, Invitation) {
    PendingInvitation::create(
        rng,
        inviter,
        InviteParams {
            relay: relay(4433),
            sender_id: vec![1; 24],
            reply_sender_auth: [2; 32],
            now: NOW,
            ttl_secs: 3600,
        },
    )
    .unwrap()
}

fn hello() -> Hello {
    Hello {
        reply_relay: relay(4434),
        reply_sender_id: vec![3; 24],
        sender_auth: [4; 32],
    }
}

/// (joiner, inviter) after the handshake and one reply each way.
fn pair(rng: &mut rand::rngs::ThreadRng) -> (Session, Session) {
    let a = Identity::generate(rng);
    let b = Identity::generate(rng);
    let (pending, inv) = invite(rng, &a);
    let (mut j, env) = Session::initiate(rng, &b, &inv, &hello(), None, NOW).unwrap();
    let (mut i, _, _, _) = Session::accept(rng, &a, &pending, env.as_bytes(), NOW).unwrap();
    let c = Content::text(rng, "x").unwrap();
    let e = i.seal(rng, &c).unwrap();
    j.open(e.as_bytes()).unwrap();
    let e = j.seal(rng, &c).unwrap();
    i.open(e.as_bytes()).unwrap();
    (j, i)
}

fn envelope_16k(c: &mut Criterion) {
    let mut rng = rand::rng();
    let mut g = c.benchmark_group("16KiB envelope");
    g.throughput(Throughput::Bytes(ENVELOPE_SIZE as u64));

    let key = [7u8; 32];
    let cipher = ChaCha20Poly1305::new(&key.into());
    let nonce = Nonce::from([9u8; 12]);
    let mut buf = vec![0u8; ENVELOPE_SIZE];
    g.bench_function("raw ChaCha20-Poly1305 seal 16 KiB", |b| {
        b.iter(|| {
            let tag = cipher
                .encrypt_inout_detached(&nonce, b"", black_box(buf.as_mut_slice()).into())
                .unwrap();
            black_box(tag);
        })
    });
    let mut ct = vec![0u8; ENVELOPE_SIZE];
    let tag = cipher
        .encrypt_inout_detached(&nonce, b"", ct.as_mut_slice().into())
        .unwrap();
    g.bench_function("raw ChaCha20-Poly1305 open 16 KiB", |b| {
        b.iter_batched_ref(
            || ct.clone(),
            |c| {
                cipher
                    .decrypt_inout_detached(&nonce, b"", c.as_mut_slice().into(), &tag)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    let (mut j, _) = pair(&mut rng);
    let text = "a".repeat(MAX_TEXT_LEN);
    let content = Content::text(&mut rng, &text).unwrap();
    g.bench_function("ratchet seal (full envelope, existing chain)", |b| {
        b.iter(|| black_box(j.seal(&mut rng, black_box(&content)).unwrap()))
    });
    // Open needs an envelope within MAX_SKIP of the receiver's chain: seal it
    // from a fresh pair (the seal loop above advanced `j` far ahead).
    let (mut j, i) = pair(&mut rng);
    let env = j.seal(&mut rng, &content).unwrap();
    g.bench_function("ratchet open (full envelope, existing chain)", |b| {
        b.iter_batched_ref(
            || i.clone(),
            |s| drop(black_box(s.open(black_box(env.as_bytes())).unwrap())),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn new_chain(c: &mut Criterion) {
    let mut rng = rand::rng();
    let mut g = c.benchmark_group("new chain");
    // After `pair`, i has received j's new ratchet key: its next seal does the
    // sending half of a DH ratchet step (new key pair, X25519, KDF_RK) and starts
    // a new chain; j opening it does the receiving half.
    let (j, mut i) = pair(&mut rng);
    let short = Content::text(&mut rng, "short message").unwrap();
    g.bench_function("first message on a new chain: seal", |b| {
        b.iter_batched_ref(
            || i.clone(),
            |s| drop(black_box(s.seal(&mut rng, &short).unwrap())),
            BatchSize::SmallInput,
        )
    });
    let first = i.seal(&mut rand::rng(), &short).unwrap();
    g.bench_function("first message on a new chain: open", |b| {
        b.iter_batched_ref(
            || j.clone(),
            |s| drop(black_box(s.open(first.as_bytes()).unwrap())),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let mut rng = rand::rng();
    let mut g = c.benchmark_group("handshake");
    let inviter = Identity::generate(&mut rng);
    let joiner = Identity::generate(&mut rng);
    let (pending, inv) = invite(&mut rng, &inviter);
    let h = hello();
    let first = Content::text(&mut rng, "hello").unwrap();
    let link = inv.to_link();

    g.bench_function("baseline: ML-KEM-768 encapsulate alone", |b| {
        use ml_kem::{Encapsulate, EncapsulationKey, MlKem768, kem::KeyExport};
        let (_dk, ek) = {
            use ml_kem::Kem;
            MlKem768::generate_keypair_from_rng(&mut rng)
        };
        let ek_bytes = ek.to_bytes();
        let mut r = rand::rng();
        b.iter(|| {
            let ek = EncapsulationKey::<MlKem768>::new(&ek_bytes).unwrap();
            black_box(ek.encapsulate_with_rng(&mut r))
        })
    });
    g.bench_function(
        "joiner: initiate (3x X25519 + ML-KEM-768 encaps + first message)",
        |b| {
            b.iter(|| {
                black_box(
                    Session::initiate(&mut rng, &joiner, &inv, &h, Some(&first), NOW).unwrap(),
                )
            })
        },
    );
    g.bench_function("joiner: parse link + initiate", |b| {
        b.iter(|| {
            let inv = Invitation::from_link(black_box(&link)).unwrap();
            black_box(Session::initiate(&mut rng, &joiner, &inv, &h, Some(&first), NOW).unwrap())
        })
    });
    let (_, env) = Session::initiate(&mut rng, &joiner, &inv, &h, Some(&first), NOW).unwrap();
    g.bench_function("inviter: accept", |b| {
        b.iter(|| {
            black_box(Session::accept(&mut rng, &inviter, &pending, env.as_bytes(), NOW).unwrap())
        })
    });
    let reply = Content::text(&mut rng, "welcome").unwrap();
    g.bench_function(
        "whole handshake: invite, link, initiate, accept, first reply, open reply",
        |b| {
            b.iter(|| {
                let (pending, inv) = invite(&mut rng, &inviter);
                let inv = Invitation::from_link(&inv.to_link()).unwrap();
                let (mut j, env) =
                    Session::initiate(&mut rng, &joiner, &inv, &h, Some(&first), NOW).unwrap();
                let (mut i, _, _, _) =
                    Session::accept(&mut rng, &inviter, &pending, env.as_bytes(), NOW).unwrap();
                let r = i.seal(&mut rng, &reply).unwrap();
                black_box(j.open(r.as_bytes()).unwrap())
            })
        },
    );
    g.finish();
}

criterion_group!(benches, envelope_16k, new_chain, handshake);
criterion_main!(benches);

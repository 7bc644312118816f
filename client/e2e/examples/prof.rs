//! Profiling driver for the 16 KiB seal/open overhead (not a benchmark; the
//! figures that count come from `cargo bench -p tropa-e2e`, see docs/benchmarks.md).
//!
//! - `cargo run --release -p tropa-e2e --example prof -- parts` prints the cost of
//!   each piece of work `seal` and `open` do besides the body AEAD (best of 15
//!   interleaved rounds, ns per operation).
//! - `prof <rawseal|seal|open|header|clone> <iterations>` just loops, for
//!   `valgrind --tool=callgrind` or `perf record`: compare runs with 0 and N
//!   iterations to get the cost per iteration.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::time::Instant;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use hmac::{Hmac, Mac};
use prost::Message as _;
use tropa_e2e::{
    Content, ContentExt, ENVELOPE_SIZE, Hello, Identity, InviteParams, MAX_TEXT_LEN,
    PendingInvitation, Session,
};

const NOW: u64 = 1_750_000_000;

fn relay(port: u16) -> tropa_proto::RelayAddress {
    format!("tropa://{}@relay.example:{port}", "A".repeat(43))
        .parse()
        .unwrap()
}

/// (joiner, inviter) after the handshake and one reply each way.
fn pair(rng: &mut rand::rngs::ThreadRng) -> (Session, Session) {
    let a = Identity::generate(rng);
    let b = Identity::generate(rng);
    let params = InviteParams {
        relay: relay(4433),
        sender_id: vec![1; 24],
        reply_sender_auth: [2; 32],
        now: NOW,
        ttl_secs: 3600,
    };
    let (pending, inv) = PendingInvitation::create(rng, &a, params).unwrap();
    let hello = Hello {
        reply_relay: relay(4434),
        reply_sender_id: vec![3; 24],
        sender_auth: [4; 32],
    };
    let (mut j, env) = Session::initiate(rng, &b, &inv, &hello, None, NOW).unwrap();
    let (mut i, _, _, _) = Session::accept(rng, &a, &pending, env.as_bytes(), NOW).unwrap();
    let c = Content::text(rng, "x").unwrap();
    let e = i.seal(rng, &c).unwrap();
    j.open(e.as_bytes()).unwrap();
    let e = j.seal(rng, &c).unwrap();
    i.open(e.as_bytes()).unwrap();
    (j, i)
}

fn time_ns(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Forward copy of 14 KiB inside one buffer with `dst - src = 16384 + skew`.
fn copy_at_distance(big: &mut [u8], skew: usize) {
    let src = 4096 - (big.as_ptr() as usize % 4096) + 4096;
    big.copy_within(src..src + MAX_TEXT_LEN, src + 16384 + skew);
}

fn parts() {
    let mut rng = rand::rng();
    let key = [7u8; 32];
    let nonce = Nonce::from([9u8; 12]);
    let (mut j, i) = pair(&mut rng);
    let content = Content::text(&mut rng, &"a".repeat(MAX_TEXT_LEN)).unwrap();
    // `open` needs an envelope within MAX_SKIP of `i`: seal it before the loop.
    let env = j.seal(&mut rng, &content).unwrap();
    let plaintext = tropa_proto::e2e::Plaintext {
        hello: None,
        content: Some(content.clone()),
        ..Default::default()
    }
    .encode_to_vec();
    let text = vec![b'a'; MAX_TEXT_LEN];
    let mut buf = vec![0u8; ENVELOPE_SIZE];
    let mut body = vec![0u8; 16299];
    let mut wipe = vec![1u8; MAX_TEXT_LEN + 32];
    let mut big = vec![0u8; 64 * 1024];
    let mut big2 = vec![0u8; 64 * 1024];
    let mut hdr = [0u8; 40];
    let ad33 = [0u8; 33];
    let ad128 = [0u8; 128];

    type Part<'a> = (&'static str, Box<dyn FnMut() + 'a>);
    let mut parts: Vec<Part<'_>> = vec![
        (
            "raw AEAD seal 16384 B, no AD (the bench baseline)",
            Box::new(|| {
                let c = ChaCha20Poly1305::new(black_box(&key).into());
                let b = black_box(buf.as_mut_slice());
                black_box(c.encrypt_inout_detached(&nonce, b"", b.into()).unwrap());
            }),
        ),
        (
            "raw AEAD seal 16299 B + 128 B AD (the ratchet body)",
            Box::new(|| {
                let c = ChaCha20Poly1305::new(black_box(&key).into());
                let b = black_box(body.as_mut_slice());
                black_box(c.encrypt_inout_detached(&nonce, &ad128, b.into()).unwrap());
            }),
        ),
        (
            "header AEAD: 40 B + 33 B AD",
            Box::new(|| {
                let c = ChaCha20Poly1305::new(black_box(&key).into());
                let h = black_box(&mut hdr[..]);
                black_box(c.encrypt_inout_detached(&nonce, &ad33, h.into()).unwrap());
            }),
        ),
        (
            "KDF_CK: two HMAC-SHA256",
            Box::new(|| {
                let keyed =
                    <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(black_box(&key)).unwrap();
                let mut a = keyed.clone();
                a.update(&[1]);
                let mut b = keyed;
                b.update(&[2]);
                black_box((a.finalize(), b.finalize()));
            }),
        ),
        (
            "prost: encode the Plaintext (14 KiB text) into a 16 KiB Vec",
            Box::new(|| {
                let mut v = Vec::with_capacity(ENVELOPE_SIZE);
                let m = tropa_proto::e2e::Plaintext {
                    hello: None,
                    content: None,
                    ..Default::default()
                };
                m.encode(&mut v).unwrap();
                prost::encoding::message::encode(2, black_box(&content), &mut v);
                drop(black_box(v));
            }),
        ),
        (
            "prost: decode the Plaintext (copy + UTF-8 check of 14 KiB)",
            Box::new(|| {
                let p = tropa_proto::e2e::Plaintext::decode(black_box(&plaintext[..])).unwrap();
                drop(black_box(p));
            }),
        ),
        (
            "String::from_utf8(to_vec of 14 KiB)",
            Box::new(|| drop(black_box(String::from_utf8(black_box(&text[..]).to_vec())))),
        ),
        (
            "wipe 14 KiB (fill(0) + black_box)",
            Box::new(|| {
                black_box(&mut wipe).fill(0);
                black_box(&mut wipe);
            }),
        ),
        (
            "vec![0u8; 16299] (zeroed allocation)",
            Box::new(|| drop(black_box(vec![0u8; black_box(16299)]))),
        ),
        (
            "memmove 14 KiB, dst - src = 16384 + 64",
            Box::new(|| copy_at_distance(black_box(&mut big), 64)),
        ),
        (
            "memmove 14 KiB, dst - src = 16384 + 8 (4K aliasing)",
            Box::new(|| copy_at_distance(black_box(&mut big2), 8)),
        ),
        ("Session::clone", Box::new(|| drop(black_box(i.clone())))),
        (
            "Session::seal, 14 272-byte text",
            Box::new(|| drop(black_box(j.seal(&mut rng, black_box(&content)).unwrap()))),
        ),
        (
            "Session::clone + Session::open of that envelope",
            Box::new(|| {
                let mut s = i.clone();
                drop(black_box(s.open(black_box(env.as_bytes())).unwrap()));
            }),
        ),
    ];
    let mut best = vec![f64::MAX; parts.len()];
    for _ in 0..15 {
        for (k, (_, f)) in parts.iter_mut().enumerate() {
            best[k] = best[k].min(time_ns(2000, f));
        }
    }
    for (k, (name, _)) in parts.iter().enumerate() {
        println!("{:>8.0} ns  {name}", best[k]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("parts", String::as_str);
    if mode == "parts" {
        return parts();
    }
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut rng = rand::rng();
    let key = [7u8; 32];
    let cipher = ChaCha20Poly1305::new(&key.into());
    let nonce = Nonce::from([9u8; 12]);
    let (mut j, i) = pair(&mut rng);
    let content = Content::text(&mut rng, &"a".repeat(MAX_TEXT_LEN)).unwrap();
    let env = j.seal(&mut rng, &content).unwrap();
    let mut buf = vec![0u8; ENVELOPE_SIZE];
    for _ in 0..n {
        match mode {
            "rawseal" => {
                let b = black_box(buf.as_mut_slice());
                black_box(
                    cipher
                        .encrypt_inout_detached(&nonce, b"", b.into())
                        .unwrap(),
                );
            }
            "header" => {
                let c = ChaCha20Poly1305::new(black_box(&key).into());
                let b = black_box(&mut buf[..40]);
                black_box(
                    c.encrypt_inout_detached(&nonce, &[0u8; 33], b.into())
                        .unwrap(),
                );
            }
            "seal" => drop(black_box(j.seal(&mut rng, black_box(&content)).unwrap())),
            "clone" => drop(black_box(i.clone())),
            "open" => {
                let mut s = i.clone();
                drop(black_box(s.open(black_box(env.as_bytes())).unwrap()));
            }
            other => panic!("unknown mode {other}"),
        }
    }
}

//! The cryptography one relay envelope needs, timed on one core with no
//! I/O: the floor under the relay's cost per envelope on this machine,
//! beside the raw baseline (which has none of it). It answers how close to
//! the baseline the relay can get at all, whatever its I/O does.

use std::time::Instant;

use ed25519_dalek::SigningKey;
use tropa_proto::ENVELOPE_SIZE;
use tropa_relay::crypto::{self, SealingKey};
use x25519_dalek::{PublicKey, StaticSecret};

/// Microseconds of CPU per envelope, by who spends them.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// The sender signing the deposit (16 KiB through SHA-512 twice).
    pub sign: f64,
    /// The relay checking that signature.
    pub verify: f64,
    /// The relay sealing it at rest, opening it, and sealing it for
    /// delivery (three ChaCha20-Poly1305 passes over 16 KiB).
    pub reseal: f64,
}

impl Floor {
    /// All of it.
    pub fn total(&self) -> f64 {
        self.sign + self.verify + self.reseal
    }
}

fn per_item(n: u32, f: impl FnMut()) -> f64 {
    let mut f = f;
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Times each part over `n` envelopes (after a warm-up of n / 10).
pub fn measure(n: u32) -> Floor {
    let sender = SigningKey::generate(&mut rand::rng());
    let public = sender.verifying_key().to_bytes();
    let sid = [7u8; 24];
    let rid = [9u8; 24];
    let envelope = vec![0x42u8; ENVELOPE_SIZE];
    let relay = StaticSecret::random_from_rng(&mut rand::rng());
    let recipient = PublicKey::from(&StaticSecret::random_from_rng(&mut rand::rng()));
    let at_rest = SealingKey::at_rest(&relay, &rid);
    let delivery = SealingKey::delivery(&relay, &recipient, &rid);
    let id = [1u8; 16];
    let signature = crypto::sign_deposit(&sender, &sid, &envelope);
    let mut sink = 0u8;
    let mut run = |n: u32| Floor {
        sign: per_item(n, || {
            sink ^= crypto::sign_deposit(&sender, &sid, &envelope)[0];
        }),
        verify: per_item(n, || {
            let signed = crypto::deposit_signed_bytes(&sid, &envelope);
            sink ^= u8::from(crypto::verify(&public, &signed, &signature));
        }),
        reseal: per_item(n, || {
            let stored = at_rest.seal(&id, &envelope);
            if let Ok(plain) = at_rest.open(&id, &stored) {
                sink ^= delivery.seal(&id, &plain)[0];
            }
        }),
    };
    run((n / 10).max(1));
    let floor = run(n);
    std::hint::black_box(sink);
    floor
}

/// The most envelopes per second `cores` cores could carry if they did
/// nothing but this cryptography.
pub fn ceiling(floor: &Floor, cores: f64) -> f64 {
    cores * 1e6 / floor.total().max(f64::MIN_POSITIVE)
}

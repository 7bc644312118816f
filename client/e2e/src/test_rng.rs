//! Deterministic RNG for tests and test vectors. NOT for production use.
//!
//! Output stream: `SHA-256("tropa/v1/test-rng" || u64be(len(seed)) || seed || u64be(i))`
//! for i = 0, 1, 2, ... concatenated; `fill_bytes` consumes the stream in order,
//! `next_u32`/`next_u64` take 4/8 bytes little-endian. Documented in
//! docs/protocol.md so other implementations can regenerate the vectors.

use core::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

pub(crate) struct TestRng {
    seed: Vec<u8>,
    counter: u64,
    buf: [u8; 32],
    pos: usize,
}

impl TestRng {
    pub(crate) fn new(seed: &[u8]) -> Self {
        Self {
            seed: seed.to_vec(),
            counter: 0,
            buf: [0; 32],
            pos: 32,
        }
    }

    fn refill(&mut self) {
        let mut h = Sha256::new();
        h.update(b"tropa/v1/test-rng");
        h.update((self.seed.len() as u64).to_be_bytes());
        h.update(&self.seed);
        h.update(self.counter.to_be_bytes());
        self.buf = h.finalize().into();
        self.counter += 1;
        self.pos = 0;
    }
}

impl TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst.iter_mut() {
            if self.pos == 32 {
                self.refill();
            }
            *d = self.buf[self.pos];
            self.pos += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}

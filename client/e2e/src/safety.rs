//! Safety numbers (S10): compare out of band, by digits or by QR code.

use std::fmt;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::identity::IdentityPublic;
use crate::primitives::LABEL_SAFETY;

/// Version byte of safety-number QR payloads and of the fingerprint hash.
pub const SAFETY_NUMBER_VERSION: u8 = 1;
/// SHA-512 iterations per fingerprint (as Signal), to make grinding for a
/// colliding key expensive.
pub const SAFETY_NUMBER_ITERATIONS: u32 = 5200;
/// Number of decimal digits in a safety number (12 groups of 5).
pub const SAFETY_NUMBER_DIGITS: usize = 60;
/// Length of the QR payload: version || fingerprint || fingerprint.
pub const SAFETY_QR_LEN: usize = 1 + 32 + 32;

/// The safety number of a pair of identities. The same for both sides.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    digits: String,
    fingerprints: [[u8; 32]; 2],
}

/// A scanned QR payload that does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The payload is not a Tropa safety-number code of this version.
    #[error("not a Tropa safety-number code (or an unsupported version)")]
    BadFormat,
    /// The code is valid but for other keys: do NOT trust this contact.
    #[error("safety numbers differ: this is not the key you were shown")]
    Mismatch,
}

fn fingerprint(id: &IdentityPublic) -> [u8; 64] {
    let key = id.to_bytes();
    let mut h = Sha512::new();
    h.update([0u8, SAFETY_NUMBER_VERSION]);
    h.update(key);
    h.update(LABEL_SAFETY);
    let mut out: [u8; 64] = h.finalize().into();
    for _ in 1..SAFETY_NUMBER_ITERATIONS {
        let mut h = Sha512::new();
        h.update(out);
        h.update(key);
        out = h.finalize().into();
    }
    out
}

/// 30 digits from the first 30 bytes: six big-endian 40-bit chunks, each mod 100000.
fn digits30(fp: &[u8; 64]) -> String {
    let mut s = String::with_capacity(30);
    for chunk in fp[..30].chunks(5) {
        let v = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        s.push_str(&format!("{:05}", v % 100_000));
    }
    s
}

/// The safety number of two identities, independent of their order.
pub fn safety_number(a: &IdentityPublic, b: &IdentityPublic) -> SafetyNumber {
    let fa = fingerprint(a);
    let fb = fingerprint(b);
    let (da, db) = (digits30(&fa), digits30(&fb));
    let mut pa = [0u8; 32];
    let mut pb = [0u8; 32];
    pa.copy_from_slice(&fa[..32]);
    pb.copy_from_slice(&fb[..32]);
    let (digits, fingerprints) = if (&da, pa) <= (&db, pb) {
        (format!("{da}{db}"), [pa, pb])
    } else {
        (format!("{db}{da}"), [pb, pa])
    };
    SafetyNumber {
        digits,
        fingerprints,
    }
}

impl SafetyNumber {
    /// The 60 digits, without separators.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// 12 groups of 5 digits, for display.
    pub fn groups(&self) -> Vec<&str> {
        (0..12).map(|i| &self.digits[i * 5..i * 5 + 5]).collect()
    }

    /// Payload to show as a QR code: `0x01 || fingerprint || fingerprint`,
    /// the two 32-byte fingerprints in the same canonical order as the digits.
    pub fn qr_payload(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(SAFETY_QR_LEN);
        v.push(SAFETY_NUMBER_VERSION);
        v.extend_from_slice(&self.fingerprints[0]);
        v.extend_from_slice(&self.fingerprints[1]);
        v
    }

    /// Checks a payload scanned from the contact's screen against ours.
    pub fn verify_scanned(&self, payload: &[u8]) -> Result<(), ScanError> {
        if payload.len() != SAFETY_QR_LEN || payload[0] != SAFETY_NUMBER_VERSION {
            return Err(ScanError::BadFormat);
        }
        if bool::from(self.qr_payload().ct_eq(payload)) {
            Ok(())
        } else {
            Err(ScanError::Mismatch)
        }
    }

    /// Checks digits typed or read aloud by the user (spaces ignored).
    pub fn verify_digits(&self, typed: &str) -> Result<(), ScanError> {
        let clean: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        if clean.len() != SAFETY_NUMBER_DIGITS || !clean.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ScanError::BadFormat);
        }
        if bool::from(clean.as_bytes().ct_eq(self.digits.as_bytes())) {
            Ok(())
        } else {
            Err(ScanError::Mismatch)
        }
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.groups().join(" "))
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::test_rng::TestRng;

    #[test]
    fn order_independent_and_distinct() {
        let mut rng = TestRng::new(b"safety");
        let a = Identity::generate(&mut rng).public();
        let b = Identity::generate(&mut rng).public();
        let c = Identity::generate(&mut rng).public();
        let ab = safety_number(&a, &b);
        let ba = safety_number(&b, &a);
        assert_eq!(ab, ba);
        assert_eq!(ab.digits().len(), 60);
        assert!(ab.digits().bytes().all(|d| d.is_ascii_digit()));
        assert_eq!(ab.groups().len(), 12);
        assert_eq!(ab.to_string().len(), 60 + 11);
        let ac = safety_number(&a, &c);
        assert_ne!(ab.digits(), ac.digits());
        assert_eq!(ab.verify_scanned(&ba.qr_payload()), Ok(()));
        assert_eq!(
            ab.verify_scanned(&ac.qr_payload()),
            Err(ScanError::Mismatch)
        );
        assert_eq!(ab.verify_scanned(&[1u8; 10]), Err(ScanError::BadFormat));
        let mut v2 = ab.qr_payload();
        v2[0] = 2;
        assert_eq!(ab.verify_scanned(&v2), Err(ScanError::BadFormat));
        assert_eq!(ab.verify_digits(&ba.to_string()), Ok(()));
        assert_eq!(ab.verify_digits(ac.digits()), Err(ScanError::Mismatch));
        assert_eq!(ab.verify_digits("123"), Err(ScanError::BadFormat));
    }
}

//! Thin wrappers over the primitives we use: X25519, HKDF-SHA256,
//! HMAC-SHA256, SHA-256 and ChaCha20-Poly1305. Every label lives here.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// A 32-byte symmetric key.
pub(crate) type Key32 = [u8; 32];

/// Length of a ChaCha20-Poly1305 nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of a Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;

/// HKDF info of the key that encrypts the joiner's identity in the initial envelope.
pub(crate) const LABEL_HELLO_KEY: &[u8] = b"tropa/v1/pqxdh/hello-key";
/// HKDF info of the initial key agreement (root key and header keys).
pub(crate) const LABEL_PQXDH: &[u8] = b"tropa/v1/pqxdh/root";
/// HKDF info of the root-key ratchet step.
pub(crate) const LABEL_ROOT: &[u8] = b"tropa/v1/ratchet/root";
/// Hash prefix of the handshake transcript.
pub(crate) const LABEL_TRANSCRIPT: &[u8] = b"tropa/v1/transcript";
/// Hash prefix of the associated data binding both identities.
pub(crate) const LABEL_AD: &[u8] = b"tropa/v1/ad";
/// Hash suffix of safety-number fingerprints.
pub(crate) const LABEL_SAFETY: &[u8] = b"tropa/v1/safety-number";
/// HKDF info of a short link's locator (the only value the relay sees).
pub(crate) const LABEL_LINK_LOCATOR: &[u8] = b"tropa/v1/link/locator";
/// HKDF info of the key that seals a short link's data.
pub(crate) const LABEL_LINK_KEY: &[u8] = b"tropa/v1/link/key";
/// Prefix of the associated data of a short link's sealed data.
pub(crate) const LABEL_LINK_DATA: &[u8] = b"tropa/v1/link-data";
/// Hash prefix of a contact request's id.
pub(crate) const LABEL_REQUEST_ID: &[u8] = b"tropa/v1/request-id";

/// X25519 with a rejection of non-contributory (low-order) results.
pub(crate) fn dh(secret: &Key32, public: &Key32) -> Option<Zeroizing<Key32>> {
    let s = StaticSecret::from(*secret);
    let shared = s.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return None;
    }
    Some(Zeroizing::new(shared.to_bytes()))
}

/// X25519 public key of a secret scalar.
pub(crate) fn x25519_public(secret: &Key32) -> Key32 {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

/// HKDF-SHA256 (RFC 5869) extract-and-expand into `out`.
pub(crate) fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    // Only fails for outputs longer than 255 * 32 bytes; ours are at most 96.
    if hk.expand(info, out).is_err() {
        unreachable!("HKDF output too long");
    }
}

/// Symmetric-key ratchet step: (message key, next chain key) =
/// (HMAC(ck, 0x01), HMAC(ck, 0x02)); the keyed HMAC state is computed once.
pub(crate) fn kdf_ck(ck: &Key32) -> (Zeroizing<Key32>, Zeroizing<Key32>) {
    let keyed = match <Hmac<Sha256> as KeyInit>::new_from_slice(ck) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    let mut a = keyed.clone();
    a.update(&[0x01]);
    let mut b = keyed;
    b.update(&[0x02]);
    (
        Zeroizing::new(a.finalize().into_bytes().into()),
        Zeroizing::new(b.finalize().into_bytes().into()),
    )
}

/// Root-key ratchet step: (root key, chain key, next header key).
pub(crate) fn kdf_rk(rk: &Key32, dh_out: &Key32) -> (Key32, Key32, Key32) {
    let mut okm = Zeroizing::new([0u8; 96]);
    hkdf(rk, dh_out, LABEL_ROOT, okm.as_mut());
    split3(&okm)
}

/// Splits 96 bytes into three keys.
pub(crate) fn split3(okm: &[u8; 96]) -> (Key32, Key32, Key32) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    let mut c = [0u8; 32];
    a.copy_from_slice(&okm[..32]);
    b.copy_from_slice(&okm[32..64]);
    c.copy_from_slice(&okm[64..]);
    (a, b, c)
}

/// SHA-256 over the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> Key32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// ChaCha20-Poly1305 encryption in place; returns the tag. `ad` is the
/// concatenation of its parts.
pub(crate) fn seal_in_place(
    key: &Key32,
    nonce: &[u8; NONCE_LEN],
    ad: &[&[u8]],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let cipher = ChaCha20Poly1305::new(key.into());
    with_joined(ad, |ad| {
        match cipher.encrypt_inout_detached(&Nonce::from(*nonce), ad, buf.into()) {
            Ok(tag) => tag.into(),
            // Only fails for inputs longer than 256 GiB.
            Err(_) => unreachable!("AEAD input too long"),
        }
    })
}

/// Calls `f` with the associated-data parts as one slice, copying only when
/// there is more than one part.
fn with_joined<R>(parts: &[&[u8]], f: impl FnOnce(&[u8]) -> R) -> R {
    match parts {
        [one] => f(one),
        _ => f(Ad::join(parts, 1).as_slice()),
    }
}

/// ChaCha20-Poly1305 decryption in place. On failure `buf` is zeroed.
pub(crate) fn open_in_place(
    key: &Key32,
    nonce: &[u8; NONCE_LEN],
    ad: &[&[u8]],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), ()> {
    let cipher = ChaCha20Poly1305::new(key.into());
    let tag = Tag::from(*tag);
    with_joined(ad, |ad| {
        cipher
            .decrypt_inout_detached(&Nonce::from(*nonce), ad, (&mut *buf).into(), &tag)
            .map_err(|_| ())
    })
    .map_err(|()| buf.zeroize())
}

/// ChaCha20-Poly1305 decryption from `input` (ciphertext) into `output` (same
/// length), so the ciphertext need not be copied first. The tag is verified
/// over `input` before any plaintext is written; on failure (or a length
/// mismatch) `output` is zeroed.
pub(crate) fn open_into(
    key: &Key32,
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    input: &[u8],
    output: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), ()> {
    let cipher = ChaCha20Poly1305::new(key.into());
    let tag = Tag::from(*tag);
    let res = match InOutBuf::new(input, output) {
        Ok(buf) => cipher
            .decrypt_inout_detached(&Nonce::from(*nonce), ad, buf, &tag)
            .map_err(|_| ()),
        Err(_) => Err(()),
    };
    res.map_err(|()| output.zeroize())
}

/// Most associated-data bytes joined on the stack: a ratchet envelope's header
/// AD (33 bytes) and padded body AD (128 bytes). Longer AD (the handshake
/// envelope's, 1233 and 1344 bytes) goes to the heap. AD is public: no wipe.
const AD_STACK: usize = 128;

/// Associated data joined from parts, zero-padded to a multiple of `align`.
pub(crate) struct Ad {
    stack: [u8; AD_STACK],
    len: usize,
    heap: Vec<u8>,
}

impl Ad {
    /// The concatenation of `parts`, followed by zero bytes up to the next
    /// multiple of `align` (`1`: no padding).
    pub(crate) fn join(parts: &[&[u8]], align: usize) -> Self {
        let raw: usize = parts.iter().map(|p| p.len()).sum();
        let len = raw.div_ceil(align) * align;
        let mut ad = Ad {
            stack: [0u8; AD_STACK],
            len,
            heap: Vec::new(),
        };
        let dst: &mut [u8] = if len <= AD_STACK {
            &mut ad.stack[..len]
        } else {
            ad.heap.resize(len, 0);
            &mut ad.heap
        };
        let mut off = 0;
        for p in parts {
            dst[off..off + p.len()].copy_from_slice(p);
            off += p.len();
        }
        ad
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.len <= AD_STACK {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }
    fn h32(s: &str) -> [u8; 32] {
        h(s).try_into().unwrap()
    }

    /// RFC 7748 §5.2, first two scalar-multiplication vectors.
    #[test]
    fn rfc7748_x25519_vectors() {
        let k = h32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
        let u = h32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
        assert_eq!(
            x25519_dalek::x25519(k, u).to_vec(),
            h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
        );
        let k = h32("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d");
        let u = h32("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493");
        assert_eq!(
            x25519_dalek::x25519(k, u).to_vec(),
            h("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")
        );
        // §5.2 iterated test after one iteration (k = u = 9).
        let mut nine = [0u8; 32];
        nine[0] = 9;
        assert_eq!(
            x25519_dalek::x25519(nine, nine).to_vec(),
            h("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
        );
    }

    /// RFC 7748 §6.1 Diffie-Hellman example, through our own `dh` wrapper.
    #[test]
    fn rfc7748_dh_example_through_wrapper() {
        let a = h32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let a_pub = h32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let b = h32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let b_pub = h32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(x25519_public(&a), a_pub);
        assert_eq!(x25519_public(&b), b_pub);
        assert_eq!(dh(&a, &b_pub).unwrap().to_vec(), shared);
        assert_eq!(dh(&b, &a_pub).unwrap().to_vec(), shared);
    }

    /// A low-order point yields an all-zero shared secret and is refused.
    #[test]
    fn dh_refuses_low_order_points() {
        let a = h32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        assert!(dh(&a, &[0u8; 32]).is_none());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(dh(&a, &one).is_none());
    }

    /// RFC 8439 §2.8.2 AEAD_CHACHA20_POLY1305 test vector, through our wrappers.
    #[test]
    fn rfc8439_chacha20poly1305_vector() {
        let key = h32("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce: [u8; 12] = h("070000004041424344454647").try_into().unwrap();
        let aad = h("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ct = h(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
             3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
             92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
             3ff4def08e4b7a9de576d26586cec64b6116",
        );
        let tag: [u8; 16] = h("1ae10b594f09e26a7e902ecbd0600691").try_into().unwrap();
        let mut buf = pt.to_vec();
        let got_tag = seal_in_place(&key, &nonce, &[&aad[..4], &aad[4..]], &mut buf);
        assert_eq!(buf, ct);
        assert_eq!(got_tag, tag);
        open_in_place(&key, &nonce, &[&aad], &mut buf, &tag).unwrap();
        assert_eq!(&buf[..], &pt[..]);
        // Any flipped bit fails.
        let mut bad = ct.clone();
        bad[7] ^= 0x40;
        assert!(open_in_place(&key, &nonce, &[&aad], &mut bad, &tag).is_err());
        assert!(
            bad.iter().all(|b| *b == 0),
            "failed decryption zeroes the buffer"
        );
        let mut buf = ct.clone();
        let mut bad_tag = tag;
        bad_tag[0] ^= 1;
        assert!(open_in_place(&key, &nonce, &[&aad], &mut buf, &bad_tag).is_err());
        let mut buf = ct.clone();
        assert!(open_in_place(&key, &nonce, &[b"other aad"], &mut buf, &tag).is_err());
    }

    /// `open_into` (out-of-place) agrees with in-place decryption, writes
    /// nothing on a bad tag and refuses mismatched lengths.
    #[test]
    fn open_into_out_of_place() {
        let key = [5u8; 32];
        let nonce = [6u8; 12];
        let ad = Ad::join(&[b"associated", b" data"], 64);
        assert_eq!(ad.as_slice().len(), 64);
        assert_eq!(&ad.as_slice()[..15], b"associated data");
        assert!(ad.as_slice()[15..].iter().all(|b| *b == 0));
        let long = Ad::join(&[&[1u8; 100], &[2u8; 100]], 64);
        assert_eq!(long.as_slice().len(), 256);
        assert_eq!(&long.as_slice()[..200], [[1u8; 100], [2u8; 100]].concat());
        assert!(long.as_slice()[200..].iter().all(|b| *b == 0));

        let pt: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut ct = pt.clone();
        let tag = seal_in_place(&key, &nonce, &[ad.as_slice()], &mut ct);
        let mut out = vec![0xaau8; pt.len()];
        open_into(&key, &nonce, ad.as_slice(), &ct, &mut out, &tag).unwrap();
        assert_eq!(out, pt);

        let mut bad = ct.clone();
        bad[999] ^= 1;
        let mut out = vec![0xaau8; pt.len()];
        assert!(open_into(&key, &nonce, ad.as_slice(), &bad, &mut out, &tag).is_err());
        assert!(out.iter().all(|b| *b == 0), "failure leaves only zeros");
        let mut out = vec![0xaau8; pt.len()];
        assert!(open_into(&key, &nonce, b"other", &ct, &mut out, &tag).is_err());
        assert!(out.iter().all(|b| *b == 0));
        let mut short = vec![0xaau8; pt.len() - 1];
        assert!(open_into(&key, &nonce, ad.as_slice(), &ct, &mut short, &tag).is_err());
        assert!(short.iter().all(|b| *b == 0));
    }

    /// RFC 5869 test case 1 (HKDF-SHA256).
    #[test]
    fn rfc5869_hkdf_sha256_vector() {
        let ikm = [0x0bu8; 22];
        let salt = h("000102030405060708090a0b0c");
        let info = h("f0f1f2f3f4f5f6f7f8f9");
        let mut okm = [0u8; 42];
        hkdf(&salt, &ikm, &info, &mut okm);
        assert_eq!(
            okm.to_vec(),
            h(
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
            )
        );
    }
}

//! Entry points for the fuzz targets only: this module exists only when
//! built with `--cfg fuzzing` (cargo-fuzz sets it), never in a release.

use rand_core::CryptoRng;

use crate::shortlink::{LINK_DATA_SIZE, LinkDataError, LinkKind, LinkSecret, seal_plaintext};

/// Seals arbitrary bytes as link data under `secret` (with the length
/// prefix and zero padding), so the fuzzer reaches the checks that run
/// after decryption: the padding, the invitation's decoding and the
/// relay agreement.
pub fn seal_link_message<R: CryptoRng + ?Sized>(
    rng: &mut R,
    secret: &LinkSecret,
    kind: LinkKind,
    message: &[u8],
) -> Result<[u8; LINK_DATA_SIZE], LinkDataError> {
    seal_plaintext(rng, secret, kind, message)
}

//! Short links (docs/protocol.md §11): `TROPA:I/HOST:PORT/FP/SECRET` for a
//! one-time invitation, `TROPA:A/...` for an intake address.
//!
//! The invitation itself (about 1,500 bytes, mostly the ML-KEM key) is
//! sealed into [`LINK_DATA_SIZE`] bytes of *link data* stored on the
//! inviter's relay under a *locator*. The link carries only the relay's
//! host, port and fingerprint prefix and a 16-byte secret from which both
//! the locator and the sealing key are derived, so it fits in 100
//! characters and a version-5 QR code. The relay learns the locator only.
//!
//! Everything is upper case so that a QR code can use its alphanumeric
//! mode; parsing is case-insensitive and accepts only the canonical form
//! otherwise, so what parses prints back to the same string (upper-cased,
//! trimmed). This module does no I/O: fetching and storing the data is the
//! relay client's job.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use tropa_proto::{Fingerprint, FingerprintPrefix, Host, RelayAddress};
use zeroize::Zeroizing;

use crate::envelope::unpad;
use crate::invitation::{Invitation, LinkError};
use crate::primitives::{
    Key32, LABEL_LINK_DATA, LABEL_LINK_KEY, LABEL_LINK_LOCATOR, NONCE_LEN, TAG_LEN, hkdf,
    open_in_place, seal_in_place,
};

/// Scheme of a short link, as printed (parsing ignores case).
pub const SHORT_LINK_SCHEME: &str = "TROPA:";
/// Bytes of a link's secret.
pub const LINK_SECRET_LEN: usize = 16;
/// Bytes of the relay fingerprint a link carries (a prefix of the SHA-256).
pub const FINGERPRINT_PREFIX_LEN: usize = FingerprintPrefix::LEN;
/// Bytes of a locator, the relay's name for a link's data.
pub const LOCATOR_LEN: usize = tropa_proto::LINK_LOCATOR_LEN;
/// Size of the sealed link data stored on the relay, whatever the kind.
pub use tropa_proto::LINK_DATA_SIZE;
/// Largest encoded invitation that fits in link data: the data minus the
/// nonce, the tag and the `u16` length prefix.
pub const MAX_LINK_INVITATION_LEN: usize = LINK_DATA_SIZE - NONCE_LEN - TAG_LEN - 2;
/// Longest short link accepted (checked before anything else): a 253-byte
/// DNS name or a bracketed IPv6 address fits with room to spare.
pub const MAX_SHORT_LINK_LEN: usize = 400;

/// Characters of a base32 (RFC 4648, unpadded) 16-byte value.
const B32_LEN: usize = 26;

/// What a short link points to. Both kinds of data are the same size and
/// look the same to the relay; the kind is bound into the sealing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A one-time invitation (`TROPA:I/...`): accepted once, then deleted.
    Invite,
    /// A reusable intake address (`TROPA:A/...`): each use is a contact request.
    Address,
}

impl LinkKind {
    /// The letter after the scheme, `I` or `A`; also the byte bound into
    /// the link data's associated data.
    pub fn letter(self) -> char {
        match self {
            LinkKind::Invite => 'I',
            LinkKind::Address => 'A',
        }
    }

    fn byte(self) -> u8 {
        self.letter() as u8
    }

    fn other(self) -> Self {
        match self {
            LinkKind::Invite => LinkKind::Address,
            LinkKind::Address => LinkKind::Invite,
        }
    }
}

/// The 16-byte secret of a short link. Zeroized on drop, redacted `Debug`,
/// constant-time equality.
#[derive(Clone)]
pub struct LinkSecret(Zeroizing<[u8; LINK_SECRET_LEN]>);

impl LinkSecret {
    /// A fresh random secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut s = Zeroizing::new([0u8; LINK_SECRET_LEN]);
        rng.fill_bytes(s.as_mut());
        Self(s)
    }

    /// A secret from its bytes (e.g. as kept in the owner's store).
    pub fn from_bytes(bytes: [u8; LINK_SECRET_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes (keep them only in the encrypted store).
    pub fn as_bytes(&self) -> &[u8; LINK_SECRET_LEN] {
        &self.0
    }

    /// `HKDF(secret, info = "tropa/v1/link/locator", 32)`: under which the
    /// relay stores the link data. It reveals nothing about the key.
    pub fn locator(&self) -> [u8; LOCATOR_LEN] {
        let mut out = [0u8; LOCATOR_LEN];
        hkdf(&[], self.0.as_ref(), LABEL_LINK_LOCATOR, &mut out);
        out
    }

    /// `HKDF(secret, info = "tropa/v1/link/key", 32)`: seals the link data.
    pub(crate) fn key(&self) -> Zeroizing<Key32> {
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf(&[], self.0.as_ref(), LABEL_LINK_KEY, out.as_mut());
        out
    }
}

impl PartialEq for LinkSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&*other.0).into()
    }
}

impl Eq for LinkSecret {}

impl fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSecret(<redacted>)")
    }
}

/// A parsed short link. `Display` prints the canonical link (it contains
/// the secret: show it only to the user); `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ShortLink {
    kind: LinkKind,
    host: Host,
    port: u16,
    fingerprint_prefix: FingerprintPrefix,
    secret: LinkSecret,
}

/// Why a string is not a short link. One variant per malformed case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShortLinkError {
    /// Longer than [`MAX_SHORT_LINK_LEN`] bytes (after trimming).
    #[error("the link is too long")]
    TooLong,
    /// Does not start with `TROPA:` (any case).
    #[error("not a Tropa link (it must start with TROPA:)")]
    BadScheme,
    /// The kind is not `I` (invitation) or `A` (address) followed by `/`.
    #[error("not a short Tropa link (expected TROPA:I/... or TROPA:A/...)")]
    BadKind,
    /// Not exactly `KIND/HOST:PORT/FP/SECRET` (a part is missing or extra).
    #[error("the link is damaged: it must look like TROPA:I/HOST:PORT/FINGERPRINT/SECRET")]
    BadLayout,
    /// The host is not an IPv4 address, a bracketed IPv6 address in its
    /// canonical (RFC 5952) form, or a DNS name.
    #[error("the link's relay host is invalid")]
    BadHost,
    /// The port is missing, zero, above 65535 or not written as plain
    /// decimal digits without a leading zero.
    #[error("the link's relay port is invalid")]
    BadPort,
    /// The fingerprint is not 26 base32 characters (16 bytes).
    #[error("the link's relay fingerprint is damaged")]
    BadFingerprint,
    /// The secret is not 26 base32 characters (16 bytes).
    #[error("the link's secret is damaged")]
    BadSecret,
}

/// Why link data could not be sealed or opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkDataError {
    /// The data is not exactly [`LINK_DATA_SIZE`] bytes.
    #[error("link data is exactly {LINK_DATA_SIZE} bytes")]
    BadSize,
    /// The encoded invitation is longer than [`MAX_LINK_INVITATION_LEN`].
    #[error("the invitation is too large for link data")]
    InvitationTooLarge,
    /// The data does not open with this link's key: tampered, or stored
    /// under this locator by someone without the link.
    #[error("the link data cannot be decrypted with this link (tampered or wrong link)")]
    Undecryptable,
    /// The data was sealed for the other kind (an address opened as an
    /// invitation or the reverse).
    #[error("the link data is of the other kind (address versus invitation)")]
    WrongKind,
    /// The decrypted length prefix or padding is malformed.
    #[error("the decrypted link data is malformed")]
    Malformed,
    /// The decrypted invitation does not decode or fails its checks.
    #[error("the link's invitation is invalid: {0}")]
    BadInvitation(LinkError),
    /// The invitation's relay host, port or fingerprint disagrees with the link.
    #[error("the link's invitation names another relay than the link")]
    RelayMismatch,
}

impl ShortLink {
    /// A link of `kind` to data on `relay` (its host, port and the first
    /// [`FINGERPRINT_PREFIX_LEN`] bytes of its fingerprint; the password,
    /// if any, is not carried).
    pub fn new(kind: LinkKind, relay: &RelayAddress, secret: LinkSecret) -> Self {
        Self {
            kind,
            host: relay.host.clone(),
            port: relay.port,
            fingerprint_prefix: relay.fingerprint.prefix(),
            secret,
        }
    }

    /// A fresh link (random secret) for `invitation`, on the invitation's
    /// relay. Seal its data with
    /// [`seal_link_data`]`(rng, link.secret(), kind, invitation)` and store
    /// it on that relay under [`ShortLink::locator`].
    pub fn for_invitation<R: CryptoRng + ?Sized>(
        rng: &mut R,
        kind: LinkKind,
        invitation: &Invitation,
    ) -> Self {
        Self::new(kind, invitation.relay(), LinkSecret::generate(rng))
    }

    /// Whether `s` looks like a short link (`TROPA:I/` or `TROPA:A/`, any
    /// case, surrounding whitespace ignored), as opposed to a long
    /// `tropa:invite#...` link. Says nothing about whether it parses.
    pub fn is_short_link(s: &str) -> bool {
        let s = s.trim();
        s.get(..SHORT_LINK_SCHEME.len() + 2).is_some_and(|p| {
            let p = p.to_ascii_uppercase();
            p == "TROPA:I/" || p == "TROPA:A/"
        })
    }

    /// Invitation or address.
    pub fn kind(&self) -> LinkKind {
        self.kind
    }
    /// The relay's host (DNS names lower-cased).
    pub fn host(&self) -> &Host {
        &self.host
    }
    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `host:port` for name resolution (brackets around IPv6).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    /// The first 16 bytes of the relay's key fingerprint: connect only to a
    /// relay whose full fingerprint starts with them.
    pub fn fingerprint_prefix(&self) -> FingerprintPrefix {
        self.fingerprint_prefix
    }
    /// Whether a relay's full fingerprint starts with this link's prefix.
    pub fn matches_fingerprint(&self, fingerprint: &Fingerprint) -> bool {
        fingerprint.starts_with(&self.fingerprint_prefix)
    }
    /// Whether `relay` is the relay this link names: same host, port and
    /// fingerprint prefix (the password is ignored).
    pub fn matches_relay(&self, relay: &RelayAddress) -> bool {
        relay.host == self.host
            && relay.port == self.port
            && self.matches_fingerprint(&relay.fingerprint)
    }
    /// The link's secret.
    pub fn secret(&self) -> &LinkSecret {
        &self.secret
    }
    /// The locator of the link data (all the relay is told).
    pub fn locator(&self) -> [u8; LOCATOR_LEN] {
        self.secret.locator()
    }
}

impl fmt::Display for ShortLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = Zeroizing::new(BASE32_NOPAD.encode(self.secret.as_bytes()));
        write!(
            f,
            "{SHORT_LINK_SCHEME}{}/{}:{}/{}/{}",
            self.kind.letter(),
            self.host.to_string().to_ascii_uppercase(),
            self.port,
            BASE32_NOPAD.encode(&self.fingerprint_prefix.0),
            secret.as_str()
        )
    }
}

impl fmt::Debug for ShortLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShortLink")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "fingerprint_prefix",
                &BASE32_NOPAD.encode(&self.fingerprint_prefix.0),
            )
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Decodes exactly 26 upper-case base32 characters into 16 bytes.
fn b32_16(s: &str) -> Option<Zeroizing<[u8; 16]>> {
    if s.len() != B32_LEN {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 16]);
    // Trailing bits are checked: exactly one string decodes to each value.
    match BASE32_NOPAD.decode_mut(s.as_bytes(), out.as_mut()) {
        Ok(16) => Some(out),
        _ => None,
    }
}

/// A port as plain decimal: no sign, no leading zero, 1 to 65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|p| *p != 0)
}

impl FromStr for ShortLink {
    type Err = ShortLinkError;

    /// Parses `TROPA:I/HOST:PORT/FP/SECRET` or `TROPA:A/...`, ignoring case
    /// and surrounding whitespace. Only the canonical form is accepted
    /// otherwise, so `link.to_string()` gives back the input upper-cased.
    fn from_str(s: &str) -> Result<Self, ShortLinkError> {
        let s = s.trim();
        if s.len() > MAX_SHORT_LINK_LEN {
            return Err(ShortLinkError::TooLong);
        }
        // The copy holds the secret in base32: wiped on drop.
        let up = Zeroizing::new(s.to_ascii_uppercase());
        let rest = up
            .strip_prefix(SHORT_LINK_SCHEME)
            .ok_or(ShortLinkError::BadScheme)?;
        let mut parts = rest.split('/');
        let kind = match parts.next() {
            Some("I") => LinkKind::Invite,
            Some("A") => LinkKind::Address,
            _ => return Err(ShortLinkError::BadKind),
        };
        let (Some(host_port), Some(fp), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ShortLinkError::BadLayout);
        };
        let (host_s, port_s) = host_port.rsplit_once(':').ok_or(ShortLinkError::BadPort)?;
        let host: Host = host_s
            .to_ascii_lowercase()
            .parse()
            .map_err(|_| ShortLinkError::BadHost)?;
        // One spelling per host (no `[0::1]` for `[::1]`), so a link prints back as it came.
        if !host.to_string().eq_ignore_ascii_case(host_s) {
            return Err(ShortLinkError::BadHost);
        }
        let port = parse_port(port_s).ok_or(ShortLinkError::BadPort)?;
        let fingerprint_prefix =
            FingerprintPrefix(*b32_16(fp).ok_or(ShortLinkError::BadFingerprint)?);
        let secret = b32_16(secret).ok_or(ShortLinkError::BadSecret)?;
        Ok(Self {
            kind,
            host,
            port,
            fingerprint_prefix,
            secret: LinkSecret(secret),
        })
    }
}

/// The associated data of link data: `"tropa/v1/link-data" || kind || locator`.
fn link_ad(kind: LinkKind, locator: &[u8; LOCATOR_LEN]) -> Vec<u8> {
    [LABEL_LINK_DATA, &[kind.byte()], locator].concat()
}

/// Seals `invitation` into link data for a link of `kind` with `secret`:
/// `nonce (12, random) || ChaCha20-Poly1305(key, nonce, ad, u16be(len) ||
/// encoded invitation || zeros)`, exactly [`LINK_DATA_SIZE`] bytes.
///
/// The only error is [`LinkDataError::InvitationTooLarge`], which an
/// invitation made from a parsed relay address never reaches (its encoding
/// is at most about 1,850 bytes).
pub fn seal_link_data<R: CryptoRng + ?Sized>(
    rng: &mut R,
    secret: &LinkSecret,
    kind: LinkKind,
    invitation: &Invitation,
) -> Result<[u8; LINK_DATA_SIZE], LinkDataError> {
    let encoded = invitation.to_encoded();
    seal_plaintext(rng, secret, kind, &encoded)
}

/// Seals `message` (an encoded invitation, or anything for the fuzzer) with
/// the length prefix and zero padding.
pub(crate) fn seal_plaintext<R: CryptoRng + ?Sized>(
    rng: &mut R,
    secret: &LinkSecret,
    kind: LinkKind,
    message: &[u8],
) -> Result<[u8; LINK_DATA_SIZE], LinkDataError> {
    if message.len() > MAX_LINK_INVITATION_LEN {
        return Err(LinkDataError::InvitationTooLarge);
    }
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut data = [0u8; LINK_DATA_SIZE];
    data[..NONCE_LEN].copy_from_slice(&nonce);
    let (body, tag_out) = data[NONCE_LEN..].split_at_mut(LINK_DATA_SIZE - NONCE_LEN - TAG_LEN);
    // Fits: MAX_LINK_INVITATION_LEN < u16::MAX.
    body[..2].copy_from_slice(&(message.len() as u16).to_be_bytes());
    body[2..2 + message.len()].copy_from_slice(message);
    let tag = seal_in_place(
        &secret.key(),
        &nonce,
        &[&link_ad(kind, &secret.locator())],
        body,
    );
    tag_out.copy_from_slice(&tag);
    Ok(data)
}

/// Decrypts link data in a copy; `None` if it does not authenticate.
fn try_open(
    key: &Key32,
    kind: LinkKind,
    locator: &[u8; LOCATOR_LEN],
    data: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let nonce: [u8; NONCE_LEN] = data[..NONCE_LEN].try_into().ok()?;
    let tag: [u8; TAG_LEN] = data[LINK_DATA_SIZE - TAG_LEN..].try_into().ok()?;
    let mut body = Zeroizing::new(data[NONCE_LEN..LINK_DATA_SIZE - TAG_LEN].to_vec());
    open_in_place(key, &nonce, &[&link_ad(kind, locator)], &mut body, &tag).ok()?;
    Some(body)
}

/// Opens link data fetched for `link`: decrypts it, decodes and checks the
/// invitation (as [`Invitation::from_link`] does), and checks that the
/// invitation's relay is the one the link names (host, port, fingerprint
/// prefix). The caller then uses the invitation's full relay address,
/// which [`ShortLink::matches_relay`] the link, and checks expiry
/// ([`crate::Session::initiate`] does).
pub fn open_link_data(link: &ShortLink, data: &[u8]) -> Result<Invitation, LinkDataError> {
    if data.len() != LINK_DATA_SIZE {
        return Err(LinkDataError::BadSize);
    }
    let key = link.secret.key();
    let locator = link.locator();
    let body = match try_open(&key, link.kind, &locator, data) {
        Some(body) => body,
        None if try_open(&key, link.kind.other(), &locator, data).is_some() => {
            return Err(LinkDataError::WrongKind);
        }
        None => return Err(LinkDataError::Undecryptable),
    };
    let message = unpad(&body).ok_or(LinkDataError::Malformed)?;
    let invitation = Invitation::from_encoded(message).map_err(LinkDataError::BadInvitation)?;
    if !link.matches_relay(invitation.relay()) {
        return Err(LinkDataError::RelayMismatch);
    }
    Ok(invitation)
}

#[cfg(test)]
#[path = "shortlink_tests.rs"]
mod tests;

//! One-time invitations: a `tropa:invite#...` link and the inviter's secret half.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ml_kem::{DecapsulationKey, EncapsulationKey, KeyExport, MlKem768, Seed};
use prost::Message as _;
use rand_core::CryptoRng;
use tropa_proto::{MAILBOX_ID_LEN, RelayAddress};
use zeroize::{Zeroize, Zeroizing};

use crate::codec::{Reader, StateError, Writer};
use crate::identity::{Identity, IdentityPublic};
use crate::primitives::{Key32, x25519_public};

/// Invitation format version carried in every link.
pub const INVITATION_VERSION: u32 = 1;

/// How long past `expires_at` the inviter still accepts a Hello: a joiner
/// who accepted just before expiry may be offline, or the relay slow, and
/// must not believe in a contact the inviter then drops. The joiner itself
/// refuses a link as soon as it has expired.
pub const INVITATION_GRACE_SECS: u64 = 24 * 3600;
/// Prefix of every invitation link; the payload follows in the fragment.
pub const LINK_PREFIX: &str = "tropa:invite#";
/// Longest link accepted (checked before decoding).
pub const MAX_LINK_LEN: usize = 4096;
/// Bytes of checksum after the encoded invitation in a link: the first
/// bytes of SHA-256 over [`LINK_CHECKSUM_LABEL`] and the encoding. It
/// catches a damaged or mistyped link before anything is saved; it is not
/// an authenticator (whoever changes a link can recompute it; safety
/// numbers are what authenticate).
pub const LINK_CHECKSUM_LEN: usize = 4;
/// Domain separation for the link checksum.
pub const LINK_CHECKSUM_LABEL: &[u8] = b"tropa invitation link checksum v1";

pub(crate) fn link_checksum(encoded: &[u8]) -> [u8; LINK_CHECKSUM_LEN] {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(LINK_CHECKSUM_LABEL)
        .chain_update(encoded)
        .finalize();
    let mut out = [0u8; LINK_CHECKSUM_LEN];
    out.copy_from_slice(&digest[..LINK_CHECKSUM_LEN]);
    out
}
/// Length of an ML-KEM-768 encapsulation key.
pub const KEM_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const KEM_CT_LEN: usize = 1088;

const PENDING_STATE_V1: u8 = 0x21;

/// What the inviter supplies to create an invitation.
#[derive(Clone, Debug)]
pub struct InviteParams {
    /// Relay of the inviter's new mailbox.
    pub relay: RelayAddress,
    /// Sender-side id of that mailbox ([`MAILBOX_ID_LEN`] bytes).
    pub sender_id: Vec<u8>,
    /// Ed25519 public key the joiner must secure its reply mailbox with (opaque here).
    pub reply_sender_auth: [u8; 32],
    /// Now, unix seconds.
    pub now: u64,
    /// How long the invitation stays valid, seconds.
    pub ttl_secs: u64,
}

/// The public, shareable half of an invitation (what the link carries).
#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    pub(crate) inviter: IdentityPublic,
    pub(crate) prekey: Key32,
    pub(crate) kem_key: Box<[u8; KEM_KEY_LEN]>,
    pub(crate) relay: RelayAddress,
    pub(crate) sender_id: Vec<u8>,
    pub(crate) reply_sender_auth: [u8; 32],
    pub(crate) created_at: u64,
    pub(crate) expires_at: u64,
}

/// The inviter's secret half: a one-time X25519 prekey and an ML-KEM-768
/// decapsulation key. Zeroized on drop, redacted `Debug`.
///
/// It is the caller's duty to delete it after a successful
/// [`crate::Session::accept`] (one-time use): this crate is sans-IO and
/// cannot delete stored state itself.
pub struct PendingInvitation {
    prekey_secret: Zeroizing<Key32>,
    kem_seed: Zeroizing<[u8; 64]>,
    dk: Box<DecapsulationKey<MlKem768>>,
    inviter: IdentityPublic,
    created_at: u64,
    expires_at: u64,
}

/// Why a string is not a usable invitation link. One variant per malformed case.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Longer than [`MAX_LINK_LEN`].
    #[error("the invitation link is too long")]
    TooLong,
    /// Does not start with `tropa:`.
    #[error("not a Tropa link (it must start with tropa:)")]
    BadScheme,
    /// A `tropa:` link but not an invitation (`tropa:invite#...`).
    #[error("not an invitation link (expected tropa:invite#...)")]
    NotAnInvitation,
    /// The fragment is not unpadded base64url.
    #[error("the invitation link is damaged (bad base64)")]
    BadBase64,
    /// The checksum does not match: a character is wrong, missing or extra.
    #[error(
        "the invitation link is damaged: a character is wrong, missing or extra. Copy it again, whole"
    )]
    BadChecksum,
    /// The decoded fragment is not a valid protobuf message.
    #[error("the invitation link is damaged (bad encoding)")]
    BadProtobuf,
    /// The version is not [`INVITATION_VERSION`].
    #[error("invitation version {0} is not supported by this version of Tropa")]
    UnsupportedVersion(u32),
    /// The inviter identity key is malformed.
    #[error("the invitation's identity key is invalid")]
    BadIdentityKey,
    /// The one-time prekey is not 32 bytes or is a low-order point.
    #[error("the invitation's prekey is invalid")]
    BadPrekey,
    /// The ML-KEM-768 key is not 1184 bytes or fails the FIPS 203 check.
    #[error("the invitation's post-quantum key is invalid")]
    BadKemKey,
    /// The relay address does not parse.
    #[error("the invitation's relay address is invalid: {0}")]
    BadRelayAddress(tropa_proto::AddressError),
    /// The sender id is not 24 bytes.
    #[error("the invitation's mailbox id is invalid")]
    BadSenderId,
    /// The reply sender auth key is not 32 bytes.
    #[error("the invitation's reply key is invalid")]
    BadReplySenderAuth,
    /// `expires_at` is before `created_at`.
    #[error("the invitation's validity period is invalid")]
    BadValidity,
}

/// Errors creating an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// `sender_id` is not 24 bytes.
    #[error("the mailbox sender id must be {MAILBOX_ID_LEN} bytes")]
    BadSenderId,
    /// `now + ttl_secs` overflows or `ttl_secs` is 0.
    #[error("invalid invitation lifetime")]
    BadTtl,
}

impl PendingInvitation {
    /// Creates a one-time invitation. Returns the secret half (keep it in the
    /// encrypted store until accepted or expired) and the public half (share
    /// it as a link or QR code).
    pub fn create<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &Identity,
        params: InviteParams,
    ) -> Result<(PendingInvitation, Invitation), InviteError> {
        if params.sender_id.len() != MAILBOX_ID_LEN {
            return Err(InviteError::BadSenderId);
        }
        if params.ttl_secs == 0 {
            return Err(InviteError::BadTtl);
        }
        let expires_at = params
            .now
            .checked_add(params.ttl_secs)
            .ok_or(InviteError::BadTtl)?;
        let mut prekey_secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(prekey_secret.as_mut());
        let mut kem_seed = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(kem_seed.as_mut());
        let pending = Self::from_parts(
            prekey_secret,
            kem_seed,
            identity.public(),
            params.now,
            expires_at,
        );
        let invitation = Invitation {
            inviter: identity.public(),
            prekey: pending.prekey_public(),
            kem_key: Box::new(pending.kem_key_bytes()),
            relay: params.relay,
            sender_id: params.sender_id,
            reply_sender_auth: params.reply_sender_auth,
            created_at: params.now,
            expires_at,
        };
        Ok((pending, invitation))
    }

    fn from_parts(
        prekey_secret: Zeroizing<Key32>,
        kem_seed: Zeroizing<[u8; 64]>,
        inviter: IdentityPublic,
        created_at: u64,
        expires_at: u64,
    ) -> Self {
        let mut seed = Seed::default();
        seed.copy_from_slice(kem_seed.as_ref());
        let dk = Box::new(DecapsulationKey::<MlKem768>::from_seed(seed));
        seed.zeroize();
        Self {
            prekey_secret,
            kem_seed,
            dk,
            inviter,
            created_at,
            expires_at,
        }
    }

    /// Serialises the secret half for the (encrypted) store:
    /// `0x21 || created u64 || expires u64 || inviter identity (64) || prekey secret (32) || ML-KEM seed (64)`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(1 + 16 + 64 + 32 + 64);
        w.u8(PENDING_STATE_V1);
        w.u64(self.created_at);
        w.u64(self.expires_at);
        w.bytes(&self.inviter.to_bytes());
        w.bytes(self.prekey_secret.as_ref());
        w.bytes(self.kem_seed.as_ref());
        w.finish()
    }

    /// Loads what [`PendingInvitation::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != PENDING_STATE_V1 {
            return Err(StateError::BadVersion);
        }
        let created_at = r.u64()?;
        let expires_at = r.u64()?;
        let inviter = IdentityPublic::from_bytes(r.take(64)?).map_err(|_| StateError::Invalid)?;
        let prekey = Zeroizing::new(r.arr::<32>()?);
        let seed = Zeroizing::new(r.arr::<64>()?);
        r.end()?;
        if expires_at < created_at {
            return Err(StateError::Invalid);
        }
        Ok(Self::from_parts(
            prekey, seed, inviter, created_at, expires_at,
        ))
    }

    /// A stable public id of this invitation (SHA-256 of its prekey), to match
    /// it with store entries.
    pub fn id(&self) -> [u8; 32] {
        crate::primitives::sha256(&[b"tropa/v1/invitation-id", &self.prekey_public()])
    }

    /// Creation time, unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// Expiry time, unix seconds. [`crate::Session::accept`] refuses it after this.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Whether the invitation has expired at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        now > self.expires_at
    }

    /// The identity this invitation was made for.
    pub fn inviter(&self) -> IdentityPublic {
        self.inviter
    }

    pub(crate) fn prekey_secret(&self) -> &Key32 {
        &self.prekey_secret
    }

    pub(crate) fn prekey_public(&self) -> Key32 {
        x25519_public(&self.prekey_secret)
    }

    pub(crate) fn kem_key_bytes(&self) -> [u8; KEM_KEY_LEN] {
        let ek: &EncapsulationKey<MlKem768> = self.dk.encapsulation_key();
        let mut out = [0u8; KEM_KEY_LEN];
        out.copy_from_slice(ek.to_bytes().as_slice());
        out
    }

    pub(crate) fn decapsulate(&self, ct: &[u8]) -> Option<Zeroizing<Key32>> {
        use ml_kem::Decapsulate;
        let mut ss = self.dk.decapsulate_slice(ct).ok()?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(ss.as_slice());
        ss.as_mut_slice().zeroize();
        Some(out)
    }
}

impl fmt::Debug for PendingInvitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingInvitation")
            .field("inviter", &self.inviter)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Invitation {
    /// The `tropa:invite#<base64url>` link; all key material is in the
    /// fragment, which browsers and HTTP clients never send to a server.
    pub fn to_link(&self) -> String {
        let mut raw = self.to_encoded();
        let sum = link_checksum(&raw);
        raw.extend_from_slice(&sum);
        format!("{LINK_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The encoded protobuf `tropa.e2e.v1.Invitation` (`E` in
    /// docs/protocol.md §3): what a link carries before its checksum, what
    /// short-link data seals (§11) and what a contact request embeds (§12).
    pub fn to_encoded(&self) -> Vec<u8> {
        let p = tropa_proto::e2e::Invitation {
            version: INVITATION_VERSION,
            inviter_identity: self.inviter.to_bytes().to_vec(),
            prekey: self.prekey.to_vec(),
            kem_key: self.kem_key.to_vec(),
            relay: self.relay.to_string(),
            sender_id: self.sender_id.clone(),
            reply_sender_auth: self.reply_sender_auth.to_vec(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        };
        p.encode_to_vec()
    }

    /// Parses a link made by [`Invitation::to_link`]. Surrounding whitespace is
    /// ignored; everything else must be exact.
    pub fn from_link(link: &str) -> Result<Invitation, LinkError> {
        let link = link.trim();
        if link.len() > MAX_LINK_LEN {
            return Err(LinkError::TooLong);
        }
        if !link
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("tropa:"))
        {
            return Err(LinkError::BadScheme);
        }
        let payload = link
            .get(LINK_PREFIX.len()..)
            .filter(|_| link[..LINK_PREFIX.len()].eq_ignore_ascii_case(LINK_PREFIX))
            .ok_or(LinkError::NotAnInvitation)?;
        let raw = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::BadBase64)?;
        let split = raw
            .len()
            .checked_sub(LINK_CHECKSUM_LEN)
            .ok_or(LinkError::BadChecksum)?;
        let (encoded, sum) = raw.split_at(split);
        if link_checksum(encoded) != sum {
            return Err(LinkError::BadChecksum);
        }
        Self::from_encoded(encoded)
    }

    /// Decodes and checks what [`Invitation::to_encoded`] wrote, with the
    /// checks of [`Invitation::from_link`] after its checksum (errors from
    /// [`LinkError::BadProtobuf`] on).
    pub fn from_encoded(encoded: &[u8]) -> Result<Invitation, LinkError> {
        let p =
            tropa_proto::e2e::Invitation::decode(encoded).map_err(|_| LinkError::BadProtobuf)?;
        if p.version != INVITATION_VERSION {
            return Err(LinkError::UnsupportedVersion(p.version));
        }
        let inviter = IdentityPublic::from_bytes(&p.inviter_identity)
            .map_err(|_| LinkError::BadIdentityKey)?;
        let prekey: Key32 = p
            .prekey
            .as_slice()
            .try_into()
            .map_err(|_| LinkError::BadPrekey)?;
        let mut probe = [0u8; 32];
        probe[0] = 9;
        if crate::primitives::dh(&probe, &prekey).is_none() {
            return Err(LinkError::BadPrekey);
        }
        let kem_key: [u8; KEM_KEY_LEN] = p
            .kem_key
            .as_slice()
            .try_into()
            .map_err(|_| LinkError::BadKemKey)?;
        parse_kem_key(&kem_key).ok_or(LinkError::BadKemKey)?;
        let relay: RelayAddress = p.relay.parse().map_err(LinkError::BadRelayAddress)?;
        if p.sender_id.len() != MAILBOX_ID_LEN {
            return Err(LinkError::BadSenderId);
        }
        let reply_sender_auth: [u8; 32] = p
            .reply_sender_auth
            .as_slice()
            .try_into()
            .map_err(|_| LinkError::BadReplySenderAuth)?;
        if p.expires_at < p.created_at {
            return Err(LinkError::BadValidity);
        }
        Ok(Invitation {
            inviter,
            prekey,
            kem_key: Box::new(kem_key),
            relay,
            sender_id: p.sender_id,
            reply_sender_auth,
            created_at: p.created_at,
            expires_at: p.expires_at,
        })
    }

    /// The relay of the inviter's mailbox (where the joiner deposits).
    pub fn relay(&self) -> &RelayAddress {
        &self.relay
    }
    /// Sender-side id of the inviter's mailbox.
    pub fn sender_id(&self) -> &[u8] {
        &self.sender_id
    }
    /// Ed25519 key the joiner must secure its reply mailbox with.
    pub fn reply_sender_auth(&self) -> &[u8; 32] {
        &self.reply_sender_auth
    }
    /// The inviter's identity public key.
    pub fn inviter(&self) -> IdentityPublic {
        self.inviter
    }
    /// Creation time, unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }
    /// Expiry time, unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
    /// Whether the invitation has expired at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        now > self.expires_at
    }
}

impl fmt::Debug for Invitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invitation")
            .field("inviter", &self.inviter)
            .field("relay", &self.relay)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub(crate) fn parse_kem_key(bytes: &[u8; KEM_KEY_LEN]) -> Option<EncapsulationKey<MlKem768>> {
    let key = ml_kem::Key::<EncapsulationKey<MlKem768>>::try_from(&bytes[..]).ok()?;
    EncapsulationKey::<MlKem768>::new(&key).ok()
}

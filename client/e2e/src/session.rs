//! The PQXDH-like handshake and the Double Ratchet with header encryption.

use std::fmt;

use ml_kem::Encapsulate as _;
use prost::Message as _;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::{Reader, StateError, Writer};
use crate::content::{Content, ContentError, ContentExt, Hello, HelloError};
use crate::envelope::{
    ENVELOPE_SIZE, Envelope, HEADER_LEN, INITIAL_CT, INITIAL_EK, INITIAL_ID, INITIAL_RATCHET,
    MSG_PREFIX, PAD_LEN_PREFIX, RATCHET_RATCHET, TYPE_INITIAL, TYPE_RATCHET, body_capacity, unpad,
};
use crate::identity::{Identity, IdentityPublic};
use crate::invitation::{Invitation, KEM_CT_LEN, PendingInvitation, parse_kem_key};
use crate::primitives::{
    Ad, Key32, LABEL_AD, LABEL_HELLO_KEY, LABEL_PQXDH, LABEL_TRANSCRIPT, NONCE_LEN, TAG_LEN, dh,
    hkdf, kdf_ck, kdf_rk, open_in_place, open_into, seal_in_place, sha256, split3, x25519_public,
};

/// Most message keys one received message may make us skip in one chain.
/// A header asking for more is refused ([`OpenError::TooManySkipped`]).
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys kept in total; the oldest are dropped first.
pub const MAX_SKIPPED_KEYS: usize = 2000;
/// Skipped message keys expire after this many received DH-ratchet steps
/// (i.e. once the peer has changed ratchet key this many more times).
pub const MAX_SKIPPED_AGE_STEPS: u32 = 20;

const SESSION_STATE_V1: u8 = 0x31;

/// Why an envelope could not be opened. The session is unchanged after any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not exactly [`ENVELOPE_SIZE`] bytes.
    #[error("an envelope is exactly {ENVELOPE_SIZE} bytes")]
    BadSize,
    /// The type byte is unknown.
    #[error("unknown envelope type")]
    UnknownType,
    /// An initial (handshake) envelope that is not this session's: use `Session::accept`.
    #[error("this is a handshake envelope, not a message for this session")]
    UnexpectedInitial,
    /// No header key of this session opens the header: tampered, from another
    /// session, or too old (its skipped key expired).
    #[error("the message header cannot be decrypted (tampered, foreign or expired)")]
    UnknownHeader,
    /// The header is authentic but the body is not: tampering.
    #[error("the message body was tampered with")]
    Tampered,
    /// This message was already opened (a replay or a redelivery). Safe to drop silently.
    #[error("this message was already processed")]
    AlreadyProcessed,
    /// The header would make us skip more than [`MAX_SKIP`] message keys.
    #[error("too many messages missing in between (more than {MAX_SKIP})")]
    TooManySkipped,
    /// The peer sent an invalid (low-order) ratchet key.
    #[error("the peer's ratchet key is invalid")]
    BadRatchetKey,
    /// The decrypted padding or encoding is malformed.
    #[error("the decrypted message is malformed")]
    Malformed,
    /// The decrypted content breaks a limit or shape rule.
    #[error("the decrypted content is invalid: {0}")]
    BadContent(ContentError),
}

/// Why a message could not be sealed. The session is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The content is too large or malformed.
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// Why the handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The invitation (or its one-time prekey) has expired.
    #[error("the invitation has expired")]
    Expired,
    /// The invitation is our own.
    #[error("this is your own invitation")]
    OwnInvitation,
    /// The pending invitation was created for another identity.
    #[error("the pending invitation belongs to another identity")]
    WrongIdentity,
    /// Not exactly [`ENVELOPE_SIZE`] bytes.
    #[error("an envelope is exactly {ENVELOPE_SIZE} bytes")]
    BadSize,
    /// Not an initial envelope.
    #[error("not a handshake envelope")]
    NotInitial,
    /// The envelope does not decrypt with this invitation's keys (tampered,
    /// or meant for another invitation).
    #[error("the handshake envelope cannot be decrypted with this invitation")]
    Undecryptable,
    /// The joiner's identity key inside the envelope is invalid.
    #[error("the joiner's identity key is invalid")]
    BadIdentityKey,
    /// The initial message has no Hello.
    #[error("the handshake message carries no Hello")]
    MissingHello,
    /// The Hello is malformed.
    #[error(transparent)]
    Hello(#[from] HelloError),
    /// The first content is invalid.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The embedded first ratchet message failed to open.
    #[error("the handshake message failed: {0}")]
    Open(#[from] OpenError),
    /// The invitation's ML-KEM key is invalid.
    #[error("the invitation's post-quantum key is invalid")]
    BadKemKey,
}

/// The ratchet's small state (everything but the skipped keys). Cloned for
/// every `open` so a failure leaves the session untouched.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Core {
    pub(crate) dhs: Key32,
    pub(crate) dhs_pub: Key32,
    pub(crate) dhr: Option<Key32>,
    pub(crate) rk: Key32,
    pub(crate) cks: Option<Key32>,
    pub(crate) ckr: Option<Key32>,
    pub(crate) hks: Option<Key32>,
    pub(crate) hkr: Option<Key32>,
    pub(crate) nhks: Key32,
    pub(crate) nhkr: Key32,
    pub(crate) prev_hkr: Option<Key32>,
    pub(crate) ns: u32,
    pub(crate) nr: u32,
    pub(crate) pn: u32,
    /// We received a new ratchet key and owe the sending half of the DH
    /// ratchet step; done lazily by the next `seal` (which has an RNG).
    pub(crate) send_step_due: bool,
    pub(crate) recv_steps: u32,
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SkippedKey {
    hk: Key32,
    n: u32,
    mk: Key32,
    step: u32,
}

/// The message key of a *tombstone*: a skipped entry whose key was used, kept
/// only because it was the last entry of a retired receiving chain. Without
/// it that chain's header key would be forgotten and a replay of the message
/// would look like a foreign envelope (`UnknownHeader`) instead of
/// `AlreadyProcessed`. Tombstones age out like any skipped key.
const TOMBSTONE: Key32 = [0u8; 32];

impl SkippedKey {
    fn is_tombstone(&self) -> bool {
        self.mk == TOMBSTONE
    }
}

/// An end-to-end session with one contact. Zeroized on drop; `Debug` prints no key.
#[derive(Clone)]
pub struct Session {
    core: Core,
    skipped: Vec<SkippedKey>,
    ad: Key32,
    own: IdentityPublic,
    peer: IdentityPublic,
    initial_ek: Option<Key32>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Core zeroizes itself; the vector's elements and spare capacity are wiped here.
        self.skipped.zeroize();
        self.ad.zeroize();
    }
}

impl ZeroizeOnDrop for Session {}

/// The decrypted header of a ratchet message.
struct Header {
    dh: Key32,
    pn: u32,
    n: u32,
}

/// A decrypted, unpadded body: the protobuf is `buf[2..end]`.
struct Decrypted {
    buf: Vec<u8>,
    end: usize,
}

impl Drop for Decrypted {
    fn drop(&mut self) {
        // `buf[end..]` was checked to be all zero padding; only the message
        // needs wiping. A plain fill + black_box (vectorised) instead of the
        // byte-wise volatile loop of `zeroize` keeps `open` within budget; the
        // black_box keeps the compiler from eliding the writes.
        let end = self.end.min(self.buf.len());
        self.buf[..end].fill(0);
        std::hint::black_box(&mut self.buf);
    }
}

impl Decrypted {
    fn message(&self) -> &[u8] {
        &self.buf[PAD_LEN_PREFIX..self.end]
    }
}

/// What a successful `open` changes, applied only once everything checked out.
struct Plan {
    core: Core,
    remove: Option<usize>,
    add: Vec<SkippedKey>,
}

/// Key-schedule intermediates of the handshake (exposed to the test vectors).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Schedule {
    pub(crate) dh1: Zeroizing<Key32>,
    pub(crate) dh2: Zeroizing<Key32>,
    pub(crate) dh3: Zeroizing<Key32>,
    pub(crate) ss: Zeroizing<Key32>,
    pub(crate) th: Key32,
    pub(crate) k_hello: Zeroizing<Key32>,
    pub(crate) sk: Zeroizing<Key32>,
    pub(crate) hka: Zeroizing<Key32>,
    pub(crate) nhkb: Zeroizing<Key32>,
    pub(crate) ad: Key32,
}

pub(crate) fn transcript(
    inviter: &IdentityPublic,
    prekey: &Key32,
    kem_key: &[u8],
    ek: &[u8],
    ct: &[u8],
) -> Key32 {
    sha256(&[
        LABEL_TRANSCRIPT,
        &inviter.to_bytes(),
        prekey,
        kem_key,
        ek,
        ct,
    ])
}

/// The key that encrypts the joiner's identity. DH2 needs the inviter's
/// identity secret, so someone who swapped the prekey and KEM key of a link
/// for their own still cannot read the joiner's identity (docs/protocol.md §4.1).
pub(crate) fn hello_key(th: &Key32, dh2: &Key32, dh3: &Key32, ss: &Key32) -> Zeroizing<Key32> {
    let mut ikm = Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(dh2);
    ikm[32..64].copy_from_slice(dh3);
    ikm[64..].copy_from_slice(ss);
    let mut k = Zeroizing::new([0u8; 32]);
    hkdf(th, ikm.as_ref(), LABEL_HELLO_KEY, k.as_mut());
    k
}

#[allow(clippy::type_complexity)]
pub(crate) fn root_schedule(
    th: &Key32,
    dh1: &Key32,
    dh2: &Key32,
    dh3: &Key32,
    ss: &Key32,
) -> (Zeroizing<Key32>, Zeroizing<Key32>, Zeroizing<Key32>) {
    let mut ikm = Zeroizing::new([0u8; 160]);
    ikm[..32].fill(0xff);
    ikm[32..64].copy_from_slice(dh1);
    ikm[64..96].copy_from_slice(dh2);
    ikm[96..128].copy_from_slice(dh3);
    ikm[128..].copy_from_slice(ss);
    let mut okm = Zeroizing::new([0u8; 96]);
    hkdf(th, ikm.as_ref(), LABEL_PQXDH, okm.as_mut());
    let (a, b, c) = split3(&okm);
    (Zeroizing::new(a), Zeroizing::new(b), Zeroizing::new(c))
}

pub(crate) fn binding_ad(joiner: &IdentityPublic, inviter: &IdentityPublic) -> Key32 {
    sha256(&[LABEL_AD, &joiner.to_bytes(), &inviter.to_bytes()])
}

/// Associated data of a message body: `AD ‖ envelope[..r0 + 68]`, zero-padded
/// to a multiple of 64 bytes. (The padding keeps Poly1305 on its 4-block
/// parallel path for the 16 KiB body; it adds no meaning.)
pub(crate) fn body_ad(ad: &Key32, prefix: &[u8]) -> Ad {
    Ad::join(&[ad, prefix], 64)
}

fn random32<R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<Key32> {
    let mut k = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(k.as_mut());
    k
}

fn arr32(b: &[u8]) -> Key32 {
    let mut a = [0u8; 32];
    a.copy_from_slice(b);
    a
}

impl Session {
    /// Joiner side of the handshake: consumes an [`Invitation`], returns the
    /// new session and the initial envelope to deposit in the inviter's
    /// mailbox (`invitation.relay()`, `invitation.sender_id()`).
    ///
    /// The envelope carries `hello` and optionally a first content, encrypted;
    /// no long-term identifier is visible in it (S4).
    pub fn initiate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &Identity,
        invitation: &Invitation,
        hello: &Hello,
        first: Option<&Content>,
        now: u64,
    ) -> Result<(Session, Envelope), HandshakeError> {
        Self::initiate_traced(rng, identity, invitation, hello, first, now).map(|(s, e, _)| (s, e))
    }

    pub(crate) fn initiate_traced<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &Identity,
        invitation: &Invitation,
        hello: &Hello,
        first: Option<&Content>,
        now: u64,
    ) -> Result<(Session, Envelope, Schedule), HandshakeError> {
        if invitation.is_expired(now) {
            return Err(HandshakeError::Expired);
        }
        if invitation.inviter() == identity.public() {
            return Err(HandshakeError::OwnInvitation);
        }
        let hello = hello.to_proto()?;
        if let Some(c) = first {
            c.validate()?;
        }
        let ek_kem = parse_kem_key(&invitation.kem_key).ok_or(HandshakeError::BadKemKey)?;
        let inviter = invitation.inviter();
        let prekey = invitation.prekey;

        let ek = random32(rng);
        let ek_pub = x25519_public(&ek);
        let (ct, ss_arr) = ek_kem.encapsulate_with_rng(rng);
        let mut ss_arr = ss_arr;
        let ss = Zeroizing::new(arr32(ss_arr.as_slice()));
        ss_arr.as_mut_slice().zeroize();
        let bad = HandshakeError::Undecryptable;
        let dh1 = dh(identity.x_secret(), &prekey).ok_or(bad)?;
        let dh2 = dh(&ek, inviter.x25519()).ok_or(bad)?;
        let dh3 = dh(&ek, &prekey).ok_or(bad)?;
        let th = transcript(&inviter, &prekey, &invitation.kem_key[..], &ek_pub, &ct);
        let k_hello = hello_key(&th, &dh2, &dh3, &ss);
        let (sk, hka, nhkb) = root_schedule(&th, &dh1, &dh2, &dh3, &ss);
        let ad = binding_ad(&identity.public(), &inviter);

        let mut env = Vec::with_capacity(ENVELOPE_SIZE);
        env.push(TYPE_INITIAL);
        env.extend_from_slice(&ek_pub);
        env.extend_from_slice(ct.as_slice());
        env.extend_from_slice(&identity.public().to_bytes());
        let tag = {
            let (aad, pt) = env.split_at_mut(INITIAL_ID);
            seal_in_place(&k_hello, &[0u8; NONCE_LEN], &[aad], pt)
        };
        env.extend_from_slice(&tag);
        debug_assert_eq!(env.len(), INITIAL_RATCHET);

        // Alice's ratchet initialisation (Signal DR-HE §3.5 / §4).
        let r = random32(rng);
        let r_pub = x25519_public(&r);
        let dh_out = dh(&r, &prekey).ok_or(bad)?;
        let (rk, cks, nhks) = kdf_rk(&sk, &dh_out);
        let core = Core {
            dhs: *r,
            dhs_pub: r_pub,
            dhr: Some(prekey),
            rk,
            cks: Some(cks),
            ckr: None,
            hks: Some(*hka),
            hkr: None,
            nhks,
            nhkr: *nhkb,
            prev_hkr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            send_step_due: false,
            recv_steps: 0,
        };
        let mut session = Session {
            core,
            skipped: Vec::new(),
            ad,
            own: identity.public(),
            peer: inviter,
            initial_ek: None,
        };
        session.seal_into(rng, &mut env, Some(&hello), first);
        let schedule = Schedule {
            dh1,
            dh2,
            dh3,
            ss,
            th,
            k_hello,
            sk,
            hka,
            nhkb,
            ad,
        };
        Ok((session, Envelope(env), schedule))
    }

    /// Inviter side of the handshake: opens the joiner's initial envelope with
    /// the pending invitation. Returns the session, the joiner's identity (check
    /// it with [`crate::verify_peer`] if the joiner is already a known contact),
    /// its [`Hello`] and the optional first content.
    ///
    /// Refuses an expired invitation (`now > expires_at +`
    /// [`crate::INVITATION_GRACE_SECS`]: a joiner may have accepted just
    /// before expiry). The one-time
    /// invitation must be deleted by the caller after success; if the same
    /// initial envelope is delivered again, [`Session::open`] on the new
    /// session recognises it and returns [`OpenError::AlreadyProcessed`].
    ///
    /// `rng` is currently unused (the inviter's first sending ratchet key is
    /// drawn by its first [`Session::seal`]); it is kept so the signature does
    /// not change if that ever moves.
    #[allow(clippy::type_complexity)]
    pub fn accept<R: CryptoRng + ?Sized>(
        _rng: &mut R,
        identity: &Identity,
        pending: &PendingInvitation,
        envelope: &[u8],
        now: u64,
    ) -> Result<(Session, IdentityPublic, Hello, Option<Content>), HandshakeError> {
        if envelope.len() != ENVELOPE_SIZE {
            return Err(HandshakeError::BadSize);
        }
        if envelope[0] != TYPE_INITIAL {
            return Err(HandshakeError::NotInitial);
        }
        if pending.is_expired(now.saturating_sub(crate::INVITATION_GRACE_SECS)) {
            return Err(HandshakeError::Expired);
        }
        if pending.inviter() != identity.public() {
            return Err(HandshakeError::WrongIdentity);
        }
        let bad = HandshakeError::Undecryptable;
        let ek_pub = arr32(&envelope[INITIAL_EK..INITIAL_CT]);
        let ct = &envelope[INITIAL_CT..INITIAL_ID];
        debug_assert_eq!(ct.len(), KEM_CT_LEN);
        let opk = pending.prekey_secret();
        let opk_pub = pending.prekey_public();
        let kem_key = pending.kem_key_bytes();
        let ss = pending.decapsulate(ct).ok_or(bad)?;
        let dh2 = dh(identity.x_secret(), &ek_pub).ok_or(bad)?;
        let dh3 = dh(opk, &ek_pub).ok_or(bad)?;
        let inviter = identity.public();
        let th = transcript(&inviter, &opk_pub, &kem_key, &ek_pub, ct);
        let k_hello = hello_key(&th, &dh2, &dh3, &ss);
        let mut id_buf = [0u8; 64];
        id_buf.copy_from_slice(&envelope[INITIAL_ID..INITIAL_ID + 64]);
        let tag: [u8; TAG_LEN] = envelope[INITIAL_ID + 64..INITIAL_RATCHET]
            .try_into()
            .map_err(|_| bad)?;
        open_in_place(
            &k_hello,
            &[0u8; NONCE_LEN],
            &[&envelope[..INITIAL_ID]],
            &mut id_buf,
            &tag,
        )
        .map_err(|()| bad)?;
        let joiner =
            IdentityPublic::from_bytes(&id_buf).map_err(|_| HandshakeError::BadIdentityKey)?;
        let dh1 = dh(opk, joiner.x25519()).ok_or(HandshakeError::BadIdentityKey)?;
        let (sk, hka, nhkb) = root_schedule(&th, &dh1, &dh2, &dh3, &ss);
        let ad = binding_ad(&joiner, &inviter);

        // Bob's ratchet initialisation: his ratchet key pair is the one-time prekey.
        let core = Core {
            dhs: *opk,
            dhs_pub: opk_pub,
            dhr: None,
            rk: *sk,
            cks: None,
            ckr: None,
            hks: None,
            hkr: None,
            nhks: *nhkb,
            nhkr: *hka,
            prev_hkr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            send_step_due: false,
            recv_steps: 0,
        };
        let mut session = Session {
            core,
            skipped: Vec::new(),
            ad,
            own: inviter,
            peer: joiner,
            initial_ek: Some(ek_pub),
        };
        let (plan, pt) = session.decrypt(envelope, INITIAL_RATCHET)?;
        let pt = tropa_proto::e2e::Plaintext::decode(pt.message())
            .map_err(|_| HandshakeError::Open(OpenError::Malformed))?;
        let hello = Hello::from_proto(pt.hello.as_ref().ok_or(HandshakeError::MissingHello)?)?;
        if let Some(c) = &pt.content {
            c.validate()?;
        }
        session.commit(plan);
        Ok((session, joiner, hello, pt.content))
    }

    /// Encrypts `content` into a new envelope of exactly [`ENVELOPE_SIZE`] bytes.
    ///
    /// Persist the updated session before sending the envelope: a restored
    /// older state re-uses message keys (the random per-message nonce keeps
    /// that from being catastrophic, but the peer will refuse the duplicate).
    pub fn seal<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        content: &Content,
    ) -> Result<Envelope, SealError> {
        content.validate()?;
        let mut env = Vec::with_capacity(ENVELOPE_SIZE);
        env.push(TYPE_RATCHET);
        self.seal_into(rng, &mut env, None, Some(content));
        Ok(Envelope(env))
    }

    /// Appends a ratchet message (at offset `r0 = env.len()`) carrying the
    /// plaintext, padded so that `env` ends up exactly [`ENVELOPE_SIZE`] bytes.
    /// Every byte is written once (no zero-fill then overwrite). Inputs are
    /// validated by the callers; this cannot fail.
    fn seal_into<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        env: &mut Vec<u8>,
        hello: Option<&tropa_proto::e2e::Hello>,
        content: Option<&Content>,
    ) {
        let r0 = env.len();
        // Nonce, header and header tag are filled in by encrypt_message.
        env.resize(r0 + MSG_PREFIX, 0);
        // Body: u16 BE length || Plaintext { hello = 1, content = 2 } || zeros.
        let len = hello.map_or(0, |h| prost::encoding::message::encoded_len(1, h))
            + content.map_or(0, |m| prost::encoding::message::encoded_len(2, m));
        debug_assert!(len + PAD_LEN_PREFIX <= body_capacity(r0));
        env.extend_from_slice(&(len as u16).to_be_bytes());
        if let Some(h) = hello {
            prost::encoding::message::encode(1, h, env);
        }
        if let Some(m) = content {
            prost::encoding::message::encode(2, m, env);
        }
        env.resize(ENVELOPE_SIZE, 0);
        self.encrypt_message(rng, env, r0);
    }

    /// Encrypts the header and the (already padded) body in `env[r0..]` in
    /// place, advancing the sending chain (and doing the sending half of a DH
    /// ratchet step first if one is due).
    fn encrypt_message<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, env: &mut [u8], r0: usize) {
        let c = &mut self.core;
        if c.send_step_due || c.cks.is_none() {
            // Sending half of the DH ratchet step (Signal DR-HE DHRatchetHE).
            // A session is only ever created with a known peer ratchet key
            // (initiate) or after receiving one (accept), so dhr is set here;
            // it was checked to be contributory when received.
            let new = random32(rng);
            c.dhs = *new;
            c.dhs_pub = x25519_public(&new);
            let dh_out = c.dhr.and_then(|peer| dh(&c.dhs, &peer)).unwrap_or_default();
            let (rk, cks, nhks) = kdf_rk(&c.rk, &dh_out);
            c.rk = rk;
            c.cks = Some(cks);
            c.nhks = nhks;
            c.send_step_due = false;
        }
        let hk = c.hks.unwrap_or(c.nhks);
        let (mk, ck) = kdf_ck(&c.cks.unwrap_or_default());
        c.cks = Some(*ck);

        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        env[r0..r0 + NONCE_LEN].copy_from_slice(&nonce);
        let h0 = r0 + NONCE_LEN;
        env[h0..h0 + 32].copy_from_slice(&c.dhs_pub);
        env[h0 + 32..h0 + 36].copy_from_slice(&c.pn.to_be_bytes());
        env[h0 + 36..h0 + 40].copy_from_slice(&c.ns.to_be_bytes());
        c.ns = c.ns.wrapping_add(1);
        {
            let (aad, rest) = env.split_at_mut(h0);
            let (hdr, tail) = rest.split_at_mut(HEADER_LEN);
            let tag = seal_in_place(&hk, &nonce, &[&self.ad, &aad[..r0]], hdr);
            tail[..TAG_LEN].copy_from_slice(&tag);
        }
        let b0 = r0 + MSG_PREFIX;
        let b_end = ENVELOPE_SIZE - TAG_LEN;
        let (aad, rest) = env.split_at_mut(b0);
        let (body, tail) = rest.split_at_mut(b_end - b0);
        let tag = seal_in_place(&mk, &nonce, &[body_ad(&self.ad, aad).as_slice()], body);
        tail.copy_from_slice(&tag);
    }

    /// Test hook: seals an arbitrary padded body (to exercise the checks on open).
    #[cfg(test)]
    pub(crate) fn seal_raw<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, body: &[u8]) -> Envelope {
        let mut env = vec![0u8; ENVELOPE_SIZE];
        env[0] = TYPE_RATCHET;
        let b0 = RATCHET_RATCHET + MSG_PREFIX;
        env[b0..b0 + body.len()].copy_from_slice(body);
        self.encrypt_message(rng, &mut env, RATCHET_RATCHET);
        Envelope(env)
    }

    /// Decrypts and authenticates an envelope from the peer. On any error the
    /// session is left exactly as it was.
    ///
    /// [`OpenError::AlreadyProcessed`] means a replay or redelivery of a message
    /// (or of the initial envelope) already opened: acknowledge and drop it.
    pub fn open(&mut self, envelope: &[u8]) -> Result<Content, OpenError> {
        if envelope.len() != ENVELOPE_SIZE {
            return Err(OpenError::BadSize);
        }
        match envelope[0] {
            TYPE_RATCHET => {}
            TYPE_INITIAL => {
                return match &self.initial_ek {
                    Some(ek) if bool::from(ek.ct_eq(&envelope[INITIAL_EK..INITIAL_CT])) => {
                        Err(OpenError::AlreadyProcessed)
                    }
                    _ => Err(OpenError::UnexpectedInitial),
                };
            }
            _ => return Err(OpenError::UnknownType),
        }
        let (plan, pt) = self.decrypt(envelope, RATCHET_RATCHET)?;
        let pt =
            tropa_proto::e2e::Plaintext::decode(pt.message()).map_err(|_| OpenError::Malformed)?;
        if pt.hello.is_some() {
            return Err(OpenError::Malformed);
        }
        let content = pt.content.ok_or(OpenError::Malformed)?;
        content.validate().map_err(OpenError::BadContent)?;
        self.commit(plan);
        Ok(content)
    }

    fn try_header(&self, hk: &Key32, env: &[u8], r0: usize) -> Option<Header> {
        let nonce: [u8; NONCE_LEN] = env[r0..r0 + NONCE_LEN].try_into().ok()?;
        let h0 = r0 + NONCE_LEN;
        let mut hdr = [0u8; HEADER_LEN];
        hdr.copy_from_slice(&env[h0..h0 + HEADER_LEN]);
        let tag: [u8; TAG_LEN] = env[h0 + HEADER_LEN..h0 + HEADER_LEN + TAG_LEN]
            .try_into()
            .ok()?;
        open_in_place(hk, &nonce, &[&self.ad, &env[..r0]], &mut hdr, &tag).ok()?;
        let mut pn = [0u8; 4];
        let mut n = [0u8; 4];
        pn.copy_from_slice(&hdr[32..36]);
        n.copy_from_slice(&hdr[36..40]);
        Some(Header {
            dh: arr32(&hdr[..32]),
            pn: u32::from_be_bytes(pn),
            n: u32::from_be_bytes(n),
        })
    }

    /// Decrypts the body with `mk` and removes the padding.
    fn decrypt_body(&self, mk: &Key32, env: &[u8], r0: usize) -> Result<Decrypted, OpenError> {
        let b0 = r0 + MSG_PREFIX;
        let b_end = ENVELOPE_SIZE - TAG_LEN;
        let nonce: [u8; NONCE_LEN] = env[r0..r0 + NONCE_LEN]
            .try_into()
            .map_err(|_| OpenError::Malformed)?;
        let tag: [u8; TAG_LEN] = env[b_end..].try_into().map_err(|_| OpenError::Malformed)?;
        // Decrypt straight from the caller's bytes into the plaintext buffer
        // (the tag is verified over the ciphertext before anything is written).
        let mut d = Decrypted {
            buf: vec![0u8; b_end - b0],
            // Until the padding is checked, wipe everything on drop.
            end: b_end - b0,
        };
        open_into(
            mk,
            &nonce,
            body_ad(&self.ad, &env[..b0]).as_slice(),
            &env[b0..b_end],
            &mut d.buf,
            &tag,
        )
        .map_err(|()| OpenError::Tampered)?;
        let len = unpad(&d.buf).ok_or(OpenError::Malformed)?.len();
        d.end = PAD_LEN_PREFIX + len;
        Ok(d)
    }

    /// The Signal DR-HE `RatchetDecryptHE`, computing changes on the side.
    fn decrypt(&self, env: &[u8], r0: usize) -> Result<(Plan, Decrypted), OpenError> {
        let hkr = self.core.hkr;
        // 1. Skipped message keys (other chains than the current one).
        let mut tried: Vec<&Key32> = Vec::new();
        let mut matched_old_chain = false;
        for e in &self.skipped {
            if Some(e.hk) == hkr || tried.contains(&&e.hk) {
                continue;
            }
            tried.push(&e.hk);
            if let Some(h) = self.try_header(&e.hk, env, r0) {
                matched_old_chain = true;
                if let Some(i) = self.find_skipped(&e.hk, h.n)
                    && !self.skipped[i].is_tombstone()
                {
                    let pt = self.decrypt_body(&self.skipped[i].mk, env, r0)?;
                    return Ok((self.plan_remove(i), pt));
                }
                break;
            }
        }
        if matched_old_chain {
            return Err(OpenError::AlreadyProcessed);
        }
        // 2. The current receiving chain.
        if let Some(hk) = hkr
            && let Some(h) = self.try_header(&hk, env, r0)
        {
            if h.n < self.core.nr {
                return match self.find_skipped(&hk, h.n) {
                    Some(i) if !self.skipped[i].is_tombstone() => {
                        let pt = self.decrypt_body(&self.skipped[i].mk, env, r0)?;
                        Ok((self.plan_remove(i), pt))
                    }
                    _ => Err(OpenError::AlreadyProcessed),
                };
            }
            let mut core = self.core.clone();
            let mut add = Vec::with_capacity(h.n.saturating_sub(core.nr).min(MAX_SKIP) as usize);
            let mk = skip_to(&mut core, h.n, &hk, &mut add)?;
            let pt = self.decrypt_body(&mk, env, r0)?;
            return Ok((
                Plan {
                    core,
                    remove: None,
                    add,
                },
                pt,
            ));
        }
        // 3. The next receiving chain: a DH ratchet step.
        if let Some(h) = self.try_header(&self.core.nhkr, env, r0) {
            let mut core = self.core.clone();
            let old_chain = if core.ckr.is_some() {
                h.pn.saturating_sub(core.nr).min(MAX_SKIP)
            } else {
                0
            };
            let mut add = Vec::with_capacity((old_chain + h.n.min(MAX_SKIP)) as usize);
            if let Some(old_hk) = core.hkr {
                if h.pn < core.nr {
                    // PN can't be below what we received on that chain.
                    return Err(OpenError::Malformed);
                }
                skip_chain(&mut core, h.pn, &old_hk, &mut add)?;
            }
            // Receiving half of DHRatchetHE.
            let dh_out = dh(&core.dhs, &h.dh).ok_or(OpenError::BadRatchetKey)?;
            core.pn = core.ns;
            core.ns = 0;
            core.nr = 0;
            core.hks = Some(core.nhks);
            core.prev_hkr = core.hkr;
            core.hkr = Some(core.nhkr);
            core.dhr = Some(h.dh);
            let (rk, ckr, nhkr) = kdf_rk(&core.rk, &dh_out);
            core.rk = rk;
            core.ckr = Some(ckr);
            core.nhkr = nhkr;
            core.cks = None;
            core.send_step_due = true;
            core.recv_steps = core.recv_steps.wrapping_add(1);
            let hk = core.hkr.unwrap_or_default();
            let mk = skip_to(&mut core, h.n, &hk, &mut add)?;
            let pt = self.decrypt_body(&mk, env, r0)?;
            return Ok((
                Plan {
                    core,
                    remove: None,
                    add,
                },
                pt,
            ));
        }
        // 4. The previous receiving chain, all of whose keys are used or skipped.
        if let Some(hk) = self.core.prev_hkr
            && self.try_header(&hk, env, r0).is_some()
        {
            return Err(OpenError::AlreadyProcessed);
        }
        Err(OpenError::UnknownHeader)
    }

    fn find_skipped(&self, hk: &Key32, n: u32) -> Option<usize> {
        self.skipped
            .iter()
            .position(|e| e.n == n && bool::from(e.hk.ct_eq(hk)))
    }

    fn plan_remove(&self, i: usize) -> Plan {
        Plan {
            core: self.core.clone(),
            remove: Some(i),
            add: Vec::new(),
        }
    }

    fn commit(&mut self, plan: Plan) {
        let Plan {
            core,
            remove,
            mut add,
        } = plan;
        self.core = core;
        if let Some(i) = remove {
            let hk = self.skipped[i].hk;
            let still_known = [self.core.hkr, self.core.prev_hkr, Some(self.core.nhkr)]
                .contains(&Some(hk))
                || self
                    .skipped
                    .iter()
                    .enumerate()
                    .any(|(j, e)| j != i && e.hk == hk);
            if still_known {
                self.skipped.remove(i);
            } else {
                // Last trace of a retired chain's header key: keep it as a
                // tombstone so replays are still recognised.
                self.skipped[i].mk.zeroize();
            }
        }
        // Grow by hand so that no stale copy of a message key is left in a
        // freed buffer (a plain `extend` may reallocate without wiping).
        let needed = self.skipped.len() + add.len();
        if needed > self.skipped.capacity() {
            let mut grown = Vec::with_capacity((needed * 3 / 2).max(16));
            grown.append(&mut self.skipped);
            self.skipped.zeroize();
            self.skipped = grown;
        }
        self.skipped.append(&mut add);
        add.zeroize();
        let now = self.core.recv_steps;
        self.skipped
            .retain(|e| now.wrapping_sub(e.step) < MAX_SKIPPED_AGE_STEPS);
        if self.skipped.len() > MAX_SKIPPED_KEYS {
            let excess = self.skipped.len() - MAX_SKIPPED_KEYS;
            self.skipped.drain(..excess);
        }
        // remove/retain/drain shift entries down; wipe the copies left behind.
        self.skipped.spare_capacity_mut().zeroize();
    }

    /// The peer's identity key.
    pub fn peer_identity(&self) -> IdentityPublic {
        self.peer
    }

    /// Our own identity key in this session.
    pub fn own_identity(&self) -> IdentityPublic {
        self.own
    }

    /// How many skipped message keys are stored (for diagnostics and tests).
    pub fn skipped_keys(&self) -> usize {
        self.skipped.iter().filter(|e| !e.is_tombstone()).count()
    }

    /// Serialises the whole session for the (encrypted) store. Layout in
    /// docs/protocol.md §8.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let c = &self.core;
        let mut w = Writer::new(800 + self.skipped.len() * 72);
        w.u8(SESSION_STATE_V1);
        w.bytes(&self.own.to_bytes());
        w.bytes(&self.peer.to_bytes());
        w.bytes(&self.ad);
        w.opt32(&self.initial_ek);
        w.bytes(&c.dhs);
        w.opt32(&c.dhr);
        w.bytes(&c.rk);
        w.opt32(&c.cks);
        w.opt32(&c.ckr);
        w.opt32(&c.hks);
        w.opt32(&c.hkr);
        w.bytes(&c.nhks);
        w.bytes(&c.nhkr);
        w.opt32(&c.prev_hkr);
        w.u32(c.ns);
        w.u32(c.nr);
        w.u32(c.pn);
        w.u8(u8::from(c.send_step_due));
        w.u32(c.recv_steps);
        w.u32(self.skipped.len() as u32);
        for e in &self.skipped {
            w.bytes(&e.hk);
            w.u32(e.n);
            w.bytes(&e.mk);
            w.u32(e.step);
        }
        w.finish()
    }

    /// Loads what [`Session::to_bytes`] wrote. The state is trusted to be
    /// our own (the client's store authenticates it): its identity keys are
    /// not validated again, as they were when the session began.
    pub fn from_bytes(bytes: &[u8]) -> Result<Session, StateError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != SESSION_STATE_V1 {
            return Err(StateError::BadVersion);
        }
        let own = IdentityPublic::from_stored(&r.arr()?);
        let peer = IdentityPublic::from_stored(&r.arr()?);
        let ad = r.arr()?;
        let initial_ek = r.opt32()?;
        let dhs: Key32 = r.arr()?;
        let core = Core {
            dhs_pub: x25519_public(&dhs),
            dhs,
            dhr: r.opt32()?,
            rk: r.arr()?,
            cks: r.opt32()?,
            ckr: r.opt32()?,
            hks: r.opt32()?,
            hkr: r.opt32()?,
            nhks: r.arr()?,
            nhkr: r.arr()?,
            prev_hkr: r.opt32()?,
            ns: r.u32()?,
            nr: r.u32()?,
            pn: r.u32()?,
            send_step_due: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(StateError::Invalid),
            },
            recv_steps: r.u32()?,
        };
        if (core.send_step_due || core.cks.is_none()) && core.dhr.is_none() {
            return Err(StateError::Invalid);
        }
        let count = r.u32()? as usize;
        if count > MAX_SKIPPED_KEYS {
            return Err(StateError::Invalid);
        }
        let mut skipped = Vec::with_capacity(count);
        for _ in 0..count {
            skipped.push(SkippedKey {
                hk: r.arr()?,
                n: r.u32()?,
                mk: r.arr()?,
                step: r.u32()?,
            });
        }
        r.end()?;
        Ok(Session {
            core,
            skipped,
            ad,
            own,
            peer,
            initial_ek,
        })
    }

    #[cfg(test)]
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }
}

/// Stores skipped keys of the current receiving chain up to (excluding) `until`.
fn skip_chain(
    core: &mut Core,
    until: u32,
    hk: &Key32,
    add: &mut Vec<SkippedKey>,
) -> Result<(), OpenError> {
    let Some(mut ck) = core.ckr else {
        return Ok(());
    };
    if until < core.nr {
        return Err(OpenError::Malformed);
    }
    if until - core.nr > MAX_SKIP {
        return Err(OpenError::TooManySkipped);
    }
    while core.nr < until {
        let (mk, next) = kdf_ck(&ck);
        add.push(SkippedKey {
            hk: *hk,
            n: core.nr,
            mk: *mk,
            step: core.recv_steps,
        });
        ck = *next;
        core.nr += 1;
    }
    core.ckr = Some(ck);
    ck.zeroize();
    Ok(())
}

/// Skips to message `n` of the current receiving chain and returns its key.
fn skip_to(
    core: &mut Core,
    n: u32,
    hk: &Key32,
    add: &mut Vec<SkippedKey>,
) -> Result<Zeroizing<Key32>, OpenError> {
    skip_chain(core, n, hk, add)?;
    let ck = core.ckr.ok_or(OpenError::UnknownHeader)?;
    let (mk, next) = kdf_ck(&ck);
    core.ckr = Some(*next);
    core.nr = n.checked_add(1).ok_or(OpenError::Malformed)?;
    Ok(mk)
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("own", &self.own)
            .field("peer", &self.peer)
            .field("sent", &self.core.ns)
            .field("received", &self.core.nr)
            .field("skipped_keys", &self.skipped.len())
            .field("keys", &"<redacted>")
            .finish()
    }
}

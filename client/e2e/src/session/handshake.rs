//! The handshake (docs/protocol.md §4): the joiner's `initiate` and the
//! inviter's `accept`, and the key schedule both compute.

use ml_kem::Encapsulate as _;
use prost::Message as _;
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use super::ratchet::Plan;
use super::{Core, HandshakeError, OpenError, Session, arr32, random32};
use crate::content::{Content, ContentExt, Hello};
use crate::envelope::{
    ENVELOPE_SIZE, Envelope, INITIAL_CT, INITIAL_EK, INITIAL_ID, INITIAL_RATCHET, TYPE_INITIAL,
};
use crate::identity::{Identity, IdentityPublic};
use crate::invitation::{Invitation, KEM_CT_LEN, PendingInvitation, parse_kem_key};
use crate::primitives::{
    Key32, LABEL_AD, LABEL_HELLO_KEY, LABEL_PQXDH, LABEL_TRANSCRIPT, NONCE_LEN, TAG_LEN, dh, hkdf,
    kdf_rk, open_in_place, seal_in_place, sha256, split3, x25519_public,
};

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
        check_invitation(identity, invitation, now)?;
        let hello = hello.to_proto()?;
        if let Some(c) = first {
            c.validate()?;
        }
        let plaintext = tropa_proto::e2e::Plaintext {
            hello: Some(hello),
            content: first.cloned(),
            ..Default::default()
        };
        Self::initiate_plaintext(rng, identity, invitation, &plaintext, now)
    }

    /// The joiner's handshake with any initial `plaintext` (a Hello, or a
    /// contact request, docs/protocol.md §12), which the caller has
    /// validated and which fits the initial envelope.
    pub(crate) fn initiate_plaintext<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &Identity,
        invitation: &Invitation,
        plaintext: &tropa_proto::e2e::Plaintext,
        now: u64,
    ) -> Result<(Session, Envelope, Schedule), HandshakeError> {
        check_invitation(identity, invitation, now)?;
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
        session.seal_into(rng, &mut env, plaintext);
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
        let OpenedInitial {
            mut session,
            joiner,
            plan,
            plaintext: pt,
        } = Self::open_initial(identity, pending, envelope, now)?;
        if pt.request.is_some() {
            return Err(HandshakeError::ContactRequest);
        }
        let hello = Hello::from_proto(pt.hello.as_ref().ok_or(HandshakeError::MissingHello)?)?;
        if let Some(c) = &pt.content {
            c.validate()?;
        }
        session.commit(plan);
        Ok((session, joiner, hello, pt.content))
    }

    /// Opens an initial envelope as for a contact request (docs/protocol.md
    /// §12): the authenticated joiner's identity and the decrypted
    /// `Plaintext`, unchecked beyond its protobuf decoding. The session is
    /// dropped: a request starts no conversation of its own.
    pub(crate) fn open_initial_plaintext(
        identity: &Identity,
        pending: &PendingInvitation,
        envelope: &[u8],
        now: u64,
    ) -> Result<(IdentityPublic, tropa_proto::e2e::Plaintext), HandshakeError> {
        let opened = Self::open_initial(identity, pending, envelope, now)?;
        Ok((opened.joiner, opened.plaintext))
    }

    /// The inviter's half of the handshake up to the decoded plaintext of
    /// the embedded ratchet message; the caller checks the plaintext and
    /// commits the plan.
    fn open_initial(
        identity: &Identity,
        pending: &PendingInvitation,
        envelope: &[u8],
        now: u64,
    ) -> Result<OpenedInitial, HandshakeError> {
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
        let session = Session {
            core,
            skipped: Vec::new(),
            ad,
            own: inviter,
            peer: joiner,
            initial_ek: Some(ek_pub),
        };
        let (plan, pt) = session.decrypt(envelope, INITIAL_RATCHET)?;
        let plaintext = tropa_proto::e2e::Plaintext::decode(pt.message())
            .map_err(|_| HandshakeError::Open(OpenError::Malformed))?;
        Ok(OpenedInitial {
            session,
            joiner,
            plan,
            plaintext,
        })
    }
}

/// An initial envelope opened by the inviter, before its plaintext is
/// checked and the ratchet plan committed.
struct OpenedInitial {
    session: Session,
    joiner: IdentityPublic,
    plan: Plan,
    plaintext: tropa_proto::e2e::Plaintext,
}

/// The joiner's checks on an invitation before any key is drawn.
fn check_invitation(
    identity: &Identity,
    invitation: &Invitation,
    now: u64,
) -> Result<(), HandshakeError> {
    if invitation.is_expired(now) {
        return Err(HandshakeError::Expired);
    }
    if invitation.inviter() == identity.public() {
        return Err(HandshakeError::OwnInvitation);
    }
    Ok(())
}

//! The Double Ratchet with header encryption (docs/protocol.md §5-6):
//! sealing and opening messages, skipped keys, and the plan-then-commit
//! discipline that leaves a session unchanged when `open` fails.

use prost::Message as _;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::{
    Core, MAX_SKIP, MAX_SKIPPED_AGE_STEPS, MAX_SKIPPED_KEYS, OpenError, SealError, Session,
    SkippedKey, arr32, random32,
};
use crate::content::{
    Content, ContentExt, MAX_RECEIPT_IDS, MESSAGE_ID_LEN, Receipt, validate_receipt,
};
use crate::envelope::{
    ENVELOPE_SIZE, Envelope, HEADER_LEN, INITIAL_CT, INITIAL_EK, MSG_PREFIX, PAD_LEN_PREFIX,
    RATCHET_RATCHET, TYPE_INITIAL, TYPE_RATCHET, body_capacity, unpad,
};
use crate::primitives::{
    Ad, Key32, NONCE_LEN, TAG_LEN, dh, kdf_ck, kdf_rk, open_in_place, open_into, seal_in_place,
    x25519_public,
};

/// The decrypted header of a ratchet message.
struct Header {
    dh: Key32,
    pn: u32,
    n: u32,
}

/// A decrypted, unpadded body: the protobuf is `buf[2..end]`.
pub(super) struct Decrypted {
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
    pub(super) fn message(&self) -> &[u8] {
        &self.buf[PAD_LEN_PREFIX..self.end]
    }
}

/// What a successful `open` changes, applied only once everything checked out.
pub(super) struct Plan {
    core: Core,
    remove: Option<usize>,
    add: Vec<SkippedKey>,
}

/// Associated data of a message body: `AD ‖ envelope[..r0 + 68]`, zero-padded
/// to a multiple of 64 bytes. (The padding keeps Poly1305 on its 4-block
/// parallel path for the 16 KiB body; it adds no meaning.)
pub(crate) fn body_ad(ad: &Key32, prefix: &[u8]) -> Ad {
    Ad::join(&[ad, prefix], 64)
}

impl Session {
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
        self.seal_with_receipts(rng, content, &[])
            .map(|(env, _)| env)
    }

    /// [`Session::seal`], with receipts for messages received from the peer
    /// carried along (`Plaintext.receipts`, docs/protocol.md §7), so that
    /// they cost no envelope of their own.
    ///
    /// Carries as many of `receipts` as fit, in order: at most
    /// [`MAX_RECEIPT_IDS`], and fewer beside a long text (about a hundred
    /// beside a text of [`crate::MAX_TEXT_LEN`]). Returns the envelope and
    /// how many it carries; the caller still owes the others.
    pub fn seal_with_receipts<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        content: &Content,
        receipts: &[[u8; MESSAGE_ID_LEN]],
    ) -> Result<(Envelope, usize), SealError> {
        content.validate()?;
        let mut plaintext = tropa_proto::e2e::Plaintext {
            content: Some(content.clone()),
            ..Default::default()
        };
        let room = body_capacity(RATCHET_RATCHET) - PAD_LEN_PREFIX;
        let base = plaintext.encoded_len();
        // Field 3 holding a Receipt of n ids: tag, length, and per id a
        // tag, a length and the 16 bytes.
        let with = |n: usize| {
            let inner = n * (2 + MESSAGE_ID_LEN);
            base + 1 + prost::encoding::encoded_len_varint(inner as u64) + inner
        };
        let mut n = receipts.len().min(MAX_RECEIPT_IDS);
        while n > 0 && with(n) > room {
            n -= 1;
        }
        if n > 0 {
            plaintext.receipts = Some(Receipt {
                ids: receipts[..n].iter().map(|id| id.to_vec()).collect(),
            });
        }
        debug_assert_eq!(plaintext.encoded_len(), if n > 0 { with(n) } else { base });
        let mut env = Vec::with_capacity(ENVELOPE_SIZE);
        env.push(TYPE_RATCHET);
        self.seal_into(rng, &mut env, &plaintext);
        Ok((Envelope(env), n))
    }

    /// Appends a ratchet message (at offset `r0 = env.len()`) carrying the
    /// plaintext, padded so that `env` ends up exactly [`ENVELOPE_SIZE`] bytes.
    /// Every byte is written once (no zero-fill then overwrite). Inputs are
    /// validated by the callers; this cannot fail.
    pub(super) fn seal_into<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        env: &mut Vec<u8>,
        plaintext: &tropa_proto::e2e::Plaintext,
    ) {
        let r0 = env.len();
        // Nonce, header and header tag are filled in by encrypt_message.
        env.resize(r0 + MSG_PREFIX, 0);
        // Body: u16 BE length || Plaintext || zeros.
        let len = plaintext.encoded_len();
        debug_assert!(len + PAD_LEN_PREFIX <= body_capacity(r0));
        env.extend_from_slice(&(len as u16).to_be_bytes());
        // Appending to a Vec cannot run out of room.
        let _ = plaintext.encode(env);
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
    ///
    /// Receipts carried along with the content are checked but not
    /// returned: use [`Session::open_with_receipts`] to act on them.
    pub fn open(&mut self, envelope: &[u8]) -> Result<Content, OpenError> {
        self.open_with_receipts(envelope)
            .map(|(content, _)| content)
    }

    /// [`Session::open`], also returning the ids of the receipts carried
    /// along with the content (empty if none): they mean exactly what a
    /// [`Body::Receipt`](crate::Body::Receipt) with these ids means.
    ///
    /// They are checked like a standalone receipt (1 to [`MAX_RECEIPT_IDS`]
    /// ids of 16 bytes; otherwise [`OpenError::BadContent`]). A ratchet
    /// message with a `hello` or a contact `request` (both only ever in an
    /// initial envelope) is [`OpenError::Malformed`].
    pub fn open_with_receipts(
        &mut self,
        envelope: &[u8],
    ) -> Result<(Content, Vec<[u8; MESSAGE_ID_LEN]>), OpenError> {
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
        if pt.hello.is_some() || pt.request.is_some() {
            return Err(OpenError::Malformed);
        }
        let content = pt.content.ok_or(OpenError::Malformed)?;
        content.validate().map_err(OpenError::BadContent)?;
        let receipts = match &pt.receipts {
            None => Vec::new(),
            Some(r) => {
                validate_receipt(r).map_err(OpenError::BadContent)?;
                let mut ids = Vec::with_capacity(r.ids.len());
                for id in &r.ids {
                    // Checked above: every id is MESSAGE_ID_LEN bytes.
                    let mut a = [0u8; MESSAGE_ID_LEN];
                    a.copy_from_slice(id);
                    ids.push(a);
                }
                ids
            }
        };
        self.commit(plan);
        Ok((content, receipts))
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
    pub(super) fn decrypt(&self, env: &[u8], r0: usize) -> Result<(Plan, Decrypted), OpenError> {
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

    pub(super) fn commit(&mut self, plan: Plan) {
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

#[cfg(test)]
mod tests {
    //! Receipts carried along with content (`Plaintext.receipts`).

    use tropa_proto::e2e::{ContactRequest, Plaintext};

    use super::*;
    use crate::content::{ContentError, MAX_TEXT_LEN};
    use crate::test_rng::TestRng;
    use crate::tests::pair;

    fn ids(n: usize) -> Vec<[u8; MESSAGE_ID_LEN]> {
        (0..n)
            .map(|i| {
                let mut a = [0xeeu8; MESSAGE_ID_LEN];
                a[..8].copy_from_slice(&(i as u64).to_be_bytes());
                a
            })
            .collect()
    }

    #[test]
    fn receipts_ride_along_with_content_and_come_out_as_sent() {
        let mut rng = TestRng::new(b"piggyback");
        let (mut j, mut i) = pair(&mut rng);
        let reply = Content::text(&mut rng, "reply").unwrap();
        let owed = ids(3);
        let (env, n) = j.seal_with_receipts(&mut rng, &reply, &owed).unwrap();
        assert_eq!(n, 3);
        assert_eq!(env.as_bytes().len(), ENVELOPE_SIZE);
        let (got, receipts) = i.open_with_receipts(env.as_bytes()).unwrap();
        assert_eq!(got, reply);
        assert_eq!(receipts, owed);
        // None to carry: none come out (the field is left out).
        let (env, n) = j.seal_with_receipts(&mut rng, &reply, &[]).unwrap();
        assert_eq!(n, 0);
        assert!(i.open_with_receipts(env.as_bytes()).unwrap().1.is_empty());
        // `open` (callers that ignore receipts) still opens a message with some,
        // and `seal` carries none.
        let (env, _) = j.seal_with_receipts(&mut rng, &reply, &owed).unwrap();
        assert_eq!(i.open(env.as_bytes()).unwrap(), reply);
        let env = j.seal(&mut rng, &reply).unwrap();
        assert!(i.open_with_receipts(env.as_bytes()).unwrap().1.is_empty());
        // Receipts may ride on a receipt too; the other direction works the same.
        let r = Content::receipt(&mut rng, &ids(1)).unwrap();
        let (env, n) = i.seal_with_receipts(&mut rng, &r, &owed[1..]).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            j.open_with_receipts(env.as_bytes()).unwrap(),
            (r, owed[1..].to_vec())
        );
    }

    #[test]
    fn as_many_receipts_as_fit_are_carried() {
        let mut rng = TestRng::new(b"piggyback-fit");
        let (mut j, mut i) = pair(&mut rng);
        let many = ids(MAX_RECEIPT_IDS + 10);
        let short = Content::text(&mut rng, "ok").unwrap();
        let (env, n) = j.seal_with_receipts(&mut rng, &short, &many).unwrap();
        assert_eq!(n, MAX_RECEIPT_IDS, "at most MAX_RECEIPT_IDS");
        assert_eq!(
            i.open_with_receipts(env.as_bytes()).unwrap().1,
            many[..MAX_RECEIPT_IDS]
        );
        // Beside the longest text, fewer fit; they still open, and one more
        // would not have fitted in the body.
        let long = Content::text(&mut rng, &"a".repeat(MAX_TEXT_LEN)).unwrap();
        let (env, n) = j.seal_with_receipts(&mut rng, &long, &many).unwrap();
        assert_eq!(n, 110, "as docs/protocol.md §7 says");
        let (got, receipts) = i.open_with_receipts(env.as_bytes()).unwrap();
        assert_eq!(got, long);
        assert_eq!(receipts, many[..n]);
        let one_more = Plaintext {
            content: Some(long),
            receipts: Some(Receipt {
                ids: many[..=n].iter().map(|id| id.to_vec()).collect(),
            }),
            ..Default::default()
        };
        assert!(
            one_more.encoded_len() + PAD_LEN_PREFIX > body_capacity(RATCHET_RATCHET),
            "{n} is the most that fit"
        );
    }

    #[test]
    fn malformed_receipts_and_requests_are_refused_leaving_the_session_unchanged() {
        let mut rng = TestRng::new(b"piggyback-bad");
        let (mut j, mut i) = pair(&mut rng);
        let content = Content::text(&mut rng, "x").unwrap();
        let with = |receipts: Vec<Vec<u8>>| Plaintext {
            content: Some(content.clone()),
            receipts: Some(Receipt { ids: receipts }),
            ..Default::default()
        };
        let bad_receipt = OpenError::BadContent(ContentError::BadReceipt);
        let cases = [
            (with(vec![vec![1; 15]]), bad_receipt),
            (with(vec![vec![1; 16], vec![2; 17]]), bad_receipt),
            (with(Vec::new()), bad_receipt),
            (with(vec![vec![1; 16]; MAX_RECEIPT_IDS + 1]), bad_receipt),
            (
                Plaintext {
                    content: Some(content.clone()),
                    request: Some(ContactRequest {
                        invitation: vec![1; 40],
                        text: "let me in".into(),
                    }),
                    ..Default::default()
                },
                OpenError::Malformed,
            ),
            (
                Plaintext {
                    receipts: Some(Receipt {
                        ids: vec![vec![1; 16]],
                    }),
                    ..Default::default()
                },
                OpenError::Malformed,
            ),
        ];
        for (n, (pt, want)) in cases.into_iter().enumerate() {
            let mut env = vec![TYPE_RATCHET];
            j.seal_into(&mut rng, &mut env, &pt);
            let before = i.to_bytes();
            assert_eq!(i.open_with_receipts(&env).unwrap_err(), want, "case {n}");
            assert_eq!(i.to_bytes(), before, "case {n}: session unchanged");
        }
        // A message that carries receipts, tampered with in its body, is
        // refused; the genuine one still opens afterwards.
        let (env, _) = j.seal_with_receipts(&mut rng, &content, &ids(2)).unwrap();
        let mut bad = env.as_bytes().to_vec();
        bad[RATCHET_RATCHET + MSG_PREFIX + 3] ^= 0x01;
        assert_eq!(i.open_with_receipts(&bad).unwrap_err(), OpenError::Tampered);
        assert_eq!(i.open_with_receipts(env.as_bytes()).unwrap().1, ids(2));
    }
}

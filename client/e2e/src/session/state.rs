//! The session's serialised form for the client's (encrypted) store
//! (docs/protocol.md §8).

use zeroize::Zeroizing;

use super::{Core, MAX_SKIPPED_KEYS, SESSION_STATE_V1, Session, SkippedKey};
use crate::codec::{Reader, StateError, Writer};
use crate::identity::IdentityPublic;
use crate::primitives::{Key32, x25519_public};

impl Session {
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

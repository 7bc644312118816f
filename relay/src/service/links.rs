//! Short links' data: `PutLink`, `GetLink` and `DeleteLink`
//! (docs/relay-protocol.md §9). The relay stores each link under a hash of
//! its locator, sealed at rest under a key derived from the locator, with
//! its owner's public key and a coarse expiry hour (S8); it never sees the
//! link's secret, so it can neither open the data nor find the link from
//! anything but the locator.

use tropa_proto::relay::{self, ErrorCode, Response, response};
use tropa_proto::{LINK_DATA_SIZE, LINK_LOCATOR_LEN};

use super::{
    Now, Outcome, Peer, Service, auth_failed, check_password, ed25519_key, error, ok, store_error,
};
use crate::Hour;
use crate::crypto::{self, ChannelBinding, SealingKey};
use crate::store::{LinkRecord, StoreError, link_id};

fn no_link() -> Response {
    error(
        ErrorCode::NoLink,
        "no such link (used, expired or withdrawn)",
    )
}

impl Service {
    pub(super) fn put_link(&self, p: &relay::PutLink, peer: &Peer, now: Now) -> Outcome {
        if let Err(refused) = check_password(self.policy.creation_password.as_ref(), &p.password) {
            return Outcome::reply(refused);
        }
        if p.data.len() > LINK_DATA_SIZE {
            return Outcome::reply(error(ErrorCode::TooLarge, "link data too large"));
        }
        if p.data.len() != LINK_DATA_SIZE {
            return Outcome::reply(error(ErrorCode::Malformed, "link data has the wrong size"));
        }
        if p.locator.len() != LINK_LOCATOR_LEN {
            return Outcome::reply(error(ErrorCode::Malformed, "link locator must be 32 bytes"));
        }
        let Some(owner) = ed25519_key(&p.owner_auth_pub) else {
            return Outcome::reply(error(ErrorCode::Malformed, "invalid owner key"));
        };
        if p.ttl_secs == 0 {
            return Outcome::reply(error(ErrorCode::Malformed, "link ttl must be at least 1 s"));
        }
        let signed = crypto::link_put_signed_bytes(&peer.binding, &p.locator, p.ttl_secs, &p.data);
        if !crypto::verify(&owner, &signed, &p.signature) {
            self.metrics.inc(&self.metrics.auth_failures);
            return Outcome::reply(auth_failed());
        }
        let id = link_id(&p.locator);
        let existing = match self.store.link(&id) {
            Ok(found) => found.filter(|l| !l.is_expired(now.hour)),
            Err(e) => return Outcome::reply(store_error(&e)),
        };
        match existing {
            Some(l) if l.owner_auth_pub != owner => {
                self.metrics.inc(&self.metrics.auth_failures);
                return Outcome::reply(auth_failed());
            }
            // A refresh by its owner creates nothing.
            Some(_) => {}
            // A new link is a creation, paid for like a mailbox, so one
            // address cannot fill the relay's link table.
            None => {
                if self.store.totals().links >= self.policy.max_links {
                    return Outcome::reply(store_error(&StoreError::TooManyLinks));
                }
                if !self.may_create(peer, now) {
                    self.metrics.inc(&self.metrics.creations_refused);
                    return Outcome::reply(error(
                        ErrorCode::RateLimited,
                        "too many new links from this network; try again later",
                    ));
                }
            }
        }
        let hours = p
            .ttl_secs
            .div_ceil(3600)
            .clamp(1, self.policy.max_link_ttl_hours.max(1));
        let rec = LinkRecord {
            owner_auth_pub: owner.to_vec(),
            expires_hour: now.hour.saturating_add(hours),
            sealed: SealingKey::link_at_rest(&p.locator).seal(&id, &p.data),
        };
        match self
            .store
            .put_link(&id, &rec, now.hour, self.policy.max_links)
        {
            Ok(()) => {
                self.metrics.inc(&self.metrics.links_stored);
                Outcome::durable(Response {
                    result: Some(response::Result::LinkStored(relay::LinkStored {
                        ttl_secs: hours.saturating_mul(3600),
                    })),
                })
            }
            Err(e) => {
                if matches!(e, StoreError::LinkOwner) {
                    self.metrics.inc(&self.metrics.auth_failures);
                }
                Outcome::reply(store_error(&e))
            }
        }
    }

    pub(super) fn get_link(&self, g: &relay::GetLink, now: Hour) -> Outcome {
        if g.locator.len() != LINK_LOCATOR_LEN {
            return Outcome::reply(error(ErrorCode::Malformed, "link locator must be 32 bytes"));
        }
        let id = link_id(&g.locator);
        let rec = match self.store.link(&id) {
            Ok(Some(rec)) if !rec.is_expired(now) => rec,
            Ok(_) => return Outcome::reply(no_link()),
            Err(e) => return Outcome::reply(store_error(&e)),
        };
        let Ok(data) = SealingKey::link_at_rest(&g.locator).open(&id, &rec.sealed) else {
            return Outcome::reply(store_error(&StoreError::Corrupt));
        };
        self.metrics.inc(&self.metrics.link_fetches);
        Outcome::reply(Response {
            result: Some(response::Result::LinkData(relay::LinkData {
                data: data.to_vec().into(),
            })),
        })
    }

    pub(super) fn delete_link(&self, d: &relay::DeleteLink, binding: &ChannelBinding) -> Outcome {
        if d.locator.len() != LINK_LOCATOR_LEN {
            return Outcome::reply(error(ErrorCode::Malformed, "link locator must be 32 bytes"));
        }
        let id = link_id(&d.locator);
        // Whoever knows the locator learns from `GetLink` whether the link
        // exists, so NO_LINK here tells nobody anything new.
        let rec = match self.store.link(&id) {
            Ok(Some(rec)) => rec,
            Ok(None) => return Outcome::reply(no_link()),
            Err(e) => return Outcome::reply(store_error(&e)),
        };
        let signed = crypto::link_delete_signed_bytes(binding, &d.locator);
        if !crypto::verify(&rec.owner_auth_pub, &signed, &d.signature) {
            self.metrics.inc(&self.metrics.auth_failures);
            return Outcome::reply(auth_failed());
        }
        match self.store.delete_link(&id, &rec.owner_auth_pub) {
            Ok(true) => {
                self.metrics.inc(&self.metrics.links_deleted);
                Outcome::durable(ok())
            }
            // Deleted (or replaced after expiring) since it was read.
            Ok(false) => Outcome::reply(no_link()),
            Err(e) => Outcome::reply(store_error(&e)),
        }
    }
}

//! Settings of a profile, kept in its profile record next to the relay
//! address: whether its data is metered.

use super::Client;
use crate::error::ClientError;
use crate::repo::Changes;

impl Client {
    /// Whether this profile is on metered data: then receipts that have no
    /// text to ride on wait for one, up to
    /// [`MAX_RECEIPT_HOLD`](crate::sync::MAX_RECEIPT_HOLD).
    ///
    /// # Errors
    /// Storage.
    pub fn metered(&self) -> Result<bool, ClientError> {
        Ok(self.repo.profile()?.is_some_and(|p| p.metered))
    }

    /// Sets [`Client::metered`]. Running engines see it at their next
    /// decision about receipts.
    ///
    /// # Errors
    /// Storage.
    pub fn set_metered(&self, on: bool) -> Result<(), ClientError> {
        let mut rec = self
            .repo
            .profile()?
            .ok_or(ClientError::Corrupt("no profile record"))?;
        if rec.metered == on {
            return Ok(());
        }
        rec.metered = on;
        let mut changes = Changes::new();
        changes.put_profile(&rec);
        self.repo.apply(changes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::client::Client;
    use crate::store::MemoryKv;

    #[test]
    fn metered_is_off_by_default_and_kept_in_the_profile() {
        let kv = Arc::new(MemoryKv::new());
        let relay = format!("tropa://{}@127.0.0.1:4433", "A".repeat(43))
            .parse()
            .unwrap();
        let c = Client::in_memory(kv.clone(), "alice", &relay).unwrap();
        assert!(!c.metered().unwrap());
        c.set_metered(true).unwrap();
        assert!(c.metered().unwrap());
        // Reopened: still on, and the relay is untouched.
        let again = Client::in_memory(kv, "alice", &relay).unwrap();
        assert!(again.metered().unwrap());
        assert_eq!(again.relay(), &relay);
        again.set_metered(false).unwrap();
        assert!(!again.metered().unwrap());
    }
}

//! Memory budgets: every request body and every delivery frame the relay
//! holds is paid for, before it is allocated, from its connection's budget
//! and from the relay-wide one. A client that stops reading therefore holds
//! at most its connection's budget, and all clients together at most the
//! relay's, however many streams they open (H1 of the security review).
//!
//! quinn's own buffers are bounded separately by the flow-control windows
//! in [`crate::tls`]; this module covers what the relay itself allocates.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory held for one request or one delivery; released on drop.
#[derive(Debug)]
pub struct Permit {
    _connection: OwnedSemaphorePermit,
    _relay: OwnedSemaphorePermit,
}

/// The relay-wide budget, shared by every connection.
#[derive(Clone, Debug)]
pub struct RelayBudget {
    bytes: Arc<Semaphore>,
    total: u32,
}

impl RelayBudget {
    /// A budget of `total` bytes.
    pub fn new(total: u32) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Bytes currently held.
    pub fn in_use(&self) -> u64 {
        u64::from(self.total).saturating_sub(self.bytes.available_permits() as u64)
    }

    /// A connection's budgets: `per_kind` bytes for requests and as much
    /// again for deliveries, so a client that does not read its deliveries
    /// can still send the acks that would let it catch up.
    pub fn connection(&self, per_kind: u32) -> ConnectionBudget {
        ConnectionBudget {
            requests: Arc::new(Semaphore::new(per_kind as usize)),
            deliveries: Arc::new(Semaphore::new(per_kind as usize)),
            relay: self.clone(),
            per_kind,
        }
    }
}

/// What a budget pays for.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A request body being read and handled.
    Request,
    /// A delivery being sealed and written.
    Delivery,
}

/// One connection's budgets.
#[derive(Debug)]
pub struct ConnectionBudget {
    requests: Arc<Semaphore>,
    deliveries: Arc<Semaphore>,
    relay: RelayBudget,
    per_kind: u32,
}

impl ConnectionBudget {
    /// Waits up to `patience` (forever if `None`) for `bytes` from this
    /// connection's budget of that kind and from the relay's. `None` if they
    /// did not come in time (or could never come: more than the whole budget).
    pub async fn acquire(
        &self,
        kind: Kind,
        bytes: usize,
        patience: Option<Duration>,
    ) -> Option<Permit> {
        let bytes = u32::try_from(bytes.max(1)).ok()?;
        if bytes > self.per_kind {
            return None;
        }
        let own = match kind {
            Kind::Request => &self.requests,
            Kind::Delivery => &self.deliveries,
        };
        let wait = async {
            // The connection's own budget first: a connection waiting on
            // itself never holds the relay's budget meanwhile.
            let connection = own.clone().acquire_many_owned(bytes).await.ok()?;
            let relay = self
                .relay
                .bytes
                .clone()
                .acquire_many_owned(bytes)
                .await
                .ok()?;
            Some(Permit {
                _connection: connection,
                _relay: relay,
            })
        };
        match patience {
            Some(p) => tokio::time::timeout(p, wait).await.ok().flatten(),
            None => wait.await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn budgets_bound_and_release() {
        let relay = RelayBudget::new(300);
        let a = relay.connection(200);
        let b = relay.connection(200);
        let short = Some(Duration::from_millis(20));
        let p1 = a.acquire(Kind::Delivery, 150, short).await.unwrap();
        assert!(
            a.acquire(Kind::Delivery, 100, short).await.is_none(),
            "the connection's delivery budget is spent"
        );
        let p2 = a.acquire(Kind::Request, 100, short).await.unwrap();
        assert_eq!(relay.in_use(), 250);
        assert!(
            b.acquire(Kind::Request, 100, short).await.is_none(),
            "the relay's budget is spent"
        );
        assert!(b.acquire(Kind::Request, 50, short).await.is_some());
        assert!(
            a.acquire(Kind::Request, 1000, short).await.is_none(),
            "more than a whole budget never comes"
        );
        drop((p1, p2));
        assert_eq!(relay.in_use(), 0);
        assert!(b.acquire(Kind::Request, 200, short).await.is_some());
    }
}

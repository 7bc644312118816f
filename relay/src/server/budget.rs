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

/// What the relay charges for each open stream: quinn's stream state, the
/// task serving it and a subscription's registration. Measured at about
/// 3.4 KiB a stream (tests/tests/relay_attacks.rs); charged at twice that.
pub const STREAM_COST: u32 = 8 * 1024;

/// The relay-wide budget, shared by every connection: `total` bytes for
/// requests and deliveries in flight, and as much again for open streams.
#[derive(Clone, Debug)]
pub struct RelayBudget {
    bytes: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    total: u32,
}

/// One open stream's share of the relay's stream budget; released on drop.
#[derive(Debug)]
pub struct StreamPermit(#[allow(dead_code)] OwnedSemaphorePermit);

impl RelayBudget {
    /// A budget of `total` bytes (and as much again for streams).
    pub fn new(total: u32) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total as usize)),
            streams: Arc::new(Semaphore::new((total / STREAM_COST) as usize)),
            total,
        }
    }

    /// Pays for one more open stream, without waiting: `None` when the
    /// relay already holds as many streams as its budget allows (the stream
    /// is then answered "busy" and closed). Each connection may open at most
    /// [`crate::tls::MAX_STREAMS`]; this bounds all connections together.
    pub fn try_stream(&self) -> Option<StreamPermit> {
        self.streams
            .clone()
            .try_acquire_owned()
            .ok()
            .map(StreamPermit)
    }

    /// Bytes currently held, streams included.
    pub fn in_use(&self) -> u64 {
        let streams = u64::from(self.total / STREAM_COST)
            .saturating_sub(self.streams.available_permits() as u64);
        u64::from(self.total)
            .saturating_sub(self.bytes.available_permits() as u64)
            .saturating_add(streams * u64::from(STREAM_COST))
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
    /// This connection's own budget for `kind`.
    fn pool(&self, kind: Kind) -> &Arc<Semaphore> {
        match kind {
            Kind::Request => &self.requests,
            Kind::Delivery => &self.deliveries,
        }
    }

    /// Takes `bytes` from this connection's budget of that kind and from the
    /// relay's if both have them now, without waiting. Requests use this:
    /// see [`tropa_relay_protocol::REQUESTS_IN_FLIGHT`] for why a request
    /// must never wait for memory.
    pub fn try_acquire(&self, kind: Kind, bytes: usize) -> Option<Permit> {
        let bytes = u32::try_from(bytes.max(1)).ok()?;
        let connection = self.pool(kind).clone().try_acquire_many_owned(bytes).ok()?;
        let relay = self
            .relay
            .bytes
            .clone()
            .try_acquire_many_owned(bytes)
            .ok()?;
        Some(Permit {
            _connection: connection,
            _relay: relay,
        })
    }

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
        let own = self.pool(kind);
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

    #[test]
    fn streams_are_bounded_relay_wide_and_released() {
        let relay = RelayBudget::new(3 * STREAM_COST);
        let held: Vec<_> = (0..3).map(|_| relay.try_stream().unwrap()).collect();
        assert!(
            relay.try_stream().is_none(),
            "three streams fill the budget"
        );
        assert_eq!(relay.in_use(), u64::from(3 * STREAM_COST));
        drop(held);
        assert_eq!(relay.in_use(), 0);
        assert!(relay.try_stream().is_some());
    }
}

//! Aggregate counters (S8): totals only, never per client or per mailbox.
//! Served in Prometheus text format on a loopback-only address if the
//! operator enables it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Relay-wide counters since start.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Mailboxes created.
    pub mailboxes_created: AtomicU64,
    /// Envelopes accepted.
    pub deposits: AtomicU64,
    /// Envelopes delivered (including redeliveries).
    pub deliveries: AtomicU64,
    /// Envelopes acknowledged.
    pub acks: AtomicU64,
    /// Requests answered with an error.
    pub errors: AtomicU64,
    /// Recipient commands with a bad signature or unknown mailbox.
    pub auth_failures: AtomicU64,
    /// Requests refused by the rate limiter.
    pub rate_limited: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition of the counters plus two gauges.
    pub fn render(&self, envelopes: u64, mailboxes: u64) -> String {
        let counters = [
            ("connections", &self.connections),
            ("mailboxes_created", &self.mailboxes_created),
            ("deposits", &self.deposits),
            ("deliveries", &self.deliveries),
            ("acks", &self.acks),
            ("errors", &self.errors),
            ("auth_failures", &self.auth_failures),
            ("rate_limited", &self.rate_limited),
        ];
        let mut out = String::new();
        for (name, c) in counters {
            out.push_str(&format!(
                "# TYPE tropa_relay_{name}_total counter\ntropa_relay_{name}_total {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# TYPE tropa_relay_envelopes gauge\ntropa_relay_envelopes {envelopes}\n\
             # TYPE tropa_relay_mailboxes gauge\ntropa_relay_mailboxes {mailboxes}\n"
        ));
        out
    }
}

//! Aggregate counters (S8): totals only, never per client or per mailbox.
//! Served in Prometheus text format on a loopback-only address if the
//! operator enables it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Relay-wide counters since start.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted (handshake completed), QUIC and TCP together.
    pub connections: AtomicU64,
    /// Of those, connections over TCP + TLS (the TCP profile).
    pub tcp_connections: AtomicU64,
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
    /// Mailbox creations refused by the per-connection or per-address budget.
    pub creations_refused: AtomicU64,
    /// Deposits refused because a mailbox or the relay was full.
    pub quota_refusals: AtomicU64,
    /// Stored envelopes skipped because they no longer decode or open.
    pub corrupt_envelopes: AtomicU64,
    /// Requests or deliveries that waited too long for memory and were refused.
    pub memory_refusals: AtomicU64,
    /// Subscriptions ended because the client did not read a delivery in time.
    pub write_timeouts: AtomicU64,
    /// Durable syncs of the store (group commits).
    pub commits: AtomicU64,
    /// Answers those syncs confirmed (committed / commits = batch size).
    pub committed: AtomicU64,
    /// Links stored or refreshed.
    pub links_stored: AtomicU64,
    /// Links served.
    pub link_fetches: AtomicU64,
    /// Links deleted by their owners.
    pub links_deleted: AtomicU64,
    /// Deposits refused by an intake mailbox's rate limit.
    pub intake_refused: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition of the counters plus the gauges, with
    /// the limits they are measured against (from relay.toml) and the
    /// build. Aggregates only (S8).
    pub fn render(
        &self,
        totals: crate::store::Totals,
        memory_in_use: u64,
        config: &crate::config::Config,
    ) -> String {
        let counters = [
            ("connections", &self.connections),
            ("tcp_connections", &self.tcp_connections),
            ("mailboxes_created", &self.mailboxes_created),
            ("deposits", &self.deposits),
            ("deliveries", &self.deliveries),
            ("acks", &self.acks),
            ("errors", &self.errors),
            ("auth_failures", &self.auth_failures),
            ("rate_limited", &self.rate_limited),
            ("creations_refused", &self.creations_refused),
            ("quota_refusals", &self.quota_refusals),
            ("corrupt_envelopes", &self.corrupt_envelopes),
            ("memory_refusals", &self.memory_refusals),
            ("write_timeouts", &self.write_timeouts),
            ("commits", &self.commits),
            ("committed", &self.committed),
            ("links_stored", &self.links_stored),
            ("link_fetches", &self.link_fetches),
            ("links_deleted", &self.links_deleted),
            ("intake_refused", &self.intake_refused),
        ];
        let mut out = String::new();
        for (name, c) in counters {
            out.push_str(&format!(
                "# TYPE tropa_relay_{name}_total counter\ntropa_relay_{name}_total {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        // The same refusals again, one series by reason, for a dashboard
        // that asks "why are users refused".
        out.push_str("# TYPE tropa_relay_refusals_total counter\n");
        for (reason, c) in [
            ("quota", &self.quota_refusals),
            ("rate_limited", &self.rate_limited),
            ("creation_budget", &self.creations_refused),
            ("memory", &self.memory_refusals),
            ("auth", &self.auth_failures),
            ("intake_rate", &self.intake_refused),
        ] {
            out.push_str(&format!(
                "tropa_relay_refusals_total{{reason=\"{reason}\"}} {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        let envelope_bytes = totals
            .envelopes
            .saturating_mul(tropa_proto::ENVELOPE_SIZE as u64);
        for (name, v) in [
            ("envelopes", totals.envelopes),
            ("open_envelopes", totals.open_envelopes),
            ("envelope_bytes", envelope_bytes),
            ("disk_quota_bytes", config.disk_quota_bytes),
            ("mailboxes", totals.mailboxes),
            ("max_mailboxes", config.max_mailboxes),
            ("links", totals.links),
            ("max_links", config.max_links),
            ("memory_in_use_bytes", memory_in_use),
        ] {
            out.push_str(&format!(
                "# TYPE tropa_relay_{name} gauge\ntropa_relay_{name} {v}\n"
            ));
        }
        out.push_str(&format!(
            "# TYPE tropa_relay_build_info gauge\ntropa_relay_build_info{{version=\"{}\",store_format=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            crate::store::FORMAT_VERSION
        ));
        out
    }
}

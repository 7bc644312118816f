//! Admission arithmetic shared by the service and the shell: token buckets,
//! the key under which an address is counted, and the per-mailbox quota
//! under storage pressure. Pure functions of their inputs and the time
//! passed in; no I/O, no clock of its own.

use std::net::IpAddr;
use std::time::Instant;

/// A token bucket: `rate` tokens per second on average, bursts of `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket refilling `rate` tokens per second.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        Self {
            rate: rate.max(0.0),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// A full bucket refilling `per_hour` tokens an hour.
    pub fn per_hour(per_hour: u32, burst: u32, now: Instant) -> Self {
        Self::new(f64::from(per_hour) / 3600.0, burst, now)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely (it then holds no
    /// information and can be forgotten).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// The key under which a client address is counted: an IPv4 address as it
/// is, an IPv6 address by its /64 prefix (one subscriber usually holds a
/// whole /64, so counting single addresses would let one host multiply
/// itself), and an IPv4-mapped IPv6 address as the IPv4 address.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Connections an address may hold before a connection attempt from it
/// that has not proved it receives at that address gets a QUIC Retry.
pub const UNVALIDATED_PER_ADDRESS: u32 = 4;
/// Unvalidated handshakes in progress, relay-wide, beyond which every new
/// unvalidated attempt gets a Retry.
pub const UNVALIDATED_RELAY_WIDE: usize = 256;

/// Whether a connection attempt must first prove, with a QUIC Retry, that
/// it receives at its address. An address with few connections, on a relay
/// not flooded with handshakes, connects without that extra round trip
/// (it costs a phone about 1.2 KB each time); beyond that, spoofed or
/// unanswered Initials get a Retry and are forgotten, so they can hold at
/// most [`UNVALIDATED_PER_ADDRESS`] of an address's slots, each for the
/// handshake timeout, and never lock an address out.
pub fn must_retry(
    validated: bool,
    address_connections: u32,
    unvalidated_in_progress: usize,
) -> bool {
    !validated
        && (address_connections >= UNVALIDATED_PER_ADDRESS
            || unvalidated_in_progress >= UNVALIDATED_RELAY_WIDE)
}

/// The envelopes one secured mailbox may hold when `used` of the relay's
/// `total` envelope slots are taken by `mailboxes` mailboxes: the full
/// `quota` while the relay is at most half full; beyond that, the second
/// half is shared equally, `total / (2 * mailboxes)` per mailbox, and at
/// least one (the configuration keeps `mailboxes <= total / 2`, so one
/// each still fits).
///
/// Whatever order deposits come in, the relay then holds at most the first
/// half plus one equal share per mailbox: `total`. A flood cannot fill the
/// relay through its own mailboxes, and every mailbox, however many a flood
/// creates, keeps room for its share. Honest mailboxes are drained as their
/// owners read them, so they stay under it; and mailboxes are rate-limited
/// per address, so a flood cannot shrink the share quickly.
pub fn pressure_quota(quota: u32, used: u64, total: u64, mailboxes: u64) -> u32 {
    if used.saturating_mul(2) <= total {
        return quota;
    }
    let share = (total / mailboxes.max(1).saturating_mul(2)).max(1);
    u32::try_from(share).unwrap_or(quota).min(quota)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limiter_refills_over_time() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(2.0, 3, t0);
        assert!((0..3).all(|_| r.try_take(t0)));
        assert!(!r.try_take(t0));
        assert!(r.try_take(t0 + Duration::from_millis(500)));
        assert!(!r.try_take(t0 + Duration::from_millis(500)));
        // Never more than the burst, however long it was idle.
        let later = t0 + Duration::from_secs(3600);
        assert!(r.is_full(later));
        assert!((0..3).all(|_| r.try_take(later)));
        assert!(!r.try_take(later));
        assert!(!r.is_full(later));
        let mut h = RateLimiter::per_hour(60, 1, t0);
        assert!(h.try_take(t0));
        assert!(!h.try_take(t0 + Duration::from_secs(59)));
        assert!(h.try_take(t0 + Duration::from_secs(61)));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(ip_key(v4), v4);
    }

    #[test]
    fn retry_only_when_needed() {
        assert!(!must_retry(false, 0, 0));
        assert!(!must_retry(false, UNVALIDATED_PER_ADDRESS - 1, 0));
        assert!(must_retry(false, UNVALIDATED_PER_ADDRESS, 0));
        assert!(must_retry(false, 0, UNVALIDATED_RELAY_WIDE));
        assert!(!must_retry(true, 1000, 100_000), "validated: never again");
    }

    #[test]
    fn quota_shrinks_only_under_pressure() {
        assert_eq!(pressure_quota(1000, 0, 100, 1), 1000);
        assert_eq!(pressure_quota(1000, 50, 100, 1), 1000);
        assert_eq!(pressure_quota(1000, 51, 100, 1), 50);
        assert_eq!(pressure_quota(1000, 51, 100, 5), 10);
        assert_eq!(pressure_quota(1000, 99, 100, 50), 1);
        assert_eq!(
            pressure_quota(1000, 99, 100, 1_000_000),
            1,
            "never 0: a mailbox keeps room for one"
        );
        assert_eq!(pressure_quota(20, 600, 1000, 2), 20);
    }
}

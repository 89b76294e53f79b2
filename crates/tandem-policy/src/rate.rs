//! Per-client rate limiting: a token bucket per client IP, kept as GCRA.
//!
//! GCRA (the generic cell rate algorithm) is a token bucket stored as one
//! time per client, the "theoretical arrival time" (TAT): the moment the
//! bucket would be full again. With interval T = 1/rate and tolerance
//! τ = (burst − 1)·T, a request at `now` is allowed iff TAT − τ ≤ now, and
//! then TAT = max(TAT, now) + T. Integer `Duration` arithmetic means no
//! float drift, and the TAT is exactly the eviction key we want (below).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::client_key;

/// Slowest rate honoured: one token per ~31.7 years. Lower, zero, negative
/// or NaN rates are raised to it, which keeps "no refill" meaning "burst,
/// then nothing for a very long time" without special cases.
const MIN_PER_SECOND: f64 = 1e-9;

/// Bounded map of client → token bucket.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    /// Time per token, ≥ 1 ns.
    interval: Duration,
    /// IPv6 clients share a bucket per prefix of this length (see [`client_key`]).
    ipv6_prefix: u8,
    /// (burst − 1) × interval: how far ahead of `now` the TAT may run.
    tolerance: Duration,
    max_clients: usize,
    tat: BTreeMap<IpAddr, Duration>,
    /// (TAT, client): eviction order.
    by_tat: BTreeSet<(Duration, IpAddr)>,
}

/// Round up to whole seconds, at least one: what Retry-After can say.
fn retry_after(wait: Duration) -> Duration {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

impl RateLimiter {
    /// `per_second` tokens refill per second (raised to at least 1e-9),
    /// up to `burst` (0 counts as 1: a bucket that can never hold a token
    /// would deny everything). At most `max_clients` buckets are kept (0
    /// counts as 1).
    pub fn new(per_second: f64, burst: u32, max_clients: usize) -> Self {
        let rate = if per_second.is_nan() {
            MIN_PER_SECOND
        } else {
            per_second.max(MIN_PER_SECOND)
        };
        let interval = Duration::try_from_secs_f64(1.0 / rate)
            .unwrap_or(Duration::MAX)
            .max(Duration::from_nanos(1));
        let tolerance = interval
            .checked_mul(burst.max(1) - 1)
            .unwrap_or(Duration::MAX);
        RateLimiter {
            interval,
            ipv6_prefix: 128,
            tolerance,
            max_clients: max_clients.max(1),
            tat: BTreeMap::new(),
            by_tat: BTreeSet::new(),
        }
    }

    /// Key IPv6 clients by a prefix of `bits` (one bucket per /64 with 64).
    pub fn with_ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// Take a token for `client` at `now`. `Err(retry_after)` when the
    /// bucket is empty: the time until a token is available, rounded up to
    /// whole seconds and at least 1 s, ready for a Retry-After header.
    /// IPv4-mapped IPv6 clients share their IPv4 address's bucket.
    ///
    /// A new client may need room: when `max_clients` buckets exist, the
    /// one with the earliest TAT goes (ties: lowest IP). That bucket is the
    /// fullest one — a full bucket (TAT ≤ now) carries no information at
    /// all, and otherwise forgetting it hands its client the fewest free
    /// tokens. This deliberately differs from "least recently seen": a
    /// flood of new addresses evicts idle clients first and cannot refill
    /// its own drained buckets by pushing them out.
    pub fn check(&mut self, client: IpAddr, now: Duration) -> Result<(), Duration> {
        let client = client_key(client, self.ipv6_prefix);
        let old = self.tat.get(&client).copied();
        let tat = old.map_or(now, |t| t.max(now));
        let earliest = tat.saturating_sub(self.tolerance);
        if earliest > now {
            return Err(retry_after(earliest - now));
        }
        match old {
            Some(t) => {
                self.by_tat.remove(&(t, client));
            }
            None => {
                if self.tat.len() >= self.max_clients {
                    self.evict_one();
                }
            }
        }
        let next = tat.saturating_add(self.interval);
        self.tat.insert(client, next);
        self.by_tat.insert((next, client));
        Ok(())
    }

    fn evict_one(&mut self) {
        if let Some((_, ip)) = self.by_tat.pop_first() {
            self.tat.remove(&ip);
        }
    }

    /// Drop every bucket that is full at `now` (forgetting it changes no
    /// decision). Cheap enough to call from a periodic timer; returns how
    /// many went.
    pub fn purge_full(&mut self, now: Duration) -> usize {
        let mut purged = 0;
        while let Some(&(tat, ip)) = self.by_tat.first() {
            if tat > now {
                break;
            }
            self.by_tat.pop_first();
            self.tat.remove(&ip);
            purged += 1;
        }
        purged
    }

    /// Clients with a bucket.
    pub fn len(&self) -> usize {
        self.tat.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tat.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = |ms| retry_after(Duration::from_millis(ms)).as_secs();
        assert_eq!((r(1), r(999), r(1000), r(1001), r(0)), (1, 1, 1, 2, 1));
    }

    #[test]
    fn degenerate_settings_are_usable() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            let mut l = RateLimiter::new(rate, 0, 0);
            let ip: IpAddr = "10.0.0.1".parse().unwrap();
            assert_eq!(l.check(ip, Duration::ZERO), Ok(()));
            assert_eq!(l.len(), 1);
        }
        let mut none = RateLimiter::new(0.0, 1, 1);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        none.check(ip, Duration::ZERO).unwrap();
        assert!(none.check(ip, Duration::from_secs(86_400)).is_err());
    }
}

//! Retry budget (Linkerd/Finagle style): retries may add at most a fixed
//! share to the request load, plus a small floor so low-traffic services
//! can still retry. Unlike a per-request retry count, a budget cannot turn
//! a backend outage into a retry storm that multiplies the load.

use std::time::Duration;

/// The window is split into this many buckets; counts leave the window one
/// bucket at a time, so memory is fixed and expiry is coarse by 1/10 ttl.
const BUCKETS: usize = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which bucket-width period since the origin these counts belong to.
    epoch: u64,
    requests: u64,
    retries: u64,
}

/// Retries allowed in the last `ttl` =
/// `min_per_second × ttl + ratio × (requests in the last ttl)`, minus the
/// retries already spent in the last `ttl`.
///
/// Call `record_request` for original requests only: counting retries as
/// requests would let retries fund further retries.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    ratio: f64,
    /// min_per_second × ttl, precomputed.
    floor: f64,
    /// ttl / BUCKETS, at least 1 ns.
    width: Duration,
    buckets: [Bucket; BUCKETS],
    /// Latest epoch seen: a clock that steps back is treated as standing
    /// still, so stale time can never wipe newer buckets.
    latest: u64,
}

impl RetryBudget {
    /// `ratio` (e.g. 0.2 = retries may add 20 %; NaN or negative = 0),
    /// `min_per_second` retries always allowed, `ttl` the window. Counts
    /// leave the window between ttl × 9/10 and ttl after they happened.
    pub fn new(ratio: f64, min_per_second: u32, ttl: Duration) -> Self {
        let ratio = if ratio.is_nan() { 0.0 } else { ratio.max(0.0) };
        RetryBudget {
            ratio,
            floor: f64::from(min_per_second) * ttl.as_secs_f64(),
            width: (ttl / BUCKETS as u32).max(Duration::from_nanos(1)),
            buckets: [Bucket::default(); BUCKETS],
            latest: 0,
        }
    }

    /// The current bucket, cleared if it still held an older period.
    fn bucket(&mut self, now: Duration) -> &mut Bucket {
        let epoch = u64::try_from(now.as_nanos() / self.width.as_nanos()).unwrap_or(u64::MAX);
        self.latest = self.latest.max(epoch);
        let epoch = self.latest;
        let bucket = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        bucket
    }

    /// Totals (requests, retries) over the window ending at the current epoch.
    fn totals(&self) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|b| self.latest - b.epoch < BUCKETS as u64)
            .fold((0, 0), |(req, ret), b| {
                (
                    req.saturating_add(b.requests),
                    ret.saturating_add(b.retries),
                )
            })
    }

    /// An original (not retried) request was sent.
    pub fn record_request(&mut self, now: Duration) {
        let b = self.bucket(now);
        b.requests = b.requests.saturating_add(1);
    }

    /// Spend one retry if the budget allows it.
    pub fn try_retry(&mut self, now: Duration) -> bool {
        self.bucket(now);
        let (requests, retries) = self.totals();
        let allowed = self.floor + self.ratio * requests as f64;
        // The tolerance keeps 0.2 × 10 requests from rounding below 2.
        if (retries + 1) as f64 > allowed + 1e-9 {
            return false;
        }
        let b = self.bucket(now);
        b.retries = b.retries.saturating_add(1);
        true
    }
}

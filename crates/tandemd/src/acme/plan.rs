//! When to order a certificate: sans-I/O, driven by the caller's clock readings
//! (milliseconds since the UNIX epoch, the clock certificates are dated in), so the
//! decisions are tested with a virtual clock.
//!
//! - No certificate yet: order now.
//! - A certificate: renew at `not_after - renew_before`, or when two thirds of its
//!   lifetime have passed when `renew_before` is not set.
//! - A failed order: retry after a backoff that doubles from [`FIRST_RETRY`] up to
//!   [`MAX_RETRY`], but never later than the renewal point of an expiring certificate
//!   would leave no retry (the backoff is capped at a tenth of the time left).

use std::time::Duration;

pub const FIRST_RETRY: Duration = Duration::from_secs(10);
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

/// The validity of the certificate in force, in ms since the UNIX epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before_ms: u64,
    pub not_after_ms: u64,
}

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Order,
    /// Nothing before this time.
    WaitUntil(u64),
}

/// One certificate's renewal schedule and failure streak.
#[derive(Clone, Debug)]
pub struct Planner {
    renew_before: Option<Duration>,
    /// Consecutive failed orders.
    failures: u32,
    retry_at_ms: Option<u64>,
}

impl Planner {
    pub fn new(renew_before: Option<Duration>) -> Self {
        Planner {
            renew_before,
            failures: 0,
            retry_at_ms: None,
        }
    }

    /// A config change may move the renewal point; the failure streak stays.
    pub fn set_renew_before(&mut self, renew_before: Option<Duration>) {
        self.renew_before = renew_before;
    }

    /// When the certificate should be renewed.
    pub fn renew_at(&self, v: Validity) -> u64 {
        match self.renew_before {
            Some(before) => v.not_after_ms.saturating_sub(ms(before)),
            None => {
                let life = v.not_after_ms.saturating_sub(v.not_before_ms);
                v.not_before_ms + life / 3 * 2
            }
        }
    }

    pub fn decide(&self, now_ms: u64, current: Option<Validity>) -> Decision {
        let due = current.map_or(now_ms, |v| self.renew_at(v));
        let at = match self.retry_at_ms {
            Some(retry) => due.max(retry),
            None => due,
        };
        if now_ms >= at {
            Decision::Order
        } else {
            Decision::WaitUntil(at)
        }
    }

    /// An order failed at `now_ms`; returns when the next may start.
    pub fn failed(&mut self, now_ms: u64, current: Option<Validity>) -> u64 {
        self.failures = self.failures.saturating_add(1);
        let doubling = FIRST_RETRY.saturating_mul(1 << (self.failures - 1).min(20));
        let mut wait = doubling.min(MAX_RETRY);
        if let Some(v) = current {
            // Close to expiry, try more often than the backoff would.
            let left = Duration::from_millis(v.not_after_ms.saturating_sub(now_ms));
            wait = wait.min((left / 10).max(FIRST_RETRY));
        }
        let at = now_ms + ms(wait);
        self.retry_at_ms = Some(at);
        at
    }

    /// An order succeeded (or a certificate arrived from another node).
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at_ms = None;
    }

    /// Consecutive failures so far (0 after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn ninety_days_from(start: u64) -> Validity {
        Validity {
            not_before_ms: start,
            not_after_ms: start + 90 * DAY,
        }
    }

    #[test]
    fn orders_at_once_without_a_certificate() {
        let p = Planner::new(None);
        assert_eq!(p.decide(5, None), Decision::Order);
    }

    #[test]
    fn renews_at_two_thirds_of_the_lifetime_by_default() {
        let p = Planner::new(None);
        let v = ninety_days_from(1_000);
        assert_eq!(p.renew_at(v), 1_000 + 60 * DAY);
        assert_eq!(
            p.decide(1_000 + 59 * DAY, Some(v)),
            Decision::WaitUntil(1_000 + 60 * DAY)
        );
        assert_eq!(p.decide(1_000 + 60 * DAY, Some(v)), Decision::Order);
    }

    #[test]
    fn renew_before_sets_the_point_from_the_end() {
        let p = Planner::new(Some(Duration::from_secs(7 * 86_400)));
        let v = ninety_days_from(0);
        assert_eq!(p.decide(82 * DAY, Some(v)), Decision::WaitUntil(83 * DAY));
        assert_eq!(p.decide(83 * DAY, Some(v)), Decision::Order);
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_cap_and_a_success_resets() {
        let mut p = Planner::new(None);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let at = p.failed(now, None);
            waits.push((at - now) / 1000);
            assert_eq!(p.decide(at - 1, None), Decision::WaitUntil(at));
            assert_eq!(p.decide(at, None), Decision::Order);
            now = at;
        }
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600]
        );
        assert_eq!(p.failures(), 12);
        p.succeeded();
        assert_eq!(p.failures(), 0);
        assert_eq!(p.decide(now, None), Decision::Order);
    }

    #[test]
    fn close_to_expiry_retries_come_sooner_than_the_backoff() {
        let mut p = Planner::new(None);
        let v = ninety_days_from(0);
        // Fail many times late in the lifetime: the wait follows the time left.
        let mut now = 89 * DAY;
        for _ in 0..15 {
            now = p.failed(now, Some(v));
        }
        let left = v.not_after_ms - now;
        let wait = p.failed(now, Some(v)) - now;
        assert!(
            wait <= (left / 10).max(10_000),
            "wait {wait} ms with {left} ms left"
        );
        // A server still down when the certificate expires: retries keep coming.
        let after = v.not_after_ms + 1;
        assert_eq!(p.failed(after, Some(v)) - after, 10_000);
    }
}

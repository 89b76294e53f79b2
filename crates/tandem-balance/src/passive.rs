//! Passive ejection arithmetic: how long an ejection lasts, how many
//! backends may be out at once, and when past ejections are forgotten.
//! The rules themselves are documented on [`PassiveEjection`].

use std::time::Duration;

use crate::backend::Backend;
use crate::settings::PassiveEjection;

/// Added to share × enabled before rounding down, so that float error
/// (0.3 × 10 = 2.9999…) does not cost a whole backend.
const SHARE_EPSILON: f64 = 1e-9;

impl PassiveEjection {
    /// Failures in a row that eject.
    pub(crate) fn threshold(&self) -> u32 {
        self.consecutive_failures.max(1)
    }

    /// The effective cap: never below the base time, so a cap left at ZERO
    /// does not turn ejection off.
    pub(crate) fn cap(&self) -> Duration {
        self.max_eject_for.max(self.eject_for)
    }

    /// Length of the k-th ejection (k ≥ 1): eject_for × k, capped.
    pub(crate) fn duration(&self, k: u32) -> Duration {
        let cap = self.cap();
        self.eject_for
            .checked_mul(k.max(1))
            .map_or(cap, |d| d.min(cap))
    }

    /// How many of `enabled` backends may be ejected at once.
    pub(crate) fn max_ejected(&self, enabled: usize) -> usize {
        let share = if self.max_ejected_share.is_nan() {
            0.0
        } else {
            self.max_ejected_share.clamp(0.0, 1.0)
        };
        // `as` saturates for floats, and the value is within 0..=enabled.
        let allowed = (share * enabled as f64 + SHARE_EPSILON).floor() as usize;
        allowed.min(enabled)
    }
}

impl Backend {
    /// Forget past ejections once the backend has been quiet (neither
    /// ejected nor failing) for the cap. While ejected, "quiet" has not
    /// started yet: `last_trouble` is the end of the ejection.
    pub(crate) fn decay_ejections(&mut self, passive: &PassiveEjection, now: Duration) {
        let quiet = self
            .last_trouble
            .is_some_and(|t| now.checked_sub(t).is_some_and(|q| q >= passive.cap()));
        if self.ejections > 0 && quiet {
            self.ejections = 0;
        }
    }

    /// A failure outside an ejection: restarts the quiet period.
    pub(crate) fn note_failure(&mut self, now: Duration) {
        self.last_trouble = Some(self.last_trouble.map_or(now, |t| t.max(now)));
    }

    /// Take the backend out for its next (growing) ejection.
    pub(crate) fn eject(&mut self, passive: &PassiveEjection, now: Duration) {
        self.ejections = self.ejections.saturating_add(1);
        let until = now
            .checked_add(passive.duration(self.ejections))
            .unwrap_or(Duration::MAX);
        self.ejected_until = Some(until);
        self.last_trouble = Some(until);
        self.consecutive_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passive(eject_for: u64, max_eject_for: u64, share: f64) -> PassiveEjection {
        PassiveEjection {
            consecutive_failures: 1,
            eject_for: Duration::from_secs(eject_for),
            max_eject_for: Duration::from_secs(max_eject_for),
            max_ejected_share: share,
        }
    }

    #[test]
    fn duration_grows_linearly_and_caps() {
        let p = passive(10, 35, 1.0);
        let d: Vec<u64> = (0..6).map(|k| p.duration(k).as_secs()).collect();
        assert_eq!(d, [10, 10, 20, 30, 35, 35]);
        assert_eq!(p.duration(u32::MAX), Duration::from_secs(35));
        // A cap below the base (or forgotten) counts as the base.
        assert_eq!(passive(10, 0, 1.0).duration(3), Duration::from_secs(10));
        let huge = PassiveEjection {
            eject_for: Duration::MAX,
            ..passive(0, 0, 1.0)
        };
        assert_eq!(huge.duration(7), Duration::MAX);
    }

    #[test]
    fn share_rounds_down_with_tolerance() {
        let allowed = |share: f64, n: usize| passive(1, 1, share).max_ejected(n);
        assert_eq!(allowed(0.3, 10), 3);
        assert_eq!(allowed(0.5, 3), 1);
        assert_eq!(allowed(0.1, 5), 0);
        assert_eq!(allowed(0.2, 5), 1);
        assert_eq!(allowed(1.0, 4), 4);
        assert_eq!(allowed(0.0, 4), 0);
        assert_eq!(allowed(f64::NAN, 4), 0);
        assert_eq!(allowed(7.0, 4), 4);
        assert_eq!(allowed(-1.0, 4), 0);
        assert_eq!(allowed(1.0, 0), 0);
    }
}

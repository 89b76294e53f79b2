//! Admin requests refused for what the client sent, by reason: counted for the metrics
//! (`tandem_admin_rejected_total{reason}`) and logged at most once a minute per reason at
//! warn (the others at debug), so a misbehaving script cannot flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// A body over the limit (413), refused by its Content-Length before it is read, or
    /// once the bytes read pass the limit.
    BodyTooLarge,
    /// A body that is not the JSON the endpoint takes (400).
    MalformedJson,
    /// TCP: no bearer token, or a wrong one (401).
    Unauthorized,
}

impl Rejected {
    const ALL: [Rejected; 3] = [
        Rejected::BodyTooLarge,
        Rejected::MalformedJson,
        Rejected::Unauthorized,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            Rejected::BodyTooLarge => "body_too_large",
            Rejected::MalformedJson => "malformed_json",
            Rejected::Unauthorized => "unauthorized",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct AdminRejections {
    origin: Instant,
    counts: [AtomicU64; 3],
    /// Milliseconds since `origin`, plus one, of each reason's last warning (0: never).
    warned_at: [AtomicU64; 3],
}

impl Default for AdminRejections {
    fn default() -> Self {
        AdminRejections {
            origin: Instant::now(),
            counts: Default::default(),
            warned_at: Default::default(),
        }
    }
}

impl AdminRejections {
    /// Counts one refused request and logs it (a warning at most once a minute per reason).
    pub fn refuse(&self, why: Rejected, who: &str, path: &str, detail: &str) {
        let i = why.index();
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let reason = why.reason();
        if self.warn_now(i) {
            tracing::warn!(%who, %path, reason, %detail,
                "admin request refused (warned at most once a minute per reason; see tandem_admin_rejected_total)");
        } else {
            tracing::debug!(%who, %path, reason, %detail, "admin request refused");
        }
    }

    fn warn_now(&self, i: usize) -> bool {
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        let last = self.warned_at[i].load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        due && self.warned_at[i]
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Each reason with its count so far.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        Rejected::ALL
            .iter()
            .map(|r| (r.reason(), self.counts[r.index()].load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_by_reason_and_warn_once_a_minute() {
        let r = AdminRejections::default();
        r.refuse(Rejected::MalformedJson, "tcp x", "/v1/x", "bad");
        r.refuse(Rejected::MalformedJson, "tcp x", "/v1/x", "bad");
        assert!(!r.warn_now(Rejected::MalformedJson.index()));
        assert!(r.warn_now(Rejected::Unauthorized.index()));
        assert_eq!(
            r.counts(),
            vec![
                ("body_too_large", 0),
                ("malformed_json", 2),
                ("unauthorized", 0)
            ]
        );
    }
}

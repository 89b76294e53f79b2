//! Per-backend counters recorded where traffic happens, through the [`BackendLease`]
//! (`crate::pool`): connect failures here (L4), responses, response times and upstream
//! errors in tandem-http. They live with the pool, keyed by backend id, so the L4 and L7
//! planes count into the same place and a reload keeps the counts of surviving backends.
//! tandemd reads them at scrape time.
//!
//! [`BackendLease`]: crate::BackendLease

use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the response-time histogram buckets: 1 ms to 30 s.
pub const RESPONSE_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Status classes of responses, as label values.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why an exchange with a backend failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP connection was refused or failed.
    Connect,
    /// The TCP connection (or the TLS handshake) did not complete within connect_timeout.
    ConnectTimeout,
    /// The TLS handshake with the backend failed.
    Tls,
    /// The backend accepted the request but sent no response head within response_timeout.
    Timeout,
    /// The connection broke or the backend spoke invalid HTTP.
    Protocol,
    /// The backend answered with a 5xx status.
    Status5xx,
    /// The client's streamed body outgrew max_body_bytes while it was being sent here.
    BodyTooLarge,
    /// UDP: the backend's port answered with an ICMP error (nothing listening).
    Unreachable,
}

impl ErrorKind {
    /// Every kind, in declaration order (so `kind as usize` indexes it).
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Connect,
        ErrorKind::ConnectTimeout,
        ErrorKind::Tls,
        ErrorKind::Timeout,
        ErrorKind::Protocol,
        ErrorKind::Status5xx,
        ErrorKind::BodyTooLarge,
        ErrorKind::Unreachable,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Unreachable => "unreachable",
        }
    }
}

/// The counters of one backend. Relaxed atomics: each is an independent tally.
#[derive(Debug)]
pub struct BackendMetrics {
    responses: [AtomicU64; 5],
    errors: [AtomicU64; ErrorKind::ALL.len()],
    ejections: AtomicU64,
    response_seconds: Histogram,
}

impl Default for BackendMetrics {
    fn default() -> Self {
        BackendMetrics {
            responses: Default::default(),
            errors: Default::default(),
            ejections: AtomicU64::new(0),
            response_seconds: Histogram::new(RESPONSE_BUCKETS),
        }
    }
}

impl BackendMetrics {
    /// A response head arrived `elapsed` after the request was sent: counted by status
    /// class and in the histogram; a 5xx also counts as an error of kind `status_5xx`.
    pub fn response(&self, status: u16, elapsed: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.responses[class].fetch_add(1, Relaxed);
        self.response_seconds.observe(elapsed.as_secs_f64());
        if status >= 500 {
            self.error(ErrorKind::Status5xx);
        }
    }

    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn ejected(&self) {
        self.ejections.fetch_add(1, Relaxed);
    }

    /// Responses by status class, in [`STATUS_CLASSES`] order.
    pub fn responses(&self) -> [(&'static str, u64); 5] {
        std::array::from_fn(|i| (STATUS_CLASSES[i], self.responses[i].load(Relaxed)))
    }

    /// Errors by kind, in [`ErrorKind::ALL`] order.
    pub fn errors(&self) -> [(ErrorKind, u64); ErrorKind::ALL.len()] {
        std::array::from_fn(|i| (ErrorKind::ALL[i], self.errors[i].load(Relaxed)))
    }

    /// Passive ejections so far (never decreases, unlike the balancer's backoff count).
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    /// Response times in seconds (a handle on the live histogram).
    pub fn response_seconds(&self) -> &Histogram {
        &self.response_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_count_by_class_and_5xx_is_an_error() {
        let m = BackendMetrics::default();
        for status in [101, 200, 204, 302, 404, 503, 599] {
            m.response(status, Duration::from_millis(3));
        }
        let by_class: Vec<u64> = m.responses().iter().map(|(_, n)| *n).collect();
        assert_eq!(by_class, [1, 2, 1, 1, 2]);
        let errors = m.errors();
        assert_eq!(errors[5], (ErrorKind::Status5xx, 2));
        assert_eq!(errors.iter().map(|(_, n)| n).sum::<u64>(), 2);
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "ALL is in declaration order");
        }
        m.error(ErrorKind::Unreachable);
        assert_eq!(m.errors()[7], (ErrorKind::Unreachable, 1));
    }
}

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one listener. Relaxed atomics: each is an independent tally.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// TCP connections accepted, or UDP flows created.
    pub accepted: AtomicU64,
    /// TCP connections, or UDP flows, open now.
    pub active: AtomicU64,
    /// Refused because `max_connections` was reached (TCP: accepted and closed at once;
    /// UDP: the packet of a new flow dropped).
    pub over_limit: AtomicU64,
    /// Clients turned away because no backend could be reached.
    pub no_backend: AtomicU64,
    /// Failed attempts to connect to a backend (each try counts).
    pub connect_failures: AtomicU64,
    /// Connections closed, or flows forgotten, for idleness.
    pub idle_timeouts: AtomicU64,
    /// Bytes from clients to backends.
    pub bytes_in: AtomicU64,
    /// Bytes from backends to clients.
    pub bytes_out: AtomicU64,
    /// UDP datagrams that could not be relayed (send errors, oversize).
    pub dropped_datagrams: AtomicU64,
}

/// A plain copy of the counters, for status output and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub accepted: u64,
    pub active: u64,
    pub over_limit: u64,
    pub no_backend: u64,
    pub connect_failures: u64,
    pub idle_timeouts: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped_datagrams: u64,
}

impl ListenerStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            over_limit: self.over_limit.load(Relaxed),
            no_backend: self.no_backend.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            idle_timeouts: self.idle_timeouts.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            dropped_datagrams: self.dropped_datagrams.load(Relaxed),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// Holds one unit of `active` for as long as it lives (one connection or flow).
pub(crate) struct ActiveGuard(std::sync::Arc<ListenerStats>);

impl ActiveGuard {
    pub(crate) fn new(stats: std::sync::Arc<ListenerStats>) -> Self {
        stats.active.fetch_add(1, Relaxed);
        stats.accepted.fetch_add(1, Relaxed);
        ActiveGuard(stats)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

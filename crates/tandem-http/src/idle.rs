//! Keep-alive idle tracking per client connection: a connection is idle when no request is
//! in flight; after `keepalive_timeout` of idleness it is closed gracefully.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `origin` when the last request finished (or the connection began).
    idle_since_ms: AtomicU64,
}

/// Marks one request in flight until dropped (with its response body).
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms
            .store(a.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Resolves once the connection has been idle for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let since =
                self.origin + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
            let deadline = since + limit;
            if self.in_flight.load(Ordering::Relaxed) == 0 && Instant::now() >= deadline {
                return;
            }
            // While busy, look again after another period; when idle, wake at the deadline.
            let wake = if self.in_flight.load(Ordering::Relaxed) > 0 {
                Instant::now() + limit
            } else {
                deadline
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

use std::time::Duration;
use tokio::time::Instant;

/// The monotonic clock the pure balancing code is fed from: time since the plane started.
/// Uses tokio's clock so tests with a paused runtime see virtual time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

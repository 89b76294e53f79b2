//! Accept errors on a listener (the descriptor limit, mostly): the listener pauses with a
//! growing delay instead of retrying every few milliseconds, and logs once when it starts
//! failing (with the limit) and once when it accepts again (with how many failed), never
//! once per failure; an episode within a minute of the last logged one (the backlog that
//! piled up refills the table at once) is logged at debug level. HAProxy pauses its
//! listener the same way.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one warning per episode and per this long.
const QUIET_FOR: Duration = Duration::from_secs(60);

/// Whether an episode of `listener` starting at `now` is logged as a warning: not within
/// [`QUIET_FOR`] of the last one. Shared by every accept loop of the listener (an HTTP
/// listener has one per worker, and they all hit the descriptor limit together), so an
/// episode is one warning per listener, not one per worker.
fn warn_now(listener: &str, now: Instant) -> bool {
    static LAST_WARNED: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    let mut last = LAST_WARNED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if last.get(listener).is_some_and(|t| now - *t < QUIET_FOR) {
        return false;
    }
    last.insert(listener.to_string(), now);
    true
}

/// One listener's accept failures in a row (one accept loop's).
#[derive(Debug)]
pub struct AcceptBackoff {
    failing_since: Option<Instant>,
    failures: u64,
    pause: Duration,
    /// Whether the current episode was logged as a warning (see [`warn_now`]).
    loud: bool,
    /// Read when the listener starts: at the limit, reading it would need a descriptor.
    open_files_limit: String,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

impl AcceptBackoff {
    pub fn new() -> Self {
        AcceptBackoff {
            failing_since: None,
            failures: 0,
            pause: FIRST_PAUSE,
            loud: false,
            open_files_limit: open_files_limit(),
        }
    }

    /// An accept failed: how long to pause before the next one.
    pub fn failed(&mut self, listener: &str, error: &std::io::Error) -> Duration {
        self.failures += 1;
        if self.failing_since.is_none() {
            let now = Instant::now();
            self.failing_since = Some(now);
            self.pause = FIRST_PAUSE;
            self.loud = warn_now(listener, now);
            if self.loud {
                tracing::warn!(%listener, %error, open_files_limit = %self.open_files_limit,
                    "accept failed: pausing the listener until accepting works again (logged once)");
            } else {
                tracing::debug!(%listener, %error, "accept failed again: pausing the listener");
            }
        } else {
            self.pause = (self.pause * 2).min(MAX_PAUSE);
        }
        self.pause
    }

    /// An accept succeeded: ends a run of failures, if there was one.
    pub fn succeeded(&mut self, listener: &str) {
        if let Some(since) = self.failing_since.take() {
            if self.loud {
                tracing::warn!(%listener, failed = self.failures, paused_for = ?since.elapsed(),
                    "accepting again after accept failures");
            } else {
                tracing::debug!(%listener, failed = self.failures, paused_for = ?since.elapsed(),
                    "accepting again after accept failures");
            }
            self.failures = 0;
        }
    }
}

/// The process's limit on open descriptors, as /proc/self/limits states it.
fn open_files_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| l.split_whitespace().skip(3).take(1).collect::<String>())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_a_second_and_reset_after_a_success() {
        let mut b = AcceptBackoff::new();
        let e = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..10).map(|_| b.failed("l", &e)).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(*pauses.last().unwrap(), MAX_PAUSE);
        b.succeeded("l");
        assert_eq!(b.failed("l", &e), FIRST_PAUSE);
        assert!(open_files_limit().parse::<u64>().is_ok() || open_files_limit() == "unlimited");
    }

    #[test]
    fn one_warning_per_listener_across_its_accept_loops() {
        let now = Instant::now();
        assert!(warn_now("shared", now), "the first loop warns");
        assert!(
            !warn_now("shared", now),
            "the second worker's loop does not"
        );
        assert!(warn_now("other", now), "another listener does");
        assert!(warn_now("shared", now + QUIET_FOR), "a minute later, again");
    }
}

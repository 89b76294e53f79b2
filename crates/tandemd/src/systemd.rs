//! systemd integration through the notify socket (sd_notify(3)): READY=1 when the node
//! serves, RELOADING=1 and READY=1 around a reload, STOPPING=1 on the way out, STATUS=
//! lines for `systemctl status`, and watchdog pings. Every call is a no-op when
//! `NOTIFY_SOCKET` is unset (not started by systemd, or not `Type=notify`).
//! The units are in systemd/; docs/operations.md, "Running under systemd", explains them.

use sd_notify::NotifyState;
use std::time::Duration;
use tandem_config::Config;

/// Start-up is done: sends READY=1 with `status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// A reload begins: RELOADING=1 with the monotonic time (systemd 253 and later require
/// MONOTONIC_USEC with it). [`ready`] must follow, whatever the reload's outcome.
pub fn reloading(status: &str) {
    let mut states = vec![NotifyState::Reloading];
    match NotifyState::monotonic_usec_now() {
        Ok(now) => states.push(now),
        Err(e) => tracing::debug!(error = %e, "no monotonic clock for MONOTONIC_USEC"),
    }
    let status = one_line(status);
    states.push(NotifyState::Status(&status));
    send(&states);
}

/// The graceful stop begins: STOPPING=1 with `status`.
pub fn stopping(status: &str) {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status(&one_line(status)),
    ]);
}

/// A STATUS= line alone (e.g. why start-up failed).
pub fn status(status: &str) {
    send(&[NotifyState::Status(&one_line(status))]);
}

/// What the node serves, for STATUS=.
pub fn serving_status(config: &Config) -> String {
    let cluster = &config.cluster;
    format!(
        "serving: {} listener(s), {} pool(s), {} backend(s), config version {}",
        cluster.listeners.len(),
        cluster.pools.len(),
        cluster
            .pools
            .iter()
            .map(|p| p.backends.len())
            .sum::<usize>(),
        cluster.version
    )
}

/// Watchdog pings (WATCHDOG=1) every half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
/// advises, when systemd asks for them (`WatchdogSec=`). Polled from the daemon's main
/// loop, so a wedged loop stops the pings and systemd restarts the node.
pub struct Watchdog {
    ticks: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must be this process when set).
    /// Must be called inside a tokio runtime.
    pub fn from_env() -> Watchdog {
        let period = sd_notify::watchdog_enabled().and_then(ping_period);
        if let Some(p) = period {
            tracing::info!(every = ?p, "systemd watchdog enabled");
        }
        let ticks = period.map(|p| {
            let mut ticks = tokio::time::interval(p);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        Watchdog { ticks }
    }

    /// Waits for the next ping time and sends WATCHDOG=1; never returns when the
    /// watchdog is off (for `tokio::select!`).
    pub async fn tick(&mut self) {
        match &mut self.ticks {
            Some(ticks) => {
                ticks.tick().await;
                send(&[NotifyState::Watchdog]);
            }
            None => std::future::pending().await,
        }
    }
}

/// Half the watchdog timeout; None for a zero timeout (systemd's "off").
fn ping_period(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then(|| timeout / 2)
}

/// STATUS= is one line: the first line of `text`, with how many more were left out.
fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    match lines.count() {
        0 => first.to_string(),
        n => format!("{first} (+{n} more line(s) in the log)"),
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_timeout_and_never_for_zero() {
        assert_eq!(
            ping_period(Duration::from_secs(10)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            ping_period(Duration::from_micros(200_000)),
            Some(Duration::from_millis(100))
        );
        assert_eq!(ping_period(Duration::ZERO), None);
    }

    #[test]
    fn status_is_a_single_line() {
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(
            one_line("a.toml: pool[0]: bad\na.toml: pool[1]: bad\n"),
            "a.toml: pool[0]: bad (+1 more line(s) in the log)"
        );
        assert_eq!(one_line(""), "");
    }
}

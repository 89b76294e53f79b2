//! Tracked conditions that move an instance's priority (keepalived's track_script,
//! track_interface and weights). Each tracker is a task; their applied weights are summed
//! and published on a watch channel that the speaker feeds to the state machine.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::netlink::Netlink;

/// Returns true while the condition is failing (e.g. too few healthy backends).
pub type FailingCheck = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
pub enum Probe {
    /// `sh -c command`: exit 0 passes.
    Script {
        command: String,
        interval: Duration,
        timeout: Duration,
        rise: u32,
        fall: u32,
    },
    /// Fails while the interface is down (not up, or no carrier).
    Interface { name: String },
    /// Polled in-process (the forwarding plane's health).
    Condition {
        check: FailingCheck,
        interval: Duration,
    },
}

#[derive(Clone)]
pub struct TrackerSpec {
    pub name: String,
    /// keepalived semantics: a negative weight applies while failing, a positive one while passing.
    pub weight: i32,
    pub probe: Probe,
}

/// Starts the trackers; the receiver holds the current total adjustment.
pub fn start(
    specs: Vec<TrackerSpec>,
    instance: String,
    netlink: Netlink,
    stop: CancellationToken,
) -> watch::Receiver<i32> {
    let (total_tx, total_rx) = watch::channel(0);
    let failing = Arc::new(Mutex::new(vec![false; specs.len()]));
    let weights: Arc<Vec<i32>> = Arc::new(specs.iter().map(|s| s.weight).collect());
    let total_tx = Arc::new(total_tx);
    let publish = {
        let (failing, weights, total_tx) = (failing.clone(), weights.clone(), total_tx.clone());
        move || {
            let f = failing.lock().unwrap_or_else(|p| p.into_inner());
            let total: i32 = weights
                .iter()
                .zip(f.iter())
                .map(|(w, failing)| if (*w < 0) == *failing { *w } else { 0 })
                .sum();
            total_tx.send_replace(total);
        }
    };
    publish();
    for (i, spec) in specs.into_iter().enumerate() {
        let (failing, publish, stop, netlink) = (
            failing.clone(),
            publish.clone(),
            stop.clone(),
            netlink.clone(),
        );
        let instance = instance.clone();
        tokio::spawn(async move {
            let mut set = |now_failing: bool, why: &str| {
                let mut f = failing.lock().unwrap_or_else(|p| p.into_inner());
                if f[i] != now_failing {
                    f[i] = now_failing;
                    drop(f);
                    tracing::info!(instance = %instance, tracker = %spec.name, failing = now_failing,
                        weight = spec.weight, reason = %why, "tracked condition changed");
                    publish();
                }
            };
            run_probe(&spec.probe, &netlink, &stop, &mut set).await;
        });
    }
    total_rx
}

async fn run_probe(
    probe: &Probe,
    netlink: &Netlink,
    stop: &CancellationToken,
    set: &mut impl FnMut(bool, &str),
) {
    match probe {
        Probe::Script {
            command,
            interval,
            timeout,
            rise,
            fall,
        } => {
            let mut ticker = tokio::time::interval(*interval);
            let (mut passes, mut fails, mut failing) = (0u32, 0u32, false);
            loop {
                tokio::select! { _ = stop.cancelled() => return, _ = ticker.tick() => {} }
                let ok = run_script(command, *timeout).await;
                if ok {
                    passes += 1;
                    fails = 0
                } else {
                    fails += 1;
                    passes = 0
                }
                if failing && passes >= *rise {
                    failing = false;
                    set(false, &format!("{command:?} passed {passes} times"));
                } else if !failing && fails >= *fall {
                    failing = true;
                    set(true, &format!("{command:?} failed {fails} times"));
                }
            }
        }
        Probe::Interface { name } => {
            let mut ticker = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! { _ = stop.cancelled() => return, _ = ticker.tick() => {} }
                let up = netlink.link(name).await.map(|l| l.up).unwrap_or(false);
                set(
                    !up,
                    &format!(
                        "interface {name} is {}",
                        if up { "up" } else { "down or missing" }
                    ),
                );
            }
        }
        Probe::Condition { check, interval } => {
            let mut ticker = tokio::time::interval(*interval);
            loop {
                tokio::select! { _ = stop.cancelled() => return, _ = ticker.tick() => {} }
                let failing = check();
                set(
                    failing,
                    if failing {
                        "condition failing"
                    } else {
                        "condition holds"
                    },
                );
            }
        }
    }
}

async fn run_script(command: &str, timeout: Duration) -> bool {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else { return false };
    matches!(tokio::time::timeout(timeout, child.wait()).await, Ok(Ok(s)) if s.success())
}

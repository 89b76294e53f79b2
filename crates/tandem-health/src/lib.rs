//! Active health checks for backend pools.
//!
//! Each backend of a pool with a `[pool.health_check]` gets one task that probes it every
//! `interval`. A [`RiseFall`] filter turns single results into state changes, so a backend
//! changes state only after `rise` consecutive passes or `fall` consecutive failures. Changes
//! go to a [`HealthSink`] (the proxy's pool) and are logged once each, with the reason.

mod probe;
mod rise_fall;

pub use probe::{probe, CheckTls, ProbeSpec};
pub use rise_fall::RiseFall;
pub use tandem_balance::Health;

use std::net::SocketAddr;
use std::sync::Arc;
use tandem_config::{CheckKind, HealthCheck};
use tokio_util::sync::CancellationToken;

/// Receives health changes; implemented by the proxy's pool handle.
pub trait HealthSink: Send + Sync + 'static {
    /// Backend `backend_id` changed to `health` because of `reason`.
    fn health_changed(&self, backend_id: &str, health: Health, reason: &str);
}

/// One backend to check.
#[derive(Clone, Debug)]
pub struct Target {
    pub backend_id: String,
    pub address: SocketAddr,
    /// The state the pool holds now (a check restarted by a reload continues from it).
    pub initial: Health,
}

/// Starts one checking task per target; they stop when `cancel` fires.
pub fn spawn_checks(
    pool_name: &str,
    check: &HealthCheck,
    targets: Vec<Target>,
    sink: Arc<dyn HealthSink>,
    tls: Option<CheckTls>,
    cancel: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    targets
        .into_iter()
        .map(|target| {
            let spec = ProbeSpec::from_config(check, target.address, tls.clone());
            let filter = RiseFall::starting(check.rise, check.fall, target.initial);
            let interval = check.interval.get();
            let pool = pool_name.to_string();
            let sink = sink.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                run_target(pool, target, spec, filter, interval, sink, cancel).await
            })
        })
        .collect()
}

async fn run_target(
    pool: String,
    target: Target,
    spec: ProbeSpec,
    mut filter: RiseFall,
    interval: std::time::Duration,
    sink: Arc<dyn HealthSink>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = probe(&spec) => r,
        };
        let passed = result.is_ok();
        if let Some(health) = filter.observe(passed) {
            let reason = match &result {
                Ok(()) => format!("{} consecutive checks passed", filter.rise()),
                Err(why) => format!("{} consecutive checks failed, last: {why}", filter.fall()),
            };
            match health {
                Health::Up => tracing::info!(pool = %pool, backend = %target.backend_id,
                    address = %target.address, %reason, "backend is up"),
                Health::Down => tracing::warn!(pool = %pool, backend = %target.backend_id,
                    address = %target.address, %reason, "backend is down"),
            }
            sink.health_changed(&target.backend_id, health, &reason);
        } else if let Err(why) = &result {
            tracing::debug!(pool = %pool, backend = %target.backend_id, %why, "health check failed");
        }
    }
}

impl ProbeSpec {
    /// The probe a pool's check config describes, aimed at one backend.
    /// `tls` is used by `kind = "https"` (the pool's upstream TLS settings).
    pub fn from_config(
        check: &HealthCheck,
        backend: SocketAddr,
        tls: Option<CheckTls>,
    ) -> ProbeSpec {
        let address = SocketAddr::new(backend.ip(), check.port.unwrap_or(backend.port()));
        let timeout = check.timeout.get();
        match check.kind {
            CheckKind::Tcp => ProbeSpec::Tcp { address, timeout },
            CheckKind::Http | CheckKind::Https => ProbeSpec::Http {
                address,
                timeout,
                path: check.path.clone(),
                host: check.host.clone().unwrap_or_else(|| address.to_string()),
                expect_status: tandem_config::parse_status_range(&check.expect_status)
                    .unwrap_or((200, 399)),
                expect_body: check.expect_body.clone(),
                tls: if check.kind == CheckKind::Https {
                    tls
                } else {
                    None
                },
            },
        }
    }
}

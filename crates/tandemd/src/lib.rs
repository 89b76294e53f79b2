//! The tandem daemon as a library: start a node from a config, stop it gracefully.
//! `main.rs` is the command line around it; tests drive [`Node`] directly too.

pub mod demo;
mod logging;
pub mod vrrp;

pub use logging::{init_logging, LogFormat};

use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tandem_config::Config;
use tandem_health::{HealthSink, Target};
use tandem_proxy::Plane;
use tokio_util::sync::CancellationToken;

/// A running node: its forwarding plane and the health checks that feed it.
pub struct Node {
    config: Config,
    plane: Plane,
    checks: CancellationToken,
    vrrp: Option<vrrp::Vrrp>,
}

impl Node {
    /// Binds every listener and starts health checks. Fails (naming listener and address)
    /// when a socket cannot be bound.
    /// Starts the node, and its VRRP instances when `[node.vrrp]` is configured.
    pub async fn start_with_vrrp(config: Config) -> anyhow::Result<Node> {
        let mut node = Node::start(config)?;
        node.vrrp = vrrp::Vrrp::start(&node.config, &node.plane).await?;
        Ok(node)
    }

    /// Starts the forwarding plane and health checks only.
    pub fn start(config: Config) -> anyhow::Result<Node> {
        let plane = Plane::start(&config.cluster).context("starting the forwarding plane")?;
        let checks = CancellationToken::new();
        for pool_config in &config.cluster.pools {
            let Some(check) = &pool_config.health_check else {
                continue;
            };
            let pool = plane
                .pool(&pool_config.name)
                .expect("the plane built every configured pool")
                .clone();
            let targets = pool
                .targets()
                .into_iter()
                .map(|(backend_id, address)| Target {
                    backend_id,
                    address,
                })
                .collect();
            let sink: Arc<dyn HealthSink> = pool;
            tandem_health::spawn_checks(&pool_config.name, check, targets, sink, checks.clone());
        }
        tracing::info!(node = %config.node.id, version = config.cluster.version,
            listeners = config.cluster.listeners.len(), pools = config.cluster.pools.len(),
            "node started");
        Ok(Node {
            config,
            plane,
            checks,
            vrrp: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn plane(&self) -> &Plane {
        &self.plane
    }

    pub fn vrrp(&self) -> Option<&vrrp::Vrrp> {
        self.vrrp.as_ref()
    }

    /// Stops accepting at once, lets open connections finish for up to the configured
    /// `node.drain_timeout`, and returns how many were cut at the end.
    pub async fn shutdown(self) -> usize {
        let drain = self.config.node.drain_timeout.get();
        self.shutdown_within(drain).await
    }

    /// VRRP leaves first (the peer takes the VIP at once), then connections drain.
    pub async fn shutdown_within(self, drain: Duration) -> usize {
        if let Some(vrrp) = self.vrrp {
            vrrp.stop().await;
        }
        self.checks.cancel();
        self.plane.shutdown(drain).await
    }
}

/// Runs `node` until SIGTERM or SIGINT, then stops it gracefully. A second signal during
/// the drain stops at once. SIGHUP is logged and ignored until live reload exists.
pub async fn run_until_signal(node: Node) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping gracefully"); break }
            _ = int.recv() => { tracing::info!("SIGINT: stopping gracefully"); break }
            _ = hup.recv() => tracing::warn!(
                "SIGHUP: live config reload is not implemented yet; restart tandemd to apply a new config"),
        }
    }
    let drain = node.config.node.drain_timeout.get();
    tokio::select! {
        cut = node.shutdown_within(drain) => {
            if cut > 0 {
                tracing::warn!(connections = cut, "stopped; connections cut at the drain timeout");
            } else {
                tracing::info!("stopped; every connection finished");
            }
        }
        _ = term.recv() => tracing::warn!("second SIGTERM: stopping now"),
        _ = int.recv() => tracing::warn!("second SIGINT: stopping now"),
    }
    Ok(())
}

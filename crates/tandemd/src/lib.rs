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
    http: tandem_http::HttpPlane,
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
        let http = tandem_http::HttpPlane::start(&config.cluster, plane.pools(), plane.clock())
            .context("starting the HTTP plane")?;
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
            tandem_health::spawn_checks(
                &pool_config.name,
                check,
                targets,
                sink,
                check_tls(pool_config)?,
                checks.clone(),
            );
        }
        tracing::info!(node = %config.node.id, version = config.cluster.version,
            listeners = config.cluster.listeners.len(), pools = config.cluster.pools.len(),
            "node started");
        Ok(Node {
            config,
            plane,
            http,
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

    pub fn http(&self) -> &tandem_http::HttpPlane {
        &self.http
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
        let (l4, l7) = tokio::join!(self.plane.shutdown(drain), self.http.shutdown(drain));
        l4 + l7
    }
}

/// Checks what the config text cannot show: certificate and key files (readable,
/// matching, currently valid) and CA bundles. One message per problem.
pub fn check_files(config: &Config) -> Vec<String> {
    let now = std::time::SystemTime::now();
    let mut problems = Vec::new();
    for (i, l) in config.cluster.listeners.iter().enumerate() {
        let Some(tls) = &l.tls else { continue };
        let specs: Vec<tandem_tls::CertSpec> = tls
            .certificates
            .iter()
            .map(|c| tandem_tls::CertSpec {
                cert: c.cert.clone(),
                key: c.key.clone(),
            })
            .collect();
        for e in tandem_tls::check_certs(&specs, now) {
            problems.push(format!("listener[{i}].tls.certificates: {e}"));
        }
    }
    for (i, pool) in config.cluster.pools.iter().enumerate() {
        if let Err(e) = check_tls(pool) {
            problems.push(format!("pool[{i}].http.tls: {e:#}"));
        }
    }
    problems
}

/// TLS for a pool's `kind = "https"` checks, from its `[pool.http.tls]`.
fn check_tls(pool: &tandem_config::Pool) -> anyhow::Result<Option<tandem_health::CheckTls>> {
    let Some(tls) = pool.http.as_ref().and_then(|h| h.tls.as_ref()) else {
        return Ok(None);
    };
    let spec = tandem_tls::ClientTlsSpec {
        ca: tls.ca.clone(),
        verify: tls.verify,
        alpn: vec![b"http/1.1".to_vec()],
        client_cert: None,
    };
    let config = tandem_tls::client_config(&spec)
        .with_context(|| format!("pool {:?}: TLS settings for its backends", pool.name))?;
    let server_name = match &tls.server_name {
        Some(name) => Some(
            tandem_tls::server_name(name)
                .with_context(|| format!("pool {:?}: server_name", pool.name))?,
        ),
        None => None,
    };
    Ok(Some(tandem_health::CheckTls {
        config,
        server_name,
    }))
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

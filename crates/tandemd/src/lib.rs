//! The tandem daemon as a library: start a node from a config, stop it gracefully.
//! `main.rs` is the command line around it; tests drive [`Node`] directly too.

pub mod acme;
pub mod admin;
pub mod cluster;
pub mod demo;
pub mod dns;
mod logging;
pub mod metrics;
mod node;
pub mod observe;
mod sticky_sync;
pub mod systemd;
pub mod vrrp;

pub use logging::{init_logging, LogFormat};
pub use node::{ApplyError, ApplyReport, BackendChange, Node};

use anyhow::Context;
use std::sync::Arc;
use tandem_config::Config;

/// The config a witness runs: its `[node]` with the role set, and no forwarding or VIP
/// (a cluster part in the file is ignored: the witness applies no config to planes).
pub fn witness_config(mut config: Config) -> Result<Config, String> {
    let Some(cluster) = config.node.cluster.as_mut() else {
        return Err("a witness needs [node.cluster] (raft_id, listen, cert_dir)".into());
    };
    cluster.role = tandem_config::cluster::Role::Witness;
    config.node.vrrp = None;
    config.cluster = tandem_config::ClusterConfig {
        version: config.cluster.version,
        listeners: Vec::new(),
        pools: Vec::new(),
        vip_groups: Vec::new(),
    };
    Ok(config)
}

/// Checks what the config text cannot show: certificate and key files (readable,
/// matching, currently valid) and CA bundles. One message per problem.
pub fn check_files(config: &Config) -> Vec<String> {
    let now = std::time::SystemTime::now();
    let mut problems = Vec::new();
    if let Some(cluster) = &config.node.cluster {
        if let Err(e) = cluster::lease_timing(&cluster.lease) {
            problems.push(e);
        }
        if let Err(e) =
            tandem_cluster::transport::ClusterTls::from_dir(&cluster.cert_dir, &config.node.id)
        {
            problems.push(format!(
                "node.cluster.cert_dir: {e} (create the files with `tandemctl cluster init`)"
            ));
        }
    }
    if let Some(tls) = config.node.status.as_ref().and_then(|s| s.tls.as_ref()) {
        let spec = tandem_tls::CertSpec::new(&tls.cert, &tls.key);
        for e in tandem_tls::check_certs(&[spec], now) {
            problems.push(format!("node.status.tls: {e}"));
        }
    }
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
        let Some(acme) = &tls.acme else { continue };
        if acme.ca.is_some() {
            let spec = tandem_tls::ClientTlsSpec {
                ca: acme.ca.clone(),
                verify: true,
                alpn: Vec::new(),
                client_cert: None,
            };
            if let Err(e) = tandem_tls::client_config(&spec) {
                problems.push(format!("listener[{i}].tls.acme.ca: {e}"));
            }
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
pub(crate) fn check_tls(
    pool: &tandem_config::Pool,
) -> anyhow::Result<Option<tandem_health::CheckTls>> {
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
/// the drain stops at once. SIGHUP reloads the config file (like `tandemctl reload`).
///
/// The caller has the node's listeners bound and its admin API serving: once the signal
/// handlers are in place this tells systemd READY=1, then pings its watchdog from this
/// loop (and through the drain) when asked to.
pub async fn run_until_signal(node: Arc<Node>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut watchdog = systemd::Watchdog::from_env();
    // A cluster member got here after `Cluster::start` waited (bounded) for its leader, so
    // `systemctl start` returning means "serving and joined"; STATUS= says which.
    let mut status = systemd::serving_status(&node.config());
    if let Some(cluster) = node.cluster() {
        status = format!("{status}; {}", cluster.summary());
    }
    systemd::ready(&status);
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping gracefully"); break }
            _ = int.recv() => { tracing::info!("SIGINT: stopping gracefully"); break }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config from disk");
                match node.reload_from_disk("SIGHUP").await {
                    Ok(report) => tracing::info!(%report, "reload done"),
                    Err(e) => tracing::error!(error = %e, "reload refused; the running config stays"),
                }
            }
            _ = watchdog.tick() => {}
        }
    }
    let drain = node.config().node.drain_timeout.get();
    systemd::stopping(&format!(
        "stopping: VRRP leaves, open connections drain for up to {drain:?}"
    ));
    let shutdown = node.shutdown_within(drain);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            cut = &mut shutdown => {
                if cut > 0 {
                    tracing::warn!(connections = cut, "stopped; connections cut at the drain timeout");
                } else {
                    tracing::info!("stopped; every connection finished");
                }
                break;
            }
            _ = term.recv() => { tracing::warn!("second SIGTERM: stopping now"); break }
            _ = int.recv() => { tracing::warn!("second SIGINT: stopping now"); break }
            _ = watchdog.tick() => {}
        }
    }
    Ok(())
}

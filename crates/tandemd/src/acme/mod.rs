//! ACME certificates for HTTPS listeners with `[listener.tls.acme]`, obtained once for the
//! whole cluster and replicated to every node.
//!
//! Every forwarding node runs [`run`]: it follows the replicated state, publishing the
//! challenge answers on its L7 plane and swapping the issued certificates into its HTTPS
//! listeners. The Raft leader also orders: when [`plan::Planner`] says a certificate is
//! due (none yet, or renewal time), it runs the ACME order ([`order`]), with the HTTP-01
//! answers and then the certificate and key going through the log. A node that stops
//! leading aborts its order; the new leader starts one afresh (the ACME account, in the
//! replicated state, is reused). A failed order is retried with backoff and logged once
//! per failure streak; the certificate in force keeps serving.

mod order;
pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_cluster::state::acme::{AcmeCertificate, AcmeCommand};
use tandem_cluster::state::Command;
use tandem_config::acme::Acme;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::node::Node;
use plan::{Decision, Planner, Validity};

/// How often the loop looks again when nothing changed (a due renewal, a retry).
const TICK: Duration = Duration::from_secs(1);

/// What status and metrics show about one ACME certificate, on this node.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CertStatus {
    /// Expiry of the certificate this node serves (seconds since the UNIX epoch).
    pub not_after_secs: Option<u64>,
    /// Orders that failed on this node (as leader) since it started.
    pub failed_orders: u64,
    /// Consecutive failures of the current streak, and the last error.
    pub failing: u32,
    pub last_error: Option<String>,
}

/// Per-certificate status, shared with the metrics and the admin API.
#[derive(Default)]
pub struct AcmeTracker {
    certs: Mutex<BTreeMap<String, CertStatus>>,
}

impl AcmeTracker {
    pub fn snapshot(&self) -> BTreeMap<String, CertStatus> {
        self.certs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut CertStatus)) {
        let mut certs = self.certs.lock().unwrap_or_else(|e| e.into_inner());
        f(certs.entry(name.to_string()).or_default());
    }
}

/// The ACME sections of a config, one per certificate name.
pub fn wanted(config: &tandem_config::ClusterConfig) -> BTreeMap<String, Acme> {
    config
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref()?.acme.clone())
        .map(|a| (a.name(), a))
        .collect()
}

pub fn wall_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Running {
    task: JoinHandle<Result<(), String>>,
}

pub async fn run(cluster: Arc<Cluster>, node: Weak<Node>, stop: CancellationToken) {
    let mut applied = cluster.node.applied();
    let mut planners: HashMap<String, Planner> = HashMap::new();
    let mut orders: HashMap<String, Running> = HashMap::new();
    let mut challenges: Option<BTreeMap<String, String>> = None;
    let mut installed: HashMap<String, AcmeCertificate> = HashMap::new();
    loop {
        let Some(node) = node.upgrade() else { return };
        let acme = applied.borrow_and_update().state.acme().clone();
        if challenges.as_ref() != Some(&acme.challenges) {
            node.http()
                .set_acme_challenges(acme.challenges.clone().into_iter().collect());
            challenges = Some(acme.challenges.clone());
        }
        for (name, cert) in &acme.certificates {
            if installed.get(name) != Some(cert) {
                install(&node, &cluster.acme, name, cert);
                installed.insert(name.clone(), cert.clone());
                if let Some(p) = planners.get_mut(name) {
                    p.succeeded();
                }
            }
        }
        let leading = cluster.node.metrics().current_leader == Some(cluster.node.id());
        let wanted = wanted(&node.config().cluster);
        // Orders finished since the last look.
        let done: Vec<String> = orders
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in done {
            let Some(r) = orders.remove(&name) else {
                continue;
            };
            let result = r
                .task
                .await
                .unwrap_or_else(|e| Err(format!("the order task failed: {e}")));
            let planner = planners
                .entry(name.clone())
                .or_insert_with(|| Planner::new(None));
            let current = acme.certificates.get(&name).map(validity);
            match result {
                Ok(()) => {
                    planner.succeeded();
                    cluster.acme.update(&name, |s| {
                        s.failing = 0;
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    let first = planner.failures() == 0;
                    let retry_at = planner.failed(wall_ms(SystemTime::now()), current);
                    let retry_in =
                        Duration::from_millis(retry_at.saturating_sub(wall_ms(SystemTime::now())));
                    if first {
                        tracing::error!(certificate = %name, error = %e, ?retry_in,
                            "ACME order failed; the certificate in force keeps serving, retrying with backoff (further failures of this streak are logged at debug)");
                    } else {
                        tracing::debug!(certificate = %name, error = %e, ?retry_in, "ACME order failed again");
                    }
                    cluster.acme.update(&name, |s| {
                        s.failed_orders += 1;
                        s.failing = planner.failures();
                        s.last_error = Some(e.clone());
                    });
                }
            }
        }
        if !leading {
            for (name, r) in orders.drain() {
                tracing::info!(certificate = %name, "no longer the Raft leader: ACME order abandoned (the new leader orders)");
                r.task.abort();
            }
        } else {
            // Answers left by a leader that died mid-order: only the leader's orders
            // publish answers, and none runs here.
            if orders.is_empty() && !acme.challenges.is_empty() {
                let tokens: Vec<String> = acme.challenges.keys().cloned().collect();
                let clear = Command::Acme(AcmeCommand::ClearChallenges { tokens });
                if let Err(e) = cluster.write(clear).await {
                    tracing::debug!(error = %e, "stale ACME challenge answers not withdrawn yet");
                }
            }
            let now = wall_ms(SystemTime::now());
            for (name, spec) in &wanted {
                if orders.contains_key(name) {
                    continue;
                }
                let renew_before = spec.renew_before.map(|d| d.get());
                let planner = planners
                    .entry(name.clone())
                    .or_insert_with(|| Planner::new(renew_before));
                planner.set_renew_before(renew_before);
                let current = acme.certificates.get(name).map(validity);
                if planner.decide(now, current) != Decision::Order {
                    continue;
                }
                tracing::info!(certificate = %name, directory = %spec.directory,
                    renewal = current.is_some(), "ACME: ordering a certificate");
                let task = tokio::spawn(order::obtain(
                    cluster.clone(),
                    name.clone(),
                    spec.clone(),
                    acme.accounts.get(&spec.directory).cloned(),
                ));
                orders.insert(name.clone(), Running { task });
            }
        }
        drop(node);
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.cancelled() => {
                for (_, r) in orders.drain() { r.task.abort(); }
                return;
            }
        }
    }
}

fn validity(c: &AcmeCertificate) -> Validity {
    Validity {
        not_before_ms: c.not_before_ms,
        not_after_ms: c.not_after_ms,
    }
}

fn install(node: &Node, tracker: &AcmeTracker, name: &str, cert: &AcmeCertificate) {
    let label = format!("acme certificate {name}");
    match tandem_tls::cert_from_pem(
        &label,
        cert.chain_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        SystemTime::now(),
    ) {
        Ok(loaded) => {
            let listeners = node.http().install_acme_certificate(name, loaded);
            tracing::info!(certificate = %name, ?listeners, not_after_ms = cert.not_after_ms,
                "ACME certificate in force on this node");
            tracker.update(name, |s| s.not_after_secs = Some(cert.not_after_ms / 1000));
        }
        Err(e) => tracing::error!(certificate = %name, error = %e,
            "replicated ACME certificate refused on this node; the one in force stays"),
    }
}

//! ACME certificates for HTTPS listeners with `[listener.tls.acme]`: in a cluster obtained
//! once and replicated to every node, on a node without `[node.cluster]` obtained by the
//! node itself and kept in a local store.
//!
//! Every forwarding node runs [`run`]: it follows the ACME state ([`store::Follow`]),
//! publishing the challenge answers on its L7 plane and swapping the issued certificates
//! into its HTTPS listeners. The node that orders (the Raft leader, or the single node)
//! runs the ACME order ([`order`]) when [`plan::Planner`] says a certificate is due (none
//! yet, or renewal time), the HTTP-01 answers and then the certificate and key going to
//! the [`store::StateStore`]. In a cluster a node that stops leading aborts its order; the
//! new leader starts one afresh (the ACME account, in the replicated state, is reused). A
//! failed order is retried with backoff and logged once per failure streak; the
//! certificate in force keeps serving.

mod local;
mod order;
pub mod plan;
mod store;

pub use local::LocalStore;
pub use store::StateStore;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_cluster::state::acme::{AcmeCertificate, AcmeCommand};
use tandem_config::acme::Acme;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use plan::{Decision, Planner, Validity};

/// How often the loop looks again when nothing changed (a due renewal, a retry).
const TICK: Duration = Duration::from_secs(1);

/// What status and metrics show about one ACME certificate, on this node. Times are
/// seconds since the UNIX epoch.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CertStatus {
    /// Expiry of the certificate this node serves.
    pub not_after_secs: Option<u64>,
    /// When it is due for renewal (two thirds of its lifetime, or `renew_before`).
    pub renew_at_secs: Option<u64>,
    /// An order runs on this node now.
    pub ordering: bool,
    /// When the last order started on this node.
    pub last_order_secs: Option<u64>,
    /// Orders that failed on this node since it started.
    pub failed_orders: u64,
    /// Consecutive failures of the current streak, the last error and the next try.
    pub failing: u32,
    pub last_error: Option<String>,
    pub retry_at_secs: Option<u64>,
}

impl CertStatus {
    /// ordering | failed | valid | expired | waiting (no certificate yet, no order here).
    pub fn state(&self, now: SystemTime) -> &'static str {
        let now = wall_ms(now) / 1000;
        if self.ordering {
            "ordering"
        } else if self.failing > 0 {
            "failed"
        } else {
            match self.not_after_secs {
                Some(at) if at > now => "valid",
                Some(_) => "expired",
                None => "waiting",
            }
        }
    }
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

    /// Forgets certificates the config no longer asks for.
    fn retain(&self, wanted: &BTreeMap<String, Acme>) {
        let mut certs = self.certs.lock().unwrap_or_else(|e| e.into_inner());
        certs.retain(|name, _| wanted.contains_key(name));
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

/// The ACME loop of a node without `[node.cluster]`: its state in `<data_dir>/acme/`.
pub fn spawn_local(node: &Arc<Node>, stop: CancellationToken) {
    let dir = node.config().node.data_dir.join("acme");
    let store = StateStore::Local(Arc::new(LocalStore::open(dir)), Arc::downgrade(node));
    tokio::spawn(run(store, node.acme(), Arc::downgrade(node), stop));
}

pub async fn run(
    store: StateStore,
    tracker: Arc<AcmeTracker>,
    node: Weak<Node>,
    stop: CancellationToken,
) {
    let mut follow = store.follow();
    let mut planners: HashMap<String, Planner> = HashMap::new();
    let mut orders: HashMap<String, Running> = HashMap::new();
    let mut challenges: Option<BTreeMap<String, String>> = None;
    let mut installed: HashMap<String, AcmeCertificate> = HashMap::new();
    loop {
        let Some(node) = node.upgrade() else { return };
        let acme = follow.current();
        if challenges.as_ref() != Some(&acme.challenges) {
            node.http()
                .set_acme_challenges(acme.challenges.clone().into_iter().collect());
            challenges = Some(acme.challenges.clone());
        }
        for (name, cert) in &acme.certificates {
            if installed.get(name) != Some(cert) {
                install(&node, &tracker, name, cert);
                installed.insert(name.clone(), cert.clone());
                if let Some(p) = planners.get_mut(name) {
                    p.succeeded();
                }
            }
        }
        let leading = store.orders_here();
        let wanted = wanted(&node.config().cluster);
        tracker.retain(&wanted);
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
                    tracker.update(&name, |s| {
                        s.ordering = false;
                        s.failing = 0;
                        s.last_error = None;
                        s.retry_at_secs = None;
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
                    tracker.update(&name, |s| {
                        s.ordering = false;
                        s.failed_orders += 1;
                        s.failing = planner.failures();
                        s.last_error = Some(e.clone());
                        s.retry_at_secs = Some(retry_at / 1000);
                    });
                }
            }
        }
        // When each certificate in force is due, as this node's planner sees it.
        for (name, spec) in &wanted {
            let renew_before = spec.renew_before.map(|d| d.get());
            let planner = planners
                .entry(name.clone())
                .or_insert_with(|| Planner::new(renew_before));
            planner.set_renew_before(renew_before);
            let renew_at = acme
                .certificates
                .get(name)
                .map(|c| planner.renew_at(validity(c)) / 1000);
            tracker.update(name, |s| s.renew_at_secs = renew_at);
        }
        if !leading {
            for (name, r) in orders.drain() {
                tracing::info!(certificate = %name, "no longer the Raft leader: ACME order abandoned (the new leader orders)");
                r.task.abort();
                tracker.update(&name, |s| s.ordering = false);
            }
        } else {
            // Answers left by a leader that died mid-order: only the leader's orders
            // publish answers, and none runs here.
            if orders.is_empty() && !acme.challenges.is_empty() {
                let tokens: Vec<String> = acme.challenges.keys().cloned().collect();
                if let Err(e) = store.write(AcmeCommand::ClearChallenges { tokens }).await {
                    tracing::debug!(error = %e, "stale ACME challenge answers not withdrawn yet");
                }
            }
            let now = wall_ms(SystemTime::now());
            for (name, spec) in &wanted {
                if orders.contains_key(name) {
                    continue;
                }
                let Some(planner) = planners.get(name) else {
                    continue;
                };
                let current = acme.certificates.get(name).map(validity);
                if planner.decide(now, current) != Decision::Order {
                    continue;
                }
                tracing::info!(certificate = %name, directory = %spec.directory,
                    renewal = current.is_some(), "ACME: ordering a certificate");
                tracker.update(name, |s| {
                    s.ordering = true;
                    s.last_order_secs = Some(now / 1000);
                });
                let task = tokio::spawn(order::obtain(
                    store.clone(),
                    name.clone(),
                    spec.clone(),
                    acme.accounts.get(&spec.directory).cloned(),
                ));
                orders.insert(name.clone(), Running { task });
            }
        }
        drop(node);
        tokio::select! {
            changed = follow.changed() => if !changed { return },
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

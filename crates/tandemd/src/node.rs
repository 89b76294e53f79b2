//! A running node: the L4 and L7 planes over shared pools, the health checks that feed
//! them, and VRRP. Every change — a reload from disk, an admin API write — is a new
//! cluster config applied with [`Node::apply`]: validated first (the same messages as
//! `check-config`), then applied without dropping connections.

use anyhow::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tandem_config::{Backend, BackendState, ClusterConfig, Config, HealthCheck};
use tandem_health::{HealthSink, Target};
use tandem_proxy::Plane;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::vrrp::Vrrp;

pub struct Node {
    config: Mutex<Config>,
    /// Where `reload_from_disk` reads (None for the demo and in-process tests).
    config_path: Mutex<Option<PathBuf>>,
    plane: Plane,
    http: tandem_http::HttpPlane,
    /// Running health checks per pool, with what they were started for.
    checks: Mutex<HashMap<String, (CheckKey, CancellationToken)>>,
    vrrp: tokio::sync::Mutex<Option<Vrrp>>,
    /// Cluster membership, with `[node.cluster]`.
    cluster: std::sync::OnceLock<Arc<Cluster>>,
    started: Instant,
    /// One change at a time.
    applying: tokio::sync::Mutex<()>,
    /// Admin requests refused for what the client sent (`tandem_admin_rejected_total`).
    admin_rejections: crate::admin::AdminRejections,
    /// Backends written as DNS names: their addresses, and the loop that keeps them fresh.
    dns: Arc<crate::dns::Dns>,
    dns_loop: CancellationToken,
    /// ACME certificates' status on this node, and the stop of a single node's ACME loop.
    acme: Arc<crate::acme::AcmeTracker>,
    acme_stop: CancellationToken,
}

/// What a pool's checks depend on: restart them only when this changes.
type CheckKey = (
    HealthCheck,
    Vec<(String, std::net::SocketAddr)>,
    Option<tandem_config::http::UpstreamTls>,
);

/// A refused change: the problems, as check-config would print them.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The cluster cannot take the change now (no leader reachable); try again later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl From<crate::cluster::ApiRefusal> for ApplyError {
    fn from(refusal: crate::cluster::ApiRefusal) -> Self {
        use crate::cluster::ApiRefusal;
        match refusal {
            ApiRefusal::Invalid(m) => ApplyError::Invalid(m),
            ApiRefusal::Unavailable(m) => ApplyError::Unavailable(m),
            ApiRefusal::Failed(m) => ApplyError::Failed(anyhow::anyhow!(m)),
        }
    }
}

/// What a change did, for logs and the admin API.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ApplyReport {
    pub version: u64,
    pub listeners_added: Vec<String>,
    pub listeners_removed: Vec<String>,
    pub pools_added: Vec<String>,
    pub pools_removed: Vec<String>,
    pub pools_updated: Vec<String>,
    pub checks_restarted: Vec<String>,
    pub warnings: Vec<String>,
}

impl std::fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "version {}: listeners +{:?} -{:?}, pools +{:?} -{:?} ~{:?}",
            self.version,
            self.listeners_added,
            self.listeners_removed,
            self.pools_added,
            self.pools_removed,
            self.pools_updated
        )?;
        for w in &self.warnings {
            write!(f, "; warning: {w}")?;
        }
        Ok(())
    }
}

/// A runtime change to one backend.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendChange {
    State(BackendState),
    Weight(u32),
    Add(Backend),
    Remove,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Node {
    /// Starts the node: planes, then the cluster member when `[node.cluster]` is set
    /// (waiting, bounded, until it hears a leader), then VRRP fenced by the lease.
    pub async fn start_with_vrrp(config: Config) -> anyhow::Result<Arc<Node>> {
        // Names first: one that does not resolve stops the start (unless
        // node.dns.start_unresolved), before any socket is bound.
        let dns = crate::dns::Dns::new(&config.node.dns).context("setting up the DNS resolver")?;
        dns.resolve_new(&config.cluster)
            .await
            .map_err(|problems| anyhow::anyhow!("backend names do not resolve:\n{problems}"))?;
        let node = Node::start_with_dns(config.clone(), dns)?;
        if let Some(settings) = &config.node.cluster {
            let cluster = Arc::new(Cluster::start(&config.node, settings).await?);
            let _ = node.cluster.set(cluster.clone());
            cluster.seed_config(&config).await;
            cluster.spawn_followers(&node, settings.sticky_batch.get());
        } else {
            crate::acme::spawn_local(&node, node.acme_stop.clone());
        }
        let vrrp = Vrrp::start(&node.config(), &node.plane, node.cluster()).await?;
        *node.vrrp.lock().await = vrrp;
        Ok(node)
    }

    /// Admin requests refused so far, by reason.
    pub fn admin_rejections(&self) -> &crate::admin::AdminRejections {
        &self.admin_rejections
    }

    /// ACME certificates' status on this node.
    pub fn acme(&self) -> Arc<crate::acme::AcmeTracker> {
        self.acme.clone()
    }

    /// The cluster membership, when `[node.cluster]` is configured.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.get().map(|c| &**c)
    }

    /// Starts the forwarding planes and health checks (no VRRP). Fails, naming the
    /// listener and address, when a socket cannot be bound. Backends written as DNS names
    /// join their pools once the background loop has resolved them (moments later);
    /// [`start_with_vrrp`](Self::start_with_vrrp) resolves them before starting.
    pub fn start(config: Config) -> anyhow::Result<Arc<Node>> {
        let dns = crate::dns::Dns::new(&config.node.dns).context("setting up the DNS resolver")?;
        Node::start_with_dns(config, dns)
    }

    fn start_with_dns(config: Config, dns: crate::dns::Dns) -> anyhow::Result<Arc<Node>> {
        dns.track(&config.cluster);
        let running = dns.expand(&config.cluster);
        let plane = Plane::start(&running).context("starting the forwarding plane")?;
        let http = tandem_http::HttpPlane::start(&running, &plane.pools(), plane.clock())
            .context("starting the HTTP plane")?;
        let node = Node {
            config: Mutex::new(config.clone()),
            config_path: Mutex::new(None),
            plane,
            http,
            checks: Mutex::new(HashMap::new()),
            vrrp: tokio::sync::Mutex::new(None),
            cluster: std::sync::OnceLock::new(),
            started: Instant::now(),
            applying: tokio::sync::Mutex::new(()),
            admin_rejections: Default::default(),
            dns: Arc::new(dns),
            dns_loop: CancellationToken::new(),
            acme: Arc::default(),
            acme_stop: CancellationToken::new(),
        };
        node.sync_checks(&running)?;
        tracing::info!(node = %config.node.id, version = config.cluster.version,
            listeners = config.cluster.listeners.len(), pools = config.cluster.pools.len(),
            "node started");
        let node = Arc::new(node);
        tokio::spawn(crate::dns::run(
            node.dns.clone(),
            Arc::downgrade(&node),
            node.dns_loop.clone(),
        ));
        Ok(node)
    }

    /// Moves the planes to the current addresses of the backend names (called by the DNS
    /// loop when they changed): the same apply as a config change, without a new version.
    pub(crate) async fn refresh_names(&self) {
        let _one_at_a_time = self.applying.lock().await;
        let running = self.dns.expand(&self.config().cluster);
        let outcome = self
            .plane
            .apply(&running)
            .map_err(anyhow::Error::from)
            .and_then(|l4| {
                self.http
                    .apply(&running, &self.plane.pools())
                    .map_err(anyhow::Error::from)?;
                self.sync_checks(&running)?;
                Ok(l4.pools_updated)
            });
        match outcome {
            Ok(pools) => tracing::info!(?pools, "pools follow their backend names' new addresses"),
            Err(e) => tracing::error!(error = %format!("{e:#}"),
                "applying new addresses of backend names failed"),
        }
    }

    /// Remembers the file `reload_from_disk` (SIGHUP, `tandemctl reload`) reads.
    pub fn set_config_path(&self, path: PathBuf) {
        *lock(&self.config_path) = Some(path);
    }

    /// The config the node runs now, runtime changes included.
    pub fn config(&self) -> Config {
        lock(&self.config).clone()
    }

    pub fn plane(&self) -> &Plane {
        &self.plane
    }

    pub fn http(&self) -> &tandem_http::HttpPlane {
        &self.http
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Status of the VRRP instances (empty without VRRP).
    pub async fn vrrp_status(&self) -> Vec<tandem_vrrp::io::InstanceStatus> {
        match self.vrrp.lock().await.as_ref() {
            Some(v) => v
                .instances
                .iter()
                .map(|i| i.status.borrow().clone())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Each VRRP instance's status, family label (dual-stack groups only: "ipv4" or
    /// "ipv6") and counters.
    pub async fn vrrp_stats(
        &self,
    ) -> Vec<(
        tandem_vrrp::io::InstanceStatus,
        Option<&'static str>,
        Arc<tandem_vrrp::io::VrrpStats>,
    )> {
        match self.vrrp.lock().await.as_ref() {
            Some(v) => v
                .instances
                .iter()
                .zip(&v.families)
                .map(|(i, family)| (i.status.borrow().clone(), *family, i.stats.clone()))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Applies a new cluster-wide config. It is validated first (nothing changes when it
    /// is refused); then pools and listeners move to it without dropping connections, and
    /// health checks restart where their pool's checks or backends changed. `who` is
    /// logged.
    pub async fn apply(
        &self,
        cluster: ClusterConfig,
        who: &str,
    ) -> Result<ApplyReport, ApplyError> {
        let _one_at_a_time = self.applying.lock().await;
        let mut candidate = self.config();
        candidate.cluster = cluster;
        let problems = tandem_config::validate_config(&candidate);
        if !problems.is_empty() {
            return Err(ApplyError::Invalid(problems.join("\n")));
        }
        let file_problems = crate::check_files(&candidate);
        if !file_problems.is_empty() {
            return Err(ApplyError::Invalid(file_problems.join("\n")));
        }
        // A new backend name must resolve before the change goes in (see resolve_new).
        self.dns
            .resolve_new(&candidate.cluster)
            .await
            .map_err(ApplyError::Invalid)?;
        let running = self.dns.expand(&candidate.cluster);
        let mut report = ApplyReport {
            version: candidate.cluster.version,
            ..Default::default()
        };
        self.probe_new_listeners(&candidate.cluster)?;
        let before = self.config();
        if before.cluster.vip_groups != candidate.cluster.vip_groups {
            report
                .warnings
                .push("vip_group changes take effect at the next restart".into());
        }
        let l4 = self
            .plane
            .apply(&running)
            .map_err(|e| ApplyError::Failed(e.into()))?;
        let l7 = self
            .http
            .apply(&running, &self.plane.pools())
            .map_err(|e| ApplyError::Failed(e.into()))?;
        report.listeners_added = l4.listeners_added.into_iter().chain(l7.added).collect();
        report.listeners_removed = l4.listeners_removed.into_iter().chain(l7.removed).collect();
        report.pools_added = l4.pools_added;
        report.pools_removed = l4.pools_removed;
        report.pools_updated = l4.pools_updated;
        report.checks_restarted = self.sync_checks(&running).map_err(ApplyError::Failed)?;
        self.dns.retain_used(&candidate.cluster);
        *lock(&self.config) = candidate;
        tracing::info!(who, %report, "config applied");
        Ok(report)
    }

    /// Binds every address `cluster` adds a listener on, and lets go at once: the planes
    /// bind only after moving pools and removing listeners, so a port someone else holds
    /// must refuse the apply here, before anything changes. Addresses our own listeners
    /// hold are left to the planes. A port taken between this probe and the real bind
    /// still fails the apply half-way (the error says which listener).
    fn probe_new_listeners(&self, cluster: &ClusterConfig) -> Result<(), ApplyError> {
        use tandem_config::Protocol;
        let ours: std::collections::HashSet<(bool, std::net::SocketAddr)> = self
            .plane
            .listeners()
            .iter()
            .map(|h| (h.protocol == Protocol::Udp, h.local_addr))
            .chain(self.http.listeners().iter().map(|h| (false, h.local_addr)))
            .collect();
        for l in &cluster.listeners {
            let udp = l.protocol == Protocol::Udp;
            if l.bind.port() == 0 || ours.contains(&(udp, l.bind)) {
                continue;
            }
            let probe = if udp {
                tandem_proxy::bind_udp(&l.name, l.bind, l.ipv6_only()).map(drop)
            } else {
                tandem_proxy::bind_tcp_group(&l.name, l.bind, l.backlog(), l.ipv6_only(), 1)
                    .map(drop)
            };
            probe.map_err(|e| ApplyError::Failed(e.into()))?;
        }
        Ok(())
    }

    /// Reads the config file again and applies its cluster part (node-local settings other
    /// than VRRP are taken too; VRRP changes need a restart).
    ///
    /// systemd hears RELOADING=1 before and READY=1 after, refused or not.
    pub async fn reload_from_disk(&self, who: &str) -> Result<ApplyReport, ApplyError> {
        crate::systemd::reloading(&format!("reloading the config from disk ({who})"));
        let result = self.read_and_apply(who).await;
        let serving = crate::systemd::serving_status(&self.config());
        crate::systemd::ready(&match &result {
            Ok(_) => format!("{serving} (reloaded by {who})"),
            Err(e) => format!("{serving}; reload by {who} refused: {e}"),
        });
        result
    }

    async fn read_and_apply(&self, who: &str) -> Result<ApplyReport, ApplyError> {
        let path = lock(&self.config_path).clone().ok_or_else(|| {
            ApplyError::Invalid("this node was not started from a config file".into())
        })?;
        // A witness reads its file as at start: as a witness's, forwarding nothing.
        let witness = self
            .cluster()
            .is_some_and(|c| c.role == tandem_config::cluster::Role::Witness);
        let loaded = if witness {
            tandem_config::load_witness(&path)
                .map_err(|e| ApplyError::Invalid(e.to_string()))
                .and_then(|c| crate::witness_config(c).map_err(ApplyError::Invalid))?
        } else {
            tandem_config::load(&path).map_err(|e| ApplyError::Invalid(e.to_string()))?
        };
        // In a cluster the replicated config is in force; the file's cluster part only
        // seeded it. `tandemctl config apply` changes it.
        let replicated = self.cluster().is_some_and(Cluster::has_config);
        let cluster_part = if replicated {
            self.config().cluster
        } else {
            loaded.cluster.clone()
        };
        let mut report = self.apply(cluster_part, who).await?;
        if replicated && loaded.cluster != self.config().cluster {
            report.warnings.push(
                "the file's listeners, pools and vip_groups were not applied: this node runs the \
                 cluster's replicated config; change it with `tandemctl config apply FILE`"
                    .into(),
            );
        }
        let mut current = lock(&self.config);
        if current.node.vrrp != loaded.node.vrrp {
            report
                .warnings
                .push("node.vrrp changes take effect at the next restart".into());
        }
        let admin = |n: &tandem_config::NodeConfig| {
            (
                n.admin_socket.clone(),
                n.admin_tcp,
                n.admin_token_file.clone(),
            )
        };
        if admin(&current.node) != admin(&loaded.node) {
            report.warnings.push(
                "node.admin_socket, admin_tcp and admin_token_file changes take effect at the \
                 next restart"
                    .into(),
            );
        }
        let vrrp = current.node.vrrp.clone();
        current.node = loaded.node;
        current.node.vrrp = vrrp;
        Ok(report)
    }

    /// Changes one backend at run time (drain, disable, enable, weight, add, remove):
    /// the running config with that change, applied like any other.
    pub async fn change_backend(
        &self,
        pool: &str,
        backend: &str,
        change: BackendChange,
        who: &str,
    ) -> Result<ApplyReport, ApplyError> {
        let mut cluster = self.config().cluster;
        let p = cluster
            .pools
            .iter_mut()
            .find(|p| p.name == pool)
            .ok_or_else(|| ApplyError::NotFound(format!("no pool named {pool:?}")))?;
        let position = p.backends.iter().position(|b| b.id == backend);
        match (change, position) {
            (BackendChange::Add(b), None) => p.backends.push(b),
            (BackendChange::Add(_), Some(_)) => {
                return Err(ApplyError::Invalid(format!(
                    "pool {pool:?} already has a backend {backend:?}"
                )))
            }
            (_, None) => {
                return Err(ApplyError::NotFound(format!(
                    "pool {pool:?} has no backend {backend:?}"
                )))
            }
            (BackendChange::Remove, Some(i)) => {
                p.backends.remove(i);
            }
            (BackendChange::State(s), Some(i)) => p.backends[i].state = s,
            (BackendChange::Weight(w), Some(i)) => p.backends[i].weight = w,
        }
        cluster.version += 1;
        if let Some(c) = self.cluster().filter(|c| c.has_config()) {
            // Cluster-wide: the change goes through the log, so every node makes it.
            let mut candidate = self.config();
            candidate.cluster = cluster.clone();
            let text = crate::cluster::cluster_toml(&cluster);
            c.propose_config(&candidate, &text, "admin API change")
                .await?;
        }
        self.apply(cluster, who).await
    }

    /// Starts, restarts or stops health checks so they match `cluster`. Returns the pools
    /// whose checks were (re)started.
    fn sync_checks(&self, cluster: &ClusterConfig) -> anyhow::Result<Vec<String>> {
        let mut running = lock(&self.checks);
        let mut restarted = Vec::new();
        running.retain(|name, (_, token)| {
            let keep = cluster
                .pools
                .iter()
                .any(|p| &p.name == name && p.health_check.is_some());
            if !keep {
                token.cancel();
            }
            keep
        });
        for pool_config in &cluster.pools {
            let Some(check) = &pool_config.health_check else {
                continue;
            };
            let Some(pool) = self.plane.pool(&pool_config.name) else {
                continue;
            };
            let targets: Vec<(String, std::net::SocketAddr)> = pool.targets();
            let tls_settings = pool_config.http.as_ref().and_then(|h| h.tls.clone());
            let key: CheckKey = (check.clone(), targets.clone(), tls_settings);
            if running
                .get(&pool_config.name)
                .is_some_and(|(k, _)| *k == key)
            {
                continue;
            }
            if let Some((_, old)) = running.remove(&pool_config.name) {
                old.cancel();
            }
            let health: HashMap<String, tandem_balance::Health> = pool
                .snapshot()
                .into_iter()
                .map(|b| (b.id, b.health))
                .collect();
            let targets = targets
                .into_iter()
                .map(|(backend_id, address)| Target {
                    initial: health
                        .get(&backend_id)
                        .copied()
                        .unwrap_or(tandem_balance::Health::Up),
                    backend_id,
                    address,
                })
                .collect();
            let token = CancellationToken::new();
            let sink: Arc<dyn HealthSink> = pool;
            tandem_health::spawn_checks(
                &pool_config.name,
                check,
                targets,
                sink,
                crate::check_tls(pool_config)?,
                token.clone(),
            );
            running.insert(pool_config.name.clone(), (key, token));
            restarted.push(pool_config.name.clone());
        }
        Ok(restarted)
    }

    /// Stops accepting at once, lets open connections finish for up to the configured
    /// `node.drain_timeout`, and returns how many were cut at the end.
    pub async fn shutdown(&self) -> usize {
        let drain = self.config().node.drain_timeout.get();
        self.shutdown_within(drain).await
    }

    /// VRRP leaves first (the peer takes the VIP at once), then connections drain.
    /// With a cluster, the leases are released right after VRRP let the VIPs go (so the
    /// peer takes them without a lease wait), and Raft stops after the drain.
    pub async fn shutdown_within(&self, drain: Duration) -> usize {
        if let Some(vrrp) = self.vrrp.lock().await.take() {
            vrrp.stop().await;
        }
        if let Some(cluster) = self.cluster.get() {
            cluster.keeper.release_all(Duration::from_secs(3)).await;
        }
        self.dns_loop.cancel();
        self.acme_stop.cancel();
        for (_, (_, token)) in lock(&self.checks).drain() {
            token.cancel();
        }
        let (l4, l7) = tokio::join!(self.plane.shutdown(drain), self.http.shutdown(drain));
        if let Some(cluster) = self.cluster.get() {
            cluster.stop_member().await;
        }
        l4 + l7
    }
}

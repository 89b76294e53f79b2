//! The node's part in a tandem cluster: the Raft member ([`ClusterNode`]), the lease keeper
//! that fences VRRP, the replicated config followed by hot reloads, and sticky-table
//! replication. `Node` owns one [`Cluster`] when `[node.cluster]` is configured.

use anyhow::Context;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tandem_cluster::lease_keeper::LeaseKeeper;
use tandem_cluster::node::{ClusterNode, ClusterOptions, ClusterStatus, OpError};
use tandem_cluster::raft::Response;
use tandem_cluster::state::{Command, KernelBackstop, LeaseTiming, NodeId, Outcome, StickyRecord};
use tandem_config::cluster::{NodeCluster, Role};
use tandem_config::{ClusterConfig, Config, NodeConfig};
use tokio_util::sync::CancellationToken;

use crate::node::Node;

/// A running cluster membership.
pub struct Cluster {
    pub node: ClusterNode,
    pub keeper: Arc<LeaseKeeper>,
    pub role: Role,
    /// The replicated config version this node last applied, and the last refusal.
    applied: Mutex<ConfigFollow>,
    stop: CancellationToken,
    /// The Raft heartbeat: how soon followers learn of a commit.
    pub heartbeat: Duration,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ConfigFollow {
    pub applied_version: Option<u64>,
    pub error: Option<String>,
}

/// The lease timing from the config, checked by the rule that makes it safe.
pub fn lease_timing(
    settings: &tandem_config::cluster::LeaseSettings,
) -> Result<LeaseTiming, String> {
    use tandem_config::cluster::KernelFenceKind;
    let (backstop, late) = match settings.kernel_fence {
        KernelFenceKind::Nftables => (KernelBackstop::Nftables, Duration::from_millis(100)),
        KernelFenceKind::AddressLifetime => {
            (KernelBackstop::AddressLifetime, Duration::from_secs(1))
        }
    };
    let timing = LeaseTiming {
        lease: settings.lease.get(),
        safety_margin: settings.safety_margin.get(),
        drift: settings.drift,
        slack: settings.slack.get(),
        renew_every: settings.renew_every.get(),
        kernel_late: settings.kernel_late.map_or(late, |l| l.get()),
        backstop,
    };
    timing
        .validate()
        .map(|()| timing)
        .map_err(|e| format!("node.cluster.lease: {e}"))
}

impl Cluster {
    /// Starts the Raft member and the lease keeper. Waits (bounded) until the node hears a
    /// leader when it is already a member, so that READY means "joined".
    pub async fn start(node: &NodeConfig, settings: &NodeCluster) -> anyhow::Result<Cluster> {
        let timing = lease_timing(&settings.lease).map_err(anyhow::Error::msg)?;
        let options = ClusterOptions {
            raft_id: settings.raft_id,
            name: node.id.clone(),
            listen: settings.listen,
            advertise: settings.advertise_for(&node.id),
            cert_dir: settings.cert_dir.clone(),
            data_dir: node.data_dir.clone(),
            bootstrap: settings.bootstrap,
            hosts: settings.hosts.clone(),
            heartbeat: settings.heartbeat.get(),
            election_timeout: settings.election_timeout.get(),
            // A witness waits longer before campaigning, so the leader is usually a
            // forwarding node. Only the campaign waits: the witness judges a leader lost
            // (and grants pre-votes) on the same clock as everyone else.
            campaign_delay: match settings.role {
                Role::Witness => settings.election_timeout.get() * 2,
                Role::Voter => Duration::ZERO,
            },
            op_timeout: Duration::from_secs(5),
        };
        let cluster_node = ClusterNode::start(options)
            .await
            .context("starting the cluster member ([node.cluster])")?;
        let keeper = LeaseKeeper::new(
            settings.raft_id,
            timing,
            cluster_node.ops(),
            // Within two election timeouts: after a leader crash the survivors hear each
            // other again only at the pre-vote (one election timeout plus up to a third of
            // one of random spread, then a round trip), which must fall inside it even on a
            // loaded machine; a few lost heartbeats do not count; a node cut off hears
            // nobody, and the sooner it says so the sooner a deaf holder steps aside.
            cluster_node.liveness(settings.election_timeout.get() * 2),
            cluster_node.applied(),
        );
        let cluster = Cluster {
            node: cluster_node,
            keeper,
            role: settings.role,
            applied: Mutex::new(ConfigFollow::default()),
            stop: CancellationToken::new(),
            heartbeat: settings.heartbeat.get(),
        };
        let expect_member =
            settings.bootstrap || cluster.node.raft().is_initialized().await.unwrap_or(false);
        if expect_member {
            cluster.wait_joined(Duration::from_secs(15)).await;
        } else {
            tracing::info!(
                "cluster: not a member yet; serving, waiting for `tandemctl cluster join`"
            );
        }
        Ok(cluster)
    }

    /// Until this member hears a live leader (not one restored from its own stored vote),
    /// at most `limit`.
    async fn wait_joined(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.node.has_live_leader() {
                let m = self.node.metrics();
                tracing::info!(leader = ?m.current_leader, term = m.current_term, "cluster joined");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    ?limit,
                    "cluster: no leader heard yet; serving, and still trying"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One line for systemd's STATUS= and logs: whether this member has a leader.
    pub fn summary(&self) -> String {
        let m = self.node.metrics();
        let member = m.membership_config.membership().nodes().next().is_some();
        match m.current_leader.filter(|_| self.node.has_live_leader()) {
            Some(leader) => format!(
                "cluster: leader node {leader}, term {}, {} voter(s)",
                m.current_term,
                self.voters()
            ),
            None if member => "cluster: no leader heard yet (still trying)".into(),
            None => "cluster: not a member yet (waiting for `tandemctl cluster join`)".into(),
        }
    }

    /// Voters in the membership this node knows.
    pub fn voters(&self) -> usize {
        self.node
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .count()
    }

    /// Whether the cluster has a replicated config (then it, not the file, is in force).
    pub fn has_config(&self) -> bool {
        self.node.applied().borrow().state.config().is_some()
    }

    pub fn config_follow(&self) -> ConfigFollow {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn status(&self) -> ClusterStatus {
        self.node.status().await
    }

    /// Validates `text` as check-config would with this node's `[node]`, then proposes its
    /// cluster part. Returns the applied version once committed.
    pub async fn propose_config(
        &self,
        local: &Config,
        text: &str,
        origin: &str,
    ) -> Result<u64, ApiRefusal> {
        let parsed =
            tandem_config::parse(text, origin).map_err(|e| ApiRefusal::Invalid(e.to_string()))?;
        let mut candidate = local.clone();
        candidate.cluster = parsed.cluster;
        let problems = tandem_config::validate_config(&candidate);
        if !problems.is_empty() {
            return Err(ApiRefusal::Invalid(format!(
                "{origin}: {}",
                problems.join("\n")
            )));
        }
        let files = crate::check_files(&candidate);
        if !files.is_empty() {
            return Err(ApiRefusal::Invalid(format!(
                "{origin}: {}",
                files.join("\n")
            )));
        }
        let version = candidate.cluster.version;
        let toml = cluster_toml(&candidate.cluster);
        match self.write(Command::ApplyConfig { version, toml }).await? {
            Outcome::ConfigApplied { version } => Ok(version),
            Outcome::ConfigRefused { reason } => Err(ApiRefusal::Invalid(reason)),
            other => Err(ApiRefusal::Failed(format!("unexpected outcome {other:?}"))),
        }
    }

    /// Proposes one command and returns its outcome.
    pub async fn write(&self, command: Command) -> Result<Outcome, ApiRefusal> {
        match self.node.write(command).await {
            Ok(Response::Applied(outcome)) => Ok(outcome),
            Ok(Response::Internal) => Err(ApiRefusal::Failed("no outcome".into())),
            Err(e @ OpError::NoLeader { .. }) => Err(ApiRefusal::Unavailable(e.to_string())),
            Err(e) => Err(ApiRefusal::Failed(e.to_string())),
        }
    }

    /// Starts the tasks that follow the replicated state: config hot reload (voters only)
    /// and sticky-table replication.
    pub fn spawn_followers(self: &Arc<Self>, node: &Arc<Node>, batch: Duration) {
        if self.role == Role::Witness {
            return;
        }
        tokio::spawn(follow_config(Arc::clone(self), Arc::downgrade(node)));
        tokio::spawn(crate::acme::run(
            crate::acme::StateStore::Cluster(Arc::clone(self)),
            node.acme(),
            Arc::downgrade(node),
            self.stop.clone(),
        ));
        tokio::spawn(crate::sticky_sync::run(
            Arc::clone(self),
            Arc::downgrade(node),
            batch,
            self.stop.clone(),
        ));
    }

    /// Leaves Raft (the leases were released before the drain). The store stays on disk.
    pub async fn stop_member(&self) {
        self.stop.cancel();
        self.node.stop().await;
    }

    /// The first node of a new cluster proposes its file's cluster part, so the cluster has
    /// a config from the start and joining nodes take it. Nothing when the cluster already
    /// has one, or when this node does not lead a just-bootstrapped cluster.
    pub async fn seed_config(&self, local: &Config) {
        let applied = self.node.applied().borrow().clone();
        if applied.state.config().is_some() || self.role == Role::Witness {
            return;
        }
        if self.node.metrics().current_leader != Some(self.node.id()) {
            return;
        }
        let version = local.cluster.version;
        let toml = cluster_toml(&local.cluster);
        match self.write(Command::ApplyConfig { version, toml }).await {
            Ok(Outcome::ConfigApplied { version }) => {
                tracing::info!(
                    version,
                    "cluster: seeded the replicated config from this node's file"
                )
            }
            Ok(other) => tracing::warn!(?other, "cluster: the file's config was not seeded"),
            Err(e) => tracing::warn!(error = %e, "cluster: the file's config was not seeded"),
        }
    }
}

/// Why a cluster request was refused, for the admin API's status codes.
#[derive(Debug, thiserror::Error)]
pub enum ApiRefusal {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// The cluster part of a config as TOML with no `[node]` values (what the log carries).
pub fn cluster_toml(cluster: &ClusterConfig) -> String {
    tandem_config::to_toml(&Config {
        node: NodeConfig::default(),
        cluster: cluster.clone(),
    })
}

/// Applies each new replicated config to the planes (hot reload, nothing dropped).
async fn follow_config(cluster: Arc<Cluster>, node: std::sync::Weak<Node>) {
    let mut applied = cluster.node.applied();
    loop {
        let state = applied.borrow_and_update().state.clone();
        if let Some((version, text)) = state.config() {
            let done = cluster.config_follow().applied_version;
            if done != Some(version) {
                let Some(node) = node.upgrade() else { return };
                let result =
                    match tandem_config::parse(text, &format!("replicated config v{version}")) {
                        Ok(parsed) => node
                            .apply(parsed.cluster, "cluster (replicated config)")
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                let mut follow = cluster.applied.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(report) => {
                        tracing::info!(version, %report, "replicated config applied");
                        follow.applied_version = Some(version);
                        follow.error = None;
                    }
                    Err(e) => {
                        tracing::error!(version, error = %e, "replicated config refused on this node; the running config stays");
                        follow.applied_version = Some(version);
                        follow.error = Some(e);
                    }
                }
            }
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = cluster.stop.cancelled() => return,
        }
    }
}

/// Milliseconds since the UNIX epoch: sticky expiries travel in wall-clock time, the only
/// clock that means the same on every node.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A sticky entry from the local plane clock to the replicated form.
pub fn to_record(
    entry: &tandem_policy::StickyEntry,
    plane_now: Duration,
    wall_now: u64,
) -> StickyRecord {
    let left = entry.expires_at.saturating_sub(plane_now).as_millis() as u64;
    StickyRecord {
        key: entry.key.clone(),
        backend: entry.backend.clone(),
        expires_at_ms: wall_now + left,
    }
}

/// A replicated entry to the local plane clock; `None` once expired.
pub fn from_record(
    record: &StickyRecord,
    plane_now: Duration,
    wall_now: u64,
) -> Option<tandem_policy::StickyEntry> {
    let left = record
        .expires_at_ms
        .checked_sub(wall_now)
        .filter(|l| *l > 0)?;
    Some(tandem_policy::StickyEntry {
        key: record.key.clone(),
        backend: record.backend.clone(),
        expires_at: plane_now + Duration::from_millis(left),
    })
}

/// Node id of a member given by id or name.
pub fn resolve_member(status: &ClusterStatus, who: &str) -> Option<NodeId> {
    if let Ok(id) = who.parse::<NodeId>() {
        return status.members.iter().any(|m| m.id == id).then_some(id);
    }
    status
        .members
        .iter()
        .find(|m| m.addr.split(':').next() == Some(who))
        .map(|m| m.id)
}

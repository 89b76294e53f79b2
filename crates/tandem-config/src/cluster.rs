//! `[node.cluster]`: this node's membership of a tandem cluster (Raft), node-local like the
//! rest of `[node]`. Absent: a standalone node (no replication, no lease fencing).

use crate::duration::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// What a node is in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Forwards traffic, may hold VIPs, votes.
    #[default]
    Voter,
    /// Votes only: no VIP, no forwarding plane (`tandemd witness`).
    Witness,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCluster {
    /// This node's Raft id: a number unique in the cluster (never reuse one of a node that
    /// left). Lease holders and `tandemctl cluster status` show it.
    pub raft_id: u64,
    /// Where the cluster transport (Raft over mutual TLS) listens for peers.
    pub listen: SocketAddr,
    /// How peers reach this node: `"<node.id>:<port>"`; the name part must be the name in
    /// this node's certificate. Default: `node.id` and the port of `listen`.
    #[serde(default)]
    pub advertise: Option<String>,
    /// The files from `tandemctl cluster init`: `ca.pem`, `<node.id>.pem`, `<node.id>.key`.
    #[serde(default = "default_cert_dir")]
    pub cert_dir: PathBuf,
    /// Start a new cluster with this node as its only voter, on its first start (a node
    /// with Raft state ignores it). Set it on one node only; others join with
    /// `tandemctl cluster join`.
    #[serde(default)]
    pub bootstrap: bool,
    /// Addresses of node names that are not in DNS, like /etc/hosts entries.
    #[serde(default)]
    pub hosts: BTreeMap<String, IpAddr>,
    #[serde(default)]
    pub role: Role,
    /// Raft heartbeat from the leader.
    #[serde(default = "default_heartbeat")]
    pub heartbeat: HumanDuration,
    /// A follower that hears no leader for this long (randomised up to twice it) starts an
    /// election.
    #[serde(default = "default_election_timeout")]
    pub election_timeout: HumanDuration,
    /// How often new sticky-table entries are batched into one proposal.
    #[serde(default = "default_sticky_batch")]
    pub sticky_batch: HumanDuration,
    /// VIP lease timing (the same on every node; see docs/cluster.md).
    #[serde(default)]
    pub lease: LeaseSettings,
}

impl NodeCluster {
    /// The address peers dial: `advertise`, or `<node id>:<listen port>`.
    pub fn advertise_for(&self, node_id: &str) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| format!("{node_id}:{}", self.listen.port()))
    }
}

/// VIP lease timing. The defaults are for the nftables kernel fence (millisecond element
/// timeouts); `kernel_fence = "address-lifetime"` needs a longer lease (docs/cluster.md).
/// `tandemd check-config` refuses unsafe combinations with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    /// The lease term, counted from the send of the holder's last committed renewal.
    #[serde(default = "default_lease")]
    pub lease: HumanDuration,
    /// The holder drops the VIP this long before the term ends.
    #[serde(default = "default_margin")]
    pub safety_margin: HumanDuration,
    /// Extra wait for a contender on top of `lease × (1 + drift)`.
    #[serde(default = "default_slack")]
    pub slack: HumanDuration,
    /// How often the holder renews.
    #[serde(default = "default_renew")]
    pub renew_every: HumanDuration,
    /// How late the kernel backstop may silence a dead holder's VIP after its hold window
    /// ended. Default: 100 ms with nftables (one `nft` run), 1 s with the address lifetime.
    #[serde(default)]
    pub kernel_late: Option<HumanDuration>,
    /// What silences a dead or frozen holder's VIP in the kernel.
    #[serde(default)]
    pub kernel_fence: KernelFenceKind,
    /// Bound on clock rate error between nodes (0.01 = 1%).
    #[serde(default = "default_drift")]
    pub drift: f64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            lease: default_lease(),
            safety_margin: default_margin(),
            slack: default_slack(),
            renew_every: default_renew(),
            kernel_late: None,
            kernel_fence: KernelFenceKind::default(),
            drift: default_drift(),
        }
    }
}

fn default_cert_dir() -> PathBuf {
    "/etc/tandem/cluster".into()
}
fn default_heartbeat() -> HumanDuration {
    HumanDuration::from_millis(100)
}
/// Short enough that a new leader is elected (at most twice this after the old one went)
/// well inside the lease hold window, so the VIP holder's renewals survive a leader loss.
fn default_election_timeout() -> HumanDuration {
    HumanDuration::from_millis(300)
}
fn default_sticky_batch() -> HumanDuration {
    HumanDuration::from_millis(50)
}
// Defaults for the nftables fence; the reasons are in tandem-cluster's `LeaseTiming`.
fn default_lease() -> HumanDuration {
    HumanDuration::from_millis(500)
}
fn default_margin() -> HumanDuration {
    HumanDuration::from_millis(150)
}
fn default_slack() -> HumanDuration {
    HumanDuration::from_millis(50)
}
fn default_renew() -> HumanDuration {
    HumanDuration::from_millis(100)
}
/// The kernel backstop of a Raft-fenced VIP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelFenceKind {
    /// nftables rules and set elements with millisecond timeouts (needs `nft`).
    #[default]
    Nftables,
    /// Only the address lifetime (whole seconds, up to 1 s late): leases of about 2 s.
    AddressLifetime,
}
fn default_drift() -> f64 {
    0.01
}

/// Problems with `[node.cluster]` that need nothing but the section itself (lease timing
/// is checked by the cluster crate, which owns the rule).
pub(crate) fn validate(cluster: &NodeCluster, node_id: &str, out: &mut Vec<crate::Problem>) {
    let mut add = |key: &str, message: String| {
        out.push(crate::Problem {
            path: key.to_string(),
            line: None,
            message,
        })
    };
    if cluster.raft_id == 0 {
        add(
            "node.cluster.raft_id",
            "must be more than 0 (0 is reserved by the Raft library)".into(),
        );
    }
    let advertise = cluster.advertise_for(node_id);
    match advertise.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok_and(|p| p > 0) => {
            if name != node_id {
                add(
                    "node.cluster.advertise",
                    format!(
                        "{advertise:?}: the name part must be node.id ({node_id:?}): peers verify \
                         this node's certificate ({node_id}.pem) by that name"
                    ),
                );
            }
        }
        _ => add(
            "node.cluster.advertise",
            format!("{advertise:?} must be \"<node.id>:<port>\""),
        ),
    }
    if cluster.heartbeat.get().is_zero() {
        add("node.cluster.heartbeat", "must be more than 0s".into());
    }
    if cluster.election_timeout.get() < cluster.heartbeat.get() * 3 {
        add(
            "node.cluster.election_timeout",
            format!(
                "{:?} must be at least 3 heartbeats ({:?}), or followers call elections while the leader is fine",
                cluster.election_timeout.get(),
                cluster.heartbeat.get() * 3
            ),
        );
    }
    if cluster.sticky_batch.get().is_zero() {
        add("node.cluster.sticky_batch", "must be more than 0s".into());
    }
}

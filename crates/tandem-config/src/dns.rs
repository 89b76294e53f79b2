//! `[node.dns]`: how this node resolves backends written as DNS names. Node-local, since
//! each machine has its own resolvers; the names themselves are in the replicated pools.

use crate::duration::HumanDuration;
use crate::validate::Problems;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDns {
    /// Name servers to ask (UDP, then TCP on truncation), e.g. ["198.51.100.53:53"].
    /// Empty (default): the system's /etc/resolv.conf.
    #[serde(default)]
    pub resolvers: Vec<SocketAddr>,
    /// A record's TTL is raised to at least this before the name is asked again.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: HumanDuration,
    /// ... and lowered to at most this, so a long TTL still sees changes.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: HumanDuration,
    /// A name that stops resolving keeps its last good addresses this long (logged once),
    /// then its backends leave the pool.
    #[serde(default = "default_keep_stale")]
    pub keep_stale: HumanDuration,
    /// Time between tries while a name does not resolve.
    #[serde(default = "default_retry")]
    pub retry: HumanDuration,
    /// false (default): a backend name that does not resolve refuses the start (and the
    /// change that adds it). true: start with its backends missing and keep trying.
    #[serde(default)]
    pub start_unresolved: bool,
}

impl Default for NodeDns {
    fn default() -> Self {
        NodeDns {
            resolvers: Vec::new(),
            min_ttl: default_min_ttl(),
            max_ttl: default_max_ttl(),
            keep_stale: default_keep_stale(),
            retry: default_retry(),
            start_unresolved: false,
        }
    }
}

fn default_min_ttl() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_max_ttl() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_keep_stale() -> HumanDuration {
    HumanDuration::from_secs(600)
}
fn default_retry() -> HumanDuration {
    HumanDuration::from_secs(2)
}

pub(crate) fn validate(dns: &NodeDns, p: &mut Problems) {
    if dns.min_ttl.get().is_zero() {
        p.add(
            "node.dns.min_ttl",
            "must be more than 0s, or a TTL of 0 would ask the name server in a loop",
        );
    }
    if dns.max_ttl < dns.min_ttl {
        p.add("node.dns.max_ttl", "must be at least node.dns.min_ttl");
    }
    if dns.retry.get().is_zero() {
        p.add("node.dns.retry", "must be more than 0s");
    }
    for (i, r) in dns.resolvers.iter().enumerate() {
        if r.port() == 0 {
            p.add(format!("node.dns.resolvers[{i}]"), "port 0 cannot be asked");
        }
    }
}

//! VRRP settings. What every node must agree on (VRID, addresses, interval, preemption)
//! is cluster-wide: `[[vip_group]]`. What differs per node (interface, priority, peers,
//! trackers, hooks) is node-local: `[node.vrrp]` and its `[[node.vrrp.instance]]`s.

use crate::duration::HumanDuration;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// A virtual address set that one node at a time holds (one VRRP virtual router).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipGroup {
    pub name: String,
    /// VRRP virtual router id, 1..=255, unique on the network segment.
    pub vrid: u8,
    /// Addresses with an optional prefix length: "198.51.100.100/24" (default /32) or
    /// "2001:db8::100/64" (default /128). IPv4 and IPv6 addresses may share a group: an
    /// IPv4 and an IPv6 virtual router are separate VRRP instances (RFC 5798), so such a
    /// group runs one instance per family, both with this vrid, under one lease.
    pub addresses: Vec<String>,
    /// How often the master advertises (sent in centiseconds: 10ms steps, 10ms..40.95s).
    #[serde(default = "default_advert_interval")]
    pub advert_interval: HumanDuration,
    /// A higher-priority node takes the VIP back from a lower-priority master.
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// After start-up, wait this long before preempting (lets a rebooted node settle).
    #[serde(default)]
    pub preempt_delay: HumanDuration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fencing {
    /// `raft` when `[node.cluster]` is configured (a cluster is meant to have two forwarding
    /// nodes and a witness), else `none` (with its loud warning).
    #[default]
    Auto,
    /// A VIP is held only under a Raft lease: never two holders, but no VIP at all while
    /// the cluster has no majority (see docs/cluster.md, and `tandemctl vip force-hold`).
    Raft,
    /// Plain VRRP, keepalived semantics: no split-brain protection.
    None,
}

/// This node's VRRP settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeVrrp {
    /// Default interface for instances that do not name one.
    pub interface: String,
    #[serde(default)]
    pub fencing: Fencing,
    /// Send adverts to these peers instead of multicast 224.0.0.18 / ff02::12, and accept
    /// only theirs. IPv4 peers serve IPv4 groups, IPv6 peers IPv6 groups; IPv6 peers are
    /// the peers' link-local addresses (IPv6 adverts are sent from, and accepted only
    /// from, link-local addresses: RFC 5798 section 5.1.2.1).
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// Source address of adverts (default: the interface's first IPv4 address).
    #[serde(default)]
    pub source: Option<Ipv4Addr>,
    /// Gratuitous ARPs sent on becoming master, back to back.
    #[serde(default = "default_garp_count")]
    pub garp_count: u32,
    /// A second burst this long after becoming master (0s = none), as keepalived does.
    #[serde(default = "default_garp_repeat")]
    pub garp_repeat_after: HumanDuration,
    /// While master, re-announce every so often (0s = never).
    #[serde(default = "default_garp_refresh")]
    pub garp_refresh: HumanDuration,
    /// Commands run (with `sh -c`) in order on every state change, each awaited up to
    /// `hook_timeout`. Environment: TANDEM_INSTANCE, TANDEM_OLD_STATE, TANDEM_NEW_STATE,
    /// TANDEM_REASON.
    #[serde(default)]
    pub hooks: Vec<String>,
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout: HumanDuration,
    #[serde(default, rename = "instance")]
    pub instances: Vec<VrrpInstance>,
}

/// This node's part in one VIP group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    /// The `[[vip_group]]` this instance speaks for.
    pub group: String,
    /// 1..=254; 255 means this node owns the addresses (takes them at once).
    pub priority: u8,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default, rename = "track")]
    pub tracks: Vec<Track>,
}

/// A tracked condition with a weight, keepalived's semantics: a negative weight is added
/// while the condition fails, a positive one while it passes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum Track {
    /// Fails while fewer than `min_healthy_share` of the pool's backends are up.
    Pool {
        pool: String,
        #[serde(default = "default_min_share")]
        min_healthy_share: f64,
        weight: i32,
    },
    /// Runs `command` every `interval`; fails (exit code ≠ 0) after `fall` failures in a
    /// row, passes again after `rise` successes in a row.
    Script {
        command: String,
        #[serde(default = "default_track_interval")]
        interval: HumanDuration,
        #[serde(default = "default_track_timeout")]
        timeout: HumanDuration,
        #[serde(default = "default_one")]
        rise: u32,
        #[serde(default = "default_one")]
        fall: u32,
        weight: i32,
    },
    /// Fails while this interface is down.
    Interface { interface: String, weight: i32 },
}

impl Track {
    pub fn weight(&self) -> i32 {
        match self {
            Track::Pool { weight, .. }
            | Track::Script { weight, .. }
            | Track::Interface { weight, .. } => *weight,
        }
    }
}

/// "198.51.100.100/24" → (address, 24); "198.51.100.100" → (address, 32);
/// "2001:db8::100/64" → (address, 64); "2001:db8::100" → (address, 128).
pub fn parse_vip(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (text, None),
    };
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(ip) => {
            let len = len.unwrap_or(32);
            (len <= 32 && !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast())
                .then_some((IpAddr::V4(ip), len))
        }
        IpAddr::V6(ip) => {
            let len = len.unwrap_or(128);
            (len <= 128 && !ip.is_unspecified() && !ip.is_multicast() && !ip.is_loopback())
                .then_some((IpAddr::V6(ip), len))
        }
    }
}

fn default_advert_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_true() -> bool {
    true
}
fn default_garp_count() -> u32 {
    5
}
fn default_garp_repeat() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_garp_refresh() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_hook_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_min_share() -> f64 {
    0.5
}
fn default_track_interval() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_track_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_one() -> u32 {
    1
}

//! Validation of `[[vip_group]]` (cluster-wide) and `[node.vrrp]` (node-local, checked
//! against the groups it names).

use crate::error::Problem;
use crate::model::{ClusterConfig, NodeConfig};
use crate::validate::{check_name, Problems};
use crate::vrrp::{parse_vip, Track, VipGroup};
use std::collections::HashSet;
use std::time::Duration;

pub(crate) fn validate_groups(out: &mut Vec<Problem>, groups: &[VipGroup]) {
    let mut p = Problems(std::mem::take(out));
    let mut names = HashSet::new();
    let mut vrids = HashSet::new();
    let mut all_addresses = HashSet::new();
    for (i, g) in groups.iter().enumerate() {
        let at = format!("vip_group[{i}]");
        check_name(&mut p, &format!("{at}.name"), &g.name);
        if !names.insert(g.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("duplicate vip_group name {:?}", g.name),
            );
        }
        // A dual-stack group (IPv4 and IPv6 addresses) runs one VRRP instance per family
        // (RFC 5798) under one lease; each family has its own vrid space.
        let parsed: Vec<_> = g.addresses.iter().filter_map(|a| parse_vip(a)).collect();
        let mut families: Vec<bool> = parsed.iter().map(|(ip, _)| ip.is_ipv6()).collect();
        families.sort_unstable();
        families.dedup();
        if g.vrid == 0 {
            p.add(format!("{at}.vrid"), "must be between 1 and 255");
        } else {
            for v6 in families {
                if !vrids.insert((g.vrid, v6)) {
                    let family = if v6 { "IPv6" } else { "IPv4" };
                    p.add(
                        format!("{at}.vrid"),
                        format!(
                            "vrid {} is used by another vip_group with {family} addresses",
                            g.vrid
                        ),
                    );
                }
            }
        }
        if g.addresses.is_empty() {
            p.add(
                format!("{at}.addresses"),
                "a vip_group needs at least one address",
            );
        }
        for (j, text) in g.addresses.iter().enumerate() {
            match parse_vip(text) {
                None => p.add(
                    format!("{at}.addresses[{j}]"),
                    format!("{text:?} is not a unicast address with optional /prefix, e.g. \"198.51.100.100/24\" or \"2001:db8::100/64\""),
                ),
                Some((ip, _)) => {
                    if !all_addresses.insert(ip) {
                        p.add(format!("{at}.addresses[{j}]"), format!("{ip} appears in more than one place"));
                    }
                }
            }
        }
        if g.addresses.len() > 20 {
            p.add(
                format!("{at}.addresses"),
                "at most 20 addresses fit in one advertisement's list here; split the group",
            );
        }
        let cs = g.advert_interval.get().as_millis();
        if !(10..=40_950).contains(&cs) || cs % 10 != 0 {
            p.add(
                format!("{at}.advert_interval"),
                "must be between 10ms and 40950ms in steps of 10ms (VRRPv3 sends centiseconds)",
            );
        }
        if g.preempt_delay.get() > Duration::from_secs(3600) {
            p.add(format!("{at}.preempt_delay"), "must be at most 1h");
        }
    }
    *out = p.0;
}

pub(crate) fn validate_node_vrrp(node: &NodeConfig, cluster: &ClusterConfig) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    let Some(v) = &node.vrrp else {
        return p.0;
    };
    check_interface(&mut p, "node.vrrp.interface", &v.interface);
    if v.fencing == crate::vrrp::Fencing::Raft && node.cluster.is_none() {
        p.add(
            "node.vrrp.fencing",
            "\"raft\" needs [node.cluster]: leases live in the cluster's Raft log",
        );
    }
    if node
        .cluster
        .as_ref()
        .is_some_and(|c| c.role == crate::cluster::Role::Witness)
    {
        p.add(
            "node.vrrp",
            "a witness holds no VIP: remove [node.vrrp] or set node.cluster.role = \"voter\"",
        );
    }
    if v.garp_count == 0 || v.garp_count > 100 {
        p.add("node.vrrp.garp_count", "must be between 1 and 100");
    }
    if v.hook_timeout.get().is_zero() {
        p.add("node.vrrp.hook_timeout", "must be more than 0s");
    }
    for (i, h) in v.hooks.iter().enumerate() {
        if h.trim().is_empty() {
            p.add(format!("node.vrrp.hooks[{i}]"), "empty command");
        }
    }
    let mut peers = HashSet::new();
    for (i, peer) in v.unicast_peers.iter().enumerate() {
        if peer.is_unspecified()
            || peer.is_multicast()
            || matches!(peer, std::net::IpAddr::V4(v4) if v4.is_broadcast())
        {
            p.add(
                format!("node.vrrp.unicast_peers[{i}]"),
                format!("{peer} is not a unicast address"),
            );
        }
        if !peers.insert(*peer) {
            p.add(
                format!("node.vrrp.unicast_peers[{i}]"),
                format!("{peer} is listed twice"),
            );
        }
        if let std::net::IpAddr::V6(v6) = peer {
            if v6.segments()[0] & 0xffc0 != 0xfe80 {
                p.add(
                    format!("node.vrrp.unicast_peers[{i}]"),
                    format!("{peer} is not link-local: IPv6 adverts are sent from and accepted only from link-local addresses (RFC 5798), so name the peer's fe80:: address"),
                );
            }
        }
        if Some(*peer) == v.source.map(std::net::IpAddr::V4) {
            p.add(
                format!("node.vrrp.unicast_peers[{i}]"),
                "a node is not its own peer: this is node.vrrp.source",
            );
        }
    }
    if v.instances.is_empty() {
        p.add(
            "node.vrrp.instance",
            "no instance: add a [[node.vrrp.instance]] naming a vip_group",
        );
    }
    let mut used = HashSet::new();
    for (i, inst) in v.instances.iter().enumerate() {
        let at = format!("node.vrrp.instance[{i}]");
        if !cluster.vip_groups.iter().any(|g| g.name == inst.group) {
            p.add(
                format!("{at}.group"),
                format!(
                    "no vip_group named {:?}; define it with [[vip_group]]",
                    inst.group
                ),
            );
        }
        if !used.insert(inst.group.as_str()) {
            p.add(
                format!("{at}.group"),
                format!("vip_group {:?} has two instances on this node", inst.group),
            );
        }
        if inst.priority == 0 {
            p.add(
                format!("{at}.priority"),
                "must be 1..=254 (255 = this node owns the addresses); 0 is reserved for 'leaving'",
            );
        }
        let fenced = match v.fencing {
            crate::vrrp::Fencing::Raft => true,
            crate::vrrp::Fencing::Auto => node.cluster.is_some(),
            crate::vrrp::Fencing::None => false,
        };
        if inst.priority == 255 && fenced {
            // An owner takes the group at once and never lowers its priority (RFC 5798),
            // so `tandemctl vip move` could not move it and, pinned elsewhere, it would
            // keep the other node a backup while holding no lease: nobody would hold it.
            p.add(
                format!("{at}.priority"),
                "255 (address owner) cannot be fenced by Raft leases: use 254 or lower, or fencing = \"none\"",
            );
        }
        if let Some(ifname) = &inst.interface {
            check_interface(&mut p, &format!("{at}.interface"), ifname);
        }
        for (j, t) in inst.tracks.iter().enumerate() {
            let tat = format!("{at}.track[{j}]");
            if !(-254..=254).contains(&t.weight()) || t.weight() == 0 {
                p.add(
                    format!("{tat}.weight"),
                    "must be between -254 and 254, and not 0",
                );
            }
            match t {
                Track::Pool {
                    pool,
                    min_healthy_share,
                    ..
                } => {
                    if !cluster.pools.iter().any(|x| &x.name == pool) {
                        p.add(format!("{tat}.pool"), format!("no pool named {pool:?}"));
                    }
                    if !(0.0..=1.0).contains(min_healthy_share) {
                        p.add(
                            format!("{tat}.min_healthy_share"),
                            "must be between 0.0 and 1.0",
                        );
                    }
                }
                Track::Script {
                    command,
                    interval,
                    timeout,
                    rise,
                    fall,
                    ..
                } => {
                    if command.trim().is_empty() {
                        p.add(format!("{tat}.command"), "empty command");
                    }
                    if interval.get().is_zero() || timeout.get().is_zero() || timeout > interval {
                        p.add(format!("{tat}.timeout"), "interval and timeout must be more than 0s, timeout at most the interval");
                    }
                    if *rise == 0 || *fall == 0 {
                        p.add(format!("{tat}.rise"), "rise and fall must be at least 1");
                    }
                }
                Track::Interface { interface, .. } => {
                    check_interface(&mut p, &format!("{tat}.interface"), interface)
                }
            }
        }
    }
    p.0
}

/// Linux interface names: 1..=15 bytes, no '/', no whitespace.
fn check_interface(p: &mut Problems, at: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.chars().all(|c| c.is_ascii_graphic() && c != '/');
    if !ok {
        p.add(
            at,
            format!(
                "{name:?} is not a valid interface name (1 to 15 characters, no '/' or spaces)"
            ),
        );
    }
}

//! Checks that serde cannot express: references between sections, uniqueness, ranges.
//! Each problem carries the key path the operator must edit.

use crate::error::Problem;
use crate::model::*;
use std::collections::{HashMap, HashSet};

/// Largest Maglev table accepted: bigger tables cost memory for no practical gain.
const MAX_MAGLEV_TABLE: u32 = 1_000_003;

pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            line: None,
            message: message.into(),
        });
    }
}

pub(crate) fn validate_node(node: &NodeConfig) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    check_name(&mut p, "node.id", &node.id);
    if node.drain_timeout.get().is_zero() {
        p.add(
            "node.drain_timeout",
            "must be more than 0s, or SIGTERM would cut every connection",
        );
    }
    // Without a token, anyone who can reach the port could drain or remove backends.
    if node.admin_tcp.is_some() && node.admin_token_file.is_none() {
        p.add(
            "node.admin_tcp",
            "needs node.admin_token_file: the TCP admin API only serves clients with a bearer token",
        );
    }
    if let Some(status) = &node.status {
        if node.admin_tcp == Some(status.listen) {
            p.add(
                "node.status.listen",
                "is node.admin_tcp too: the read-only listener needs its own address",
            );
        }
        // The read-only token would then also be the write token: one leak, both powers.
        if status.token_file.is_some() && status.token_file == node.admin_token_file {
            p.add(
                "node.status.token_file",
                "is node.admin_token_file: use a different, read-only token",
            );
        }
        if let Some(tls) = &status.tls {
            if !matches!(tls.min_version.as_str(), "1.2" | "1.3") {
                p.add("node.status.tls.min_version", "must be \"1.2\" or \"1.3\"");
            }
        }
    }
    if let Some(cluster) = &node.cluster {
        crate::cluster::validate(cluster, &node.id, &mut p.0);
    }
    crate::dns::validate(&node.dns, &mut p);
    p.0
}

/// Validates the cluster-wide half; an empty list means it is good.
pub fn validate_cluster(cfg: &ClusterConfig) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    if cfg.listeners.is_empty() && cfg.vip_groups.is_empty() {
        p.add(
            "listener",
            "no listener defined (and no vip_group); add at least one [[listener]]",
        );
    }
    crate::validate_vrrp::validate_groups(&mut p.0, &cfg.vip_groups);
    p.0.extend(crate::validate_http::validate_http(cfg));
    let pool_names: HashMap<&str, usize> = cfg
        .pools
        .iter()
        .enumerate()
        .map(|(i, pool)| (pool.name.as_str(), i))
        .collect();

    let mut listener_names = HashSet::new();
    let mut binds = HashSet::new();
    let mut used_pools = HashSet::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        let at = format!("listener[{i}]");
        check_name(&mut p, &format!("{at}.name"), &l.name);
        if !listener_names.insert(l.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("duplicate listener name {:?}", l.name),
            );
        }
        // TCP and HTTP listeners both need a stream socket: they cannot share an address.
        let datagram = l.protocol == Protocol::Udp;
        if !binds.insert((datagram, l.bind)) {
            let kind = if datagram { "UDP" } else { "TCP or HTTP" };
            p.add(
                format!("{at}.bind"),
                format!("{} is already used by another {kind} listener", l.bind),
            );
        }
        if l.bind.port() == 0 {
            p.add(
                format!("{at}.bind"),
                "port 0 is not a fixed address; pick a port",
            );
        }
        for route in &l.routes {
            if let Some(pool) = &route.pool {
                used_pools.insert(pool.as_str());
            }
        }
        if l.pool.is_empty() && l.protocol == Protocol::Http && !l.routes.is_empty() {
            // An HTTP listener whose routes cover everything needs no default pool.
        } else if pool_names.contains_key(l.pool.as_str()) {
            used_pools.insert(l.pool.as_str());
        } else if l.pool.is_empty() {
            p.add(
                format!("{at}.pool"),
                "missing: name the pool this listener forwards to",
            );
        } else {
            p.add(
                format!("{at}.pool"),
                format!(
                    "no pool named {:?}; define it with [[pool]] name = {:?}",
                    l.pool, l.pool
                ),
            );
        }
        if l.max_connections == 0 {
            p.add(format!("{at}.max_connections"), "must be at least 1");
        }
        if l.connect_timeout().get().is_zero() {
            p.add(format!("{at}.connect_timeout"), "must be more than 0s");
        }
        if !(1..=16).contains(&l.connect_attempts()) {
            p.add(format!("{at}.connect_attempts"), "must be between 1 and 16");
        }
        if l.idle_timeout().get().is_zero() {
            p.add(format!("{at}.idle_timeout"), "must be more than 0s");
        }
        if l.protocol != Protocol::Tcp && l.proxy_protocol != ProxyProtocol::Off {
            p.add(
                format!("{at}.proxy_protocol"),
                "the PROXY protocol is for TCP listeners only",
            );
        }
        if l.backlog() == 0 {
            p.add(format!("{at}.backlog"), "must be at least 1");
        }
        if l.ipv6_only.is_some() && !l.bind.is_ipv6() {
            p.add(
                format!("{at}.ipv6_only"),
                "applies to listeners bound to an IPv6 address (such as [::]:80); remove it",
            );
        }
        if !(1..=128).contains(&l.client_ipv6_prefix()) {
            p.add(
                format!("{at}.client_ipv6_prefix"),
                "must be between 1 and 128 (64: one client per /64, the usual IPv6 subnet)",
            );
        }
    }

    let mut seen_pools = HashSet::new();
    for (i, pool) in cfg.pools.iter().enumerate() {
        let at = format!("pool[{i}]");
        check_name(&mut p, &format!("{at}.name"), &pool.name);
        if !seen_pools.insert(pool.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("duplicate pool name {:?}", pool.name),
            );
        }
        if !used_pools.contains(pool.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!(
                    "pool {:?} is not used by any listener; remove it or point a listener at it",
                    pool.name
                ),
            );
        }
        validate_pool(&mut p, &at, pool);
    }
    p.0
}

fn validate_pool(p: &mut Problems, at: &str, pool: &Pool) {
    if !is_prime(pool.maglev_table_size) || pool.maglev_table_size > MAX_MAGLEV_TABLE {
        p.add(
            format!("{at}.maglev_table_size"),
            format!(
                "{} is not a prime up to {MAX_MAGLEV_TABLE}; use a prime such as 65537 or 5003",
                pool.maglev_table_size
            ),
        );
    } else if matches!(pool.algorithm, Algorithm::SourceIpHash | Algorithm::Hash)
        && (pool.maglev_table_size as usize) < pool.backends.len() * 10
    {
        p.add(
            format!("{at}.maglev_table_size"),
            "must be at least 10 times the number of backends for an even spread",
        );
    }
    if !(0.0..=1.0).contains(&pool.panic_threshold) {
        p.add(
            format!("{at}.panic_threshold"),
            "must be a share between 0.0 and 1.0 (0.5 = balance over all backends when fewer than half are up)",
        );
    }
    if pool.passive.consecutive_failures > 0 && pool.passive.eject_for.get().is_zero() {
        p.add(format!("{at}.passive.eject_for"), "must be more than 0s");
    }
    if let Some(check) = &pool.health_check {
        validate_check(p, &format!("{at}.health_check"), check);
    }
    if pool.backends.is_empty() {
        p.add(
            format!("{at}.backend"),
            "pool has no backend; add a [[pool.backend]]",
        );
        return;
    }
    let mut ids = HashSet::new();
    let mut addresses = HashSet::new();
    for (j, b) in pool.backends.iter().enumerate() {
        let bat = format!("{at}.backend[{j}]");
        check_name(p, &format!("{bat}.id"), &b.id);
        if !ids.insert(b.id.as_str()) {
            p.add(
                format!("{bat}.id"),
                format!("duplicate backend id {:?} in pool {:?}", b.id, pool.name),
            );
        }
        if !addresses.insert(&b.address) {
            p.add(
                format!("{bat}.address"),
                format!("{} is listed twice in pool {:?}", b.address, pool.name),
            );
        }
        if b.address.port() == Some(0) {
            p.add(format!("{bat}.address"), "port 0 cannot be connected to");
        }
        if b.weight > 10_000 {
            p.add(format!("{bat}.weight"), "must be at most 10000");
        }
    }
    if pool.backends.iter().all(|b| b.weight == 0) {
        p.add(
            format!("{at}.backend"),
            "every backend has weight 0, so nothing could ever be chosen; give at least one a weight",
        );
    }
}

fn validate_check(p: &mut Problems, at: &str, c: &HealthCheck) {
    if c.interval.get().is_zero() {
        p.add(format!("{at}.interval"), "must be more than 0s");
    }
    if c.timeout.get().is_zero() {
        p.add(format!("{at}.timeout"), "must be more than 0s");
    } else if c.timeout > c.interval {
        p.add(
            format!("{at}.timeout"),
            format!(
                "{} is longer than the interval {}; checks would overlap",
                c.timeout, c.interval
            ),
        );
    }
    if c.rise == 0 || c.rise > 100 {
        p.add(format!("{at}.rise"), "must be between 1 and 100");
    }
    if c.fall == 0 || c.fall > 100 {
        p.add(format!("{at}.fall"), "must be between 1 and 100");
    }
    if c.port == Some(0) {
        p.add(format!("{at}.port"), "port 0 cannot be connected to");
    }
    if matches!(c.kind, CheckKind::Http | CheckKind::Https) {
        if !c.path.starts_with('/')
            || c.path
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            p.add(
                format!("{at}.path"),
                "must start with / and contain no spaces",
            );
        }
        if parse_status_range(&c.expect_status).is_none() {
            p.add(
                format!("{at}.expect_status"),
                format!(
                    "{:?} is not a status or range such as \"200\" or \"200-399\"",
                    c.expect_status
                ),
            );
        }
        if let Some(host) = &c.host {
            if host.is_empty() || host.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                p.add(
                    format!("{at}.host"),
                    "must be a non-empty host name without spaces",
                );
            }
        }
    }
}

/// Names and ids appear in logs, metrics labels and URLs: keep them plain.
pub(crate) fn check_name(p: &mut Problems, at: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        p.add(
            at,
            format!("{name:?} is not a valid name: use 1 to 64 of A-Z a-z 0-9 - _ ."),
        );
    }
}

pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while (d as u64) * (d as u64) <= n as u64 {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

//! What the read endpoints return: plain serde views built from the running planes at
//! request time (never cached), so `tandemctl` shows what traffic sees right now.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};
use tandem_balance::{AdminState, Health};
use tandem_config::Protocol;
use tandem_proxy::{BackendStatus, SharedPool};

use super::error::ApiError;
use crate::Node;

#[derive(Serialize)]
pub struct StatusView {
    /// tandemd's crate version.
    pub version: &'static str,
    pub node: String,
    pub uptime_seconds: u64,
    pub config_version: u64,
    pub listeners: Vec<ListenerView>,
    pub pools: Vec<PoolView>,
    /// ACME certificates (`[listener.tls.acme]`), as this node sees them.
    pub acme: Vec<AcmeView>,
}

/// One ACME certificate. Times are unix seconds.
#[derive(Serialize)]
pub struct AcmeView {
    /// Its name: the domains, sorted, comma-separated.
    pub certificate: String,
    pub domains: Vec<String>,
    pub directory: String,
    /// ordering | failed | valid | expired | waiting (no certificate yet; in a cluster the
    /// Raft leader orders).
    pub state: &'static str,
    pub not_after: Option<u64>,
    /// When it is renewed.
    pub renew_at: Option<u64>,
    /// When the last order started on this node.
    pub last_order: Option<u64>,
    /// The error of the last failed order while the failure streak lasts, and the next try.
    pub last_error: Option<String>,
    pub retry_at: Option<u64>,
    pub failed_orders: u64,
}

#[derive(Serialize)]
pub struct ListenerView {
    pub name: String,
    pub protocol: &'static str,
    pub address: String,
    pub pool: String,
    pub tls: bool,
    /// Monotonic counters (and `active`, a gauge) by name; `top` computes rates from them.
    pub counters: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
pub struct PoolsView {
    pub pools: Vec<PoolView>,
}

#[derive(Serialize)]
pub struct PoolView {
    pub name: String,
    pub algorithm: serde_json::Value,
    pub in_panic: bool,
    pub healthy_share: f64,
    pub backends: Vec<BackendView>,
}

#[derive(Serialize)]
pub struct BackendView {
    pub id: String,
    pub address: String,
    /// The DNS name (host:port or SRV name) this backend was resolved from; absent for a
    /// backend written as an IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// enabled | drain | disabled (operator intent).
    pub state: &'static str,
    /// up | down (health checks).
    pub health: &'static str,
    pub weight: u32,
    pub max_connections: u32,
    pub active: u32,
    pub total_picks: u64,
    pub ejected: bool,
    /// Draining and no connection left: safe to take the backend away.
    pub drained: bool,
    /// Smoothed observed latency (connect time for TCP, response time for HTTP).
    pub latency_ms: Option<f64>,
    pub health_history: Vec<HealthEventView>,
}

#[derive(Serialize)]
pub struct HealthEventView {
    /// Unix time in seconds.
    pub at: u64,
    pub health: &'static str,
    pub reason: String,
}

#[derive(Serialize)]
pub struct VrrpView {
    pub instances: Vec<VrrpInstanceView>,
}

#[derive(Serialize)]
pub struct VrrpInstanceView {
    pub group: String,
    pub vrid: u8,
    pub state: String,
    pub priority: u8,
    pub effective_priority: u8,
    pub master: Option<String>,
    pub holds_addresses: bool,
    /// In Fault because no lease can be had here (docs/cluster.md).
    pub fenced_out: bool,
    /// Milliseconds the kernel fence still lets the VIPs through (None: no kernel fence
    /// permit now).
    pub kernel_fence_left_ms: Option<u64>,
    pub last_transition: Option<TransitionView>,
}

#[derive(Serialize)]
pub struct TransitionView {
    pub from: String,
    pub to: String,
    pub reason: String,
    pub at: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn health_str(h: Health) -> &'static str {
    match h {
        Health::Up => "up",
        Health::Down => "down",
    }
}

pub fn status(node: &Node) -> StatusView {
    let config = node.config();
    let pool_of = |name: &str| {
        config
            .cluster
            .listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.pool.clone())
            .unwrap_or_default()
    };
    let mut listeners = Vec::new();
    for l in node.plane().listeners() {
        let s = l.stats.snapshot();
        let counters = BTreeMap::from([
            ("accepted", s.accepted),
            ("active", s.active),
            ("over_limit", s.over_limit),
            ("no_backend", s.no_backend),
            ("connect_failures", s.connect_failures),
            ("idle_timeouts", s.idle_timeouts),
            ("bytes_in", s.bytes_in),
            ("bytes_out", s.bytes_out),
            ("dropped_datagrams", s.dropped_datagrams),
        ]);
        listeners.push(ListenerView {
            protocol: if l.protocol == Protocol::Udp {
                "udp"
            } else {
                "tcp"
            },
            address: l.local_addr.to_string(),
            pool: l.pool.clone(),
            tls: false,
            counters,
            name: l.name,
        });
    }
    for l in node.http().listeners() {
        let s = &l.stats;
        let counters = BTreeMap::from([
            ("connections", s.connections.load(Relaxed)),
            ("active", s.active_connections.load(Relaxed)),
            ("idle", s.idle_connections.load(Relaxed)),
            ("requests", s.requests.load(Relaxed)),
            ("responses_2xx", s.responses_2xx.load(Relaxed)),
            ("responses_3xx", s.responses_3xx.load(Relaxed)),
            ("responses_4xx", s.responses_4xx.load(Relaxed)),
            ("responses_5xx", s.responses_5xx.load(Relaxed)),
            ("retries", s.retries.load(Relaxed)),
            ("rate_limited", s.rate_limited.load(Relaxed)),
            ("denied", s.denied.load(Relaxed)),
            ("over_client_limit", s.over_client_limit.load(Relaxed)),
            ("client_body_errors", s.client_body_errors.load(Relaxed)),
            ("bad_host", s.bad_host.load(Relaxed)),
            ("send_timeouts", s.send_timeouts.load(Relaxed)),
            ("h2_window_stalls", s.h2_window_stalls.load(Relaxed)),
            ("over_limit", s.over_limit.load(Relaxed)),
            (
                "tls_handshake_failures",
                s.tls_handshake_failures.load(Relaxed),
            ),
        ]);
        listeners.push(ListenerView {
            protocol: "http",
            address: l.local_addr.to_string(),
            pool: pool_of(&l.name),
            tls: l.tls,
            counters,
            name: l.name,
        });
    }
    StatusView {
        version: env!("CARGO_PKG_VERSION"),
        node: config.node.id.clone(),
        uptime_seconds: node.uptime().as_secs(),
        config_version: config.cluster.version,
        listeners,
        pools: pools(node).pools,
        acme: acme(node, &config.cluster),
    }
}

fn acme(node: &Node, config: &tandem_config::ClusterConfig) -> Vec<AcmeView> {
    let tracked = node.acme().snapshot();
    let now = SystemTime::now();
    crate::acme::wanted(config)
        .into_iter()
        .map(|(name, spec)| {
            let s = tracked.get(&name).cloned().unwrap_or_default();
            AcmeView {
                state: s.state(now),
                domains: spec.domains,
                directory: spec.directory,
                not_after: s.not_after_secs,
                renew_at: s.renew_at_secs,
                last_order: s.last_order_secs,
                last_error: if s.failing > 0 { s.last_error } else { None },
                retry_at: if s.failing > 0 { s.retry_at_secs } else { None },
                failed_orders: s.failed_orders,
                certificate: name,
            }
        })
        .collect()
}

/// Every pool, in config order (stable output for people and diffs).
pub fn pools(node: &Node) -> PoolsView {
    let pools = node
        .config()
        .cluster
        .pools
        .iter()
        .filter_map(|p| node.plane().pool(&p.name))
        .map(|shared| pool_view(&shared))
        .collect();
    PoolsView { pools }
}

pub fn find_pool(node: &Node, name: &str) -> Result<std::sync::Arc<SharedPool>, ApiError> {
    node.plane()
        .pool(name)
        .ok_or_else(|| ApiError::not_found(format!("no pool named {name:?}")))
}

pub fn pool_view(shared: &SharedPool) -> PoolView {
    PoolView {
        name: shared.name().to_string(),
        algorithm: serde_json::to_value(shared.config().algorithm)
            .unwrap_or(serde_json::Value::Null),
        in_panic: shared.in_panic(),
        healthy_share: shared.healthy_share(),
        backends: shared
            .snapshot()
            .into_iter()
            .map(|b| backend_view(shared, b))
            .collect(),
    }
}

/// One backend by id; for a backend written as a DNS name, its first resolved address
/// (`<id>@<address>`).
pub fn backend(shared: &SharedPool, id: &str) -> Result<BackendView, ApiError> {
    let resolved = format!("{id}@");
    let snapshot = shared.snapshot();
    let exact = snapshot.iter().position(|b| b.id == id);
    let found = exact.or_else(|| {
        snapshot
            .iter()
            .position(|b| b.dns_name.is_some() && b.id.starts_with(&resolved))
    });
    found
        .map(|i| snapshot[i].clone())
        .map(|b| backend_view(shared, b))
        .ok_or_else(|| {
            ApiError::not_found(format!("pool {:?} has no backend {id:?}", shared.name()))
        })
}

fn backend_view(shared: &SharedPool, b: BackendStatus) -> BackendView {
    let state = match b.admin {
        AdminState::Enabled => "enabled",
        AdminState::Draining => "drain",
        AdminState::Disabled => "disabled",
    };
    BackendView {
        health_history: shared
            .health_history(&b.id)
            .into_iter()
            .map(|e| HealthEventView {
                at: unix(e.at),
                health: health_str(e.health),
                reason: e.reason,
            })
            .collect(),
        address: b.address.to_string(),
        dns_name: b.dns_name,
        state,
        health: health_str(b.health),
        weight: b.weight,
        max_connections: b.max_connections,
        active: b.active,
        total_picks: b.total_picks,
        ejected: b.ejected,
        drained: b.admin == AdminState::Draining && b.active == 0,
        latency_ms: b.latency.map(|d| d.as_secs_f64() * 1000.0),
        id: b.id,
    }
}

pub async fn vrrp(node: &Node) -> VrrpView {
    let instances = node
        .vrrp_status()
        .await
        .into_iter()
        .map(|s| VrrpInstanceView {
            group: s.group,
            vrid: s.vrid,
            state: s.state.to_string(),
            priority: s.base_priority,
            effective_priority: s.effective_priority,
            master: s.master.map(|ip| ip.to_string()),
            holds_addresses: s.holds_addresses,
            fenced_out: s.fenced_out,
            kernel_fence_left_ms: s.kernel_fence_until.map(|t| {
                t.saturating_duration_since(tokio::time::Instant::now())
                    .as_millis() as u64
            }),
            last_transition: s
                .last_transition
                .map(|(from, to, reason, at)| TransitionView {
                    from: from.to_string(),
                    to: to.to_string(),
                    reason,
                    at: unix(at),
                }),
        })
        .collect();
    VrrpView { instances }
}

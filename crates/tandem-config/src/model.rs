//! The configuration model. Field names are the TOML keys; every default lives here.
//!
//! The file has two halves. `[node]` is local to one machine (its id, directories, admin
//! socket). Everything else (listeners, pools, backends, checks) is cluster-wide: it is a
//! plain serde value with a `version`, so that a later Raft layer can replicate it as is.

use crate::cluster::NodeCluster;
use crate::duration::HumanDuration;
use crate::http::{
    AccessRuleConfig, HeaderRules, Hsts, HttpSettings, ListenerTls, PoolHttp, Route,
};
use crate::vrrp::{NodeVrrp, VipGroup};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// One whole configuration file: this node's settings plus the cluster-wide part.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub node: NodeConfig,
    pub cluster: ClusterConfig,
}

/// Settings that belong to one machine only and are never replicated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Stable name of this node; shows in logs and, later, in the cluster.
    #[serde(default = "default_node_id")]
    pub id: String,
    /// Where state lives: the Raft store (raft.redb) of a cluster member.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The admin API's Unix socket ("" = none). Access is by file permission (0660).
    #[serde(default = "default_admin_socket")]
    pub admin_socket: PathBuf,
    /// The admin API on TCP too (off by default): for remote tooling, with a bearer token.
    #[serde(default)]
    pub admin_tcp: Option<SocketAddr>,
    /// The bearer token TCP admin clients must send; required with `admin_tcp`.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// On SIGTERM: how long in-flight connections may run before the process exits anyway.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: HumanDuration,
    /// The read-only observability listener (absent: none): the status page, /status
    /// and /metrics over HTTP, separate from the admin API.
    #[serde(default)]
    pub status: Option<StatusListener>,
    /// This node's VRRP speaker (absent: no VIP on this node).
    #[serde(default)]
    pub vrrp: Option<NodeVrrp>,
    /// Membership of a tandem cluster (absent: standalone).
    #[serde(default)]
    pub cluster: Option<NodeCluster>,
    /// How backends written as DNS names are resolved.
    #[serde(default)]
    pub dns: crate::dns::NodeDns,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: default_node_id(),
            data_dir: default_data_dir(),
            admin_socket: default_admin_socket(),
            admin_tcp: None,
            admin_token_file: None,
            drain_timeout: default_drain_timeout(),
            status: None,
            vrrp: None,
            cluster: None,
            dns: Default::default(),
        }
    }
}

/// `[node.status]`: where the read-only status page, `/status` (JSON) and `/metrics`
/// listen. It can change nothing, so it may face a monitoring network; the admin API
/// (writes) stays on its own socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusListener {
    /// Address and port, e.g. "127.0.0.1:8404" or "0.0.0.0:8404".
    pub listen: SocketAddr,
    /// A read-only token clients must send (`Authorization: Bearer <token>`, or
    /// `?token=<token>` for a browser); absent: no token. Read again on every request.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `[node.status.tls]`: serve HTTPS instead of HTTP (absent: plain HTTP).
    #[serde(default)]
    pub tls: Option<StatusTls>,
}

/// TLS on the status listener: one certificate, read at start and again whenever its
/// files change (a renewed certificate needs no restart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// "1.2" (default) or "1.3", as `[listener.tls] min_version`.
    #[serde(default = "crate::http::default_min_tls")]
    pub min_version: String,
}

/// The replicated half: what traffic goes where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Bumped by the operator (or by Raft, later) on every change; shown in status.
    #[serde(default = "default_version")]
    pub version: u64,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
    #[serde(default, rename = "pool")]
    pub pools: Vec<Pool>,
    #[serde(default, rename = "vip_group")]
    pub vip_groups: Vec<VipGroup>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    /// HTTP/1.1 and HTTP/2 (h2c, or h2 by ALPN with `[listener.tls]`).
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    #[default]
    Off,
    V1,
    V2,
}

/// A socket that accepts client traffic and forwards it to one pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    #[serde(default)]
    pub protocol: Protocol,
    pub bind: SocketAddr,
    /// Where traffic goes; for HTTP listeners, the pool of requests no route claims
    /// (may be left out when routes cover everything: unmatched requests get 404).
    #[serde(default)]
    pub pool: String,
    /// TCP and HTTP: concurrent client connections; excess ones are accepted and closed at
    /// once, and counted. UDP: size of the flow table; packets of new flows beyond it are
    /// dropped and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// TCP only: time allowed to connect to one backend (default 3s). Absent unless
    /// written, so a key that does not apply to the protocol can be refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<HumanDuration>,
    /// TCP only: backends tried for one client connection before giving up (1 = no
    /// retry; default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_attempts: Option<u32>,
    /// Close a connection (TCP) or forget a flow (UDP) after this long with no data either way.
    /// Default: 5m for TCP, 30s for UDP. HTTP listeners use `[listener.http]` timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<HumanDuration>,
    /// PROXY protocol header sent to the backend before any client byte (TCP only).
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// listen(2) backlog of TCP and HTTP listeners (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    /// HTTP listeners: TLS termination (HTTPS).
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// HTTP listeners: limits, timeouts, forwarding headers, access log.
    #[serde(default)]
    pub http: Option<HttpSettings>,
    /// HTTP listeners: routes, first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    /// HTTP listeners: access rules, evaluated before routing.
    #[serde(default, rename = "rule")]
    pub rules: Vec<AccessRuleConfig>,
    /// HTTP listeners: header rules for every request and response, before the route's.
    #[serde(default, skip_serializing_if = "HeaderRules::is_empty")]
    pub headers: HeaderRules,
    /// HTTPS listeners: Strict-Transport-Security on every response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<Hsts>,
    /// Listeners bound to an IPv6 address: IPv6 clients only (default), or false for
    /// dual-stack (`[::]` then also takes IPv4 clients, handled as IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_only: Option<bool>,
    /// IPv6 clients are one client per prefix of this length (default 64) for per-client
    /// connection limits, rate limits and source-IP hashing: a host typically owns a whole
    /// /64 and could otherwise dodge a limit by rotating its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ipv6_prefix: Option<u8>,
    /// HTTP listeners: response compression (off unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<crate::compression::Compression>,
}

impl Listener {
    pub fn ipv6_only(&self) -> bool {
        self.ipv6_only.unwrap_or(true)
    }

    pub fn client_ipv6_prefix(&self) -> u8 {
        self.client_ipv6_prefix.unwrap_or(64)
    }

    pub fn connect_timeout(&self) -> HumanDuration {
        self.connect_timeout
            .unwrap_or_else(|| HumanDuration::from_secs(3))
    }

    pub fn connect_attempts(&self) -> u32 {
        self.connect_attempts.unwrap_or(3)
    }

    pub fn backlog(&self) -> u32 {
        self.backlog.unwrap_or(1024)
    }

    /// Keys written in this listener that its protocol does not use, with what to use
    /// instead. check-config refuses them: a key accepted and ignored misleads.
    pub fn inapplicable_keys(&self) -> Vec<(&'static str, &'static str)> {
        let mut keys = Vec::new();
        let tcp_only = "only for protocol = \"tcp\" listeners";
        match self.protocol {
            Protocol::Tcp => {}
            Protocol::Udp => {
                if self.connect_timeout.is_some() {
                    keys.push(("connect_timeout", tcp_only));
                }
                if self.connect_attempts.is_some() {
                    keys.push(("connect_attempts", "a UDP flow gets one backend; remove it"));
                }
                if self.backlog.is_some() {
                    keys.push(("backlog", "UDP sockets have no listen backlog; remove it"));
                }
            }
            Protocol::Http => {
                if self.connect_timeout.is_some() {
                    keys.push((
                        "connect_timeout",
                        "not used by http listeners; set [pool.http] connect_timeout",
                    ));
                }
                if self.connect_attempts.is_some() {
                    keys.push((
                        "connect_attempts",
                        "not used by http listeners; set [pool.http.retry]",
                    ));
                }
                if self.idle_timeout.is_some() {
                    keys.push((
                        "idle_timeout",
                        "not used by http listeners; set [listener.http] keepalive_timeout",
                    ));
                }
            }
        }
        keys
    }

    /// Drops the keys [`Listener::inapplicable_keys`] names (the replicated log's reading
    /// of configs older versions wrote), so the running config carries none of them.
    pub fn clear_inapplicable(&mut self) {
        for (key, _) in self.inapplicable_keys() {
            match key {
                "connect_timeout" => self.connect_timeout = None,
                "connect_attempts" => self.connect_attempts = None,
                "backlog" => self.backlog = None,
                "idle_timeout" => self.idle_timeout = None,
                _ => {}
            }
        }
    }

    pub fn idle_timeout(&self) -> HumanDuration {
        self.idle_timeout.unwrap_or(match self.protocol {
            Protocol::Tcp | Protocol::Http => HumanDuration::from_secs(300),
            Protocol::Udp => HumanDuration::from_secs(30),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    WeightedLeastConnections,
    LeastResponseTime,
    PowerOfTwoChoices,
    SourceIpHash,
    /// Maglev on a request key (`[pool.http] hash_key`: header, cookie or URI).
    Hash,
    Random,
}

/// A set of interchangeable backends and how to choose among them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Maglev lookup table size for hash algorithms; must be prime.
    #[serde(default = "default_maglev_table_size")]
    pub maglev_table_size: u32,
    /// When fewer than this share of backends are healthy, balance over all of them.
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold: f64,
    /// A recovered backend's weight ramps up over this time ("0s" = off).
    #[serde(default)]
    pub slow_start: HumanDuration,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub passive: PassiveCheck,
    /// HTTP side of the pool, for pools behind HTTP listeners.
    #[serde(default)]
    pub http: Option<PoolHttp>,
    #[serde(rename = "backend")]
    pub backends: Vec<Backend>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    #[default]
    Tcp,
    Http,
    /// HTTP over TLS, with the pool's `[pool.http.tls]` settings.
    Https,
}

/// An active check run against every backend of a pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default)]
    pub kind: CheckKind,
    #[serde(default = "default_check_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_check_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive passes that bring a down backend up.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Check this port instead of the backend's own.
    #[serde(default)]
    pub port: Option<u16>,
    /// HTTP: the path requested with GET.
    #[serde(default = "default_check_path")]
    pub path: String,
    /// HTTP: Host header (default: the backend address).
    #[serde(default)]
    pub host: Option<String>,
    /// HTTP: accepted status codes, "200" or "200-399".
    #[serde(default = "default_expect_status")]
    pub expect_status: String,
    /// HTTP: the body must contain this text.
    #[serde(default)]
    pub expect_body: Option<String>,
}

/// Passive outlier detection from real traffic: consecutive connect failures eject a backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveCheck {
    /// Consecutive failures that eject a backend (0 = off).
    #[serde(default = "default_passive_failures")]
    pub consecutive_failures: u32,
    #[serde(default = "default_eject_for")]
    pub eject_for: HumanDuration,
}

impl Default for PassiveCheck {
    fn default() -> Self {
        PassiveCheck {
            consecutive_failures: default_passive_failures(),
            eject_for: default_eject_for(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Takes new connections.
    #[default]
    Enabled,
    /// Takes nothing new; existing connections finish.
    Drain,
    /// Takes nothing new (existing connections also finish; the difference is intent).
    Disabled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Stable id, unique in the pool; survives reloads and keys persistence.
    pub id: String,
    /// IP:port, host:port (A/AAAA records) or an SRV name (`_http._tcp.example.com`).
    pub address: crate::BackendAddress,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// 0 = unlimited.
    #[serde(default)]
    pub max_connections: u32,
    #[serde(default)]
    pub state: BackendState,
    /// Set by the daemon on the backends it made from a DNS name: that name (never
    /// written in files; `address` is then the resolved IP).
    #[serde(skip)]
    pub resolved_from: Option<String>,
}

impl Pool {
    /// The accepted status range of an HTTP check (validated beforehand).
    pub fn expect_status_range(check: &HealthCheck) -> Option<(u16, u16)> {
        parse_status_range(&check.expect_status)
    }
}

/// "200" → (200, 200); "200-399" → (200, 399).
pub fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let v = text.trim().parse().ok()?;
            (v, v)
        }
    };
    ((100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi).then_some((lo, hi))
}

fn default_node_id() -> String {
    "node1".into()
}
fn default_data_dir() -> PathBuf {
    "/var/lib/tandem".into()
}
fn default_admin_socket() -> PathBuf {
    "/run/tandem/admin.sock".into()
}
fn default_drain_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_version() -> u64 {
    1
}
fn default_max_connections() -> u32 {
    10_000
}
fn default_maglev_table_size() -> u32 {
    65_537
}
fn default_panic_threshold() -> f64 {
    0.5
}
fn default_check_interval() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_check_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}
fn default_check_path() -> String {
    "/".into()
}
fn default_expect_status() -> String {
    "200-399".into()
}
fn default_passive_failures() -> u32 {
    5
}
fn default_eject_for() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_weight() -> u32 {
    1
}

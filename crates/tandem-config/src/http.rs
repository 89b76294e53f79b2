//! L7 settings: TLS on listeners, HTTP limits and timeouts, routes, access rules, and the
//! HTTP side of pools (upstream protocol, TLS to backends, persistence, retries, outlier
//! detection). All cluster-wide.

use crate::duration::HumanDuration;
pub use crate::header_rules::{HeaderRules, Hsts, Rewrite};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// TLS termination on a listener (`protocol = "http"` with `[listener.tls]` = HTTPS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificates; chosen by SNI from their names; the first is the default (after an
    /// ACME certificate, which comes first when `acme` is set).
    #[serde(default)]
    pub certificates: Vec<CertificateFiles>,
    /// A certificate obtained from an ACME server (and renewed) instead of, or beside,
    /// the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<crate::acme::Acme>,
    /// "1.2" (default) or "1.3".
    #[serde(default = "default_min_tls")]
    pub min_version: String,
    /// ALPN protocols offered, in order of preference.
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// HTTP behaviour of a listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Time allowed to receive a request's headers (slowloris protection).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: HumanDuration,
    /// An idle keep-alive connection is closed after this long.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: HumanDuration,
    /// The whole exchange (request in, response headers back) must fit in this.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// A client that accepts no response bytes for this long (a stalled reader) has its
    /// connection closed: it would otherwise hold a backend connection and buffers.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: HumanDuration,
    /// Largest request head (request line + headers) in bytes; larger gets 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u32,
    /// Most request headers; more gets 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: u32,
    /// Largest request body in bytes; larger gets 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Concurrent connections from one client IP (0 = unlimited).
    #[serde(default)]
    pub max_connections_per_client: u32,
    /// Requests per second per client IP, token bucket (absent = no limit).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub forwarded: ForwardedHeaders,
    /// One line per request through tracing target `access`.
    #[serde(default = "default_true")]
    pub access_log: bool,
    /// "text", "json" or "combined" (NCSA).
    #[serde(default = "default_log_format")]
    pub access_log_format: String,
    /// Worker threads serving this listener, each with its own SO_REUSEPORT socket, event
    /// loop and backend connections (absent = one per CPU the process may run on).
    #[serde(default)]
    pub workers: Option<u32>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout: default_header_timeout(),
            keepalive_timeout: default_keepalive_timeout(),
            request_timeout: default_request_timeout(),
            send_timeout: default_send_timeout(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            max_body_bytes: default_max_body_bytes(),
            max_connections_per_client: 0,
            rate_limit: None,
            forwarded: ForwardedHeaders::default(),
            access_log: true,
            access_log_format: default_log_format(),
            workers: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests_per_second: f64,
    pub burst: u32,
    /// Clients tracked at once; the least recently seen is forgotten beyond this.
    #[serde(default = "default_rate_clients")]
    pub max_clients: u32,
}

/// Which forwarding headers tandem adds to requests sent to backends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedHeaders {
    /// Append the client address to X-Forwarded-For.
    #[serde(default = "default_true")]
    pub x_forwarded_for: bool,
    /// Set X-Forwarded-Proto to http or https.
    #[serde(default = "default_true")]
    pub x_forwarded_proto: bool,
    /// Set X-Forwarded-Host to the Host the client sent.
    #[serde(default = "default_true")]
    pub x_forwarded_host: bool,
    /// Append an RFC 7239 Forwarded element.
    #[serde(default)]
    pub forwarded: bool,
    /// Append a Via element ("1.1 tandem").
    #[serde(default = "default_true")]
    pub via: bool,
}

impl Default for ForwardedHeaders {
    fn default() -> Self {
        ForwardedHeaders {
            x_forwarded_for: true,
            x_forwarded_proto: true,
            x_forwarded_host: true,
            forwarded: false,
            via: true,
        }
    }
}

/// A routing rule of an HTTP listener: the first route whose conditions all hold decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Host names, exact or "*.example.com"; any of them (empty = any host).
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Header that must have this exact value.
    #[serde(default)]
    pub header: Option<HeaderMatch>,
    /// Methods (any of; empty = any).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Send to this pool...
    #[serde(default)]
    pub pool: Option<String>,
    /// ...or redirect ("https://{host}{uri}": {host} and {uri} are filled in)...
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// ...or answer directly.
    #[serde(default)]
    pub respond: Option<FixedResponse>,
    /// Header rules of this route, after the listener's (request rules: pool routes only).
    #[serde(default, skip_serializing_if = "HeaderRules::is_empty")]
    pub headers: HeaderRules,
    /// Pool routes: the path the backend sees (the route's path_prefix stripped or replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// Pool routes: response compression instead of the listener's (`enabled = false`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<crate::compression::Compression>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    pub location: String,
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedResponse {
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

/// An access rule (a small WAF, evaluated before routing). All given conditions must hold;
/// the first matching rule decides; no match allows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRuleConfig {
    /// "allow" or "deny" (deny answers 403).
    pub action: String,
    #[serde(default)]
    pub client_cidrs: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path_regex: Option<String>,
    #[serde(default)]
    pub header: Option<HeaderRegex>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRegex {
    pub name: String,
    pub regex: String,
}

/// The HTTP side of a pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolHttp {
    /// "http1" (default) or "http2" (prior knowledge; over TLS by ALPN). gRPC needs http2.
    #[serde(default = "default_upstream_protocol")]
    pub protocol: String,
    /// TLS to the backends (bridging).
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time for the backend to send response headers.
    #[serde(default = "default_response_timeout")]
    pub response_timeout: HumanDuration,
    /// Idle keep-alive connections kept per backend.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_backend: u32,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Hash key for `algorithm = "hash"`: a header, a cookie, or the URI.
    #[serde(default)]
    pub hash_key: Option<HashKey>,
    #[serde(default)]
    pub sticky: Option<Sticky>,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default)]
    pub outlier: Outlier,
}

impl Default for PoolHttp {
    fn default() -> Self {
        PoolHttp {
            protocol: default_upstream_protocol(),
            tls: None,
            connect_timeout: default_connect_timeout(),
            response_timeout: default_response_timeout(),
            max_idle_per_backend: default_max_idle(),
            idle_timeout: default_idle_timeout(),
            hash_key: None,
            sticky: None,
            retry: Retry::default(),
            outlier: Outlier::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM bundle of trusted CAs (absent: the system's roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// SNI and verified name (default: the backend's IP).
    #[serde(default)]
    pub server_name: Option<String>,
    /// false accepts any certificate: for tests only, logged loudly.
    #[serde(default = "default_true")]
    pub verify: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum HashKey {
    Header(String),
    Cookie(String),
    Uri(bool),
}

/// Session persistence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum Sticky {
    /// A cookie naming the backend (no server-side table; works on every node).
    Cookie {
        #[serde(default = "default_cookie_name")]
        name: String,
        /// "strict", "lax" or "none".
        #[serde(default)]
        same_site: Option<String>,
        #[serde(default)]
        max_age: Option<HumanDuration>,
    },
    /// A table of client IP → backend with expiry.
    SourceIp {
        #[serde(default = "default_sticky_ttl")]
        ttl: HumanDuration,
        #[serde(default = "default_sticky_entries")]
        max_entries: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Extra tries on another backend (0 = none). Only idempotent methods are retried, and
    /// never once the backend has begun to send the response body.
    #[serde(default = "default_retry_attempts")]
    pub attempts: u32,
    /// Response statuses that are retried like a connect failure.
    #[serde(default)]
    pub on_status: Vec<u16>,
    /// Retries may add at most this share of requests (Linkerd's budget), in percent.
    #[serde(default = "default_budget_percent")]
    pub budget_percent: u32,
    /// ...plus this many retries per second regardless of traffic.
    #[serde(default = "default_min_retries")]
    pub min_per_second: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: default_retry_attempts(),
            on_status: Vec::new(),
            budget_percent: default_budget_percent(),
            min_per_second: default_min_retries(),
        }
    }
}

/// Passive outlier detection from responses: consecutive 5xx or timeouts eject a backend
/// for a growing time, never more than a share of the pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    /// Consecutive 5xx responses or timeouts that eject (0 = off).
    #[serde(default = "default_consecutive_5xx")]
    pub consecutive_5xx: u32,
    #[serde(default = "default_base_ejection")]
    pub base_ejection: HumanDuration,
    #[serde(default = "default_max_ejection")]
    pub max_ejection: HumanDuration,
    #[serde(default = "default_max_ejected_share")]
    pub max_ejected_share: f64,
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_5xx: default_consecutive_5xx(),
            base_ejection: default_base_ejection(),
            max_ejection: default_max_ejection(),
            max_ejected_share: default_max_ejected_share(),
        }
    }
}

fn default_true() -> bool {
    true
}
pub(crate) fn default_min_tls() -> String {
    "1.2".into()
}
fn default_alpn() -> Vec<String> {
    vec!["h2".into(), "http/1.1".into()]
}
fn default_header_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_keepalive_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_send_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_max_header_bytes() -> u32 {
    16 * 1024
}
fn default_max_headers() -> u32 {
    100
}
fn default_max_body_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_rate_clients() -> u32 {
    100_000
}
fn default_log_format() -> String {
    "text".into()
}
fn default_redirect_status() -> u16 {
    301
}
fn default_content_type() -> String {
    "text/plain; charset=utf-8".into()
}
fn default_upstream_protocol() -> String {
    "http1".into()
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(3)
}
fn default_response_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_max_idle() -> u32 {
    64
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration::from_secs(90)
}
fn default_cookie_name() -> String {
    "TANDEM_BACKEND".into()
}
fn default_sticky_ttl() -> HumanDuration {
    HumanDuration::from_secs(1800)
}
fn default_sticky_entries() -> u32 {
    100_000
}
fn default_retry_attempts() -> u32 {
    1
}
fn default_budget_percent() -> u32 {
    20
}
fn default_min_retries() -> u32 {
    10
}
fn default_consecutive_5xx() -> u32 {
    5
}
fn default_base_ejection() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_max_ejection() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_max_ejected_share() -> f64 {
    0.5
}

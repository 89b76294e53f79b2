//! The compiled form of the HTTP config: what a request needs, resolved once at start
//! (and, later, at reload): route tables, rules, limiters, and per-pool upstream clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tandem_config::http::{HashKey, HttpSettings, PoolHttp, Route, Sticky};
use tandem_config::{Algorithm, ClusterConfig, Listener};
use tandem_policy::{
    AccessRule, AccessRules, ClientConnections, HostPattern, PrefixRewrite, RateLimiter,
    RetryBudget, RouteMatch, RouteTable, RuleAction, SameSite,
};
use tandem_pool::{Clock, SharedPool};

use crate::compress::{CompressionPolicy, CompressionStats};

use crate::header_rules::HeaderRules;
use crate::sticky::SourceIpSticky;
use crate::upstream::{Upstream, UpstreamTls};

/// Where a request's key for hashing comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    None,
    SourceIp,
    Header(http::HeaderName),
    Cookie(String),
    Uri,
}

pub struct CookiePersistence {
    pub name: String,
    pub same_site: Option<SameSite>,
    pub max_age: Option<Duration>,
}

/// One pool as the HTTP plane uses it.
pub struct PoolRuntime {
    pub name: String,
    pub algorithm: Algorithm,
    pub shared: Arc<SharedPool>,
    pub upstream: Upstream,
    pub settings: PoolHttp,
    pub key: KeySource,
    pub budget: Mutex<RetryBudget>,
    /// Shared with the pool's next runtime when a reload keeps its sticky settings.
    pub source_ip_sticky: Option<Arc<SourceIpSticky>>,
    pub cookie: Option<CookiePersistence>,
}

pub enum Target {
    Pool(Arc<PoolRuntime>),
    Redirect {
        status: http::StatusCode,
        location: String,
    },
    Respond {
        status: http::StatusCode,
        content_type: String,
        body: String,
    },
    /// No route matched and there is no default pool.
    NotFound,
}

/// What a route (or the listener's default) does with a request: its target, and what it
/// changes on the way (header rules after the listener's, the path the backend sees).
pub struct RouteEntry {
    pub target: Arc<Target>,
    pub headers: HeaderRules,
    pub rewrite: Option<PrefixRewrite>,
    /// The route's own compression (None: the listener's).
    pub compression: Option<Arc<CompressionPolicy>>,
}

impl RouteEntry {
    fn plain(target: Arc<Target>) -> Self {
        RouteEntry {
            target,
            headers: HeaderRules::default(),
            rewrite: None,
            compression: None,
        }
    }
}

/// One HTTP listener's request-time state.
pub struct ListenerRuntime {
    pub name: String,
    /// Client connections open at once (the listener's `max_connections`); one more is
    /// accepted and closed at once, and counted in `over_limit`.
    pub max_connections: u64,
    pub https: bool,
    pub settings: HttpSettings,
    pub routes: RouteTable<RouteEntry>,
    pub rules: AccessRules,
    /// Header rules of every request and response, before the route's.
    pub headers: HeaderRules,
    /// Strict-Transport-Security for every response (TLS listeners only).
    pub hsts: Option<http::HeaderValue>,
    /// Response compression (None: off unless a route turns it on).
    pub compression: Option<Arc<CompressionPolicy>>,
    /// Whether this listener or any of its routes compresses (else the request path
    /// skips compression altogether).
    pub compresses: bool,
    pub rate: Option<Arc<Mutex<RateLimiter>>>,
    pub per_client: Option<Arc<Mutex<ClientConnections>>>,
    /// IPv6 clients are one client per prefix of this length (limits, hashing, stickiness).
    pub client_ipv6_prefix: u8,
    pub clock: Clock,
    /// Survives reloads: counters belong to the listener, not to one config.
    pub stats: Arc<HttpStats>,
    /// TLS termination (certificates are re-read at every reload).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The certificate set behind `tls`, swapped in place when an ACME certificate arrives.
    pub(crate) sni: Option<Arc<tandem_tls::SniResolver>>,
    /// The ACME certificate this listener serves (`Acme::name()`), with `[listener.tls.acme]`.
    pub(crate) acme_name: Option<String>,
    /// The certificates from files, served after the ACME one.
    pub(crate) file_certs: Vec<tandem_tls::LoadedCert>,
    /// Challenge answers and ACME certificates (the plane's, shared by all listeners).
    pub(crate) acme: Arc<crate::acme::AcmeStore>,
    next_request_id: AtomicU64,
    id_prefix: u32,
}

/// Counters of one HTTP listener.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: AtomicU64,
    /// 101 Switching Protocols (WebSocket upgrades).
    pub responses_1xx: AtomicU64,
    pub responses_2xx: AtomicU64,
    pub responses_3xx: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub denied: AtomicU64,
    pub connections: AtomicU64,
    /// Client connections open now (TLS handshakes included).
    pub active_connections: AtomicU64,
    /// HTTP/1.1 client connections parked between requests now: open, holding no buffers
    /// (part of `active_connections`).
    pub idle_connections: AtomicU64,
    pub over_client_limit: AtomicU64,
    /// Connections closed at once because the listener had `max_connections` open.
    pub over_limit: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Request bodies the client got wrong (bad chunk framing, cut short): 400, and never
    /// counted against the backend.
    pub client_body_errors: AtomicU64,
    /// Requests refused for their authority: two Host headers, none, an invalid one, or a
    /// target / `:authority` that disagrees with Host (400).
    pub bad_host: AtomicU64,
    /// Responses aborted because the client read nothing for `send_timeout`.
    pub send_timeouts: AtomicU64,
    /// Client-side request durations: request head received to response body end.
    pub request_seconds: crate::metered::RequestDurations,
    /// Request body bytes read from clients (forwarded requests only).
    pub body_bytes_in: AtomicU64,
    /// Response body bytes handed to client connections, counted at body end.
    pub body_bytes_out: AtomicU64,
    /// Of those, HTTP/2 connections closed because a stream got no flow-control window
    /// (the client never sent WINDOW_UPDATE) for `send_timeout`.
    pub h2_window_stalls: AtomicU64,
    /// Responses compressed and the bytes through the encoders.
    pub compression: Arc<CompressionStats>,
    /// Which of the refusals above were logged already (one warning each, then debug).
    pub(crate) logged: LoggedOnce,
}

/// One flag per kind of refused input: the first is a warning, the next ones debug lines.
#[derive(Debug, Default)]
pub(crate) struct LoggedOnce {
    pub client_body: std::sync::atomic::AtomicBool,
    pub bad_host: std::sync::atomic::AtomicBool,
    pub send_timeout: std::sync::atomic::AtomicBool,
    pub h2_window_stall: std::sync::atomic::AtomicBool,
}

/// True the first time it is called on `flag`.
pub(crate) fn first_time(flag: &std::sync::atomic::AtomicBool) -> bool {
    !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::Relaxed)
}

impl HttpStats {
    pub fn count_status(&self, status: u16) {
        let c = match status {
            100..=199 => &self.responses_1xx,
            200..=299 => &self.responses_2xx,
            300..=399 => &self.responses_3xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ListenerRuntime {
    /// A request id unique on this node: listener-random prefix and a counter, in hex
    /// (at least 8 digits each), written on the stack.
    pub fn request_id(&self) -> RequestId {
        let n = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let mut id = RequestId {
            buf: [0; 24],
            len: 0,
        };
        id.push_hex(u64::from(self.id_prefix));
        id.push_hex(n);
        id
    }

    /// A client IP as the policies see it (v4-mapped v6 as v4).
    pub fn canonical_ip(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("listener {0:?}: {1}")]
    Listener(String, String),
    #[error("pool {0:?}: {1}")]
    Pool(String, String),
}

/// Builds the HTTP side of every pool used by an HTTP listener.
/// `previous` pools whose HTTP settings did not change are kept as they are, with their
/// idle upstream connections, sticky table and retry budget; a rebuilt pool whose
/// `sticky` settings did not change keeps its source-IP sticky table (and journal).
/// `workers`: the most worker threads of any HTTP listener; each keeps its own idle
/// backend connections.
pub fn build_pools(
    config: &ClusterConfig,
    shared: &HashMap<String, Arc<SharedPool>>,
    previous: &HashMap<String, Arc<PoolRuntime>>,
    workers: usize,
) -> Result<HashMap<String, Arc<PoolRuntime>>, BuildError> {
    let mut out = HashMap::new();
    for pool in &config.pools {
        let Some(shared_pool) = shared.get(&pool.name) else {
            continue;
        };
        let settings = pool.http.clone().unwrap_or_default();
        if let Some(prev) = previous.get(&pool.name) {
            if prev.settings == settings
                && prev.algorithm == pool.algorithm
                && Arc::ptr_eq(&prev.shared, shared_pool)
                && prev.upstream.workers() >= workers
            {
                out.insert(pool.name.clone(), prev.clone());
                continue;
            }
        }
        let tls = match &settings.tls {
            None => None,
            Some(t) => {
                let alpn = if settings.protocol == "http2" {
                    vec![b"h2".to_vec()]
                } else {
                    vec![b"http/1.1".to_vec()]
                };
                let spec = tandem_tls::ClientTlsSpec {
                    ca: t.ca.clone(),
                    verify: t.verify,
                    alpn,
                    client_cert: None,
                };
                let config = tandem_tls::client_config(&spec)
                    .map_err(|e| BuildError::Pool(pool.name.clone(), e.to_string()))?;
                let server_name = match &t.server_name {
                    Some(n) => Some(
                        tandem_tls::server_name(n)
                            .map_err(|e| BuildError::Pool(pool.name.clone(), e.to_string()))?,
                    ),
                    None => None,
                };
                Some(UpstreamTls {
                    config,
                    server_name,
                })
            }
        };
        let upstream = Upstream::new(
            settings.protocol == "http2",
            tls,
            settings.connect_timeout.get(),
            settings.idle_timeout.get(),
            settings.max_idle_per_backend as usize,
            workers,
        );
        let key = match (&pool.algorithm, &settings.hash_key) {
            (Algorithm::SourceIpHash, _) => KeySource::SourceIp,
            (Algorithm::Hash, Some(HashKey::Header(h))) => {
                http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map(KeySource::Header)
                    .map_err(|e| BuildError::Pool(pool.name.clone(), e.to_string()))?
            }
            (Algorithm::Hash, Some(HashKey::Cookie(c))) => KeySource::Cookie(c.clone()),
            (Algorithm::Hash, Some(HashKey::Uri(true))) => KeySource::Uri,
            _ => KeySource::None,
        };
        let kept_sticky = previous
            .get(&pool.name)
            .filter(|prev| prev.settings.sticky == settings.sticky)
            .and_then(|prev| prev.source_ip_sticky.clone());
        let (source_ip_sticky, cookie) = match &settings.sticky {
            Some(Sticky::SourceIp { ttl, max_entries }) => (
                Some(kept_sticky.unwrap_or_else(|| {
                    Arc::new(SourceIpSticky::new(ttl.get(), *max_entries as usize))
                })),
                None,
            ),
            Some(Sticky::Cookie {
                name,
                same_site,
                max_age,
            }) => (
                None,
                Some(CookiePersistence {
                    name: name.clone(),
                    same_site: same_site.as_deref().map(|s| match s {
                        "strict" => SameSite::Strict,
                        "none" => SameSite::None,
                        _ => SameSite::Lax,
                    }),
                    max_age: max_age.map(|d| d.get()),
                }),
            ),
            None => (None, None),
        };
        let budget = RetryBudget::new(
            settings.retry.budget_percent as f64 / 100.0,
            settings.retry.min_per_second,
            Duration::from_secs(10),
        );
        out.insert(
            pool.name.clone(),
            Arc::new(PoolRuntime {
                name: pool.name.clone(),
                algorithm: pool.algorithm,
                shared: shared_pool.clone(),
                upstream,
                settings,
                key,
                budget: Mutex::new(budget),
                source_ip_sticky,
                cookie,
            }),
        );
    }
    Ok(out)
}

/// Compiles one HTTP listener's routes, rules, limits and TLS. With `previous` (a reload),
/// counters are kept, and so are the rate limiter and per-client counts when the
/// listener's HTTP settings did not change.
pub fn build_listener(
    l: &Listener,
    pools: &HashMap<String, Arc<PoolRuntime>>,
    clock: Clock,
    previous: Option<&ListenerRuntime>,
    acme: &Arc<crate::acme::AcmeStore>,
) -> Result<ListenerRuntime, BuildError> {
    let err = |m: String| BuildError::Listener(l.name.clone(), m);
    let pool_target = |name: &str| -> Result<Arc<Target>, BuildError> {
        pools
            .get(name)
            .cloned()
            .map(|p| Arc::new(Target::Pool(p)))
            .ok_or_else(|| err(format!("no pool named {name:?}")))
    };
    let mut routes = Vec::new();
    for (i, r) in l.routes.iter().enumerate() {
        let entry = RouteEntry {
            target: route_target(r, &pool_target)?,
            headers: HeaderRules::compile(&r.headers)
                .map_err(|e| err(format!("route[{i}].headers.{e}")))?,
            rewrite: match (&r.rewrite, &r.path_prefix) {
                (Some(rw), Some(prefix)) => Some(PrefixRewrite::new(prefix, rw.replacement())),
                _ => None,
            },
            compression: match &r.compression {
                Some(c) => Some(Arc::new(
                    CompressionPolicy::compile(c).map_err(|e| err(format!("route[{i}].{e}")))?,
                )),
                None => None,
            },
        };
        routes.push((route_match(r).map_err(err)?, entry));
    }
    let default = RouteEntry::plain(if l.pool.is_empty() {
        Arc::new(Target::NotFound)
    } else {
        pool_target(&l.pool)?
    });
    let headers = HeaderRules::compile(&l.headers).map_err(|e| err(format!("headers.{e}")))?;
    let hsts = match (&l.hsts, &l.tls) {
        (Some(hsts), Some(_)) => Some(
            http::HeaderValue::from_str(&hsts.header_value())
                .map_err(|e| err(format!("hsts: {e}")))?,
        ),
        _ => None,
    };
    let compression = match &l.compression {
        Some(c) => Some(Arc::new(CompressionPolicy::compile(c).map_err(err)?)),
        None => None,
    };
    let compresses = compression.is_some() || l.routes.iter().any(|r| r.compression.is_some());
    let mut rules = Vec::new();
    for r in &l.rules {
        rules.push(access_rule(r).map_err(err)?);
    }
    let settings = l.http.clone().unwrap_or_default();
    let same = previous
        .filter(|p| p.settings == settings && p.client_ipv6_prefix == l.client_ipv6_prefix());
    let rate = match same {
        Some(p) => p.rate.clone(),
        None => settings.rate_limit.as_ref().map(|r| {
            Arc::new(Mutex::new(
                RateLimiter::new(r.requests_per_second, r.burst, r.max_clients as usize)
                    .with_ipv6_prefix(l.client_ipv6_prefix()),
            ))
        }),
    };
    let per_client = match same {
        Some(p) => p.per_client.clone(),
        None => (settings.max_connections_per_client > 0).then(|| {
            Arc::new(Mutex::new(
                ClientConnections::new(settings.max_connections_per_client)
                    .with_ipv6_prefix(l.client_ipv6_prefix()),
            ))
        }),
    };
    let (tls, sni, file_certs) = match &l.tls {
        None => (None, None, Vec::new()),
        Some(t) => {
            let built = crate::tls_acceptor(t, acme).map_err(err)?;
            (Some(built.acceptor), Some(built.resolver), built.file_certs)
        }
    };
    let acme_name = l
        .tls
        .as_ref()
        .and_then(|t| t.acme.as_ref())
        .map(|a| a.name());
    Ok(ListenerRuntime {
        name: l.name.clone(),
        max_connections: u64::from(l.max_connections),
        https: l.tls.is_some(),
        settings,
        routes: RouteTable::new(routes, Some(default)),
        rules: AccessRules::new(rules),
        headers,
        hsts,
        compression,
        compresses,
        rate,
        per_client,
        client_ipv6_prefix: l.client_ipv6_prefix(),
        clock,
        stats: previous.map(|p| p.stats.clone()).unwrap_or_default(),
        tls,
        sni,
        acme_name,
        file_certs,
        acme: acme.clone(),
        next_request_id: AtomicU64::new(0),
        id_prefix: random_u32(),
    })
}

fn route_match(r: &Route) -> Result<RouteMatch, String> {
    let hosts = r
        .hosts
        .iter()
        .map(|h| HostPattern::parse(h).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RouteMatch {
        hosts,
        path_prefix: r.path_prefix.clone(),
        header: r
            .header
            .as_ref()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.clone())),
        methods: r.methods.clone(),
    })
}

fn route_target(
    r: &Route,
    pool_target: &dyn Fn(&str) -> Result<Arc<Target>, BuildError>,
) -> Result<Arc<Target>, BuildError> {
    if let Some(pool) = &r.pool {
        return pool_target(pool);
    }
    if let Some(redirect) = &r.redirect {
        return Ok(Arc::new(Target::Redirect {
            status: http::StatusCode::from_u16(redirect.status)
                .unwrap_or(http::StatusCode::MOVED_PERMANENTLY),
            location: redirect.location.clone(),
        }));
    }
    let respond = r
        .respond
        .clone()
        .unwrap_or(tandem_config::http::FixedResponse {
            status: 404,
            body: String::new(),
            content_type: "text/plain".into(),
        });
    Ok(Arc::new(Target::Respond {
        status: http::StatusCode::from_u16(respond.status).unwrap_or(http::StatusCode::OK),
        content_type: respond.content_type,
        body: respond.body,
    }))
}

fn access_rule(r: &tandem_config::http::AccessRuleConfig) -> Result<AccessRule, String> {
    let client_cidrs = r
        .client_cidrs
        .iter()
        .map(|c| {
            c.parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|e| format!("{c:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let regex = |s: &str| regex::Regex::new(s).map_err(|e| e.to_string());
    Ok(AccessRule {
        action: if r.action == "deny" {
            RuleAction::Deny
        } else {
            RuleAction::Allow
        },
        client_cidrs,
        methods: r.methods.clone(),
        path_prefix: r.path_prefix.clone(),
        path_regex: r.path_regex.as_deref().map(regex).transpose()?,
        header_regex: match &r.header {
            Some(h) => Some((h.name.to_ascii_lowercase(), regex(&h.regex)?)),
            None => None,
        },
    })
}

/// Seeds request ids so two listeners (or restarts) do not repeat them.
fn random_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// A request id made by this node: up to 24 ASCII hex digits, no allocation.
pub struct RequestId {
    buf: [u8; 24],
    len: usize,
}

impl RequestId {
    /// Appends `n` in lowercase hex, zero-padded to 8 digits (like `{:08x}`).
    fn push_hex(&mut self, n: u64) {
        let digits = (16 - n.leading_zeros() as usize / 4).max(8);
        for i in (0..digits).rev() {
            let d = ((n >> (i * 4)) & 0xf) as u8;
            self.buf[self.len] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
            self.len += 1;
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod request_id_tests {
    use super::RequestId;

    #[test]
    fn hex_like_format() {
        for (a, b) in [
            (0u64, 0u64),
            (0xdead_beef, 7),
            (1, u64::from(u32::MAX) + 1),
            (5, u64::MAX),
        ] {
            let mut id = RequestId {
                buf: [0; 24],
                len: 0,
            };
            id.push_hex(a);
            id.push_hex(b);
            assert_eq!(id.as_str(), format!("{a:08x}{b:08x}"));
        }
    }
}

//! tandem's L7 plane: an HTTP/1.1 and HTTP/2 reverse proxy (HTTP/1.1 on tandem's own codec,
//! HTTP/2 on hyper) with TLS termination
//! and bridging (rustls), routing, access rules, rate limits, persistence, retries and
//! outlier detection, over the same balanced pools as the L4 plane.
//!
//! Layout: `runtime` compiles the config; `server` accepts clients and `connection`
//! serves each one (HTTP/1.1 by `server_h1`, holding no buffer between requests, or
//! HTTP/2 by hyper); `service` is the
//! per-request path, one module per phase (filter, select, forward, response, log);
//! `upstream` and `upstream_pool` hold the connections to backends. `apply` moves a
//! running plane to a new config: kept listeners keep their sockets and swap their
//! compiled runtime (routes, limits, certificates) atomically.

pub mod access_log;
pub mod acme;
mod body;
pub mod compress;
mod connection;
mod errors;
mod header_rules;
mod headers;
mod idle;
pub mod metered;
mod request_body;
mod runtime;
mod server;
mod server_h1;
mod service;
mod sticky;
mod stream_stall;
mod upgrade;
mod upstream;
mod upstream_body;
mod upstream_h1;
mod upstream_pool;
#[cfg(test)]
mod upstream_pool_tests;
mod workers;

pub use runtime::{HttpStats, ListenerRuntime};

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_config::{ClusterConfig, Protocol};
use tandem_pool::{Clock, SharedPool};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use runtime::{lock, PoolRuntime};

/// A running HTTP listener, for status output and tests.
#[derive(Clone)]
pub struct HttpListenerHandle {
    pub name: String,
    pub local_addr: SocketAddr,
    pub stats: Arc<HttpStats>,
    pub tls: bool,
    /// Worker threads accepting on it, each on its own socket.
    pub workers: usize,
    /// Client connections each worker accepted since the listener was bound.
    pub accepted_per_worker: Vec<u64>,
}

struct Running {
    bind: SocketAddr,
    local_addr: SocketAddr,
    live: Arc<ArcSwap<ListenerRuntime>>,
    stop: CancellationToken,
    /// One accept loop per worker, each on its own socket.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    workers: usize,
    /// Connections accepted, per worker.
    accepted: Arc<[AtomicU64]>,
}

/// Every HTTP listener of a node.
pub struct HttpPlane {
    clock: Clock,
    pools: Mutex<HashMap<String, Arc<PoolRuntime>>>,
    listeners: Mutex<Vec<Running>>,
    stop: CancellationToken,
    connections: TaskTracker,
    workers: workers::Workers,
    acme: Arc<acme::AcmeStore>,
}

/// Listener names an `apply` added, removed and updated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpApplySummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub updated: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpStartError {
    #[error(transparent)]
    Build(#[from] runtime::BuildError),
    #[error(transparent)]
    Bind(#[from] tandem_pool::StartError),
    #[error("listener {listener:?}: cannot start {workers} HTTP worker threads: {error}")]
    Workers {
        listener: String,
        workers: usize,
        error: std::io::Error,
    },
}

impl HttpPlane {
    /// Binds and starts every `protocol = "http"` listener over the given pools.
    pub fn start(
        config: &ClusterConfig,
        pools: &HashMap<String, Arc<SharedPool>>,
        clock: Clock,
    ) -> Result<HttpPlane, HttpStartError> {
        let plane = HttpPlane {
            clock,
            pools: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            stop: CancellationToken::new(),
            connections: TaskTracker::new(),
            workers: workers::Workers::default(),
            acme: Arc::default(),
        };
        plane.apply(config, pools)?;
        Ok(plane)
    }

    /// Moves the plane to `config`. Everything is compiled first (routes, rules, TLS
    /// certificates): an error leaves the running plane untouched. Then removed listeners
    /// stop accepting (their connections finish), kept ones swap their runtime, new ones
    /// are bound.
    pub fn apply(
        &self,
        config: &ClusterConfig,
        shared: &HashMap<String, Arc<SharedPool>>,
    ) -> Result<HttpApplySummary, HttpStartError> {
        let wanted: Vec<_> = config
            .listeners
            .iter()
            .filter(|l| l.protocol == Protocol::Http)
            .collect();
        // Backend connections are kept per worker: one idle list for each.
        let shards = wanted.iter().map(|l| worker_count(l)).max().unwrap_or(1);
        let previous_pools = lock(&self.pools).clone();
        let pools = runtime::build_pools(config, shared, &previous_pools, shards)?;
        let mut running = lock(&self.listeners);
        let mut compiled = Vec::new();
        for l in &wanted {
            let previous = running
                .iter()
                .find(|r| r.bind == l.bind)
                .map(|r| r.live.load_full());
            compiled.push(Arc::new(runtime::build_listener(
                l,
                &pools,
                self.clock,
                previous.as_deref(),
                &self.acme,
            )?));
        }
        *lock(&self.pools) = pools;
        let (mut added, mut removed, mut updated) = (Vec::new(), Vec::new(), Vec::new());
        running.retain(|r| {
            let keep = wanted.iter().any(|l| l.bind == r.bind);
            if !keep {
                r.stop.cancel();
                let name = r.live.load().name.clone();
                tracing::info!(listener = %name, "listener removed: stops accepting, its connections finish");
                removed.push(name);
            }
            keep
        });
        for (l, rt) in wanted.iter().zip(compiled) {
            let n = worker_count(l);
            if let Some(r) = running.iter().find(|r| r.bind == l.bind) {
                if r.workers != n {
                    tracing::warn!(listener = %l.name, running = r.workers, configured = n,
                        "workers changed: takes effect when the listener is re-added or the node restarts");
                }
                r.live.store(rt);
                updated.push(l.name.clone());
                continue;
            }
            let handles = self
                .workers
                .first(n)
                .map_err(|error| HttpStartError::Workers {
                    listener: l.name.clone(),
                    workers: n,
                    error,
                })?;
            let sockets =
                tandem_pool::bind_tcp_group(&l.name, l.bind, l.backlog(), l.ipv6_only(), n)?;
            let local_addr = sockets[0].local_addr().unwrap_or(l.bind);
            tracing::info!(listener = %l.name, address = %local_addr, tls = rt.tls.is_some(), workers = n, "listening (http)");
            let live = Arc::new(ArcSwap::new(rt));
            let stop = self.stop.child_token();
            let accepted: Arc<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
            let tasks = handles
                .iter()
                .zip(sockets)
                .enumerate()
                .map(|(worker, (handle, socket))| {
                    handle.spawn(server::accept_on_worker(
                        socket,
                        worker,
                        accepted.clone(),
                        live.clone(),
                        stop.clone(),
                        self.connections.clone(),
                    ))
                })
                .collect();
            running.push(Running {
                bind: l.bind,
                local_addr,
                live,
                stop,
                tasks,
                workers: n,
                accepted,
            });
            added.push(l.name.clone());
        }
        Ok(HttpApplySummary {
            added,
            removed,
            updated,
        })
    }

    pub fn listeners(&self) -> Vec<HttpListenerHandle> {
        lock(&self.listeners)
            .iter()
            .map(|r| {
                let rt = r.live.load();
                HttpListenerHandle {
                    name: rt.name.clone(),
                    local_addr: r.local_addr,
                    stats: rt.stats.clone(),
                    tls: rt.tls.is_some(),
                    workers: r.workers,
                    accepted_per_worker: r
                        .accepted
                        .iter()
                        .map(|a| a.load(Ordering::Relaxed))
                        .collect(),
                }
            })
            .collect()
    }

    /// Publishes the HTTP-01 challenge answers every plain-HTTP listener gives.
    pub fn set_acme_challenges(&self, answers: HashMap<String, String>) {
        self.acme.set_challenges(answers);
    }

    /// Puts an ACME certificate in force: listeners serving `name` swap to it for new
    /// handshakes (established connections keep theirs), and listeners built later use it.
    /// Returns the listeners that swapped.
    pub fn install_acme_certificate(
        &self,
        name: &str,
        cert: tandem_tls::LoadedCert,
    ) -> Vec<String> {
        // Under the listeners lock, so an `apply` building at the same time sees either
        // the old certificate and is then swapped here, or the new one.
        let running = lock(&self.listeners);
        lock(&self.acme.certificates).insert(name.to_string(), cert.clone());
        let mut swapped = Vec::new();
        for r in running.iter() {
            let rt = r.live.load();
            let (Some(sni), Some(serving)) = (&rt.sni, &rt.acme_name) else {
                continue;
            };
            if serving != name {
                continue;
            }
            let mut certs = vec![cert.clone()];
            certs.extend(rt.file_certs.iter().cloned());
            match sni.replace(certs) {
                Ok(()) => swapped.push(rt.name.clone()),
                Err(e) => {
                    tracing::error!(listener = %rt.name, error = %e, "ACME certificate not swapped in")
                }
            }
        }
        swapped
    }

    /// The ACME certificate in force for `name`.
    pub fn acme_certificate(&self, name: &str) -> Option<tandem_tls::LoadedCert> {
        self.acme.certificate(name)
    }

    pub fn listener(&self, name: &str) -> Option<HttpListenerHandle> {
        self.listeners().into_iter().find(|l| l.name == name)
    }

    /// The plane's clock: sticky expiries (`expires_at`) are durations on it.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// New or re-pointed source-IP sticky entries since the last call, per pool (sorted
    /// by pool name, entries by key; pools without changes are left out): (pool name,
    /// entries), `expires_at` on the plane clock. A refresh is reported only when the
    /// expiry last reported is over ttl/2 older than the new one; entries learnt through
    /// [`merge_sticky`](Self::merge_sticky) are never reported.
    pub fn take_sticky_changes(&self) -> Vec<(String, Vec<tandem_policy::StickyEntry>)> {
        let mut out: Vec<_> = self
            .sticky_pools()
            .into_iter()
            .filter_map(|(name, sticky)| {
                let changes = sticky.take_changes();
                (!changes.is_empty()).then_some((name, changes))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Entries learnt from the cluster (`expires_at` on this plane's clock). Each is
    /// inserted only when `pool` has a source-IP sticky table, the entry has not expired,
    /// its backend is in the pool, and the key is absent locally or expires earlier
    /// locally. Merged entries are never reported by `take_sticky_changes` (no echo).
    /// Returns how many were inserted.
    pub fn merge_sticky(&self, pool: &str, entries: &[tandem_policy::StickyEntry]) -> usize {
        let Some(runtime) = lock(&self.pools).get(pool).cloned() else {
            return 0;
        };
        let Some(sticky) = &runtime.source_ip_sticky else {
            return 0;
        };
        // Checked before taking the sticky lock: never both pool locks at once.
        let mut known: Vec<&str> = entries.iter().map(|e| e.backend.as_str()).collect();
        known.sort_unstable();
        known.dedup();
        known.retain(|b| runtime.shared.find_backend(|id| id == *b).is_some());
        sticky.merge(entries, self.clock.now(), |b| {
            known.binary_search(&b).is_ok()
        })
    }

    /// Entries stored per pool with a source-IP sticky table, sorted by pool name:
    /// (pool, len). Expired entries count until evicted.
    pub fn sticky_sizes(&self) -> Vec<(String, usize)> {
        let mut out: Vec<_> = self
            .sticky_pools()
            .into_iter()
            .map(|(name, sticky)| (name, sticky.len()))
            .collect();
        out.sort();
        out
    }

    fn sticky_pools(&self) -> Vec<(String, Arc<sticky::SourceIpSticky>)> {
        lock(&self.pools)
            .iter()
            .filter_map(|(name, p)| Some((name.clone(), p.source_ip_sticky.clone()?)))
            .collect()
    }

    /// Stops accepting, lets in-flight requests finish (idle keep-alives close at once),
    /// waits up to `drain`; returns the connections still open then.
    pub async fn shutdown(&self, drain: Duration) -> usize {
        self.stop.cancel();
        let tasks: Vec<_> = lock(&self.listeners)
            .drain(..)
            .flat_map(|r| r.tasks)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        self.connections.close();
        if tokio::time::timeout(drain, self.connections.wait())
            .await
            .is_err()
        {
            return self.connections.len();
        }
        0
    }
}

/// The worker threads that serve listener `l`: its `workers` key, or one per CPU.
fn worker_count(l: &tandem_config::Listener) -> usize {
    l.http
        .as_ref()
        .and_then(|h| h.workers)
        .map_or_else(workers::default_count, |n| n as usize)
}

/// Loads a listener's certificates (checked: readable, matching, valid now) into a
/// TLS acceptor choosing by SNI.
/// A listener's TLS: the acceptor, the resolver behind it and the certificates from files.
pub(crate) struct BuiltTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub resolver: Arc<tandem_tls::SniResolver>,
    pub file_certs: Vec<tandem_tls::LoadedCert>,
}

pub(crate) fn tls_acceptor(
    t: &tandem_config::http::ListenerTls,
    acme: &acme::AcmeStore,
) -> Result<BuiltTls, String> {
    let now = std::time::SystemTime::now();
    let mut file_certs = Vec::new();
    for c in &t.certificates {
        let spec = tandem_tls::CertSpec {
            cert: c.cert.clone(),
            key: c.key.clone(),
        };
        file_certs.push(tandem_tls::load_cert(&spec, now).map_err(|e| e.to_string())?);
    }
    let mut certs = Vec::new();
    if let Some(a) = &t.acme {
        certs.push(match acme.certificate(&a.name()) {
            Some(cert) => cert,
            None => acme::placeholder(&a.domains)?,
        });
    }
    certs.extend(file_certs.iter().cloned());
    let resolver = Arc::new(tandem_tls::SniResolver::new(certs).map_err(|e| e.to_string())?);
    let min = if t.min_version == "1.3" {
        tandem_tls::MinVersion::Tls13
    } else {
        tandem_tls::MinVersion::Tls12
    };
    let alpn = t.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(BuiltTls {
        acceptor: tokio_rustls::TlsAcceptor::from(tandem_tls::server_config(
            resolver.clone(),
            alpn,
            min,
        )),
        resolver,
        file_certs,
    })
}

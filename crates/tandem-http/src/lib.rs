//! tandem's L7 plane: an HTTP/1.1 and HTTP/2 reverse proxy (hyper) with TLS termination
//! and bridging (rustls), routing, access rules, rate limits, persistence, retries and
//! outlier detection, over the same balanced pools as the L4 plane.
//!
//! Layout: `runtime` compiles the config; `server` accepts clients; `service` is the
//! per-request pipeline; `upstream` holds the pooled clients to backends.

mod access_log;
mod body;
mod errors;
mod headers;
mod idle;
mod runtime;
mod server;
mod service;
mod upgrade;
mod upstream;

pub use runtime::{HttpStats, ListenerRuntime};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tandem_config::{ClusterConfig, Protocol};
use tandem_proxy::{Clock, SharedPool};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running HTTP listener.
#[derive(Clone)]
pub struct HttpListenerHandle {
    pub name: String,
    pub local_addr: SocketAddr,
    pub runtime: Arc<ListenerRuntime>,
}

/// Every HTTP listener of a node.
pub struct HttpPlane {
    listeners: Vec<HttpListenerHandle>,
    stop: CancellationToken,
    connections: TaskTracker,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpStartError {
    #[error(transparent)]
    Build(#[from] runtime::BuildError),
    #[error(transparent)]
    Bind(#[from] tandem_proxy::StartError),
    #[error("listener {0:?}: TLS: {1}")]
    Tls(String, String),
}

impl HttpPlane {
    /// Binds and starts every `protocol = "http"` listener over the given pools.
    pub fn start(
        config: &ClusterConfig,
        pools: &HashMap<String, Arc<SharedPool>>,
        clock: Clock,
    ) -> Result<HttpPlane, HttpStartError> {
        let pool_runtimes = runtime::build_pools(config, pools)?;
        let mut bound = Vec::new();
        for l in config
            .listeners
            .iter()
            .filter(|l| l.protocol == Protocol::Http)
        {
            let rt = Arc::new(runtime::build_listener(l, &pool_runtimes, clock)?);
            let tls = match &l.tls {
                None => None,
                Some(t) => {
                    Some(tls_acceptor(t).map_err(|e| HttpStartError::Tls(l.name.clone(), e))?)
                }
            };
            let socket = tandem_proxy::bind_tcp(&l.name, l.bind, l.backlog)?;
            bound.push((rt, tls, socket));
        }
        let stop = CancellationToken::new();
        let connections = TaskTracker::new();
        let mut listeners = Vec::new();
        let mut loops = Vec::new();
        for (rt, tls, socket) in bound {
            let local_addr = socket
                .local_addr()
                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
            tracing::info!(listener = %rt.name, address = %local_addr, tls = tls.is_some(), "listening (http)");
            listeners.push(HttpListenerHandle {
                name: rt.name.clone(),
                local_addr,
                runtime: rt.clone(),
            });
            loops.push(tokio::spawn(server::accept_loop(
                socket,
                rt,
                tls,
                stop.clone(),
                connections.clone(),
            )));
        }
        Ok(HttpPlane {
            listeners,
            stop,
            connections,
            loops,
        })
    }

    pub fn listeners(&self) -> &[HttpListenerHandle] {
        &self.listeners
    }

    pub fn listener(&self, name: &str) -> Option<&HttpListenerHandle> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// Stops accepting, lets in-flight requests finish (idle keep-alives close at once),
    /// waits up to `drain`; returns the connections still open then.
    pub async fn shutdown(self, drain: Duration) -> usize {
        self.stop.cancel();
        for task in self.loops {
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

fn tls_acceptor(t: &tandem_config::http::ListenerTls) -> Result<tokio_rustls::TlsAcceptor, String> {
    let now = std::time::SystemTime::now();
    let mut certs = Vec::new();
    for c in &t.certificates {
        let spec = tandem_tls::CertSpec {
            cert: c.cert.clone(),
            key: c.key.clone(),
        };
        certs.push(tandem_tls::load_cert(&spec, now).map_err(|e| e.to_string())?);
    }
    let resolver = Arc::new(tandem_tls::SniResolver::new(certs).map_err(|e| e.to_string())?);
    let min = if t.min_version == "1.3" {
        tandem_tls::MinVersion::Tls13
    } else {
        tandem_tls::MinVersion::Tls12
    };
    let alpn = t.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(tokio_rustls::TlsAcceptor::from(tandem_tls::server_config(
        resolver, alpn, min,
    )))
}

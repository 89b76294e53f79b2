//! The TCP listener: accept, enforce the connection limit, connect to a backend (retrying
//! others on failure), optionally send a PROXY header, then pipe bytes both ways.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tandem_config::{Listener as ListenerConfig, ProxyProtocol};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::stats::{ActiveGuard, ListenerStats};
use crate::{pipe, proxy_protocol};
use tandem_pool::ErrorKind;
use tandem_pool::{BackendLease, SharedPool};

/// What one connection needs to know of its listener.
pub(crate) struct TcpSettings {
    pub name: String,
    pub max_connections: u64,
    pub connect_timeout: Duration,
    pub connect_attempts: u32,
    pub idle_timeout: Duration,
    pub proxy_protocol: ProxyProtocol,
    /// Source-IP hashing keys IPv6 clients by this prefix.
    pub client_ipv6_prefix: u8,
}

impl TcpSettings {
    pub(crate) fn from_config(l: &ListenerConfig) -> Self {
        TcpSettings {
            name: l.name.clone(),
            max_connections: l.max_connections as u64,
            connect_timeout: l.connect_timeout().get(),
            connect_attempts: l.connect_attempts().max(1),
            idle_timeout: l.idle_timeout().get(),
            proxy_protocol: l.proxy_protocol,
            client_ipv6_prefix: l.client_ipv6_prefix(),
        }
    }
}

/// Accepts until `stop` fires; each connection runs as a task on `connections`, so a
/// graceful stop can wait for them.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    live: Arc<arc_swap::ArcSwap<crate::plane::Live<TcpSettings>>>,
    stats: Arc<ListenerStats>,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    let mut backoff = crate::AcceptBackoff::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        // Settings and pool as of now: a reload swaps them without touching the socket.
        let current = live.load_full();
        let settings = &current.settings;
        let (client, peer) = match accepted {
            Ok(pair) => {
                backoff.succeeded(&settings.name);
                pair
            }
            Err(e) => {
                // EMFILE and friends: pause the listener, growing; never exit.
                let pause = backoff.failed(&settings.name, &e);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        if stats.active.load(Relaxed) >= settings.max_connections {
            ListenerStats::bump(&stats.over_limit);
            tracing::debug!(listener = %settings.name, client = %peer, "connection limit reached, closing");
            drop(client);
            continue;
        }
        let guard = ActiveGuard::new(stats.clone());
        let (settings, pool, stats) = (
            current.settings.clone(),
            current.pool.clone(),
            stats.clone(),
        );
        connections.spawn(async move {
            serve(client, peer, &settings, &pool, &stats).await;
            drop(guard);
        });
    }
    tracing::info!(listener = %live.load().settings.name, "stopped accepting");
}

async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    settings: &TcpSettings,
    pool: &Arc<SharedPool>,
    stats: &ListenerStats,
) {
    let _ = client.set_nodelay(true);
    let Some((mut upstream, lease)) = connect_upstream(peer, settings, pool, stats).await else {
        ListenerStats::bump(&stats.no_backend);
        tracing::warn!(listener = %settings.name, pool = %pool.name(), client = %peer,
            "no backend reachable, closing client connection");
        return;
    };
    if settings.proxy_protocol != ProxyProtocol::Off {
        let local = client.local_addr().unwrap_or(peer);
        let header = match settings.proxy_protocol {
            ProxyProtocol::V1 => proxy_protocol::v1_header(peer, local),
            _ => proxy_protocol::v2_header(peer, local),
        };
        if let Err(e) = upstream.write_all(&header).await {
            tracing::debug!(listener = %settings.name, error = %e, "PROXY header not sent");
            return;
        }
    }
    let outcome = pipe::pipe(&mut client, &mut upstream, settings.idle_timeout).await;
    ListenerStats::add(&stats.bytes_in, outcome.bytes_in);
    ListenerStats::add(&stats.bytes_out, outcome.bytes_out);
    if outcome.idle_timed_out {
        ListenerStats::bump(&stats.idle_timeouts);
    }
    // Observed when the connection ends; for least-response-time at L4 this is the time
    // the backend took to send its first byte after it was asked.
    if let Some(latency) = outcome.response_latency {
        lease.observe_latency(latency);
    }
    tracing::debug!(listener = %settings.name, client = %peer, backend = %lease.backend_id(),
        bytes_in = outcome.bytes_in, bytes_out = outcome.bytes_out,
        idle = outcome.idle_timed_out, "connection closed");
    drop(lease);
}

/// Tries up to `connect_attempts` different backends, each within `connect_timeout`.
async fn connect_upstream(
    peer: SocketAddr,
    settings: &TcpSettings,
    pool: &Arc<SharedPool>,
    stats: &ListenerStats,
) -> Option<(TcpStream, BackendLease)> {
    let key = ip_key(&peer, settings.client_ipv6_prefix);
    let mut tried: Vec<usize> = Vec::new();
    for _ in 0..settings.connect_attempts {
        let lease = pool.acquire(Some(key.as_slice()), &tried)?;
        let attempt = tokio::time::timeout(
            settings.connect_timeout,
            TcpStream::connect(lease.address()),
        )
        .await;
        match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                lease.succeeded();
                return Some((stream, lease));
            }
            Ok(Err(e)) => {
                ListenerStats::bump(&stats.connect_failures);
                lease.metrics().error(ErrorKind::Connect);
                let why = format!("connect to {}: {e}", lease.address());
                tracing::info!(listener = %settings.name, backend = %lease.backend_id(), reason = %why, "backend connect failed, trying another");
                lease.failed(&why);
            }
            Err(_) => {
                ListenerStats::bump(&stats.connect_failures);
                lease.metrics().error(ErrorKind::ConnectTimeout);
                let why = format!(
                    "connect to {} timed out after {}ms",
                    lease.address(),
                    settings.connect_timeout.as_millis()
                );
                tracing::info!(listener = %settings.name, backend = %lease.backend_id(), reason = %why, "backend connect failed, trying another");
                lease.failed(&why);
            }
        }
        tried.push(lease.index());
    }
    None
}

/// The client's bytes, the key for source-IP hashing: v4-mapped v6 counts as v4, and an
/// IPv6 client is its first `ipv6_prefix` bits (see [`tandem_balance::client_key`]).
pub fn ip_key(peer: &SocketAddr, ipv6_prefix: u8) -> Vec<u8> {
    match tandem_balance::client_key(peer.ip(), ipv6_prefix) {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

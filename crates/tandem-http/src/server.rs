//! Accepting HTTP clients: connection limits per client, TLS handshake (bounded by the
//! header timeout), then the connection's own loop (`connection.rs`) serving HTTP/1.1 or
//! HTTP/2 on the same port.

use arc_swap::ArcSwap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection;
use crate::header_rules::TlsFacts;
use crate::runtime::{lock, ListenerRuntime};

/// A worker's accept loop over its own socket of the listener, run on that worker's
/// runtime: its connections are tasks of the same thread.
pub async fn accept_on_worker(
    socket: std::net::TcpListener,
    worker: usize,
    accepted: Arc<[AtomicU64]>,
    live: Arc<ArcSwap<ListenerRuntime>>,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    let listener = match TcpListener::from_std(socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listener = %live.load().name, worker, error = %e, "cannot register the listening socket: this worker does not accept");
            return;
        }
    };
    accept_loop(listener, &accepted[worker], live, stop, connections).await;
}

/// Accepts until `stop`; each connection is a task on `connections`.
async fn accept_loop(
    listener: TcpListener,
    worker_accepted: &AtomicU64,
    live: Arc<ArcSwap<ListenerRuntime>>,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    let mut backoff = tandem_proxy::AcceptBackoff::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        // The runtime as of now: a reload swaps it without touching the socket.
        let runtime = live.load_full();
        let tls = runtime.tls.clone();
        let (tcp, client) = match accepted {
            Ok((tcp, client)) => {
                backoff.succeeded(&runtime.name);
                // A dual-stack listener's IPv4 clients are IPv4 to everything after this
                // (logs, X-Forwarded-For, Forwarded, variables, rules), not ::ffff:a.b.c.d.
                (tcp, tandem_balance::canonical_addr(client))
            }
            Err(e) => {
                // EMFILE and friends: pause the listener, growing, logged once; never exit.
                let pause = backoff.failed(&runtime.name, &e);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        // The total cap first: a flood from many addresses must not exhaust descriptors.
        // Closing at once (rather than not accepting) keeps the backlog from filling with
        // connections that would wait for nothing; TCP listeners do the same.
        if runtime.stats.active_connections.load(Ordering::Relaxed) >= runtime.max_connections {
            runtime.stats.over_limit.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %runtime.name, %client, limit = runtime.max_connections, "listener connection limit reached");
            continue;
        }
        let ip = ListenerRuntime::canonical_ip(client.ip());
        let slot = match &runtime.per_client {
            Some(pc) => {
                if !lock(pc).try_open(ip) {
                    runtime
                        .stats
                        .over_client_limit
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(listener = %runtime.name, %client, "per-client connection limit reached");
                    continue;
                }
                Some(ClientSlot {
                    runtime: runtime.clone(),
                    ip,
                })
            }
            None => None,
        };
        runtime.stats.connections.fetch_add(1, Ordering::Relaxed);
        worker_accepted.fetch_add(1, Ordering::Relaxed);
        let active = ActiveConnection::new(runtime.stats.clone());
        let (live, stop, tunnels) = (live.clone(), stop.clone(), connections.clone());
        connections.spawn(async move {
            let _slot = slot;
            let _active = active;
            let _ = tcp.set_nodelay(true);
            serve_client(tcp, client, runtime, live, tls, stop, tunnels).await;
        });
    }
    tracing::info!(listener = %live.load().name, "stopped accepting");
}

/// Counts one open client connection in the listener's stats for as long as it lives.
struct ActiveConnection(Arc<crate::runtime::HttpStats>);

impl ActiveConnection {
    fn new(stats: Arc<crate::runtime::HttpStats>) -> Self {
        stats.active_connections.fetch_add(1, Ordering::Relaxed);
        ActiveConnection(stats)
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Frees the client's connection slot when the connection ends.
struct ClientSlot {
    runtime: Arc<ListenerRuntime>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some(pc) = &self.runtime.per_client {
            lock(pc).close(self.ip);
        }
    }
}

async fn serve_client(
    tcp: TcpStream,
    client: SocketAddr,
    runtime: Arc<ListenerRuntime>,
    live: Arc<ArcSwap<ListenerRuntime>>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    tunnels: TaskTracker,
) {
    let Some(acceptor) = tls else {
        let ctx = connection::context(runtime, live, client, tunnels, None);
        return connection::serve(tcp, ctx, stop).await;
    };
    // The TLS path is boxed: inline, its handshake and stream would make every plain
    // connection's task as large as a TLS one's.
    Box::pin(serve_tls(
        acceptor, tcp, client, runtime, live, stop, tunnels,
    ))
    .await
}

async fn serve_tls(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    client: SocketAddr,
    runtime: Arc<ListenerRuntime>,
    live: Arc<ArcSwap<ListenerRuntime>>,
    stop: CancellationToken,
    tunnels: TaskTracker,
) {
    let limit = runtime.settings.header_timeout.get();
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let tls = tls_facts(stream.get_ref().1);
            let ctx = connection::context(runtime, live, client, tunnels, Some(tls));
            connection::serve(stream, ctx, stop).await
        }
        Ok(Err(e)) => {
            runtime
                .stats
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %runtime.name, %client, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            runtime
                .stats
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %runtime.name, %client, "TLS handshake timed out");
        }
    }
}

/// What header rules may say about a client's TLS session: the name it asked for and
/// the version agreed.
fn tls_facts(conn: &rustls::ServerConnection) -> TlsFacts {
    TlsFacts {
        sni: conn.server_name().map(str::to_string),
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        },
    }
}

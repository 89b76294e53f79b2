//! Accepting HTTP clients: connection limits per client, TLS handshake (bounded by the
//! header timeout), then hyper serving HTTP/1.1 and HTTP/2 on the same port, with upgrades.

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::header_rules::TlsFacts;
use crate::idle::{Activity, Watched};
use crate::runtime::{first_time, lock, ListenerRuntime};
use crate::service::{handle, ConnContext};

/// Response bytes an HTTP/2 stream buffers beyond what the client's window lets out.
const H2_SEND_BUF_PER_STREAM: usize = 64 * 1024;

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
        return serve_io(tcp, client, runtime, live, stop, tunnels, None).await;
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
            serve_io(stream, client, runtime, live, stop, tunnels, Some(tls)).await
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

async fn serve_io<S>(
    io: S,
    client: SocketAddr,
    runtime: Arc<ListenerRuntime>,
    live: Arc<ArcSwap<ListenerRuntime>>,
    stop: CancellationToken,
    tunnels: TaskTracker,
    tls: Option<TlsFacts>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = &runtime.settings;
    let activity = Activity::new();
    let ctx = Arc::new(ConnContext {
        listener: runtime.clone(),
        live,
        client,
        client_ip_value: crate::headers::ClientIp::new(client.ip()),
        activity: activity.clone(),
        tunnels,
        tls,
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The header timeout is ours (below): hyper's also runs while a keep-alive
        // connection is idle, and would cost a timer reset per request. No timer for
        // hyper's HTTP/1, so none per request.
        .header_read_timeout(None)
        // hyper answers 431 when the head is larger than its buffer or has too many headers.
        .max_buf_size((settings.max_header_bytes as usize).max(8192))
        .max_headers(settings.max_headers as usize)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(settings.max_header_bytes)
        // Response bytes buffered per stream while the client grants no window: hyper's
        // 400 KiB default times 256 streams let one client pin 100 MB.
        .max_send_buf_size(H2_SEND_BUF_PER_STREAM)
        .max_concurrent_streams(256);
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(req, ctx).await) }
    });
    let io = Watched::new(io, activity.clone());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let keepalive = settings.keepalive_timeout.get();
    let header_timeout = settings.header_timeout.get();
    let send_timeout = settings.send_timeout.get();
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(listener = %runtime.name, %client, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled(), if !closing => {
                // Finish in-flight requests, refuse new ones, close idle keep-alives.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.idle_for(keepalive), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.send_stalled(send_timeout) => {
                // A stalled reader: it would hold its backend connection and buffers for
                // as long as it likes. Close at once (HTTP/1 and HTTP/2 alike).
                closed_stalled(&runtime, client, send_timeout, Stall::Socket);
                return;
            }
            _ = activity.streams.stalled(send_timeout) => {
                // An HTTP/2 stream the client opens no window for writes nothing, so the
                // socket never blocks; it would hold its backend connection all the same.
                // (A client that also stopped reading its socket is a plain stalled reader.)
                let stall = if activity.writes_blocked() { Stall::Socket } else { Stall::Window };
                closed_stalled(&runtime, client, send_timeout, stall);
                return;
            }
            _ = activity.head_overdue(header_timeout) => {
                // Slowloris: a head that does not complete in time; close at once.
                tracing::debug!(listener = %runtime.name, %client, "request head not received within the header timeout");
                return;
            }
        }
    }
}

/// How a client stopped taking its responses.
enum Stall {
    /// Writes to its socket stopped proceeding.
    Socket,
    /// HTTP/2: a stream got no flow-control window, so nothing was even written.
    Window,
}

/// Counts and logs (the first of each kind a warning, the rest debug) a connection closed
/// because its client took no response bytes for `send_timeout`.
fn closed_stalled(runtime: &ListenerRuntime, client: SocketAddr, timeout: Duration, stall: Stall) {
    let stats = &runtime.stats;
    stats.send_timeouts.fetch_add(1, Ordering::Relaxed);
    let listener = &runtime.name;
    match stall {
        Stall::Socket => {
            if first_time(&stats.logged.send_timeout) {
                tracing::warn!(%listener, %client, ?timeout,
                    "client read nothing within the send timeout: connection closed (logged once; see tandem_http_send_timeouts_total)");
            } else {
                tracing::debug!(%listener, %client, "client read nothing within the send timeout: connection closed");
            }
        }
        Stall::Window => {
            stats.h2_window_stalls.fetch_add(1, Ordering::Relaxed);
            if first_time(&stats.logged.h2_window_stall) {
                tracing::warn!(%listener, %client, ?timeout,
                    "HTTP/2 client opened no flow-control window for a response within the send timeout: connection closed (logged once; see tandem_http_h2_window_stalls_total)");
            } else {
                tracing::debug!(%listener, %client, "HTTP/2 client opened no flow-control window within the send timeout: connection closed");
            }
        }
    }
}

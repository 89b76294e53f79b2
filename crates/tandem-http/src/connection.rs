//! One client connection, after accept (and TLS): its first bytes choose HTTP/2 (the
//! preface) or HTTP/1.1, then the connection's loop runs with its timeouts.
//!
//! HTTP/1.1 is tandem's own server (`server_h1`, over the tandem-h1 codec): one loop per
//! connection reads each head into a buffer the size of what arrived, serves the
//! request with a body decoded straight from the socket, writes the response, and
//! between requests holds no buffer at all (an idle keep-alive connection is its socket,
//! its task and the per-connection context: what HAProxy and nginx keep for one, and what
//! makes thousands of idle clients cheap). Upgrades (101) are handed over by that loop
//! (see `upgrade.rs`). HTTP/2 is hyper's server, here.

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::idle::{Activity, Watched, H2_PREFACE};
use crate::request_body::RequestBody;
use crate::runtime::{first_time, ListenerRuntime};
use crate::service::{handle, ConnContext};

/// Response bytes an HTTP/2 stream buffers beyond what the client's window lets out.
const H2_SEND_BUF_PER_STREAM: usize = 64 * 1024;

/// Serves one client connection until it ends.
pub async fn serve<S>(io: S, ctx: Arc<ConnContext>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = Watched::new(io, ctx.activity.clone());
    let runtime = ctx.listener.clone();
    // Boxed while it runs: its timers would otherwise stay in the task for the whole
    // connection (a task is as large as its largest await point), about 0.6 KiB per idle
    // connection (docs/BENCHMARKS.md, issue 12's fifth pass).
    if !Box::pin(first_bytes(&mut io, &ctx, &stop)).await {
        return;
    }
    if io.pending().starts_with(H2_PREFACE) {
        // Boxed: inline, hyper's HTTP/2 connection would make every HTTP/1.1
        // connection's task (parked ones too) as large as an HTTP/2 one's.
        Box::pin(serve_http2(io, ctx, &runtime, stop)).await
    } else {
        // Boxed too, once per connection: the task's own future stays small, and what an
        // idle connection holds is this box (1 KiB: its timers and head-reading state; a
        // request's exchange is boxed apart while it lasts), the shared state, the context
        // and the socket: 2.8 KiB of heap in all (docs/BENCHMARKS.md, fifth pass).
        Box::pin(crate::server_h1::serve(io, ctx, &runtime, stop)).await
    }
}

/// Waits for the first bytes (enough of them to tell the HTTP/2 preface from an HTTP/1
/// request line) within the header timeout. False: the connection is to be closed.
async fn first_bytes<S>(io: &mut Watched<S>, ctx: &ConnContext, stop: &CancellationToken) -> bool
where
    S: AsyncRead + Unpin,
{
    let runtime = &ctx.listener;
    let header_timeout = runtime.settings.header_timeout.get();
    loop {
        let got = tokio::select! {
            r = poll_fn(|cx| io.poll_fill(cx)) => r,
            _ = stop.cancelled() => return false,
            _ = ctx.activity.head_overdue(header_timeout) => {
                tracing::debug!(listener = %runtime.name, client = %ctx.client, "request head not received within the header timeout");
                return false;
            }
        };
        match got {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let seen = io.pending();
        let n = seen.len().min(H2_PREFACE.len());
        if n == H2_PREFACE.len() || seen[..n] != H2_PREFACE[..n] {
            return true;
        }
    }
}

/// Counts a parked connection in the listener's stats while it lasts.
pub(crate) struct Parked<'a>(&'a ListenerRuntime);

impl<'a> Parked<'a> {
    pub(crate) fn new(runtime: &'a ListenerRuntime) -> Self {
        runtime
            .stats
            .idle_connections
            .fetch_add(1, Ordering::Relaxed);
        Parked(runtime)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0
            .stats
            .idle_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_http2<S>(
    io: Watched<S>,
    ctx: Arc<ConnContext>,
    runtime: &ListenerRuntime,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = &runtime.settings;
    let activity = ctx.activity.clone();
    let client = ctx.client;
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(settings.max_header_bytes)
        // Response bytes buffered per stream while the client grants no window: hyper's
        // 400 KiB default times 256 streams let one client pin 100 MB.
        .max_send_buf_size(H2_SEND_BUF_PER_STREAM)
        .max_concurrent_streams(256);
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(req.map(RequestBody::H2), ctx).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let keepalive = settings.keepalive_timeout.get();
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
                // Finish in-flight streams, refuse new ones (GOAWAY).
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.idle_for(keepalive), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.send_stalled(send_timeout) => {
                // A stalled reader: it would hold its backend connections and buffers for
                // as long as it likes. Close at once.
                closed_stalled(runtime, client, send_timeout, Stall::Socket);
                return;
            }
            _ = activity.streams.stalled(send_timeout) => {
                // A stream the client opens no window for writes nothing, so the socket
                // never blocks; it would hold its backend connection all the same. (A
                // client that also stopped reading its socket is a plain stalled reader.)
                let stall = if activity.writes_blocked() { Stall::Socket } else { Stall::Window };
                closed_stalled(runtime, client, send_timeout, stall);
                return;
            }
        }
    }
}

/// The per-connection state shared with its requests.
pub fn context(
    runtime: Arc<ListenerRuntime>,
    live: Arc<arc_swap::ArcSwap<ListenerRuntime>>,
    client: SocketAddr,
    tunnels: tokio_util::task::TaskTracker,
    tls: Option<crate::header_rules::TlsFacts>,
) -> Arc<ConnContext> {
    Arc::new(ConnContext {
        listener: runtime,
        live,
        client,
        client_ip_value: crate::headers::ClientIp::new(client.ip()),
        activity: Activity::new(),
        tunnels,
        tls,
        upgrade: Arc::default(),
    })
}

/// How a client stopped taking its responses.
pub(crate) enum Stall {
    /// Writes to its socket stopped proceeding.
    Socket,
    /// HTTP/2: a stream got no flow-control window, so nothing was even written.
    Window,
}

/// Counts and logs (the first of each kind a warning, the rest debug) a connection closed
/// because its client took no response bytes for `send_timeout`.
pub(crate) fn closed_stalled(
    runtime: &ListenerRuntime,
    client: SocketAddr,
    timeout: Duration,
    stall: Stall,
) {
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

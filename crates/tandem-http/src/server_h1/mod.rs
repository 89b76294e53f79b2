//! tandem's HTTP/1.1 server: one loop per client connection over tandem-h1's codec.
//!
//! The loop reads a request head into a buffer that grows only by what arrived (and is
//! freed while the connection is idle: an idle keep-alive connection holds no buffer),
//! parses it strictly (`tandem_h1::parse_request_head`; a refused head is answered 400,
//! 431 or 505 and the connection closed), hands the request to the service with a body
//! decoded straight from the socket ([`H1RequestBody`]), writes the response head and
//! body ([`write`]), and goes on with the next request (pipelined bytes already read are
//! kept) while both sides allow it. One set of timers serves the whole connection: the
//! header timeout (from a head's first byte), the keep-alive timeout (idle between
//! requests), the send timeout (a client that takes no response bytes) and the stop.
//!
//! The connection is closed after a response when the client asked for it (HTTP/1.0
//! without keep-alive, `Connection: close`), when the request body was not read to its
//! end (a refused or failed body: what follows on the wire is not a request), when the
//! response could not be framed for reuse (HTTP/1.0 without a length) or failed, or when
//! the listener stops. A 101 hands the client's stream to the upgrade tunnel.

mod read;
mod write;

pub use read::H1RequestBody;

use bytes::BytesMut;
use http::{Method, Request, StatusCode};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tandem_h1::{parse_request_head, Answering, HeadLimits, RequestBodyFraming, RequestHead};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::connection::{closed_stalled, Parked, Stall};
use crate::idle::Watched;
use crate::request_body::RequestBody;
use crate::runtime::ListenerRuntime;
use crate::service::{handle, ConnContext};
use read::{lock, Shared, SharedConn};
use write::{respond, Written};

/// How long a closing connection may take to send its last bytes (TLS close_notify).
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(1);
/// After refusing a request whose bytes were not all read, what is read and dropped
/// before closing, so that the client reads the answer instead of a reset.
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_LIMIT: Duration = Duration::from_secs(1);

/// Serves an HTTP/1.1 client connection until it ends.
///
/// Not itself an `async fn`: the client's stream goes into the connection's shared state
/// first, so the loop's future does not keep a second slot for it.
pub(crate) fn serve<'a, S>(
    io: Watched<S>,
    ctx: Arc<ConnContext>,
    runtime: &'a ListenerRuntime,
    stop: CancellationToken,
) -> impl Future<Output = ()> + Send + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_shared(Arc::new(Mutex::new(Shared::new(io))), ctx, runtime, stop)
}

/// What the connection does after a request.
enum Next {
    /// Read the next request.
    Again,
    /// The connection is over.
    End,
}

/// The connection's loop: wait for a head (the only state an idle connection keeps: its
/// timers and the shared state), then serve the request in a box of its own.
async fn serve_shared<S>(
    shared: SharedConn<S>,
    ctx: Arc<ConnContext>,
    runtime: &ListenerRuntime,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = ctx.activity.clone();
    let settings = &runtime.settings;
    let (keepalive, header_timeout, send_timeout) = (
        settings.keepalive_timeout.get(),
        settings.header_timeout.get(),
        settings.send_timeout.get(),
    );
    let limits = HeadLimits {
        max_bytes: settings.max_header_bytes as usize,
        max_headers: settings.max_headers as usize,
    };
    // The connection's timers, armed once: each re-arms once per period, not per request.
    let stopped = stop.cancelled();
    let idle = activity.idle_for(keepalive);
    let stalled = activity.send_stalled(send_timeout);
    let overdue = activity.head_overdue(header_timeout);
    tokio::pin!(stopped, idle, stalled, overdue);
    let mut ending = false;
    let mut served = false;
    loop {
        // The head: parsed from what is buffered, else read (more).
        let head = {
            let mut parked = None;
            loop {
                // Only the status outlives the parse: a refusal's error would otherwise
                // hold its slot in every connection's state across the awaits below.
                let refused = match parse_request_head(&mut lock(&shared).read_buf, limits) {
                    Ok(Some(head)) => break head,
                    Ok(None) => None,
                    Err(e) => {
                        tracing::debug!(listener = %runtime.name, client = %ctx.client, error = %e, "request head refused");
                        Some(e.status())
                    }
                };
                if let Some(status) = refused {
                    let mut out = Vec::with_capacity(128);
                    tandem_h1::encode_refusal(&mut out, status, &write::today());
                    let _ = Box::pin(write::write_bytes(&shared, out)).await;
                    linger(&shared).await;
                    return;
                }
                let waiting = {
                    let mut sh = lock(&shared);
                    if sh.read_buf.is_empty() {
                        // Between requests: no buffer until the client sends again.
                        sh.read_buf = BytesMut::new();
                        true
                    } else {
                        false
                    }
                };
                if waiting && served && parked.is_none() {
                    parked = Some(Parked::new(runtime));
                }
                let got = tokio::select! {
                    r = poll_fn(|cx| read_more(&shared, cx)) => r,
                    _ = &mut stopped => {
                        close(&shared).await;
                        return;
                    }
                    _ = &mut idle, if waiting => {
                        close(&shared).await;
                        return;
                    }
                    _ = &mut overdue => {
                        // Slowloris: a head that does not complete in time; close at once.
                        tracing::debug!(listener = %runtime.name, client = %ctx.client, "request head not received within the header timeout");
                        return;
                    }
                    _ = &mut stalled => {
                        closed_stalled(runtime, ctx.client, send_timeout, Stall::Socket);
                        return;
                    }
                };
                match got {
                    Ok(0) | Err(_) => return,
                    // Bytes arrived: no longer idle.
                    Ok(_) => drop(parked.take()),
                }
            }
        };
        served = true;
        // Boxed: a request's state (its head, the response's parts) lives only while it
        // is in flight, not in every idle connection's task.
        let exchange = Exchange {
            shared: &shared,
            ctx: &ctx,
            runtime,
        };
        let beside = Beside {
            ending: &mut ending,
            stopped: stopped.as_mut(),
            stalled: stalled.as_mut(),
            runtime,
            client: ctx.client,
            send_timeout,
        };
        let next = Box::pin(exchange.serve_one(head, beside)).await;
        match next {
            Next::Again => {}
            Next::End => return,
        }
    }
}

/// What one request's exchange borrows from its connection.
struct Exchange<'c, S> {
    shared: &'c SharedConn<S>,
    ctx: &'c Arc<ConnContext>,
    runtime: &'c ListenerRuntime,
}

impl<S> Exchange<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Serves one request whose head was read: the service's answer, then the response
    /// written, then what the connection does next.
    async fn serve_one(
        self,
        head: RequestHead,
        mut beside: Beside<'_, impl Future<Output = ()>, impl Future<Output = ()>>,
    ) -> Next {
        let Exchange {
            shared,
            ctx,
            runtime,
        } = self;
        let RequestHead {
            parts,
            framing,
            keep_alive,
            expect_continue,
            accepts_trailers,
            ..
        } = head;
        let answering = |keep_alive| Answering {
            version: parts.version,
            head: parts.method == Method::HEAD,
            keep_alive,
        };
        let (answer_closing, answer_open) = (answering(false), answering(true));
        let body = {
            let mut sh = lock(shared);
            sh.decoder = framing.decoder();
            sh.failed = false;
            sh.responding = false;
            sh.continue_sent = expect_continue.then_some(0);
            if framing == RequestBodyFraming::Empty {
                RequestBody::Empty
            } else {
                RequestBody::H1(H1RequestBody::new(shared.clone()))
            }
        };
        // The service's answer and the response's writing run inline here: this future
        // is itself boxed per request, so neither is in an idle connection's state.
        let answer = handle(Request::from_parts(parts, body), ctx.clone());
        let Some(resp) = beside.run(answer).await else {
            return Next::End;
        };
        let status = resp.status();
        let reuse = {
            let mut sh = lock(shared);
            sh.responding = true;
            keep_alive && sh.body_done()
        };
        let (parts, body) = resp.into_parts();
        let answering = if reuse && !*beside.ending {
            answer_open
        } else {
            answer_closing
        };
        let writing = respond(shared, parts, body, answering, accepts_trailers);
        let Some(written) = beside.run(writing).await else {
            return Next::End;
        };
        if let Some(waiting) = ctx.upgrade.take() {
            if status == StatusCode::SWITCHING_PROTOCOLS && matches!(written, Written::Complete(_))
            {
                // The 101 is out: the rest of the connection belongs to the tunnel, with
                // what the client already sent after its request in front.
                let mut sh = lock(shared);
                let rest = sh.read_buf.split().freeze();
                if let Some(mut io) = sh.io.take() {
                    io.unread(rest);
                    let _ = waiting.send(Box::new(io));
                }
            }
            return Next::End;
        }
        match written {
            Written::Complete(true) if !*beside.ending && lock(shared).body_done() => {}
            Written::Complete(_) => {
                if lock(shared).body_done() {
                    close(shared).await;
                } else {
                    linger(shared).await;
                }
                return Next::End;
            }
            Written::Broken(e) => {
                tracing::debug!(listener = %runtime.name, client = %ctx.client, error = %e, "response not completed: connection closed");
                return Next::End;
            }
        }
        if !lock(shared).read_buf.is_empty() {
            // A pipelined request's bytes came with this one: its head is awaited now.
            ctx.activity.bytes_in();
        }
        Next::Again
    }
}

/// The connection's waits that a request's steps run beside.
struct Beside<'w, A, B> {
    /// Set once the listener stops: the response then closes the connection.
    ending: &'w mut bool,
    stopped: Pin<&'w mut A>,
    stalled: Pin<&'w mut B>,
    /// For the count and log line of a client that stopped reading.
    runtime: &'w ListenerRuntime,
    client: std::net::SocketAddr,
    send_timeout: Duration,
}

impl<A: Future<Output = ()>, B: Future<Output = ()>> Beside<'_, A, B> {
    /// Runs `step` to its end, noting a stop on the way; None when the client stopped
    /// reading first (the connection is closed, counted and logged).
    async fn run<T>(&mut self, step: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(step);
        loop {
            tokio::select! {
                out = &mut step => return Some(out),
                _ = &mut self.stopped, if !*self.ending => *self.ending = true,
                _ = &mut self.stalled => {
                    closed_stalled(self.runtime, self.client, self.send_timeout, Stall::Socket);
                    return None;
                }
            }
        }
    }
}

/// Reads the client's next bytes into the connection's buffer.
fn read_more<S: AsyncRead + Unpin>(
    shared: &Mutex<Shared<S>>,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let mut guard = lock(shared);
    let sh = &mut *guard;
    match sh.io.as_mut() {
        Some(io) => io.poll_read_into(cx, &mut sh.read_buf),
        None => Poll::Ready(Ok(0)),
    }
}

/// Ends the connection: its write side is shut (TLS: close_notify), within a bound.
/// Boxed, like [`linger`]: the timeout's timer would otherwise sit in every connection's
/// state for a step taken once, at the end.
fn close<S: AsyncWrite + Unpin + Send>(
    shared: &Mutex<Shared<S>>,
) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(async move {
        let Some(mut io) = lock(shared).io.take() else {
            return;
        };
        let _ = tokio::time::timeout(SHUTDOWN_LIMIT, io.shutdown()).await;
    })
}

/// Ends a connection whose client may still be sending (a refused head or body): the
/// answer is out, the write side is shut, and what the client still sends is read and
/// dropped for a moment, so that closing does not reset the connection before the
/// client has read the answer.
fn linger<S: AsyncRead + AsyncWrite + Unpin + Send>(
    shared: &Mutex<Shared<S>>,
) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(async move {
        let Some(mut io) = lock(shared).io.take() else {
            return;
        };
        let _ = tokio::time::timeout(LINGER_LIMIT, async {
            let _ = io.shutdown().await;
            // On the heap: an array here would sit in every connection's state, idle or
            // not (a future is as large as its largest await point).
            let mut sink = vec![0u8; 4096];
            let mut dropped = 0;
            while dropped < LINGER_BYTES {
                match io.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => dropped += n,
                }
            }
        })
        .await;
    })
}

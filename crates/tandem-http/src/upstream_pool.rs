//! HTTP/1.1 connections to backends, driven with hyper's `client::conn::http1`: idle
//! keep-alive connections kept per worker and backend address, checked out by a request
//! and given back when its response body ends. One task per backend connection (hyper's
//! connection future, on the worker that opened it), none per request, and no dispatch
//! through a shared client. A worker only takes its own idle connections, so a request
//! never wakes another thread's connection task.
//!
//! A connection goes back to the pool only after its response body was read to the end
//! (a body dropped half-way closes it: HTTP/1 cannot abandon a response), and only while
//! fewer than `max_idle` wait for the same backend. An idle connection older than
//! `idle_timeout` is closed when the pool next looks at that backend's list, or when the
//! backend closes it. A request that a pooled connection could not take (it was closing)
//! is sent again on another connection: it never reached the backend.

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::runtime::lock;
use crate::upstream::{Connector, UpstreamBody, UpstreamError, UpstreamResponse};

type Sender = http1::SendRequest<UpstreamBody>;

/// Largest read buffer of a backend connection.
const UPSTREAM_READ_BUF_MAX: usize = 16 * 1024;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// One worker's idle connections, per backend address. Padded to its own cache lines:
/// workers never share one.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<HashMap<SocketAddr, Vec<Idle>>>);

/// Idle HTTP/1.1 connections of one pool, per worker and backend address.
pub struct H1Pool {
    connector: Connector,
    /// One per worker (the lock is only contended off the workers, in tests).
    shards: Box<[Shard]>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl H1Pool {
    pub fn new(
        connector: Connector,
        max_idle: usize,
        idle_timeout: Duration,
        workers: usize,
    ) -> Self {
        H1Pool {
            connector,
            shards: (0..workers.max(1)).map(|_| Shard::default()).collect(),
            max_idle,
            idle_timeout,
        }
    }

    pub fn workers(&self) -> usize {
        self.shards.len()
    }

    /// The idle lists of the worker this runs on.
    fn idle(&self) -> &Mutex<HashMap<SocketAddr, Vec<Idle>>> {
        &self.shards[crate::workers::current() % self.shards.len()].0
    }

    /// The most recently used idle connection to `addr` that is still open.
    fn checkout(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = lock(self.idle());
        let list = idle.get_mut(&addr)?;
        let now = Instant::now();
        while let Some(i) = list.pop() {
            if !i.sender.is_closed() && now.duration_since(i.since) < self.idle_timeout {
                return Some(i.sender);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, sender: Sender) {
        if sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = lock(self.idle());
        let list = idle.entry(addr).or_default();
        // The oldest are first: drop the ones past the idle timeout. Closed ones are
        // skipped by checkout; the whole list is only swept when it is full (a sweep on
        // every return cost O(idle connections) per request under many in flight).
        let stale = list
            .iter()
            .take_while(|i| now.duration_since(i.since) >= self.idle_timeout)
            .count();
        list.drain(..stale);
        if list.len() >= self.max_idle {
            list.retain(|i| !i.sender.is_closed());
        }
        if list.len() < self.max_idle {
            list.push(Idle { sender, since: now });
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Sender, UpstreamError> {
        let io = self
            .connector
            .connect(addr)
            .await
            .map_err(UpstreamError::Connect)?;
        let (sender, conn) = http1::Builder::new()
            // hyper's read buffer grows to 400 KiB on a large response and stays: each
            // slow or stalled client pinned ~1 MiB with the chunks in flight. 16 KiB, as
            // HAProxy's buffers: ~97 KiB per stalled reader (tests/l7_hostile/stalled.rs).
            .max_buf_size(UPSTREAM_READ_BUF_MAX)
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Handshake(addr, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(backend = %addr, error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends `req` (origin-form URI, Host set) on an idle connection to `addr`, or on a
    /// new one.
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        req: http::Request<UpstreamBody>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let mut req = req;
        loop {
            let (mut sender, fresh) = match self.checkout(addr) {
                Some(s) => (s, false),
                // Boxed: a rare path whose future (TCP, TLS) would triple the size of
                // every request's future.
                None => (Box::pin(self.connect(addr)).await?, true),
            };
            // Ready once the previous exchange is complete; an error means it closed.
            if let Err(e) = sender.ready().await {
                if fresh {
                    // A connection that closes before its first request: nothing to retry on.
                    return Err(UpstreamError::Handshake(addr, e));
                }
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let back = ReturnTo {
                        pool: self.clone(),
                        addr,
                        sender,
                    };
                    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    return Ok(resp.map(|b| PooledBody::new(b, (!upgrade).then_some(back))));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the pooled connection was closing. Another one.
                    Some(r) if !fresh => req = r,
                    _ => return Err(UpstreamError::Http(e.into_error())),
                },
            }
        }
    }
}

/// Where a connection goes back when its response body has ended.
pub struct ReturnTo {
    pool: Arc<H1Pool>,
    addr: SocketAddr,
    sender: Sender,
}

/// A backend's response body; at its end the connection returns to its pool.
pub struct PooledBody {
    inner: Incoming,
    back: Option<ReturnTo>,
}

impl PooledBody {
    pub fn new(inner: Incoming, back: Option<ReturnTo>) -> Self {
        let mut body = PooledBody { inner, back };
        if body.inner.is_end_stream() {
            // No body at all (204, 304, HEAD, Content-Length: 0): hyper may never poll it.
            body.give_back();
        }
        body
    }

    fn give_back(&mut self) {
        if let Some(b) = self.back.take() {
            b.pool.put(b.addr, b.sender);
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Dropped after its end without one more poll: the connection is reusable.
        if self.back.is_some() && self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.back = None,
            // hyper's server stops polling once a body says it has ended (a known
            // Content-Length fully read): give the connection back with the last frame.
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.give_back(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

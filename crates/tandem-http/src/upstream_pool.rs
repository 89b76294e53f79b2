//! HTTP/1.1 connections to backends, driven by the request's own task with tandem-h1's
//! codec (`upstream_h1`): idle keep-alive connections kept per worker and backend
//! address, checked out by a request and given back when its response body ends. No task
//! per backend connection and none per request: a connection is only ever touched by the
//! request using it, on the worker that opened it.
//!
//! A connection goes back to the pool only after its response body was read to the end,
//! the whole request was written (a backend that answers early gets the rest of the body
//! while its response is read) and the backend did not ask to close (a body dropped
//! half-way closes it: HTTP/1 cannot abandon a response), and only while fewer than
//! `max_idle` wait for the same backend. An idle connection older than `idle_timeout`, or
//! that the backend closed, is dropped when the pool next looks at it. A request that a
//! reused connection could not carry (the backend had closed it: the write failed, or
//! the connection ended before any response byte for a request that may be repeated) is
//! sent again on another connection.

use http::header::UPGRADE;
use hyper::body::Body;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_h1::ResponseFraming;

use crate::runtime::lock;
use crate::upstream::{Connector, UpstreamBody, UpstreamError, UpstreamResponse};
use crate::upstream_body::{H1Body, PooledBody};
use crate::upstream_h1::{ExchangeError, H1Conn};

struct Idle {
    conn: H1Conn,
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
    fn checkout(&self, addr: SocketAddr) -> Option<H1Conn> {
        let mut idle = lock(self.idle());
        let list = idle.get_mut(&addr)?;
        let now = Instant::now();
        while let Some(mut i) = list.pop() {
            if now.duration_since(i.since) < self.idle_timeout && i.conn.is_usable() {
                return Some(i.conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `addr`.
    pub(crate) fn put(&self, addr: SocketAddr, conn: H1Conn) {
        if self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = lock(self.idle());
        let list = idle.entry(addr).or_default();
        // The oldest are first: drop the ones past the idle timeout. Closed ones are
        // found by checkout; the whole list is only swept when it is full (a sweep on
        // every return cost O(idle connections) per request under many in flight).
        let stale = list
            .iter()
            .take_while(|i| now.duration_since(i.since) >= self.idle_timeout)
            .count();
        list.drain(..stale);
        if list.len() >= self.max_idle {
            list.retain_mut(|i| i.conn.is_usable());
        }
        if list.len() < self.max_idle {
            list.push(Idle { conn, since: now });
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<H1Conn, UpstreamError> {
        let (io, _h2) = self
            .connector
            .connect_stream(addr)
            .await
            .map_err(UpstreamError::Connect)?;
        Ok(H1Conn::new(io))
    }

    /// Sends `req` (origin-form URI, Host set) on an idle connection to `addr`, or on a
    /// new one.
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        req: http::Request<UpstreamBody>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let (parts, body) = req.into_parts();
        let mut body = Some(body);
        let upgrade = parts.headers.contains_key(UPGRADE);
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let body_len = body.as_ref().and_then(|b| {
            if b.is_end_stream() {
                Some(0)
            } else {
                b.size_hint().exact()
            }
        });
        loop {
            let (mut conn, reused) = match self.checkout(addr) {
                Some(c) => (c, true),
                // Boxed: a rare path whose future (TCP, TLS) would triple the size of
                // every request's future.
                None => (Box::pin(self.connect(addr)).await?, false),
            };
            let framing = tandem_h1::encode_request_head(
                conn.head_buf(),
                &parts.method,
                target,
                &parts.headers,
                body_len,
            );
            let answered = match conn
                .exchange(addr, &mut body, framing, &parts.method, upgrade)
                .await
            {
                Ok(a) => a,
                Err(f) => {
                    let stale = reused
                        && f.untouched
                        && match f.error {
                            ExchangeError::Write(..) => true,
                            ExchangeError::Closed(_) | ExchangeError::Read(..) => {
                                parts.method.is_idempotent()
                            }
                            _ => false,
                        };
                    if stale {
                        // The backend had closed this idle connection: another one.
                        tracing::debug!(backend = %addr, error = %f.error, "reused connection was closed; request sent again");
                        continue;
                    }
                    return Err(UpstreamError::Exchange(f.error));
                }
            };
            let head = answered.head;
            let mut response = http::Response::from_parts(head.parts, ());
            if head.framing == ResponseFraming::Upgrade {
                let io = crate::upgrade::BackendIo::new(conn.io, conn.read_buf.split().freeze());
                response
                    .extensions_mut()
                    .insert(crate::upgrade::BackendUpgrade::new(io));
                return Ok(response.map(|()| PooledBody::empty()));
            }
            let upload = answered.upload.map(|u| (u, body.take()));
            let back = head.keep_alive.then(|| self.clone());
            let body = H1Body::new(conn, head.framing, addr, back, upload);
            return Ok(response.map(|()| PooledBody::h1(body)));
        }
    }
}

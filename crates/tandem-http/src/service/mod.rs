//! The request path, as named phases around one per-request context ([`RequestCtx`]):
//!
//! 1. [`filter`]: request filter: head size, rate limit, access rules.
//! 2. [`select`]: upstream selection: the route (a pool, or an answer of our own), then per
//!    attempt the backend (balancing, hash key, cookie or source-IP persistence).
//! 3. [`forward`]: upstream request: hop-by-hop headers out, forwarding headers and the
//!    request id in, the request to the backend with timeouts and retries.
//! 4. [`response`]: the backend's response to the client: hop-by-hop headers, upgrades,
//!    the persistence cookie and the sticky record.
//! 5. [`log`]: status counters and the access log.
//!
//! [`handle`] runs them in that order; an error at any phase becomes a response there.

mod filter;
mod forward;
mod log;
mod response;
mod select;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

use crate::access_log::AccessRecord;
use crate::body::Holding;
use crate::errors::{self, ClientBody};
use crate::headers;
use crate::runtime::ListenerRuntime;

/// What one client connection shares with its requests.
pub struct ConnContext {
    /// The listener's runtime when this context was made (per request, see `handle`).
    pub listener: Arc<ListenerRuntime>,
    /// The listener's current runtime: each request routes with the newest config.
    pub live: Arc<arc_swap::ArcSwap<ListenerRuntime>>,
    pub client: SocketAddr,
    /// The client's address as a header value (X-Forwarded-For), made once per connection.
    pub client_ip_value: headers::ClientIp,
    pub activity: Arc<crate::idle::Activity>,
    /// Upgraded streams (WebSocket) run here, so a graceful stop waits for them too.
    pub tunnels: tokio_util::task::TaskTracker,
}

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// One request as the phases see it: its connection, listener, id, client, host and the
/// access record they fill in.
pub(crate) struct RequestCtx<'a> {
    pub conn: &'a ConnContext,
    pub listener: &'a ListenerRuntime,
    pub request_id: &'a str,
    /// The client's address as the policies see it (v4-mapped v6 as v4).
    pub client_ip: IpAddr,
    /// `Host` for HTTP/1, the URI authority for HTTP/2: a shared reference into the
    /// request's buffer, checked to be text.
    pub host: Option<HeaderValue>,
    pub record: AccessRecord,
}

impl RequestCtx<'_> {
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().and_then(|v| v.to_str().ok())
    }

    /// An error response of ours, carrying the request id.
    pub fn error(&self, status: StatusCode, detail: &str) -> Response<ClientBody> {
        errors::error(status, self.request_id, detail)
    }
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(req: Request<Incoming>, ctx: Arc<ConnContext>) -> Response<ClientBody> {
    // After a reload, requests on an existing keep-alive connection use the new routes.
    let current = ctx.live.load_full();
    let ctx = if Arc::ptr_eq(&current, &ctx.listener) {
        ctx
    } else {
        Arc::new(ConnContext {
            listener: current,
            live: ctx.live.clone(),
            client: ctx.client,
            client_ip_value: ctx.client_ip_value.clone(),
            activity: ctx.activity.clone(),
            tunnels: ctx.tunnels.clone(),
        })
    };
    let busy = ctx.activity.begin();
    let l = &ctx.listener;
    l.stats.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let own_id;
    let given_id = req
        .headers()
        .get(X_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok())
        .cloned();
    let request_id = match &given_id {
        Some(v) => v.to_str().unwrap_or_default(),
        None => {
            own_id = l.request_id();
            own_id.as_str()
        }
    };
    let mut rc = RequestCtx {
        conn: &ctx,
        listener: l,
        request_id,
        client_ip: ListenerRuntime::canonical_ip(ctx.client.ip()),
        host: request_host(&req),
        record: AccessRecord::new(&req, ctx.client, request_id, l.settings.access_log),
    };
    // The request timeout bounds the only phase that waits (forward): it takes the
    // deadline into its response timer, so a request arms one timer, not two.
    let deadline = started + l.settings.request_timeout.get();
    let resp = phases(req, &mut rc, deadline).await;
    log::finish(&mut rc, resp.status().as_u16(), started.elapsed());
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, Holding::new(body, busy).boxed())
}

/// Request filter, upstream selection, upstream request and response, in that order.
async fn phases(
    req: Request<Incoming>,
    rc: &mut RequestCtx<'_>,
    deadline: Instant,
) -> Response<ClientBody> {
    if let Some(refused) = filter::request_filter(&req, rc) {
        return refused;
    }
    match select::route(&req, rc) {
        select::Routed::Answer(resp) => resp,
        // Boxed: the forwarding state lives only while a request is in flight, and hyper
        // keeps room for the service's future in every connection.
        select::Routed::Pool(pool) => Box::pin(forward::forward(req, rc, &pool, deadline)).await,
    }
}

/// The Host of a request: `Host` for HTTP/1, the URI authority for HTTP/2. A header
/// value (a shared reference into the request's buffer), not a copy; checked to be text.
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.headers().get(http::header::HOST) {
        Some(v) => v.to_str().is_ok().then(|| v.clone()),
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    }
}

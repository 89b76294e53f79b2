//! The request path, as named phases around one per-request context ([`RequestCtx`]):
//!
//! 1. [`filter`]: request filter: head size, rate limit, access rules.
//! 2. [`select`]: upstream selection: the route (a pool, or an answer of our own), then per
//!    attempt the backend (balancing, hash key, cookie or source-IP persistence).
//! 3. [`forward`]: upstream request: hop-by-hop headers out, forwarding headers and the
//!    request id in, then [`rewrite::upstream_request`] (the route's path rewrite, the
//!    listener's and the route's request header rules), the request to the backend with
//!    timeouts and retries.
//! 4. [`response`]: the backend's response to the client: hop-by-hop headers, upgrades,
//!    the persistence cookie and the sticky record.
//! 5. [`rewrite::client_response`]: the response header rules and HSTS, on every answer
//!    (the backend's or tandem's own).
//! 6. [`crate::compress`]: response compression (the route's or the listener's), when
//!    the request, the response and the policy allow it.
//! 7. [`log`]: status counters and the access log.
//!
//! [`handle`] runs them in that order; an error at any phase becomes a response there.

mod filter;
mod forward;
mod log;
mod response;
mod rewrite;
mod select;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

use crate::access_log::AccessRecord;
use crate::body::Holding;
use crate::compress;
use crate::errors::{self, ClientBody};
use crate::header_rules::TlsFacts;
use crate::headers;
use crate::metered::Metered;
use crate::request_body::RequestBody;
use crate::runtime::{first_time, ListenerRuntime, RouteEntry};
use crate::stream_stall::WindowWatched;
use tandem_policy::{request_authority, AuthorityError, AuthoritySource, Framing};

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
    /// The TLS session's SNI and version (None: plain HTTP), for header rules.
    pub tls: Option<TlsFacts>,
    /// Where the client's stream goes when a request is answered 101 (shared by the
    /// contexts a reload makes, since the connection loop holds the first one).
    pub upgrade: Arc<crate::upgrade::Handover>,
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
    /// The request's one authority (see [`request_host`]): routing, access rules, logs
    /// and the Host sent upstream all use it.
    pub host: Option<HeaderValue>,
    /// The route chosen (the listener's default when none matched); None before routing.
    pub route: Option<&'a RouteEntry>,
    pub record: AccessRecord,
    /// The request body bytes read so far; set when a body is forwarded (see `forward`).
    pub body_read: Option<Arc<std::sync::atomic::AtomicU64>>,
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
pub async fn handle(req: Request<RequestBody>, ctx: Arc<ConnContext>) -> Response<ClientBody> {
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
            tls: ctx.tls.clone(),
            upgrade: ctx.upgrade.clone(),
        })
    };
    let busy = ctx.activity.begin();
    let http2 = req.version() == http::Version::HTTP_2;
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
    let (host, bad_host) = match request_host(&req) {
        Ok(host) => (host, None),
        Err(e) => (None, Some(e)),
    };
    let mut rc = RequestCtx {
        conn: &ctx,
        listener: l,
        request_id,
        client_ip: ListenerRuntime::canonical_ip(ctx.client.ip()),
        record: AccessRecord::new(
            &req,
            host.as_ref(),
            ctx.client,
            request_id,
            l.settings.access_log,
        ),
        host,
        route: None,
        body_read: None,
    };
    // The request timeout bounds the only phase that waits (forward): it takes the
    // deadline into its response timer, so a request arms one timer, not two.
    let deadline = started + l.settings.request_timeout.get();
    let facts = l.compresses.then(|| compress::RequestFacts::of(&req));
    let mut resp = match bad_host {
        Some(e) => refuse_host(&rc, e),
        None => phases(req, &mut rc, deadline).await,
    };
    let status = resp.status();
    rewrite::client_response(resp.headers_mut(), status, &rc);
    if let Some(facts) = &facts {
        let policy = rc
            .route
            .and_then(|r| r.compression.as_ref())
            .or(l.compression.as_ref());
        if let Some(policy) = policy {
            resp = compress::maybe_compress(policy, facts, resp, &l.stats.compression);
        }
    }
    // Status counters now; the access log line, the byte counters and the duration when
    // the body has gone out (its real length, also when chunked or cut short).
    let end = log::respond(rc, ctx.listener.clone(), status.as_u16(), started);
    let (parts, body) = resp.into_parts();
    let body = Holding::new(Metered::new(body, end), busy);
    // HTTP/2: a stream the client gives no window writes nothing, so only the body can
    // tell that it waits for the client (HTTP/1 blocks on the socket, seen by `Watched`).
    let body = if http2 {
        WindowWatched::new(body, ctx.activity.streams.clone()).boxed()
    } else {
        body.boxed()
    };
    Response::from_parts(parts, body)
}

/// Request filter, upstream selection, upstream request and response, in that order.
async fn phases(
    req: Request<RequestBody>,
    rc: &mut RequestCtx<'_>,
    deadline: Instant,
) -> Response<ClientBody> {
    // HTTP-01 answers come first: the ACME server must reach them whatever the access
    // rules and routes say. Unknown tokens fall through (a backend may run its own ACME).
    if !rc.listener.https && req.method() == http::Method::GET {
        if let Some(answer) = rc.listener.acme.answer(req.uri().path()) {
            return errors::fixed(StatusCode::OK, "application/octet-stream", answer);
        }
    }
    if let Some(refused) = filter::request_filter(&req, rc) {
        return refused;
    }
    match select::route(&req, rc) {
        select::Routed::Answer(resp) => resp,
        // Boxed: the forwarding state lives only while a request is in flight, not in
        // the room every request's future keeps.
        select::Routed::Pool(pool) => Box::pin(forward::forward(req, rc, &pool, deadline)).await,
    }
}

/// The request's one authority ([`tandem_policy::request_authority`]): the target's
/// (absolute form, CONNECT, HTTP/2 `:authority`) when it has one, else Host; refused when
/// Host is doubled, missing in HTTP/1.1, not a `host[:port]`, or disagrees with the target.
/// From Host it is a shared reference into the request's buffer, not a copy.
fn request_host<B>(req: &Request<B>) -> Result<Option<HeaderValue>, AuthorityError> {
    let framing = match req.version() {
        http::Version::HTTP_09 | http::Version::HTTP_10 => Framing::Http10,
        http::Version::HTTP_11 => Framing::Http11,
        _ => Framing::Http2,
    };
    let hosts = req.headers().get_all(http::header::HOST);
    let target = req.uri().authority().map(|a| a.as_str());
    let source = request_authority(framing, hosts.iter().map(|v| v.as_bytes()), target)?;
    Ok(match source {
        AuthoritySource::Host => req.headers().get(http::header::HOST).cloned(),
        AuthoritySource::Target => target.and_then(|t| HeaderValue::from_str(t).ok()),
        AuthoritySource::None => None,
    })
}

/// The answer to a request whose authority is refused: 400, counted, logged once.
fn refuse_host(rc: &RequestCtx<'_>, e: AuthorityError) -> Response<ClientBody> {
    let stats = &rc.listener.stats;
    stats.bad_host.fetch_add(1, Ordering::Relaxed);
    let (listener, client) = (&rc.listener.name, rc.conn.client);
    if first_time(&stats.logged.bad_host) {
        tracing::warn!(%listener, %client, reason = e.reason(), request_id = rc.request_id,
            "request refused for its Host/authority: {e} (logged once; see tandem_http_bad_requests_total)");
    } else {
        tracing::debug!(%listener, %client, reason = e.reason(), request_id = rc.request_id,
            "request refused for its Host/authority: {e}");
    }
    rc.error(StatusCode::BAD_REQUEST, &format!("{e}"))
}

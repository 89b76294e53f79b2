//! The request pipeline: limits and rules, routing, balancing with persistence, forwarding
//! with retries and timeouts, upgrades, and the access log.

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_policy::{Headers, RequestView, Verdict};
use tandem_proxy::{BackendLease, ErrorKind};

use crate::access_log::{self, AccessRecord};
use crate::body::Holding;
use crate::errors::{self, ClientBody};
use crate::headers;
use crate::runtime::{lock, KeySource, ListenerRuntime, PoolRuntime, Target};
use crate::upgrade;
use crate::upstream::{ConnectError, UpstreamError, UpstreamResponse};

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

struct HeaderLookup<'a>(&'a HeaderMap);

impl Headers for HeaderLookup<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
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
    let l = ctx.listener.clone();
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
    let mut record = AccessRecord::new(&req, ctx.client, request_id, l.settings.access_log);
    let timeout = l.settings.request_timeout.get();
    let resp =
        match tokio::time::timeout(timeout, pipeline(req, &ctx, request_id, &mut record)).await {
            Ok(resp) => resp,
            Err(_) => errors::error(
                StatusCode::GATEWAY_TIMEOUT,
                request_id,
                "the request did not complete in time",
            ),
        };
    let status = resp.status().as_u16();
    l.stats.count_status(status);
    record.finish(status, started.elapsed());
    if l.settings.access_log {
        access_log::emit(&record, &l.name, &l.settings.access_log_format);
    }
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, Holding::new(body, busy).boxed())
}

async fn pipeline(
    req: Request<Incoming>,
    ctx: &ConnContext,
    request_id: &str,
    record: &mut AccessRecord,
) -> Response<ClientBody> {
    let l = &ctx.listener;
    // hyper enforces the head size only down to its 8 KiB minimum buffer; smaller limits
    // are checked here.
    if head_size(&req) > l.settings.max_header_bytes as usize {
        return errors::error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            request_id,
            "the request head is too large",
        );
    }
    let client_ip = ListenerRuntime::canonical_ip(ctx.client.ip());
    let host = request_host(&req);
    if let Some(rate) = &l.rate {
        if let Err(retry_after) = lock(rate).check(client_ip, l.clock.now()) {
            l.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut resp = errors::error(
                StatusCode::TOO_MANY_REQUESTS,
                request_id,
                "rate limit exceeded",
            );
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            return resp;
        }
    }
    let headers = HeaderLookup(req.headers());
    let view = RequestView {
        method: req.method().as_str(),
        host: host_str(&host),
        path: req.uri().path(),
        headers: &headers,
    };
    if let Verdict::Deny { rule } = l.rules.evaluate(client_ip, &view) {
        l.stats.denied.fetch_add(1, Ordering::Relaxed);
        return errors::error(
            StatusCode::FORBIDDEN,
            request_id,
            &format!("denied by access rule {rule}"),
        );
    }
    let target = l.routes.find(&view).cloned();
    match target.as_deref() {
        None | Some(Target::NotFound) => errors::error(
            StatusCode::NOT_FOUND,
            request_id,
            "no route for this request",
        ),
        Some(Target::Redirect { status, location }) => {
            let uri = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let host_only = host_str(&host)
                .map(tandem_policy::normalize_host)
                .unwrap_or_default();
            let location = location
                .replace("{hostname}", &host_only)
                .replace("{host}", host_str(&host).unwrap_or(""))
                .replace("{uri}", uri);
            errors::redirect(*status, &location)
        }
        Some(Target::Respond {
            status,
            content_type,
            body,
        }) => errors::fixed(*status, content_type, body.clone()),
        Some(Target::Pool(pool)) => {
            let pool = pool.clone();
            // Boxed: the forwarding state lives only while a request is in flight, and
            // hyper keeps room for the service's future in every connection.
            Box::pin(forward(req, ctx, &pool, host, request_id, record)).await
        }
    }
}

/// Size of an HTTP/1 request head as sent (request line, header lines, blank line); 0 for
/// HTTP/2, whose header list hyper limits itself.
fn head_size<B>(req: &Request<B>) -> usize {
    if req.version() >= http::Version::HTTP_2 {
        return 0;
    }
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3);
    let line = req.method().as_str().len() + 1 + target + 1 + "HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + fields + 2
}

/// Whether a failed upstream exchange failed because the client's body exceeded the limit.
fn body_over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The kind of a failed upstream exchange, for the backend's error counters: our
/// connector's error when it failed connecting, else a broken exchange.
fn upstream_error_kind(e: &UpstreamError) -> ErrorKind {
    match e.connect_error() {
        Some(ConnectError::Timeout(..)) => ErrorKind::ConnectTimeout,
        Some(ConnectError::Tls(..)) => ErrorKind::Tls,
        Some(ConnectError::Io(..) | ConnectError::BadUri(_)) => ErrorKind::Connect,
        None if matches!(e, UpstreamError::Handshake(..)) => ErrorKind::Connect,
        None => ErrorKind::Protocol,
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

fn host_str(host: &Option<HeaderValue>) -> Option<&str> {
    host.as_ref().and_then(|v| v.to_str().ok())
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == http::Version::HTTP_11
        && req.headers().contains_key(http::header::UPGRADE)
        && req
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// The key hash algorithms look at, per the pool's key source.
fn hash_key<B>(req: &Request<B>, source: &KeySource, client: &SocketAddr) -> Option<Vec<u8>> {
    match source {
        KeySource::None => None,
        KeySource::SourceIp => Some(tandem_proxy::ip_key(client)),
        KeySource::Header(name) => req.headers().get(name).map(|v| v.as_bytes().to_vec()),
        KeySource::Cookie(name) => {
            let values = req
                .headers()
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok());
            tandem_policy::find_cookie(values, name).map(|v| v.as_bytes().to_vec())
        }
        KeySource::Uri => Some(
            req.uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .as_bytes()
                .to_vec(),
        ),
    }
}

/// The backend a persistence mechanism asks for: the cookie's, or the sticky table's.
fn preferred_backend<B>(
    req: &Request<B>,
    pool: &PoolRuntime,
    client: &SocketAddr,
    now: Duration,
) -> Option<String> {
    if let Some(cookie) = &pool.cookie {
        let values = req
            .headers()
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let value = tandem_policy::find_cookie(values, &cookie.name)?;
        return pool
            .shared
            .find_backend(|id| tandem_policy::persistence_value(id) == value);
    }
    if let Some(sticky) = &pool.source_ip_sticky {
        return sticky.get(&tandem_proxy::ip_key(client), now);
    }
    None
}

async fn forward(
    req: Request<Incoming>,
    ctx: &ConnContext,
    pool: &Arc<PoolRuntime>,
    host: Option<HeaderValue>,
    request_id: &str,
    record: &mut AccessRecord,
) -> Response<ClientBody> {
    let l = &ctx.listener;
    let max_body = l.settings.max_body_bytes;
    if req.body().size_hint().lower() > max_body {
        return errors::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            request_id,
            &format!("the body is over {max_body} bytes"),
        );
    }
    let now = l.clock.now();
    let key = hash_key(&req, &pool.key, &ctx.client);
    let preferred = preferred_backend(&req, pool, &ctx.client, now);
    let upgrade = is_upgrade(&req);
    let retryable_method = is_idempotent(req.method()) && !upgrade;
    let mut req = req;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // A body-less request can be sent again; a streamed body cannot.
    let replayable = body.is_end_stream();
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    headers::add_forwarding(
        &mut parts.headers,
        &l.settings.forwarded,
        &ctx.client_ip_value,
        l.https,
        host_str(&host),
        parts.version,
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        parts.headers.insert(X_REQUEST_ID, v);
    }
    let mut body = Some(Limited::new(body, max_body as usize).boxed());
    lock(&pool.budget).record_request(now);

    let attempts = 1 + if retryable_method && replayable {
        pool.settings.retry.attempts
    } else {
        0
    };
    let mut tried: Vec<usize> = Vec::new();
    let mut last_error: Option<Response<ClientBody>> = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            if !lock(&pool.budget).try_retry(l.clock.now()) {
                break;
            }
            l.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        let want = if attempt == 0 {
            preferred.as_deref()
        } else {
            None
        };
        let Some(lease) = pool.shared.acquire_preferred(want, key.as_deref(), &tried) else {
            return last_error.unwrap_or_else(|| {
                errors::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    request_id,
                    "no healthy backend",
                )
            });
        };
        if attempts > 1 {
            tried.push(lease.index());
        }
        record.upstream = Some(lease.address());
        // The last possible attempt takes the headers; earlier ones need a copy to retry.
        let last_try = attempt + 1 == attempts;
        let upstream_req = build_request(&mut parts, pool, &lease, &mut body, last_try);
        let sent_at = Instant::now();
        let result = tokio::time::timeout(
            pool.settings.response_timeout.get(),
            pool.upstream.send(lease.address(), upstream_req),
        )
        .await;
        record.upstream_time = Some(sent_at.elapsed());
        match result {
            Err(_) => {
                lease.metrics().error(ErrorKind::Timeout);
                lease.failed("response timeout");
                return errors::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    request_id,
                    "the backend did not answer in time",
                );
            }
            Ok(Err(e)) if body_over_limit(e.as_error()) => {
                // The client's body outgrew max_body_bytes while streaming (no
                // Content-Length): the client's fault, not the backend's.
                lease.metrics().error(ErrorKind::BodyTooLarge);
                return errors::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    request_id,
                    &format!("the body is over {max_body} bytes"),
                );
            }
            Ok(Err(e)) => {
                let connect = e.is_connect();
                lease.metrics().error(upstream_error_kind(&e));
                lease.failed(&format!("{e}"));
                let resp = errors::error(StatusCode::BAD_GATEWAY, request_id, "the backend failed");
                if connect && retryable_method && replayable {
                    last_error = Some(resp);
                    continue;
                }
                return resp;
            }
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                lease.metrics().response(status, sent_at.elapsed());
                lease.observe_latency(sent_at.elapsed());
                if status >= 500 {
                    lease.failed(&format!("status {status}"));
                } else {
                    lease.succeeded();
                }
                let retry_status = pool.settings.retry.on_status.contains(&status);
                if retry_status && attempt + 1 < attempts {
                    last_error = Some(errors::error(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                        request_id,
                        "retried",
                    ));
                    continue;
                }
                return respond(
                    resp,
                    lease,
                    pool,
                    preferred.as_deref(),
                    ctx,
                    client_upgrade,
                    now,
                );
            }
        }
    }
    last_error.unwrap_or_else(|| {
        errors::error(
            StatusCode::BAD_GATEWAY,
            request_id,
            "retry budget exhausted",
        )
    })
}

fn build_request(
    parts: &mut http::request::Parts,
    pool: &PoolRuntime,
    lease: &BackendLease,
    body: &mut Option<crate::upstream::UpstreamBody>,
    last_try: bool,
) -> Request<crate::upstream::UpstreamBody> {
    let uri = if pool.upstream.http2 {
        // hyper-util's pooled client: absolute form, the backend's address as authority.
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        format!("{}://{}{}", pool.upstream.scheme, lease.address(), path)
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/"))
    } else {
        // One HTTP/1.1 connection to this backend: origin form.
        parts
            .uri
            .path_and_query()
            .cloned()
            .map(Uri::from)
            .unwrap_or_else(|| Uri::from_static("/"))
    };
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(if pool.upstream.http2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        });
    if let Some(h) = builder.headers_mut() {
        *h = if last_try {
            std::mem::take(&mut parts.headers)
        } else {
            parts.headers.clone()
        };
        if pool.upstream.http2 {
            // HTTP/2 carries the host in :authority; a Host header would be a second source.
            h.remove(http::header::HOST);
        } else if !h.contains_key(http::header::HOST) {
            // An HTTP/2 client sent its host as :authority; without this the HTTP/1.1
            // backend would get the backend's own address as Host (hyper fills it in).
            // No authority either (HTTP/1.0 without Host): the backend's address, as a
            // client would name it.
            let v = match parts.uri.authority() {
                Some(a) => HeaderValue::from_str(a.as_str()).ok(),
                None => HeaderValue::from_str(&lease.address().to_string()).ok(),
            };
            if let Some(v) = v {
                h.insert(http::header::HOST, v);
            }
        }
    }
    let body = body.take().unwrap_or_else(|| {
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed()
    });
    builder
        .body(body)
        .expect("a request built from valid parts")
}

fn respond(
    resp: UpstreamResponse,
    lease: BackendLease,
    pool: &PoolRuntime,
    preferred: Option<&str>,
    ctx: &ConnContext,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    now: Duration,
) -> Response<ClientBody> {
    let mut resp = resp;
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let remember = pool.cookie.is_some() || pool.source_ip_sticky.is_some();
    let backend_id = if remember {
        lease.backend_id().to_string()
    } else {
        String::new()
    };
    // An upgraded stream keeps its backend lease for as long as it lives, so
    // least-connections counts open WebSockets; other responses hold it in the body.
    let mut hold = Some(lease);
    if switching {
        if let (Some(client_side), Some(lease)) = (client_upgrade, hold.take()) {
            let backend_side = hyper::upgrade::on(&mut resp);
            upgrade::tunnel(client_side, backend_side, lease, &ctx.tunnels);
        }
    }
    let (mut parts, body) = resp.into_parts();
    // The client's protocol is ours to choose, whatever the backend spoke.
    parts.version = http::Version::HTTP_11;
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    if let Some(cookie) = &pool.cookie {
        if preferred != Some(backend_id.as_str()) {
            let value = tandem_policy::persistence_value(backend_id.as_str());
            let header = tandem_policy::set_cookie(
                &cookie.name,
                &value,
                ctx.listener.https,
                cookie.same_site,
                cookie.max_age,
            );
            if let Ok(v) = HeaderValue::from_str(&header) {
                parts.headers.append(http::header::SET_COOKIE, v);
            }
        }
    }
    if let Some(sticky) = &pool.source_ip_sticky {
        // Refreshed on every use: the entry expires `ttl` after the client's last request.
        sticky.record(tandem_proxy::ip_key(&ctx.client), &backend_id, now);
    }
    Response::from_parts(parts, Holding::new(body, hold).boxed())
}

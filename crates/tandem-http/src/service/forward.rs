//! Phase 3, upstream request: the body limit, hop-by-hop headers out, forwarding headers
//! and the request id in, the path rewrite and header rules (`rewrite`); then the request to a backend chosen by [`Selection`], with the
//! response timeout, retries (idempotent, replayable requests, within the retry budget)
//! and the backend's health and latency accounting. A response goes on to phase 4.
//! The request's own deadline (`request_timeout`) is enforced here too, by the same
//! timer as the response timeout: the only waits of a request are its attempts.

use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tandem_pool::{BackendLease, ErrorKind};
use tokio::time::Instant;

use super::response::respond;
use super::select::Selection;
use super::{RequestCtx, X_REQUEST_ID};
use crate::body::{client_body_failed, ClientBodyError};
use crate::errors::ClientBody;
use crate::headers;
use crate::metered::CountedBody;
use crate::request_body::RequestBody;
use crate::runtime::{first_time, lock, PoolRuntime};
use crate::upstream::{ConnectError, UpstreamBody, UpstreamError};

pub(super) async fn forward(
    req: Request<RequestBody>,
    rc: &mut RequestCtx<'_>,
    pool: &Arc<PoolRuntime>,
    deadline: Instant,
) -> Response<ClientBody> {
    let l = rc.listener;
    let max_body = l.settings.max_body_bytes;
    if req.body().size_hint().lower() > max_body {
        return rc.error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is over {max_body} bytes"),
        );
    }
    let now = l.clock.now();
    let client_key = tandem_proxy::ip_key(&rc.conn.client, l.client_ipv6_prefix);
    let selection = Selection::new(&req, pool, &client_key, now);
    let upgrade = is_upgrade(&req);
    let retryable_method = is_idempotent(req.method()) && !upgrade;
    let (mut parts, body) = req.into_parts();
    // A body-less request can be sent again; a streamed body cannot.
    let replayable = body.is_end_stream();
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    if !pool.upstream.http2
        && !replayable
        && body.size_hint().exact().is_none()
        && matches!(parts.method, Method::GET | Method::HEAD)
    {
        // A GET or HEAD body of unknown length is forwarded chunked, as HAProxy does
        // (tandem-h1 frames a body as chunked when Transfer-Encoding is set).
        parts.headers.insert(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    headers::add_forwarding(
        &mut parts.headers,
        &l.settings.forwarded,
        &rc.conn.client_ip_value,
        l.https,
        rc.host(),
        parts.version,
    );
    if let Ok(v) = HeaderValue::from_str(rc.request_id) {
        parts.headers.insert(X_REQUEST_ID, v);
    }
    super::rewrite::upstream_request(&mut parts, rc);
    // Counted as it is read (the access log's bytes_in). The client's body errors are
    // marked as the client's, so a failed exchange can tell them from the backend's.
    let tally = Arc::new(AtomicU64::new(0));
    rc.body_read = Some(tally.clone());
    let body = CountedBody::new(body, tally).map_err(ClientBodyError);
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
        let Some(lease) = selection.acquire(pool, attempt, &tried) else {
            return last_error.unwrap_or_else(|| {
                rc.error(StatusCode::SERVICE_UNAVAILABLE, "no healthy backend")
            });
        };
        if attempts > 1 {
            tried.push(lease.index());
        }
        rc.record.upstream = Some(lease.address());
        // The last possible attempt takes the headers; earlier ones need a copy to retry.
        let last_try = attempt + 1 == attempts;
        let upstream_req = build_request(
            &mut parts,
            pool,
            &lease,
            &mut body,
            last_try,
            rc.host.as_ref(),
        );
        let sent_at = Instant::now();
        let response_deadline = sent_at + pool.settings.response_timeout.get();
        let result = tokio::time::timeout_at(
            response_deadline.min(deadline),
            pool.upstream.send(lease.address(), upstream_req),
        )
        .await;
        let took = sent_at.elapsed();
        rc.record.upstream_time = Some(took);
        match result {
            Err(_) if deadline < response_deadline => {
                // The whole request ran out of time (retries included), not this backend.
                return rc.error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the request did not complete in time",
                );
            }
            Err(_) => {
                lease.metrics().error(ErrorKind::Timeout);
                lease.failed("response timeout");
                return rc.error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the backend did not answer in time",
                );
            }
            Ok(Err(e)) if body_over_limit(e.as_error()) => {
                // The client's body outgrew max_body_bytes while streaming (no
                // Content-Length): the client's fault, not the backend's.
                lease.metrics().error(ErrorKind::BodyTooLarge);
                return rc.error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the body is over {max_body} bytes"),
                );
            }
            Ok(Err(e)) if client_body_failed(e.as_error()).is_some() => {
                // Bad chunk framing, a body cut short, the client gone: 400 (unread when
                // the client has gone), and nothing counted against the backend.
                client_body_refused(rc, &e);
                return rc.error(
                    StatusCode::BAD_REQUEST,
                    "the request body was malformed or incomplete",
                );
            }
            Ok(Err(e)) => {
                let connect = e.is_connect();
                lease.metrics().error(upstream_error_kind(&e));
                lease.failed(&format!("{e}"));
                let resp = rc.error(StatusCode::BAD_GATEWAY, "the backend failed");
                if connect && retryable_method && replayable {
                    last_error = Some(resp);
                    continue;
                }
                return resp;
            }
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                lease.metrics().response(status, took);
                lease.observe_latency(took);
                if status >= 500 {
                    lease.failed(&format!("status {status}"));
                } else {
                    lease.succeeded();
                }
                let retry_status = pool.settings.retry.on_status.contains(&status);
                if retry_status && attempt + 1 < attempts {
                    last_error = Some(rc.error(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                        "retried",
                    ));
                    continue;
                }
                return respond(
                    resp,
                    lease,
                    pool,
                    selection.preferred.as_deref(),
                    rc,
                    upgrade,
                    now,
                );
            }
        }
    }
    last_error.unwrap_or_else(|| rc.error(StatusCode::BAD_GATEWAY, "retry budget exhausted"))
}

fn build_request(
    parts: &mut http::request::Parts,
    pool: &PoolRuntime,
    lease: &BackendLease,
    body: &mut Option<UpstreamBody>,
    last_try: bool,
    host: Option<&HeaderValue>,
) -> Request<UpstreamBody> {
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
        } else {
            // The request's one authority (an absolute-form target or HTTP/2 :authority
            // wins over Host), so the backend sees the host that was routed and checked.
            // None (HTTP/1.0 without Host): the backend's address, as a client would name
            // it (hyper would fill it in the same way).
            let v = match host {
                Some(v) => Some(v.clone()),
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

/// Counts and logs (a warning the first time, then debug) a client body that failed.
fn client_body_refused(rc: &RequestCtx<'_>, e: &UpstreamError) {
    let stats = &rc.listener.stats;
    stats.client_body_errors.fetch_add(1, Ordering::Relaxed);
    let cause = client_body_failed(e.as_error()).map(|c| c.0.to_string());
    let (listener, client) = (&rc.listener.name, rc.conn.client);
    if first_time(&stats.logged.client_body) {
        tracing::warn!(%listener, %client, cause = ?cause, request_id = rc.request_id,
            "request body malformed or cut short: answered 400, backend not blamed (logged once; see tandem_http_bad_requests_total)");
    } else {
        tracing::debug!(%listener, %client, cause = ?cause, request_id = rc.request_id,
            "request body malformed or cut short");
    }
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
        None => ErrorKind::Protocol,
    }
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

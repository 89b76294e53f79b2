//! Phase 1, request filter: the head size limit, the rate limit and the access rules.
//! A refused request gets its answer here and goes no further.

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use std::sync::atomic::Ordering;
use tandem_policy::{Headers, RequestView, Verdict};

use super::RequestCtx;
use crate::errors::ClientBody;
use crate::runtime::lock;

/// The request's headers as the policies look them up.
pub(super) struct HeaderLookup<'a>(pub &'a HeaderMap);

impl Headers for HeaderLookup<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The answer to a refused request; `None` lets it through.
pub(super) fn request_filter<B>(
    req: &Request<B>,
    rc: &RequestCtx<'_>,
) -> Option<Response<ClientBody>> {
    let l = rc.listener;
    // hyper enforces the head size only down to its 8 KiB minimum buffer; smaller limits
    // are checked here.
    if head_size(req) > l.settings.max_header_bytes as usize {
        return Some(rc.error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request head is too large",
        ));
    }
    if let Some(rate) = &l.rate {
        if let Err(retry_after) = lock(rate).check(rc.client_ip, l.clock.now()) {
            l.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut resp = rc.error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            return Some(resp);
        }
    }
    let headers = HeaderLookup(req.headers());
    let view = RequestView {
        method: req.method().as_str(),
        host: rc.host(),
        path: req.uri().path(),
        headers: &headers,
    };
    if let Verdict::Deny { rule } = l.rules.evaluate(rc.client_ip, &view) {
        l.stats.denied.fetch_add(1, Ordering::Relaxed);
        return Some(rc.error(
            StatusCode::FORBIDDEN,
            &format!("denied by access rule {rule}"),
        ));
    }
    None
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

//! Phase 1, request filter: the rate limit and the access rules (the head's size and
//! field count are the HTTP/1 server's and the h2 stack's to limit, as the head is read).
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

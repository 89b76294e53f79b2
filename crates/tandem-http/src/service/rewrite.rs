//! The header rules and path rewrites of the listener and the chosen route, as two steps
//! of the request path: [`upstream_request`] (phase 3, after the forwarding headers, so
//! the rules have the last word on what the backend sees) and [`client_response`] (run by
//! `handle` on every answer, proxied or tandem's own). The listener's rules run first,
//! then the route's; HSTS last.

use http::{HeaderMap, StatusCode, Uri};

use super::RequestCtx;
use crate::header_rules::Vars;

impl RequestCtx<'_> {
    /// What `{variables}` in header rules stand for in this request.
    fn vars(&self) -> Vars<'_> {
        Vars {
            client: self.conn.client,
            request_id: self.request_id,
            host: self.host(),
            https: self.listener.https,
            tls: self.conn.tls.as_ref(),
        }
    }
}

/// The route's path rewrite and the request header rules, on the request the backend gets.
pub(super) fn upstream_request(parts: &mut http::request::Parts, rc: &RequestCtx<'_>) {
    let route = rc.route;
    if let Some(rewrite) = route.and_then(|r| r.rewrite.as_ref()) {
        let original = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Some(uri) = rewrite.apply(original).and_then(|p| p.parse::<Uri>().ok()) {
            parts.uri = uri;
        }
    }
    let listener = &rc.listener.headers.request;
    let route_rules = route.map(|r| &r.headers.request).filter(|r| !r.is_empty());
    if listener.is_empty() && route_rules.is_none() {
        return;
    }
    let vars = rc.vars();
    listener.apply(&mut parts.headers, &vars);
    if let Some(rules) = route_rules {
        rules.apply(&mut parts.headers, &vars);
    }
}

/// The response header rules and HSTS, on any answer but a 101 (the headers of an
/// upgrade belong to the protocol switching in).
pub(super) fn client_response(headers: &mut HeaderMap, status: StatusCode, rc: &RequestCtx<'_>) {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let listener = &rc.listener.headers.response;
    let route_rules = rc
        .route
        .map(|r| &r.headers.response)
        .filter(|r| !r.is_empty());
    if !listener.is_empty() || route_rules.is_some() {
        let vars = rc.vars();
        listener.apply(headers, &vars);
        if let Some(rules) = route_rules {
            rules.apply(headers, &vars);
        }
    }
    if let Some(hsts) = &rc.listener.hsts {
        headers.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
}

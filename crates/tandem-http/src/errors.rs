//! Responses tandem writes itself: errors with a short body that carries the request id,
//! redirects and fixed responses.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

/// Response bodies towards clients.
pub type ClientBody = BoxBody<Bytes, crate::upstream::BoxError>;

pub fn full(text: impl Into<Bytes>) -> ClientBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A short text error: "502 Bad Gateway\nrequest id: ...\n".
pub fn error(status: StatusCode, request_id: &str, detail: &str) -> Response<ClientBody> {
    let reason = status.canonical_reason().unwrap_or("");
    let mut text = format!("{} {reason}\nrequest id: {request_id}\n", status.as_u16());
    if !detail.is_empty() {
        text.push_str(detail);
        text.push('\n');
    }
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    resp
}

pub fn fixed(status: StatusCode, content_type: &str, body: String) -> Response<ClientBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

pub fn redirect(status: StatusCode, location: &str) -> Response<ClientBody> {
    let mut resp = Response::new(full(""));
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

//! Maps `METHOD /path` to a handler. Paths are versioned (`/v1/...`) so the API can grow
//! without breaking scripts; `/metrics` stays where Prometheus looks for it.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::error::{json_response, ApiError, Body, Code};
use super::{cluster, views, writes};
use crate::Node;

/// Answers one request; every refusal is a JSON error.
pub async fn route(node: &Node, req: Request<Incoming>, who: &str) -> Response<Body> {
    let path = req.uri().path().to_string();
    match dispatch(node, req, who).await {
        Ok(response) => response,
        Err(e) => {
            if let Some(why) = e.rejected {
                node.admin_rejections().refuse(why, who, &path, &e.message);
            }
            e.into_response()
        }
    }
}

/// Refuses a method the path does not take, naming the ones it does.
fn only(method: &Method, allowed: &[Method]) -> Result<(), ApiError> {
    if allowed.contains(method) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut e = ApiError::new(
        Code::MethodNotAllowed,
        format!("{method} is not allowed here; use {}", names.join(" or ")),
    );
    e.allow = Some(names.join(", "));
    Err(e)
}

fn ok(value: &impl serde::Serialize) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, value))
}

async fn dispatch(
    node: &Node,
    req: Request<Incoming>,
    who: &str,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    use Method as M;
    match segments.as_slice() {
        ["metrics"] => {
            only(&method, &[M::GET])?;
            let text = crate::metrics::render(node).await;
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
                .body(Full::new(Bytes::from(text)))
                .expect("a static header makes a valid response"))
        }
        ["v1", "status"] => {
            only(&method, &[M::GET])?;
            ok(&views::status(node))
        }
        ["v1", "vrrp"] => {
            only(&method, &[M::GET])?;
            ok(&views::vrrp(node).await)
        }
        ["v1", "pools"] => {
            only(&method, &[M::GET])?;
            ok(&views::pools(node))
        }
        ["v1", "pools", pool] => {
            only(&method, &[M::GET])?;
            let shared = views::find_pool(node, pool)?;
            ok(&views::pool_view(&shared))
        }
        ["v1", "pools", pool, "backends"] => {
            only(&method, &[M::GET, M::POST])?;
            if method == M::GET {
                let shared = views::find_pool(node, pool)?;
                return ok(&views::pool_view(&shared).backends);
            }
            let body = writes::read_body(req.into_body()).await?;
            writes::add_backend(node, pool, body, who).await
        }
        ["v1", "pools", pool, "backends", id] => {
            only(&method, &[M::GET, M::DELETE])?;
            if method == M::GET {
                let shared = views::find_pool(node, pool)?;
                return ok(&views::backend(&shared, id)?);
            }
            writes::remove_backend(node, pool, id, who).await
        }
        ["v1", "pools", pool, "backends", id, "weight"] => {
            only(&method, &[M::PUT])?;
            let body = writes::read_body(req.into_body()).await?;
            writes::set_weight(node, pool, id, body, who).await
        }
        ["v1", "pools", pool, "backends", id, action] => {
            let Some(change) = writes::state_change(action) else {
                return Err(unknown(&method, &path));
            };
            only(&method, &[M::POST])?;
            writes::backend_change(node, pool, id, change, who).await
        }
        ["v1", "reload"] => {
            only(&method, &[M::POST])?;
            writes::reload(node, who).await
        }
        ["v1", "config", "check"] => {
            only(&method, &[M::POST])?;
            let origin = query
                .as_deref()
                .and_then(|q| query_value(q, "origin"))
                .unwrap_or_else(|| "<request body>".to_string());
            let body = writes::read_body(req.into_body()).await?;
            writes::check_config(&body, &origin)
        }
        ["v1", "cluster"] => {
            only(&method, &[M::GET])?;
            cluster::status(node).await
        }
        ["v1", "cluster", "join"] => {
            only(&method, &[M::POST])?;
            let body = writes::read_body(req.into_body()).await?;
            cluster::join(node, body, who).await
        }
        ["v1", "cluster", "leave"] => {
            only(&method, &[M::POST])?;
            let body = writes::read_body(req.into_body()).await?;
            cluster::leave(node, body, who).await
        }
        ["v1", "config", "apply"] => {
            only(&method, &[M::POST])?;
            let origin = query
                .as_deref()
                .and_then(|q| query_value(q, "origin"))
                .unwrap_or_else(|| "<request body>".to_string());
            let body = writes::read_body(req.into_body()).await?;
            cluster::apply_config(node, body, &origin, who).await
        }
        ["v1", "vip", "move"] => {
            only(&method, &[M::POST])?;
            let body = writes::read_body(req.into_body()).await?;
            cluster::move_vip(node, body, who).await
        }
        ["v1", "vip", "force-hold"] => {
            only(&method, &[M::POST])?;
            let body = writes::read_body(req.into_body()).await?;
            cluster::force_hold(node, body, who).await
        }
        _ => Err(unknown(&method, &path)),
    }
}

fn unknown(method: &Method, path: &str) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {method} {path}; the API is listed in docs/operations.md"
    ))
}

/// The percent-decoded value of `key` in a query string (`a=1&origin=%2Fetc%2Ft.toml`).
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            query_value("x=1&origin=%2Fetc%2Ftandem%20a.toml", "origin").as_deref(),
            Some("/etc/tandem a.toml")
        );
        assert_eq!(query_value("origin=a%2", "origin").as_deref(), Some("a%2"));
        assert_eq!(query_value("x=1", "origin"), None);
    }
}

//! The write endpoints. Each one is a [`Node`] change (`change_backend`, `apply` through
//! `reload_from_disk`), so the API validates exactly like `check-config` and applies
//! exactly like SIGHUP: no second code path that could drift.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use tandem_config::BackendState;

use super::error::{json_response, ApiError, Body, Code};
use super::rejections::Rejected;
use super::views;
use crate::{BackendChange, Node};

/// Request bodies are small JSON objects or one config file; anything larger is a mistake.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The request body, at most [`MAX_BODY`] bytes: a larger Content-Length is refused
/// before any of it is read, a longer chunked body once the limit is passed (413).
pub async fn read_body(body: hyper::body::Incoming) -> Result<Bytes, ApiError> {
    use hyper::body::Body as _;
    let too_large = |size: String| {
        ApiError::rejected(
            Code::TooLarge,
            Rejected::BodyTooLarge,
            format!("the request body ({size}) is over the {MAX_BODY}-byte limit"),
        )
    };
    let declared = body.size_hint().lower();
    if declared > MAX_BODY as u64 {
        return Err(too_large(format!("{declared} bytes")));
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large("chunked, longer".into()))
        }
        Err(e) => Err(ApiError::invalid(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// `body` as the JSON object an endpoint takes; anything else is a counted refusal.
pub(super) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::rejected(
            Code::Invalid,
            Rejected::MalformedJson,
            format!("request body: {e}"),
        )
    })
}

/// drain | disable | enable | weight, answered with the backend as it runs now.
pub async fn backend_change(
    node: &Node,
    pool: &str,
    id: &str,
    change: BackendChange,
    who: &str,
) -> Result<Response<Body>, ApiError> {
    let report = node.change_backend(pool, id, change, who).await?;
    let shared = views::find_pool(node, pool)?;
    let backend = views::backend(&shared, id)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "backend": backend, "applied": report }),
    ))
}

pub fn state_change(action: &str) -> Option<BackendChange> {
    Some(BackendChange::State(match action {
        "drain" => BackendState::Drain,
        "disable" => BackendState::Disabled,
        "enable" => BackendState::Enabled,
        _ => return None,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    weight: u32,
}

pub async fn set_weight(
    node: &Node,
    pool: &str,
    id: &str,
    body: Bytes,
    who: &str,
) -> Result<Response<Body>, ApiError> {
    let WeightBody { weight } = parse_json(&body)?;
    backend_change(node, pool, id, BackendChange::Weight(weight), who).await
}

/// POST /v1/pools/{pool}/backends: the body is a `[[pool.backend]]` table as JSON.
pub async fn add_backend(
    node: &Node,
    pool: &str,
    body: Bytes,
    who: &str,
) -> Result<Response<Body>, ApiError> {
    let backend: tandem_config::Backend = parse_json(&body)?;
    let id = backend.id.clone();
    let report = node
        .change_backend(pool, &id, BackendChange::Add(backend), who)
        .await?;
    let shared = views::find_pool(node, pool)?;
    // null for a DNS name that has no address yet (node.dns.start_unresolved).
    let view = views::backend(&shared, &id).ok();
    Ok(json_response(
        StatusCode::CREATED,
        &serde_json::json!({ "backend": view, "applied": report }),
    ))
}

/// DELETE: the backend leaves the pool at once; its open connections finish on their own.
pub async fn remove_backend(
    node: &Node,
    pool: &str,
    id: &str,
    who: &str,
) -> Result<Response<Body>, ApiError> {
    let report = node
        .change_backend(pool, id, BackendChange::Remove, who)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "removed": id, "applied": report }),
    ))
}

pub async fn reload(node: &Node, who: &str) -> Result<Response<Body>, ApiError> {
    let report = node.reload_from_disk(who).await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "applied": report }),
    ))
}

/// POST /v1/config/check: the body is a config file; the answer lists what check-config
/// would print for it (one line per problem, named after `origin`). A bad config is a
/// successful check, so the status is 200 either way and `ok` tells.
pub fn check_config(body: &[u8], origin: &str) -> Result<Response<Body>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid("the config must be UTF-8 text"))?;
    let problems: Vec<String> = match tandem_config::parse(text, origin) {
        Ok(config) => crate::check_files(&config)
            .into_iter()
            .map(|p| format!("{origin}: {p}"))
            .collect(),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    };
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "ok": problems.is_empty(), "problems": problems }),
    ))
}

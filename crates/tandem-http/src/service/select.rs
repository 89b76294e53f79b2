//! Phase 2, upstream selection: the route (a pool, or an answer of our own: not found, a
//! redirect, a fixed response), then for each attempt the backend: the pool's balancing
//! with its hash key, after the backend a persistence cookie or sticky entry asks for.

use http::{Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tandem_policy::RequestView;
use tandem_pool::BackendLease;

use super::filter::HeaderLookup;
use super::RequestCtx;
use crate::errors::{self, ClientBody};
use crate::runtime::{KeySource, ListenerRuntime, PoolRuntime, Target};

pub(super) enum Routed {
    /// A response of ours: no backend involved.
    Answer(Response<ClientBody>),
    Pool(Arc<PoolRuntime>),
}

/// Finds the request's route (kept in `rc.route` for the header rules) and its target.
pub(super) fn route<'a, B>(req: &Request<B>, rc: &mut RequestCtx<'a>) -> Routed {
    let listener: &'a ListenerRuntime = rc.listener;
    let headers = HeaderLookup(req.headers());
    let view = RequestView {
        method: req.method().as_str(),
        host: rc.host(),
        path: req.uri().path(),
        headers: &headers,
    };
    let entry = listener.routes.find(&view);
    rc.route = entry;
    let answer = match entry.map(|e| &*e.target) {
        None | Some(Target::NotFound) => {
            rc.error(StatusCode::NOT_FOUND, "no route for this request")
        }
        Some(Target::Redirect { status, location }) => {
            let uri = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let host_only = rc
                .host()
                .map(tandem_policy::normalize_host)
                .unwrap_or_default();
            let location = location
                .replace("{hostname}", &host_only)
                .replace("{host}", rc.host().unwrap_or(""))
                .replace("{uri}", uri);
            errors::redirect(*status, &location)
        }
        Some(Target::Respond {
            status,
            content_type,
            body,
        }) => errors::fixed(*status, content_type, body.clone()),
        Some(Target::Pool(pool)) => return Routed::Pool(pool.clone()),
    };
    Routed::Answer(answer)
}

/// What chooses a request's backend in its pool, worked out once per request.
pub(super) struct Selection {
    /// The key hash algorithms look at.
    key: Option<Vec<u8>>,
    /// The backend persistence asks for (cookie or sticky table), tried first.
    pub preferred: Option<String>,
}

impl Selection {
    /// `client` is the client's key ([`tandem_proxy::ip_key`]: its IPv6 prefix).
    pub fn new<B>(req: &Request<B>, pool: &PoolRuntime, client: &[u8], now: Duration) -> Self {
        Selection {
            key: hash_key(req, &pool.key, client),
            preferred: preferred_backend(req, pool, client, now),
        }
    }

    /// A backend for attempt `attempt` (the preferred one first), none of `tried`.
    pub fn acquire(
        &self,
        pool: &PoolRuntime,
        attempt: u32,
        tried: &[usize],
    ) -> Option<BackendLease> {
        let want = if attempt == 0 {
            self.preferred.as_deref()
        } else {
            None
        };
        pool.shared
            .acquire_preferred(want, self.key.as_deref(), tried)
    }
}

/// The key hash algorithms look at, per the pool's key source.
fn hash_key<B>(req: &Request<B>, source: &KeySource, client: &[u8]) -> Option<Vec<u8>> {
    match source {
        KeySource::None => None,
        KeySource::SourceIp => Some(client.to_vec()),
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
    client: &[u8],
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
        return sticky.get(client, now);
    }
    None
}

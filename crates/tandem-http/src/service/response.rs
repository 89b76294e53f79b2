//! Phase 4, response: the backend's response made the client's: hop-by-hop headers out,
//! an upgrade (101) turned into a tunnel, the persistence cookie set when the backend is
//! not the one asked for, the client's sticky entry refreshed. The backend lease is held
//! by the body until its last byte (or by the tunnel).

use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;
use tandem_pool::BackendLease;

use super::RequestCtx;
use crate::body::Holding;
use crate::errors::ClientBody;
use crate::headers;
use crate::runtime::PoolRuntime;
use crate::upgrade;
use crate::upstream::UpstreamResponse;

pub(super) fn respond(
    resp: UpstreamResponse,
    lease: BackendLease,
    pool: &PoolRuntime,
    preferred: Option<&str>,
    rc: &RequestCtx<'_>,
    client_upgrade: bool,
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
    if switching && client_upgrade {
        // The backend's connection, when it spoke HTTP/1.1 (HTTP/2 has no 101).
        let backend_side = resp
            .extensions_mut()
            .remove::<upgrade::BackendUpgrade>()
            .and_then(|u| u.take());
        if let Some(backend_side) = backend_side {
            if let Some(lease) = hold.take() {
                let client_side = rc.conn.upgrade.expect();
                upgrade::tunnel(client_side, backend_side, lease, &rc.conn.tunnels);
            }
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
                rc.listener.https,
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
        let key = tandem_proxy::ip_key(&rc.conn.client, rc.conn.listener.client_ipv6_prefix);
        sticky.record(key, &backend_id, now);
    }
    Response::from_parts(parts, Holding::new(body, hold).boxed())
}

//! Header rewriting between client and backend: hop-by-hop headers are dropped both ways
//! (RFC 9110 7.6.1), forwarding headers are added towards the backend.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;
use tandem_config::http::ForwardedHeaders;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A client's address, as text and as a header value: made once per connection.
#[derive(Clone)]
pub struct ClientIp {
    ip: IpAddr,
    value: Option<HeaderValue>,
}

impl ClientIp {
    pub fn new(ip: IpAddr) -> Self {
        ClientIp {
            ip,
            value: HeaderValue::from_str(&ip.to_string()).ok(),
        }
    }
}

/// Whether `name` is one [`strip_hop_by_hop`] may remove.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    use http::header::{
        CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRANSFER_ENCODING, UPGRADE,
    };
    *name == CONNECTION
        || *name == TE
        || *name == TRANSFER_ENCODING
        || *name == UPGRADE
        || *name == PROXY_AUTHENTICATE
        || *name == PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

/// Headers that describe one hop's connection, never the message. `Trailer` is not one
/// (RFC 9110 6.6.2, 7.6.1): it announces end-to-end trailer fields, and tandem's HTTP/1.1
/// server drops every trailer field a response does not announce (as hyper's did).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
];

/// Removes hop-by-hop headers and the ones `Connection` names. `Upgrade` goes too unless
/// this message is a real upgrade (then `Connection: upgrade` is put back). `TE: trailers`
/// survives: gRPC needs it end to end.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of them: one pass over the names, no lookups. (Without
    // `Connection` no other name can be named by it.)
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let te_trailers = headers.get_all(http::header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    for name in named {
        if !(keep_upgrade && name == http::header::UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    } else {
        headers.remove(http::header::UPGRADE);
    }
}

/// Adds X-Forwarded-*, Forwarded and Via as configured.
pub fn add_forwarding(
    headers: &mut HeaderMap,
    settings: &ForwardedHeaders,
    client: &ClientIp,
    https: bool,
    host: Option<&str>,
    version: http::Version,
) {
    let proto = if https { "https" } else { "http" };
    if settings.x_forwarded_for {
        match (&client.value, headers.contains_key(&X_FORWARDED_FOR)) {
            // The usual case: the first proxy, a value made once per connection.
            (Some(v), false) => {
                headers.insert(X_FORWARDED_FOR, v.clone());
            }
            _ => append_list(headers, "x-forwarded-for", &client.ip.to_string()),
        }
    }
    if settings.x_forwarded_proto {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if settings.x_forwarded_host {
        if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
            headers.insert(X_FORWARDED_HOST, host);
        }
    }
    let client = client.ip;
    if settings.forwarded {
        // RFC 7239: IPv6 addresses are quoted and bracketed.
        let for_ = match client {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let mut element = format!("for={for_};proto={proto}");
        if let Some(host) = host {
            if host
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b';' && b != b',')
            {
                element.push_str(&format!(";host=\"{host}\""));
            }
        }
        append_list(headers, "forwarded", &element);
    }
    if settings.via {
        let v = match version {
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_10 => "1.0",
            _ => "1.1",
        };
        append_list(headers, "via", &format!("{v} tandem"));
    }
}

/// Appends `value` to a comma-separated header, folding existing values into one line.
fn append_list(headers: &mut HeaderMap, name: &'static str, value: &str) {
    let existing: Vec<String> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let joined = if existing.is_empty() {
        value.to_string()
    } else {
        format!("{}, {value}", existing.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_connection_named_ones_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers, deflate"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("connection").is_none() && h.get("keep-alive").is_none());
        assert!(h.get("x-secret").is_none() && h.get("upgrade").is_none());
        assert_eq!(h.get("te").unwrap(), "trailers");
        assert_eq!(h.get("x-keep").unwrap(), "yes");
    }

    #[test]
    fn end_to_end_headers_stay_and_the_first_proxy_adds_its_client() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example.test"));
        h.insert("trailer", HeaderValue::from_static("x-sum"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 2);
        let xff = ForwardedHeaders {
            x_forwarded_for: true,
            ..ForwardedHeaders::default()
        };
        add_forwarding(
            &mut h,
            &xff,
            &ClientIp::new("192.0.2.7".parse().unwrap()),
            false,
            None,
            http::Version::HTTP_11,
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.get("trailer").unwrap(), "x-sum");
    }

    #[test]
    fn a_real_upgrade_keeps_upgrade() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn forwarding_headers_append() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        let all = ForwardedHeaders {
            forwarded: true,
            ..ForwardedHeaders::default()
        };
        add_forwarding(
            &mut h,
            &all,
            &ClientIp::new("2001:db8::5".parse().unwrap()),
            true,
            Some("example.test"),
            http::Version::HTTP_11,
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.1, 2001:db8::5");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "example.test");
        assert_eq!(
            h.get("forwarded").unwrap(),
            "for=\"[2001:db8::5]\";proto=https;host=\"example.test\""
        );
        assert_eq!(h.get("via").unwrap(), "1.1 tandem");
    }
}

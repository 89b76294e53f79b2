//! One line per request through tracing target `access`: time (from the subscriber),
//! client, host, method, path, status, bytes, upstream, upstream time, request id.

use http::Request;
use std::net::SocketAddr;
use std::time::Duration;

pub struct AccessRecord {
    pub client: SocketAddr,
    pub method: String,
    pub host: String,
    pub path: String,
    pub version: http::Version,
    pub request_id: String,
    pub status: u16,
    pub upstream: Option<SocketAddr>,
    pub upstream_time: Option<Duration>,
    pub total_time: Duration,
}

impl AccessRecord {
    /// With `enabled` false the record carries no text (nothing is allocated per request
    /// for a log line that will not be written).
    /// `host` is the request's checked authority (None: absent or refused).
    pub fn new<B>(
        req: &Request<B>,
        host: Option<&http::HeaderValue>,
        client: SocketAddr,
        request_id: &str,
        enabled: bool,
    ) -> Self {
        if !enabled {
            return AccessRecord {
                client,
                method: String::new(),
                host: String::new(),
                path: String::new(),
                version: req.version(),
                request_id: String::new(),
                status: 0,
                upstream: None,
                upstream_time: None,
                total_time: Duration::ZERO,
            };
        }
        let host = host
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        AccessRecord {
            client,
            method: req.method().to_string(),
            host,
            path: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .to_string(),
            version: req.version(),
            request_id: request_id.to_string(),
            status: 0,
            upstream: None,
            upstream_time: None,
            total_time: Duration::ZERO,
        }
    }

    pub fn finish(&mut self, status: u16, total: Duration) {
        self.status = status;
        self.total_time = total;
    }
}

pub fn emit(r: &AccessRecord, listener: &str, format: &str) {
    let upstream = r
        .upstream
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into());
    let upstream_ms = r
        .upstream_time
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0);
    let total_ms = r.total_time.as_secs_f64() * 1000.0;
    if format == "json" {
        let line = format!(
            "{{\"listener\":{},\"client\":\"{}\",\"host\":{},\"method\":{},\"path\":{},\"version\":\"{:?}\",\"status\":{},\"upstream\":\"{}\",\"upstream_ms\":{:.3},\"total_ms\":{:.3},\"request_id\":{}}}",
            json_str(listener), r.client, json_str(&r.host), json_str(&r.method), json_str(&r.path), r.version,
            r.status, upstream, upstream_ms, total_ms, json_str(&r.request_id)
        );
        tracing::info!(target: "access", "{line}");
    } else {
        // What the client chose (host, method, path, request id) is quoted and escaped, so
        // it cannot forge fields of the line ("X-Request-Id: x status=598").
        tracing::info!(target: "access", listener, client = %r.client, host = ?r.host, method = ?r.method,
            path = ?r.path, status = r.status, upstream = %upstream, upstream_ms, total_ms,
            request_id = ?r.request_id);
    }
}

/// A JSON string literal (quotes, backslashes and control characters escaped).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(super::json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}

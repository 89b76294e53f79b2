//! One line per request through tracing target `access`: time (from the subscriber),
//! client, host, method, path, status, bytes in and out, referer, user agent, upstream,
//! upstream time, request id. Three formats (`[listener.http] access_log_format`):
//!
//! - `text`: key=value fields.
//! - `json`: the same fields as a JSON object. Under `--log-format json` they are real
//!   fields of the log's own JSON object (not a JSON text inside its message).
//! - `combined`: Apache/nginx "combined" (NCSA) lines, for the tools that read them.

use http::Request;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Whether the subscriber writes JSON (set once at start-up by tandemd).
static STRUCTURED: AtomicBool = AtomicBool::new(false);

/// Tells the access log that the log subscriber writes structured (JSON) lines.
pub fn set_structured(on: bool) {
    STRUCTURED.store(on, Ordering::Relaxed);
}

pub struct AccessRecord {
    pub client: SocketAddr,
    pub method: String,
    pub host: String,
    pub path: String,
    pub version: http::Version,
    pub request_id: String,
    pub referer: String,
    pub user_agent: String,
    /// Request body bytes read from the client (0 when no body was forwarded).
    pub bytes_in: u64,
    /// Response body bytes sent to the client, counted when the body ended (chunked and
    /// cut-short responses included; a HEAD response sends none).
    pub bytes_out: u64,
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
        let mut record = AccessRecord {
            client,
            method: String::new(),
            host: String::new(),
            path: String::new(),
            version: req.version(),
            request_id: String::new(),
            referer: String::new(),
            user_agent: String::new(),
            bytes_in: 0,
            bytes_out: 0,
            status: 0,
            upstream: None,
            upstream_time: None,
            total_time: Duration::ZERO,
        };
        if !enabled {
            return record;
        }
        let header = |name: http::header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        record.host = host
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        record.method = req.method().to_string();
        record.path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        record.request_id = request_id.to_string();
        record.referer = header(http::header::REFERER);
        record.user_agent = header(http::header::USER_AGENT);
        record
    }

    pub fn finish(&mut self, status: u16, bytes_in: u64, bytes_out: u64, total: Duration) {
        self.status = status;
        self.bytes_in = bytes_in;
        self.bytes_out = bytes_out;
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
    let (bytes_in, bytes_out) = (r.bytes_in, r.bytes_out);
    match format {
        "combined" => {
            tracing::info!(target: "access", "{}", combined(r, SystemTime::now()));
        }
        "json" if !STRUCTURED.load(Ordering::Relaxed) => {
            let line = format!(
                "{{\"listener\":{},\"client\":\"{}\",\"host\":{},\"method\":{},\"path\":{},\"version\":\"{:?}\",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"referer\":{},\"user_agent\":{},\"upstream\":\"{}\",\"upstream_ms\":{:.3},\"total_ms\":{:.3},\"request_id\":{}}}",
                json_str(listener), r.client, json_str(&r.host), json_str(&r.method), json_str(&r.path), r.version,
                r.status, bytes_in, bytes_out, json_str(&r.referer), json_str(&r.user_agent), upstream, upstream_ms, total_ms, json_str(&r.request_id)
            );
            tracing::info!(target: "access", "{line}");
        }
        // json under a JSON subscriber: fields, which the subscriber encodes.
        "json" => {
            tracing::info!(target: "access", listener, client = %r.client, host = %r.host, method = %r.method,
                path = %r.path, status = r.status, bytes_in, bytes_out, referer = %r.referer,
                user_agent = %r.user_agent, upstream = %upstream, upstream_ms, total_ms,
                request_id = %r.request_id);
        }
        // text: what the client chose (host, method, path, referer, user agent, request id)
        // is quoted and escaped, so it cannot forge fields ("X-Request-Id: x status=598").
        _ => {
            tracing::info!(target: "access", listener, client = %r.client, host = ?r.host, method = ?r.method,
                path = ?r.path, status = r.status, bytes_in, bytes_out, referer = ?r.referer,
                user_agent = ?r.user_agent, upstream = %upstream, upstream_ms, total_ms,
                request_id = ?r.request_id);
        }
    }
}

/// The NCSA combined format: `client - - [day/Mon/year:HH:MM:SS +0000] "METHOD path
/// VERSION" status bytes "referer" "user-agent"`, in UTC. Bytes are the response body
/// bytes sent, "-" for none (as Apache's `%b`).
pub fn combined(r: &AccessRecord, now: SystemTime) -> String {
    let bytes = match r.bytes_out {
        0 => "-".to_string(),
        n => n.to_string(),
    };
    format!(
        "{} - - [{}] \"{} {} {:?}\" {} {} \"{}\" \"{}\"",
        r.client.ip(),
        clf_time(now),
        r.method,
        quote_safe(&r.path),
        r.version,
        r.status,
        bytes,
        quote_safe(&r.referer),
        quote_safe(&r.user_agent)
    )
}

/// Escapes `"` and `\` (and control characters) the way nginx does in its logs, so a
/// crafted header cannot end the quoted field.
fn quote_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// `07/Dec/2026:10:00:00 +0000` (UTC; no time zone database needed).
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn clf_times_are_civil_dates_in_utc() {
        let at = |s: u64| clf_time(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "01/Jan/1970:00:00:00 +0000");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(at(1_709_251_199), "29/Feb/2024:23:59:59 +0000");
        assert_eq!(at(1_796_638_028), "07/Dec/2026:10:07:08 +0000");
    }

    #[test]
    fn combined_lines_quote_safely() {
        let req = Request::builder()
            .uri("/a?b=1")
            .header("user-agent", "curl/8 \"x\"")
            .header("referer", "http://r/")
            .body(())
            .unwrap();
        let host = http::HeaderValue::from_static("ok.example");
        let mut r = AccessRecord::new(
            &req,
            Some(&host),
            "192.0.2.7:5555".parse().unwrap(),
            "id",
            true,
        );
        r.finish(200, 0, 12, Duration::from_millis(3));
        let line = combined(&r, SystemTime::UNIX_EPOCH);
        assert_eq!(
            line,
            "192.0.2.7 - - [01/Jan/1970:00:00:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 12 \"http://r/\" \"curl/8 \\x22x\\x22\""
        );
    }
}

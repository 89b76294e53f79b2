//! Response heads towards clients, written from the response's parts into one buffer,
//! with the framing the body needs (RFC 9112 6.3) and the connection's fate.

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{StatusCode, Version};

use crate::request::write_length;
use crate::response::content_length;

/// How a response body follows its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBodyEncoding {
    /// No body bytes are written (HEAD, 1xx, 204, 304): the body is not polled.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked ([`crate::ChunkedEncoder`]), the last chunk at the body's end.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, length unknown).
    Close,
}

/// What the encoder needs to know about the request a response answers.
#[derive(Debug, Clone, Copy)]
pub struct Answering {
    /// The request's version: an HTTP/1.0 client gets HTTP/1.0 back.
    pub version: Version,
    /// A HEAD request: the head describes a body that is not sent.
    pub head: bool,
    /// The connection is to carry another request after this response.
    pub keep_alive: bool,
}

/// Appends the response head to `buf`: the status line, every field of `parts` but the
/// framing and connection ones (a 101 keeps its `Connection: upgrade`), `date` unless
/// the response has a Date, then the framing chosen from the response's own
/// Content-Length or `body_len` (the body's exact length when known; chunked for HTTP/1.1
/// otherwise, close-delimited for HTTP/1.0) and `Connection: close` or `keep-alive` as
/// needed. Returns the body's encoding and whether the connection stays open after it.
pub fn encode_response_head(
    buf: &mut Vec<u8>,
    parts: &http::response::Parts,
    answering: Answering,
    body_len: Option<u64>,
    date: &[u8],
) -> (ResponseBodyEncoding, bool) {
    let status = parts.status;
    let http10 = answering.version == Version::HTTP_10;
    buf.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    buf.extend_from_slice(status.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    buf.extend_from_slice(b"\r\n");
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    // 1xx and 204 carry no framing fields at all (RFC 9110 8.6).
    let bare = status.is_informational() || status == StatusCode::NO_CONTENT;
    let headers = &parts.headers;
    for (name, value) in headers {
        let skip = *name == TRANSFER_ENCODING
            || (*name == CONNECTION && !switching)
            || (*name == CONTENT_LENGTH && bare);
        if !skip {
            field(buf, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if !headers.contains_key(DATE) {
        field(buf, b"date", date);
    }
    let declared = content_length(headers).ok().flatten();
    let mut keep_alive = answering.keep_alive;
    let encoding = if switching || bare {
        ResponseBodyEncoding::None
    } else if answering.head || status == StatusCode::NOT_MODIFIED {
        if declared.is_none() && status != StatusCode::NOT_MODIFIED {
            if let Some(n) = body_len {
                write_length(buf, n);
            }
        }
        ResponseBodyEncoding::None
    } else if let Some(n) = declared {
        ResponseBodyEncoding::Length(n)
    } else if let Some(n) = body_len {
        write_length(buf, n);
        ResponseBodyEncoding::Length(n)
    } else if !http10 {
        field(buf, b"transfer-encoding", b"chunked");
        ResponseBodyEncoding::Chunked
    } else {
        keep_alive = false;
        ResponseBodyEncoding::Close
    };
    if !switching {
        if !keep_alive {
            field(buf, b"connection", b"close");
        } else if http10 {
            field(buf, b"connection", b"keep-alive");
        }
    }
    buf.extend_from_slice(b"\r\n");
    (encoding, keep_alive)
}

/// A bare response of ours to a head that was refused: the status, no body, and the
/// connection closed after it.
pub fn encode_refusal(buf: &mut Vec<u8>, status: StatusCode, date: &[u8]) {
    buf.extend_from_slice(b"HTTP/1.1 ");
    buf.extend_from_slice(status.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    buf.extend_from_slice(b"\r\n");
    field(buf, b"content-length", b"0");
    field(buf, b"connection", b"close");
    field(buf, b"date", date);
    buf.extend_from_slice(b"\r\n");
}

fn field(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// An IMF-fixdate (RFC 9110 5.6.7) for `unix_secs`: "Sun, 06 Nov 1994 08:49:37 GMT".
pub fn http_date(unix_secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm, for days after 1970).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out[12..14], year / 100 % 100);
    two(&mut out[14..16], year % 100);
    two(&mut out[17..19], secs / 3600);
    two(&mut out[20..22], secs / 60 % 60);
    two(&mut out[23..25], secs % 60);
    out
}

fn two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

#[cfg(test)]
#[path = "server_response_tests.rs"]
mod tests;

//! Request heads, written from the request's parts into one buffer.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method};

/// How a request body follows its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body bytes follow.
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    /// The body follows in chunks ([`crate::ChunkedEncoder`]).
    Chunked,
}

/// Appends an HTTP/1.1 request head to `buf`: the request line with `target` (origin
/// form), every header of `headers` but the framing ones, then the framing this codec
/// chose: `Content-Length` when the body's length is known (`body_len`, `Some(0)` for an
/// empty body), else chunked. A `Transfer-Encoding` among `headers` (a GET or HEAD body of
/// unknown length forwarded as the client sent it) forces chunked. An empty body of a
/// method without body semantics (GET, HEAD, ...) gets no framing header, unless the
/// request carried `Content-Length` itself.
pub fn encode_request_head(
    buf: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body_len: Option<u64>,
) -> RequestFraming {
    buf.extend_from_slice(method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    let mut chunked = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        if name == TRANSFER_ENCODING {
            chunked = true;
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    let framing = match body_len {
        _ if chunked => RequestFraming::Chunked,
        Some(0) => RequestFraming::Empty,
        Some(n) => RequestFraming::Length(n),
        None => RequestFraming::Chunked,
    };
    match framing {
        RequestFraming::Chunked => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        RequestFraming::Length(n) => write_length(buf, n),
        RequestFraming::Empty if had_length || !no_body_semantics(method) => write_length(buf, 0),
        RequestFraming::Empty => {}
    }
    buf.extend_from_slice(b"\r\n");
    framing
}

/// `content-length: <n>\r\n`, the digits written in place (no formatting machinery).
/// Requests and responses both.
pub(crate) fn write_length(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(b"content-length: ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
    buf.extend_from_slice(b"\r\n");
}

/// Methods whose requests usually carry no body: no `Content-Length: 0` for them.
fn no_body_semantics(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
            | Method::CONNECT
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(
        method: Method,
        headers: &[(&'static str, &'static str)],
        len: Option<u64>,
    ) -> (String, RequestFraming) {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(*n, HeaderValue::from_static(v));
        }
        let mut buf = Vec::new();
        let framing = encode_request_head(&mut buf, &method, "/a?b=c", &map, len);
        (String::from_utf8(buf).unwrap(), framing)
    }

    #[test]
    fn get_without_body_has_no_framing_header() {
        let (text, framing) = head(
            Method::GET,
            &[("host", "example.test"), ("x-a", "1"), ("x-a", "2")],
            Some(0),
        );
        assert_eq!(
            text,
            "GET /a?b=c HTTP/1.1\r\nhost: example.test\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
        assert_eq!(framing, RequestFraming::Empty);
    }

    #[test]
    fn post_without_body_says_length_zero() {
        let (text, framing) = head(Method::POST, &[("host", "h")], Some(0));
        assert_eq!(
            text,
            "POST /a?b=c HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(framing, RequestFraming::Empty);
    }

    #[test]
    fn known_length_replaces_the_clients_content_length() {
        let (text, framing) = head(
            Method::PUT,
            &[("content-length", "12"), ("host", "h")],
            Some(12),
        );
        assert_eq!(
            text,
            "PUT /a?b=c HTTP/1.1\r\nhost: h\r\ncontent-length: 12\r\n\r\n"
        );
        assert_eq!(framing, RequestFraming::Length(12));
    }

    #[test]
    fn unknown_length_is_chunked() {
        let (text, framing) = head(Method::POST, &[("host", "h")], None);
        assert_eq!(
            text,
            "POST /a?b=c HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(framing, RequestFraming::Chunked);
    }

    #[test]
    fn transfer_encoding_in_the_headers_forces_chunked() {
        let (text, framing) = head(Method::GET, &[("transfer-encoding", "chunked")], Some(5));
        assert_eq!(
            text,
            "GET /a?b=c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(framing, RequestFraming::Chunked);
    }

    #[test]
    fn lengths_are_written_in_decimal() {
        for n in [1u64, 9, 10, 4096, u64::MAX] {
            let mut buf = Vec::new();
            write_length(&mut buf, n);
            assert_eq!(buf, format!("content-length: {n}\r\n").into_bytes());
        }
    }
}

//! Response heads: parsed with httparse, strictly, then framed (RFC 9112 6.3).

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use crate::H1Error;

/// Most header fields a response head may carry (hyper's default too).
pub const MAX_HEADERS: usize = 100;

/// How a response body follows its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: HEAD, 1xx, 204, 304, `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked, then trailers.
    Chunked,
    /// Everything until the backend closes the connection.
    Close,
    /// 101: the connection now carries another protocol.
    Upgrade,
}

/// A complete response head.
#[derive(Debug)]
pub struct ParsedHead {
    pub parts: http::response::Parts,
    pub framing: ResponseFraming,
    /// The connection may carry another request once this body has ended.
    pub keep_alive: bool,
    /// A 1xx other than 101: skip it, a final response follows on the same connection.
    pub informational: bool,
}

/// Parses the response head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success the head's bytes are taken off `buf` (the header values point into them,
/// no copy) and what follows, the body's start, stays.
///
/// `method` is the request's (a HEAD response has no body); `upgrade` says whether the
/// request asked for one (a 101 otherwise is refused).
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
    upgrade: bool,
) -> Result<Option<ParsedHead>, H1Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    // ParserConfig's defaults are the strict ones: obsolete line folding, a space before
    // the colon and other leniencies are refused.
    let consumed = match httparse::ParserConfig::default().parse_response(&mut resp, buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(H1Error::Head(e.to_string())),
    };
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(H1Error::Head("unsupported HTTP version".into())),
    };
    let code = resp.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| H1Error::Head(format!("status code {code}")))?;
    // Where each field sits in `buf`, so the values can share the head's bytes.
    let base = buf.as_ptr() as usize;
    let mut fields: [(usize, usize, usize, usize); MAX_HEADERS] = [(0, 0, 0, 0); MAX_HEADERS];
    let count = resp.headers.len();
    for (slot, h) in fields.iter_mut().zip(resp.headers.iter()) {
        let name_at = h.name.as_ptr() as usize - base;
        let value_at = h.value.as_ptr() as usize - base;
        *slot = (name_at, h.name.len(), value_at, h.value.len());
    }
    let head: Bytes = buf.split_to(consumed).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(name_at, name_len, value_at, value_len) in &fields[..count] {
        let name = HeaderName::from_bytes(&head[name_at..name_at + name_len])
            .map_err(|_| H1Error::Head("invalid header name".into()))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| H1Error::Head(format!("invalid value of {name}")))?;
        headers.append(name, value);
    }
    let (framing, informational) = framing(status, version, method, upgrade, &headers)?;
    let keep_alive = informational
        || (!matches!(framing, ResponseFraming::Close | ResponseFraming::Upgrade)
            && persistent(version, &headers));
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(ParsedHead {
        parts,
        framing,
        keep_alive,
        informational,
    }))
}

/// RFC 9112 6.3, in its order.
fn framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    upgrade: bool,
    headers: &HeaderMap,
) -> Result<(ResponseFraming, bool), H1Error> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return if upgrade {
            Ok((ResponseFraming::Upgrade, false))
        } else {
            Err(H1Error::UnexpectedUpgrade)
        };
    }
    if status.is_informational() {
        return Ok((ResponseFraming::Empty, true));
    }
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((ResponseFraming::Empty, false));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(H1Error::TransferEncodingHttp10);
        }
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(H1Error::LengthAndChunked);
        }
        return Ok((
            if last_coding_is_chunked(headers) {
                ResponseFraming::Chunked
            } else {
                ResponseFraming::Close
            },
            false,
        ));
    }
    Ok((
        match content_length(headers)? {
            Some(0) => ResponseFraming::Empty,
            Some(n) => ResponseFraming::Length(n),
            None => ResponseFraming::Close,
        },
        false,
    ))
}

/// The one Content-Length of a message: every field and list element must be the same
/// decimal number (RFC 9112 6.3 item 5).
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, H1Error> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(H1Error::ContentLength);
            }
            let mut n: u64 = 0;
            for &d in part {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                    .ok_or(H1Error::ContentLength)?;
            }
            match found {
                Some(f) if f != n => return Err(H1Error::ContentLength),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

fn last_coding_is_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|v| v.as_bytes().split(|&b| b == b',').next_back())
        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Whether the connection stays open after this response (RFC 9112 9.3).
fn persistent(version: Version, headers: &HeaderMap) -> bool {
    if version == Version::HTTP_11 {
        !has_token(headers, CONNECTION, b"close")
    } else {
        has_token(headers, CONNECTION, b"keep-alive")
    }
}

/// Whether a comma-separated field (every line of it) lists `token`, ASCII case aside.
pub(crate) fn has_token(headers: &HeaderMap, name: HeaderName, token: &[u8]) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<ParsedHead>, H1Error> {
        parse_with(text, &Method::GET, false)
    }

    fn parse_with(text: &str, m: &Method, upgrade: bool) -> Result<Option<ParsedHead>, H1Error> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_response_head(&mut buf, m, upgrade)
    }

    fn framing_of(text: &str) -> ResponseFraming {
        parse(text).unwrap().unwrap().framing
    }

    #[test]
    fn a_complete_head_leaves_the_body_in_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello"[..],
        );
        let head = parse_response_head(&mut buf, &Method::GET, false)
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..], b"hello");
        assert_eq!(head.parts.status, StatusCode::OK);
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.framing, ResponseFraming::Length(5));
        assert!(head.keep_alive);
        let all: Vec<_> = head.parts.headers.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
    }

    #[test]
    fn a_partial_head_asks_for_more_and_keeps_the_bytes() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
        assert!(parse_response_head(&mut buf, &Method::GET, false)
            .unwrap()
            .is_none());
        assert_eq!(buf.len(), 27);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ResponseFraming::Chunked
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            ResponseFraming::Chunked
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            ResponseFraming::Close
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\n\r\n"),
            ResponseFraming::Close
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ResponseFraming::Empty
        );
        assert_eq!(
            framing_of("HTTP/1.1 204 No Content\r\n\r\n"),
            ResponseFraming::Empty
        );
        assert_eq!(
            framing_of("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"),
            ResponseFraming::Empty
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n"),
            ResponseFraming::Length(7)
        );
        let head = parse_with(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            &Method::HEAD,
            false,
        );
        assert_eq!(head.unwrap().unwrap().framing, ResponseFraming::Empty);
    }

    #[test]
    fn informational_responses_are_skipped_but_101_upgrades() {
        let h = parse("HTTP/1.1 100 Continue\r\n\r\n").unwrap().unwrap();
        assert!(h.informational);
        let h = parse("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.informational);
        let h = parse_with(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            &Method::GET,
            true,
        );
        let h = h.unwrap().unwrap();
        assert_eq!(h.framing, ResponseFraming::Upgrade);
        assert!(!h.keep_alive && !h.informational);
        assert_eq!(
            parse("HTTP/1.1 101 Switching Protocols\r\n\r\n").unwrap_err(),
            H1Error::UnexpectedUpgrade
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let ka = |t: &str| parse(t).unwrap().unwrap().keep_alive;
        assert!(ka("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!ka(
            "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka(
            "HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(ka(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(
            !ka("HTTP/1.1 200 OK\r\n\r\n"),
            "close-delimited: never reused"
        );
    }

    #[test]
    fn bad_heads_are_refused() {
        for bad in [
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 099 OK\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
            "hello\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(H1Error::Head(_))),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn bad_framing_is_refused() {
        for (bad, want) in [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                H1Error::ContentLength,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
                H1Error::ContentLength,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
                H1Error::ContentLength,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
                H1Error::ContentLength,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                H1Error::ContentLength,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                H1Error::LengthAndChunked,
            ),
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                H1Error::TransferEncodingHttp10,
            ),
        ] {
            assert_eq!(parse(bad).unwrap_err(), want, "{bad:?}");
        }
    }

    #[test]
    fn too_many_headers_are_refused() {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            text.push_str(&format!("x-{i}: v\r\n"));
        }
        text.push_str("\r\n");
        assert!(matches!(parse(&text), Err(H1Error::Head(_))));
    }
}

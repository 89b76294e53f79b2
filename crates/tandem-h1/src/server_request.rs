//! Client request heads, parsed with httparse, strictly, then framed (RFC 9112 6.3).
//!
//! What is refused (each answered by the caller with [`RequestError::status`] and the
//! connection closed): what httparse cannot parse (obsolete line folding, a space before
//! a colon, invalid bytes), a head over the size or field limit, a target that is no URI,
//! a bad or two different `Content-Length`s, `Content-Length` beside `Transfer-Encoding`
//! (the request-smuggling ambiguity), `Transfer-Encoding` in HTTP/1.0, and a
//! `Transfer-Encoding` whose last coding is not exactly `chunked` ("xchunked",
//! "chunked, gzip", an empty one). The request's authority (Host) is checked later, by
//! the service, once for HTTP/1 and HTTP/2 alike.

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use crate::response::{content_length, has_token};
use crate::{BodyDecoder, ResponseFraming};

/// Header slots on the stack; a limit above this parses into a heap vector.
const STACK_HEADERS: usize = 128;

/// A client's head limits (the listener's `max_header_bytes` and `max_headers`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_bytes: usize,
    pub max_headers: usize,
}

/// How a request body follows its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes (never 0: that is `Empty`).
    Length(u64),
    /// Chunked, then trailers.
    Chunked,
}

impl RequestBodyFraming {
    /// The decoder of a body so framed (chunk framing as strict as for responses; its
    /// errors are then the client's).
    pub fn decoder(self) -> BodyDecoder {
        BodyDecoder::new(match self {
            RequestBodyFraming::Empty => ResponseFraming::Empty,
            RequestBodyFraming::Length(n) => ResponseFraming::Length(n),
            RequestBodyFraming::Chunked => ResponseFraming::Chunked,
        })
    }
}

/// A complete request head.
#[derive(Debug)]
pub struct RequestHead {
    pub parts: http::request::Parts,
    pub framing: RequestBodyFraming,
    /// The client lets the connection carry another request after this one (HTTP/1.1
    /// without `Connection: close`, HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// HTTP/1.1 `Expect: 100-continue` with a body: the client waits for a 100 (or the
    /// final answer) before it sends the body.
    pub expect_continue: bool,
    /// HTTP/1.1 `Connection: upgrade` with an `Upgrade` field.
    pub upgrade: bool,
    /// `TE: trailers`: the client takes trailer fields in a chunked response.
    pub accepts_trailers: bool,
}

/// Why a client's request head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("invalid request head: {0}")]
    Head(String),
    #[error("unsupported HTTP version")]
    Version,
    #[error("request head over {0} bytes")]
    TooLarge(usize),
    #[error("request head with more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("invalid request target")]
    Target,
    #[error("invalid or differing Content-Length")]
    ContentLength,
    #[error("Content-Length with Transfer-Encoding (ambiguous framing)")]
    LengthAndTransferEncoding,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingHttp10,
    #[error("Transfer-Encoding whose last coding is not chunked")]
    TransferEncodingNotChunked,
}

impl RequestError {
    /// The answer to the client (hyper's choices: 431 for size, 505 for the version,
    /// 400 for the rest).
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::TooLarge(_) | RequestError::TooManyHeaders(_) => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            RequestError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Parses the request head at the start of `buf`. `Ok(None)`: incomplete, read more
/// (refused with [`RequestError::TooLarge`] once `buf` holds more than the limit without
/// a complete head). On success the head's bytes are taken off `buf` (the target and the
/// header values point into them, no copy) and what follows, the body's start or a
/// pipelined request, stays.
pub fn parse_request_head(
    buf: &mut BytesMut,
    limits: HeadLimits,
) -> Result<Option<RequestHead>, RequestError> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let slots: &mut [httparse::Header<'_>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = vec![httparse::EMPTY_HEADER; limits.max_headers];
        &mut heap
    };
    let mut req = httparse::Request::new(slots);
    // ParserConfig's defaults are the strict ones: obsolete line folding, a space before
    // the colon and other leniencies are refused.
    let consumed = match httparse::ParserConfig::default().parse_request(&mut req, buf) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_bytes => {
            return Err(RequestError::TooLarge(limits.max_bytes))
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_bytes => {
            return Err(RequestError::TooLarge(limits.max_bytes))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(RequestError::TooManyHeaders(limits.max_headers))
        }
        Err(httparse::Error::Version) => return Err(RequestError::Version),
        Err(e) => return Err(RequestError::Head(e.to_string())),
    };
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(RequestError::Version),
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| RequestError::Head("invalid method".into()))?;
    // Where the target and each field sit in `buf`, so they can share the head's bytes.
    let base = buf.as_ptr() as usize;
    let path = req.path.unwrap_or_default();
    let target = (path.as_ptr() as usize - base, path.len());
    let count = req.headers.len();
    let mut fields = Vec::with_capacity(count);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| RequestError::Head("invalid header name".into()))?;
        fields.push((name, h.value.as_ptr() as usize - base, h.value.len()));
    }
    let head: Bytes = buf.split_to(consumed).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1))
        .map_err(|_| RequestError::Target)?;
    let mut headers = HeaderMap::with_capacity(count);
    for (name, at, len) in fields {
        let value = HeaderValue::from_maybe_shared(head.slice(at..at + len))
            .map_err(|_| RequestError::Head(format!("invalid value of {name}")))?;
        headers.append(name, value);
    }
    let framing = framing(version, &headers)?;
    let http11 = version == Version::HTTP_11;
    let keep_alive = if http11 {
        !has_token(&headers, CONNECTION, b"close")
    } else {
        has_token(&headers, CONNECTION, b"keep-alive")
    };
    let expect_continue = http11
        && framing != RequestBodyFraming::Empty
        && headers
            .get_all(EXPECT)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let upgrade =
        http11 && headers.contains_key(UPGRADE) && has_token(&headers, CONNECTION, b"upgrade");
    let accepts_trailers = has_token(&headers, TE, b"trailers");
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
        accepts_trailers,
    }))
}

/// RFC 9112 6.3 for requests: Transfer-Encoding (last coding chunked, never beside
/// Content-Length, never in HTTP/1.0), else Content-Length, else no body.
fn framing(version: Version, headers: &HeaderMap) -> Result<RequestBodyFraming, RequestError> {
    if headers.contains_key(TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(RequestError::TransferEncodingHttp10);
        }
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(RequestError::LengthAndTransferEncoding);
        }
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.as_bytes().split(|&b| b == b',').next_back())
            .map(<[u8]>::trim_ascii);
        return match last {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => Ok(RequestBodyFraming::Chunked),
            _ => Err(RequestError::TransferEncodingNotChunked),
        };
    }
    match content_length(headers).map_err(|_| RequestError::ContentLength)? {
        None | Some(0) => Ok(RequestBodyFraming::Empty),
        Some(n) => Ok(RequestBodyFraming::Length(n)),
    }
}

#[cfg(test)]
#[path = "server_request_tests.rs"]
mod tests;

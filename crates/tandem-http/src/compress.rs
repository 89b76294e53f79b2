//! Response compression (docs/http.md "Compression"): the encoding negotiated from the
//! client's Accept-Encoding, the checks that leave a response alone, and a streaming body
//! that compresses as the backend's bytes arrive (bounded memory: one input chunk and the
//! encoder's window, never the whole body). async-compression's encoders flush whenever
//! their input stalls, so a pause of the backend never holds back bytes it already sent.

use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use async_compression::Level;
use bytes::{Buf, Bytes};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use crate::errors::ClientBody;
use tandem_config::compression::Compression;

/// An encoding tandem produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Brotli,
    Zstd,
    Gzip,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Brotli, Algorithm::Zstd, Algorithm::Gzip];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Brotli => "br",
            Algorithm::Zstd => "zstd",
            Algorithm::Gzip => "gzip",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Compression counters of one listener (they survive reloads with the other stats).
#[derive(Debug, Default)]
pub struct CompressionStats {
    /// Responses compressed, by [`Algorithm`] (br, zstd, gzip).
    pub responses: [AtomicU64; 3],
    /// Body bytes given to the encoders.
    pub bytes_in: AtomicU64,
    /// Compressed bytes they produced.
    pub bytes_out: AtomicU64,
}

impl CompressionStats {
    pub fn responses(&self, a: Algorithm) -> u64 {
        self.responses[a.index()].load(Relaxed)
    }
}

/// A media type pattern: `type/subtype` or `type/*`, lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TypePattern {
    ty: String,
    /// None: any subtype.
    sub: Option<String>,
}

/// One listener's (or route's) compression settings, compiled.
#[derive(Debug)]
pub struct CompressionPolicy {
    /// None: compression turned off (a route's `enabled = false`).
    algorithms: Vec<Algorithm>,
    min_size: u64,
    types: Vec<TypePattern>,
    levels: [i32; 3],
}

impl CompressionPolicy {
    pub fn compile(c: &Compression) -> Result<Self, String> {
        let mut algorithms = Vec::new();
        if c.enabled {
            for (i, a) in c.algorithms.iter().enumerate() {
                algorithms.push(
                    Algorithm::parse(a)
                        .ok_or_else(|| format!("compression.algorithms[{i}]: unknown {a:?}"))?,
                );
            }
        }
        let mut types = Vec::new();
        for (i, t) in c.content_types.iter().enumerate() {
            let t = t.to_ascii_lowercase();
            let (ty, sub) = t
                .split_once('/')
                .ok_or_else(|| format!("compression.content_types[{i}]: {t:?}"))?;
            types.push(TypePattern {
                ty: ty.to_string(),
                sub: (sub != "*").then(|| sub.to_string()),
            });
        }
        let l = &c.level;
        Ok(CompressionPolicy {
            algorithms,
            min_size: c.min_size,
            types,
            levels: [l.br() as i32, l.zstd() as i32, l.gzip() as i32],
        })
    }

    fn type_matches(&self, content_type: &[u8]) -> bool {
        let Ok(ct) = std::str::from_utf8(content_type) else {
            return false;
        };
        let essence = ct.split(';').next().unwrap_or("").trim();
        let Some((ty, sub)) = essence.split_once('/') else {
            return false;
        };
        // Server-sent events: small events, each flushed on its own (the encoder flushes
        // whenever the backend pauses), so compression gains little and costs latency.
        if ty.eq_ignore_ascii_case("text") && sub.eq_ignore_ascii_case("event-stream") {
            return false;
        }
        // gRPC compresses its own messages and needs its trailers, which this drops.
        if ty.eq_ignore_ascii_case("application")
            && sub.get(..4).is_some_and(|g| g.eq_ignore_ascii_case("grpc"))
        {
            return false;
        }
        self.types.iter().any(|p| {
            ty.eq_ignore_ascii_case(&p.ty)
                && p.sub.as_ref().is_none_or(|s| sub.eq_ignore_ascii_case(s))
        })
    }
}

/// What the request says about compressing its response, taken before the request goes
/// upstream.
pub struct RequestFacts {
    accept_encoding: Option<HeaderValue>,
    skip: bool,
}

impl RequestFacts {
    pub fn of<B>(req: &http::Request<B>) -> Self {
        let h = req.headers();
        RequestFacts {
            accept_encoding: h.get(http::header::ACCEPT_ENCODING).cloned(),
            // HEAD has no body to compress; a Range request's answer is a slice of the
            // identity body (compressing would change what the range means).
            skip: req.method() == Method::HEAD || h.contains_key(http::header::RANGE),
        }
    }
}

/// The client's q-value for each of tandem's encodings (None: not acceptable), from an
/// Accept-Encoding value: named codings, else `*`, else not acceptable.
fn accepted(accept: &str) -> [Option<u32>; 3] {
    let mut named: [Option<u32>; 3] = [None; 3];
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if coding.is_empty() {
            continue;
        }
        let mut q = 1000;
        for param in parts {
            let param = param.trim();
            if let Some(v) = param
                .strip_prefix("q=")
                .or_else(|| param.strip_prefix("Q="))
            {
                q = parse_q(v.trim()).unwrap_or(0);
            }
        }
        if coding == "*" {
            star = Some(q);
        } else if let Some(a) = Algorithm::ALL
            .into_iter()
            .find(|a| coding.eq_ignore_ascii_case(a.name()))
        {
            named[a.index()] = Some(q);
        } else if coding.eq_ignore_ascii_case("x-gzip") && named[Algorithm::Gzip.index()].is_none()
        {
            named[Algorithm::Gzip.index()] = Some(q);
        }
    }
    named.map(|n| n.or(star).filter(|q| *q > 0))
}

/// A qvalue (`0`, `1`, `0.5`, `1.000`) in thousandths.
fn parse_q(v: &str) -> Option<u32> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut f = 0;
    for (i, b) in frac.bytes().enumerate() {
        f += u32::from(b - b'0') * [100, 10, 1][i];
    }
    Some((whole + f).min(1000))
}

/// The encoding for a client: the highest q-value among the policy's algorithms, ties
/// going to the policy's order.
pub fn negotiate(accept: &str, prefs: &[Algorithm]) -> Option<Algorithm> {
    let q = accepted(accept);
    let mut best: Option<(Algorithm, u32)> = None;
    for &a in prefs {
        if let Some(qa) = q[a.index()] {
            if best.is_none_or(|(_, b)| qa > b) {
                best = Some((a, qa));
            }
        }
    }
    best.map(|(a, _)| a)
}

fn has_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|t| {
                t.trim()
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case(token)
            })
        })
    })
}

/// Whether (and how) to compress this response: the checks of docs/http.md in order.
fn choose(
    policy: &CompressionPolicy,
    facts: &RequestFacts,
    status: StatusCode,
    headers: &HeaderMap,
    size: SizeHint,
) -> Option<Algorithm> {
    if policy.algorithms.is_empty() || facts.skip {
        return None;
    }
    if status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return None;
    }
    if headers.contains_key(CONTENT_ENCODING) || headers.contains_key(CONTENT_RANGE) {
        return None;
    }
    let known = size.exact().or_else(|| {
        headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
    });
    if known.is_some_and(|n| n < policy.min_size.max(1)) {
        return None;
    }
    if !headers
        .get(CONTENT_TYPE)
        .is_some_and(|ct| policy.type_matches(ct.as_bytes()))
    {
        return None;
    }
    if has_token(headers, CACHE_CONTROL, "no-transform") {
        return None;
    }
    negotiate(
        facts.accept_encoding.as_ref()?.to_str().ok()?,
        &policy.algorithms,
    )
}

/// Compresses `resp` when policy, request and response all allow it; otherwise returns it
/// as it is.
pub fn maybe_compress(
    policy: &CompressionPolicy,
    facts: &RequestFacts,
    resp: http::Response<ClientBody>,
    stats: &Arc<CompressionStats>,
) -> http::Response<ClientBody> {
    let Some(algo) = choose(
        policy,
        facts,
        resp.status(),
        resp.headers(),
        resp.body().size_hint(),
    ) else {
        return resp;
    };
    let (mut parts, body) = resp.into_parts();
    let h = &mut parts.headers;
    h.insert(CONTENT_ENCODING, HeaderValue::from_static(algo.name()));
    h.remove(CONTENT_LENGTH);
    // A range of the compressed body would not be a range of the resource.
    h.remove(ACCEPT_RANGES);
    if !has_token(h, VARY, "accept-encoding") && !has_token(h, VARY, "*") {
        h.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if let Some(etag) = h.get(ETAG) {
        if etag.as_bytes().starts_with(b"\"") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(etag.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&weak) {
                h.insert(ETAG, v);
            }
        }
    }
    stats.responses[algo.index()].fetch_add(1, Relaxed);
    let level = Level::Precise(policy.levels[algo.index()]);
    let reader = BodyReader {
        body,
        chunk: Bytes::new(),
        error: None,
        stats: stats.clone(),
    };
    let encoder = match algo {
        // brotli and zstd windows capped at 512 KiB (their defaults reach 4 MiB and 2 MiB
        // per response): memory per compressed response stays bounded at about 1 MiB.
        Algorithm::Brotli => Encoder::Brotli(BrotliEncoder::with_params(
            reader,
            async_compression::brotli::EncoderParams::default()
                .quality(level)
                .window_size(WINDOW_LOG as i32),
        )),
        Algorithm::Zstd => Encoder::Zstd(ZstdEncoder::with_quality_and_params(
            reader,
            level,
            &[async_compression::zstd::CParameter::window_log(WINDOW_LOG)],
        )),
        Algorithm::Gzip => Encoder::Gzip(GzipEncoder::with_quality(reader, level)),
    };
    let body = CompressedBody {
        encoder: Box::new(encoder),
        buf: vec![0; OUT_CHUNK],
        done: false,
        stats: stats.clone(),
    };
    http::Response::from_parts(parts, http_body_util::BodyExt::boxed(body))
}

/// The brotli and zstd window: 2^19 = 512 KiB (gzip's is 32 KiB by format).
const WINDOW_LOG: u32 = 19;

/// Compressed bytes are handed on in chunks of at most this size.
const OUT_CHUNK: usize = 16 * 1024;

/// A response body as an [`AsyncBufRead`] for the encoders: data frames in order,
/// trailers dropped (HTTP/1.1 chunked trailers of a compressed body are rare and
/// optional). A body error is kept here for [`CompressedBody`] to hand on as it is.
struct BodyReader {
    body: ClientBody,
    chunk: Bytes,
    error: Option<crate::upstream::BoxError>,
    stats: Arc<CompressionStats>,
}

impl AsyncRead for BodyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let data = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = data.len().min(buf.remaining());
        buf.put_slice(&data[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for BodyReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.chunk.is_empty() {
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.stats.bytes_in.fetch_add(data.len() as u64, Relaxed);
                        this.chunk = data;
                    }
                }
                Some(Err(e)) => {
                    let msg = e.to_string();
                    this.error = Some(e);
                    return Poll::Ready(Err(io::Error::other(msg)));
                }
            }
        }
        Poll::Ready(Ok(&this.chunk[..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().chunk.advance(amt);
    }
}

// Always boxed in `CompressedBody`, so the brotli state's size costs no other variant.
#[allow(clippy::large_enum_variant)]
enum Encoder {
    Brotli(BrotliEncoder<BodyReader>),
    Zstd(ZstdEncoder<BodyReader>),
    Gzip(GzipEncoder<BodyReader>),
}

impl Encoder {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            Encoder::Brotli(e) => Pin::new(e).poll_read(cx, buf),
            Encoder::Zstd(e) => Pin::new(e).poll_read(cx, buf),
            Encoder::Gzip(e) => Pin::new(e).poll_read(cx, buf),
        }
    }

    fn reader(&mut self) -> &mut BodyReader {
        match self {
            Encoder::Brotli(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
            Encoder::Gzip(e) => e.get_mut(),
        }
    }
}

/// The compressed response body.
struct CompressedBody {
    encoder: Box<Encoder>,
    buf: Vec<u8>,
    done: bool,
    stats: Arc<CompressionStats>,
}

impl Body for CompressedBody {
    type Data = Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut out = ReadBuf::new(&mut this.buf);
        match ready!(this.encoder.poll_read(cx, &mut out)) {
            Ok(()) if out.filled().is_empty() => {
                this.done = true;
                Poll::Ready(None)
            }
            Ok(()) => {
                let data = Bytes::copy_from_slice(out.filled());
                this.stats.bytes_out.fetch_add(data.len() as u64, Relaxed);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Err(e) => {
                this.done = true;
                match this.encoder.reader().error.take() {
                    // The backend's body failed: the client's response fails the same way.
                    Some(body_error) => Poll::Ready(Some(Err(body_error))),
                    // An encoder error (not expected with in-memory encoders): the stream
                    // ends without its encoding's end marker, which every decoder reports
                    // as a truncated body.
                    None => {
                        tracing::warn!("response compression failed: {e}; body cut short");
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Algorithm; 3] = Algorithm::ALL;

    #[test]
    fn negotiation_honours_q_values_star_and_order() {
        use Algorithm::*;
        assert_eq!(negotiate("gzip, deflate, br, zstd", &ALL), Some(Brotli));
        assert_eq!(negotiate("gzip", &ALL), Some(Gzip));
        assert_eq!(negotiate("br;q=0.5, gzip", &ALL), Some(Gzip));
        assert_eq!(negotiate("br;q=0, gzip;q=0", &ALL), None);
        assert_eq!(negotiate("*", &ALL), Some(Brotli));
        assert_eq!(negotiate("*;q=0.1, gzip;q=0.5", &ALL), Some(Gzip));
        assert_eq!(negotiate("*;q=0, zstd", &ALL), Some(Zstd));
        assert_eq!(negotiate("identity", &ALL), None);
        assert_eq!(negotiate("identity;q=0", &ALL), None);
        assert_eq!(negotiate("", &ALL), None);
        assert_eq!(negotiate("gzip;q=1.0, zstd;q=1", &[Gzip, Zstd]), Some(Gzip));
        assert_eq!(negotiate("gzip;q=1.0, zstd;q=1", &[Zstd, Gzip]), Some(Zstd));
        assert_eq!(negotiate("GZIP; Q=0.8", &ALL), Some(Gzip));
        assert_eq!(negotiate("br;q=bogus, gzip", &ALL), Some(Gzip));
    }

    #[test]
    fn content_type_patterns() {
        let p = CompressionPolicy::compile(&Compression::default()).unwrap();
        assert!(p.type_matches(b"text/html; charset=utf-8"));
        assert!(p.type_matches(b"Application/JSON"));
        assert!(!p.type_matches(b"text/event-stream"));
        let any = CompressionPolicy::compile(&Compression {
            content_types: vec!["application/*".into()],
            ..Compression::default()
        })
        .unwrap();
        assert!(any.type_matches(b"application/xml"));
        assert!(!any.type_matches(b"application/grpc"));
        assert!(!any.type_matches(b"application/grpc+proto"));
        assert!(!p.type_matches(b"image/png"));
        assert!(!p.type_matches(b"application/jsonx"));
        assert!(!p.type_matches(b"garbage"));
    }
}

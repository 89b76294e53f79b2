//! What the hyper test backends answer: [`named_answer`] and [`echo_answer`] with its
//! special paths, and the streamed bodies they use.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub type BackendBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub(super) fn full(text: impl Into<Bytes>) -> BackendBody {
    Full::new(text.into()).boxed()
}

/// `status`, `x-backend: <name>`, `content-type: text/plain` and the body `<name>`.
pub(super) fn named_answer(name: &str, status: u16) -> Response<BackendBody> {
    Response::builder()
        .status(status)
        .header("x-backend", name)
        .header("content-type", "text/plain")
        .body(full(name.to_string()))
        .expect("a valid response")
}

/// The echo answer. Paths:
/// - `/status/<code>`: answers with that status;
/// - `/slow/<ms>`: answers 200 after that long;
/// - `/hop`: answers with hop-by-hop headers of its own (`Connection: x-backend-hop`);
/// - `/stream`: streams three chunks, then trailers `grpc-status: 0`;
/// - `/trailers`: the same with `Trailer: x-checksum` and trailer `x-checksum: c0ffee`;
/// - `/big/<bytes>`: that many bytes of `x`, streamed in 64 KiB chunks (large responses);
/// - `/health`: "ok";
/// - anything else: echoes `<name>\n<METHOD> <path?query> <version>\n` and one `name: value`
///   line per header received.
pub(super) async fn echo_answer(parts: &http::request::Parts, name: &str) -> Response<BackendBody> {
    let path = parts.uri.path().to_string();
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = Response::new(full(format!("{name} {}\n", status.as_u16())));
        *resp.status_mut() = status;
        return resp;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms = ms.parse::<u64>().unwrap_or(0).min(10_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Response::new(full(format!("{name} slow\n")));
    }
    if let Some(n) = path.strip_prefix("/big/") {
        let left = n.parse::<usize>().unwrap_or(0);
        let mut resp = Response::new(Repeated { left }.boxed());
        resp.headers_mut()
            .insert("content-length", HeaderValue::from(left as u64));
        return resp;
    }
    match path.as_str() {
        "/health" => Response::new(full("ok\n")),
        "/hop" => {
            let mut resp = Response::new(full(format!("{name} hop\n")));
            let h = resp.headers_mut();
            h.insert("connection", HeaderValue::from_static("x-backend-hop"));
            h.insert("x-backend-hop", HeaderValue::from_static("secret"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("x-backend-normal", HeaderValue::from_static("yes"));
            resp
        }
        "/stream" => streamed(&[("grpc-status", "0"), ("grpc-message", "all-good")], None),
        // HTTP/1.1 sends trailers only when the response declares them in `Trailer`.
        "/trailers" => streamed(&[("x-checksum", "c0ffee")], Some("x-checksum")),
        _ => {
            let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut text = format!("{name}\n{} {target} {:?}\n", parts.method, parts.version);
            for (k, v) in &parts.headers {
                text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("<binary>")));
            }
            Response::new(full(text))
        }
    }
}

/// A response streamed in three chunks 20 ms apart, then `trailers`; `declare` is put in a
/// `Trailer` header.
fn streamed(
    trailers: &[(&'static str, &'static str)],
    declare: Option<&'static str>,
) -> Response<BackendBody> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut map = HeaderMap::new();
    for (k, v) in trailers {
        map.insert(*k, HeaderValue::from_static(v));
    }
    tokio::spawn(async move {
        for chunk in ["one ", "two ", "three"] {
            if tx.send(Frame::data(Bytes::from(chunk))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tx.send(Frame::trailers(map)).await;
    });
    let mut resp = Response::new(ChannelBody(rx).boxed());
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    if let Some(name) = declare {
        h.insert("trailer", HeaderValue::from_static(name));
    }
    resp
}

/// `left` bytes of `x` in 64 KiB frames, made without allocating per frame.
struct Repeated {
    left: usize,
}

static XS: [u8; 64 * 1024] = [b'x'; 64 * 1024];

impl Body for Repeated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let n = this.left.min(XS.len());
        this.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&XS[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

/// A response body fed frame by frame from a channel (streaming, then trailers).
struct ChannelBody(tokio::sync::mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut().0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// The value of `name:` in an echo body ("" when absent).
pub fn echo_header(echo: &str, name: &str) -> String {
    let prefix = format!("{}: ", name.to_ascii_lowercase());
    echo.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect::<Vec<_>>()
        .join(", ")
}

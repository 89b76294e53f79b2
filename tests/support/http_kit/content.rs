//! What a [`super::Answer::Content`] backend answers: bodies worth compressing, for the
//! response compression tests.

use super::answers::{full, BackendBody};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::Response;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// About 100 KB of text that compresses well but not trivially (numbered lines).
pub fn big_text() -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0u64;
    while s.len() < 100_000 {
        i += 1;
        s.push_str(&format!(
            "{i:06} the quick brown fox {} jumps over the lazy dog {}\n",
            i * 7919 % 1000,
            i.wrapping_mul(2_654_435_761) % 100_000
        ));
    }
    s.into_bytes()
}

/// A JSON document of about 100 KB (sent chunked: no Content-Length).
pub fn big_json() -> Vec<u8> {
    let items: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"name\":\"item-{i}\",\"tags\":[\"a\",\"b\"],\"n\":{}}}",
                i * 31 % 977
            )
        })
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

/// A body sent as these chunks, length unknown (HTTP/1.1 chunked).
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A body fed through a channel: what was sent so far, then the rest when the test says.
struct Fed(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl Body for Fed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|c| c.map(|c| Ok(Frame::data(c))))
    }
}

/// Where a `/slow` response waits for the rest of its body.
pub(super) type Held = Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Bytes>>>>;

/// Sends the rest of a held `/slow` body.
pub(super) fn finish_slow(held: &Held) {
    let tx = held
        .lock()
        .unwrap()
        .take()
        .expect("a /slow response is held");
    tx.send(Bytes::from(big_text()[50_000..].to_vec())).unwrap();
}

/// The content answer: one path per case (large text with a strong ETag and byte ranges,
/// chunked JSON, a small body, an image, a body already encoded, `Cache-Control:
/// no-transform`, and `/slow`, held half way until [`finish_slow`]).
pub(super) fn content_answer(req: &http::request::Parts, held: &Held) -> Response<BackendBody> {
    let r = Response::builder().header("x-backend", "content");
    let text = big_text();
    let resp = match req.uri.path() {
        "/text" => {
            let r = r
                .header("content-type", "text/plain; charset=utf-8")
                .header("etag", "\"v1\"")
                .header("accept-ranges", "bytes");
            match req.headers.get("range").and_then(|v| v.to_str().ok()) {
                Some("bytes=0-99") => r
                    .status(206)
                    .header("content-range", format!("bytes 0-99/{}", text.len()))
                    .body(full(text[..100].to_vec())),
                _ => r.body(full(text)),
            }
        }
        "/json" => {
            let json = big_json();
            let chunks = json.chunks(7000).map(Bytes::copy_from_slice).collect();
            r.header("content-type", "application/json")
                .body(Chunks(chunks).boxed())
        }
        "/slow" => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tx.send(Bytes::from(text[..50_000].to_vec())).unwrap();
            *held.lock().unwrap() = Some(tx);
            r.header("content-type", "text/plain").body(Fed(rx).boxed())
        }
        "/small" => r
            .header("content-type", "text/plain")
            .body(full(text[..200].to_vec())),
        "/image" => r.header("content-type", "image/png").body(full(text)),
        "/encoded" => r
            .header("content-type", "text/plain")
            .header("content-encoding", "x-custom")
            .body(full(text)),
        "/no-transform" => r
            .header("content-type", "text/html")
            .header("cache-control", "public, no-transform")
            .body(full(text)),
        _ => r.status(404).body(full("no such path\n")),
    };
    resp.expect("a valid response")
}

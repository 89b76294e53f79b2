//! A backend with bodies worth compressing, for the response compression tests: one path
//! per case (large text with a strong ETag and byte ranges, chunked JSON, a small body,
//! an image, a body already encoded, `Cache-Control: no-transform`, and a body held half
//! way until the test lets it finish).

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Answer = http_body_util::combinators::BoxBody<Bytes, Infallible>;

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

type Held = Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Bytes>>>>;

pub struct ContentBackend {
    pub addr: SocketAddr,
    stop: CancellationToken,
    held: Held,
}

impl Drop for ContentBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ContentBackend {
    pub async fn start() -> ContentBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a content backend on 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let held: Held = Arc::default();
        let shared = held.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    r = listener.accept() => match r { Ok(a) => a, Err(_) => continue },
                };
                let (token, held) = (token.clone(), shared.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, held.clone()));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service);
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
        ContentBackend { addr, stop, held }
    }

    /// `/slow` sends the first 50 000 bytes of [`big_text`] and holds the rest until this.
    pub fn finish_slow(&self) {
        let tx = self
            .held
            .lock()
            .unwrap()
            .take()
            .expect("a /slow response is held");
        tx.send(Bytes::from(big_text()[50_000..].to_vec())).unwrap();
    }

    /// A `[[pool]]` named `name` with this backend.
    pub fn pool_toml(&self, name: &str) -> String {
        format!(
            "\n[[pool]]\nname = \"{name}\"\n[[pool.backend]]\nid = \"content\"\naddress = \"{}\"\n",
            self.addr
        )
    }
}

fn full(b: impl Into<Bytes>) -> Answer {
    http_body_util::Full::new(b.into()).boxed()
}

async fn answer(req: Request<Incoming>, held: Held) -> Result<Response<Answer>, Infallible> {
    let r = Response::builder().header("x-backend", "content");
    let text = big_text();
    let resp = match req.uri().path() {
        "/text" => {
            let r = r
                .header("content-type", "text/plain; charset=utf-8")
                .header("etag", "\"v1\"")
                .header("accept-ranges", "bytes");
            match req.headers().get("range").and_then(|v| v.to_str().ok()) {
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
    Ok(resp.expect("a valid response"))
}

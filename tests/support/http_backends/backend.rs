//! Small hyper backends (HTTP/1.1 and h2c, or both over TLS) that echo what they received.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tandem_tls::rustls;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as a backend received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body_len: usize,
}

impl Seen {
    /// The header's value as text ("" when absent); several values are joined with ", ".
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A hyper backend on 127.0.0.1 speaking HTTP/1.1 and h2c (or both over TLS). Paths:
/// - `/status/<code>`: answers with that status;
/// - `/slow/<ms>`: answers 200 after that long;
/// - `/hop`: answers with hop-by-hop headers of its own (`Connection: x-backend-hop`);
/// - `/stream`: streams three chunks, then trailers `grpc-status: 0`;
/// - `/trailers`: the same with `Trailer: x-checksum` and trailer `x-checksum: c0ffee`;
/// - `/big/<bytes>`: that many bytes of `x`, streamed in 64 KiB chunks (large responses);
/// - `/health`: "ok";
/// - anything else: echoes `<name>\n<METHOD> <path?query> <version>\n` and one `name: value` line
///   per header received.
pub struct HttpBackend {
    pub name: String,
    pub addr: SocketAddr,
    connections: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl HttpBackend {
    pub async fn start(name: &str) -> HttpBackend {
        Self::serve(name, None).await
    }

    pub async fn start_tls(name: &str, tls: Arc<rustls::ServerConfig>) -> HttpBackend {
        Self::serve(name, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn serve(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> HttpBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (n, count, log) = (name.to_string(), connections.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (n, log, tls) = (n.clone(), log.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve_conn(tcp, n, log).await,
                        Some(acceptor) => {
                            if let Ok(Ok(stream)) =
                                tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp))
                                    .await
                            {
                                serve_conn(stream, n, log).await
                            }
                        }
                    }
                });
            }
        });
        HttpBackend {
            name: name.to_string(),
            addr,
            connections,
            seen,
            task,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests received for `path`.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_conn<S>(io: S, name: String, log: Arc<Mutex<Vec<Seen>>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let (name, log) = (name.clone(), log.clone());
        async move { Ok::<_, Infallible>(backend_answer(req, &name, &log).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

type BackendBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(text: impl Into<Bytes>) -> BackendBody {
    Full::new(text.into()).boxed()
}

async fn backend_answer(
    req: Request<Incoming>,
    name: &str,
    log: &Mutex<Vec<Seen>>,
) -> Response<BackendBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body_len: body.len(),
    });
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

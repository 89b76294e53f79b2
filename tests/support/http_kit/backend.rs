//! The one HTTP test backend: a server on 127.0.0.1 built with [`HttpBackend::builder`]
//! (plain or TLS, HTTP/1.1 only or HTTP/1.1 + h2, and what it answers), which records
//! every request it receives and counts requests and connections.

use super::answers::{echo_answer, named_answer, BackendBody};
use super::content::{content_answer, Held};
use super::scripted::serve_script;
use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_tls::rustls;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a backend answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Every request: the backend's status (200 unless set), `x-backend: <name>` and the
    /// body `<name>` (balancing, routing, persistence, limits).
    Named,
    /// Echoes `<name>\n<METHOD> <path?query> <version>\n` and one `name: value` line per
    /// header, with a few special paths (see [`echo_answer`]) (forwarding, protocols).
    Echo,
    /// Bodies worth compressing, one path per case (see [`content_answer`]).
    Content,
    /// Raw bytes, not hyper: each request head is answered with the next of these (the
    /// last repeats); `close` closes the connection 20 ms after each answer, without
    /// saying so (a backend that drops keep-alive connections, or HTTP/1.0-style).
    Script { replies: Vec<Vec<u8>>, close: bool },
}

/// Which protocols a hyper backend speaks (a scripted one speaks whatever its bytes say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocols {
    Http1,
    /// HTTP/1.1 and h2 (h2c in plain text, by ALPN over TLS).
    Http1AndH2,
}

/// One request as a backend received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Path and query.
    pub uri: String,
    pub version: Version,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Seen {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header joined with ", " ("" when absent).
    pub fn header_text(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn from_parts(parts: &http::request::Parts, body_len: usize) -> Seen {
        Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            version: parts.version,
            headers: super::header_pairs(&parts.headers),
            body_len,
        }
    }
}

/// State shared by a backend and its connection tasks.
pub(super) struct Shared {
    pub name: String,
    pub status: AtomicU16,
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    pub seen: Mutex<Vec<Seen>>,
    /// The scripted replies (changeable while running).
    pub script: Mutex<Vec<Vec<u8>>>,
    /// The `/slow` content response held half way.
    pub held: Held,
}

impl Shared {
    pub fn record(&self, seen: Seen) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(seen);
        self.requests.fetch_add(1, Ordering::SeqCst);
    }
}

/// Options for a backend; `start` binds it.
pub struct HttpBackendBuilder {
    name: String,
    answer: Answer,
    protocols: Protocols,
    tls: Option<Arc<rustls::ServerConfig>>,
    status: u16,
}

impl HttpBackendBuilder {
    pub fn answer(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }

    pub fn protocols(mut self, protocols: Protocols) -> Self {
        self.protocols = protocols;
        self
    }

    /// Serves TLS with this config (its ALPN list decides h2 vs HTTP/1.1).
    pub fn tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The status a [`Answer::Named`] backend answers with.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Binds 127.0.0.1 on a free port and serves.
    pub async fn start(self) -> HttpBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a test HTTP backend on 127.0.0.1");
        self.serve_on(listener)
    }

    /// Serves on a listener made elsewhere (e.g. inside a lab namespace).
    pub fn serve_on(self, listener: TcpListener) -> HttpBackend {
        let addr = listener.local_addr().expect("a bound listener");
        let script = match &self.answer {
            Answer::Script { replies, .. } => replies.clone(),
            _ => Vec::new(),
        };
        let shared = Arc::new(Shared {
            name: self.name.clone(),
            status: AtomicU16::new(self.status),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            script: Mutex::new(script),
            held: Held::default(),
        });
        let stop = CancellationToken::new();
        let setup = Setup {
            answer: self.answer,
            protocols: self.protocols,
            tls: self.tls.map(tokio_rustls::TlsAcceptor::from),
        };
        tokio::spawn(accept_loop(listener, shared.clone(), setup, stop.clone()));
        HttpBackend {
            name: self.name,
            addr,
            shared,
            stop,
        }
    }
}

/// A running test backend. Dropping it, or `kill`, closes the listening socket and every
/// open connection (a crashed server).
pub struct HttpBackend {
    pub name: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl HttpBackend {
    /// A plain HTTP/1.1 backend answering [`Answer::Named`] with 200: set the rest here.
    pub fn builder(name: &str) -> HttpBackendBuilder {
        HttpBackendBuilder {
            name: name.to_string(),
            answer: Answer::Named,
            protocols: Protocols::Http1,
            tls: None,
            status: 200,
        }
    }

    /// [`Answer::Named`] with 200, HTTP/1.1.
    pub async fn start(name: &str) -> HttpBackend {
        Self::builder(name).start().await
    }

    /// [`Answer::Named`] with `status`, HTTP/1.1.
    pub async fn start_with_status(name: &str, status: u16) -> HttpBackend {
        Self::builder(name).status(status).start().await
    }

    /// [`Answer::Echo`], HTTP/1.1 and h2c.
    pub async fn echo(name: &str) -> HttpBackend {
        Self::builder(name)
            .answer(Answer::Echo)
            .protocols(Protocols::Http1AndH2)
            .start()
            .await
    }

    /// [`Answer::Echo`] over TLS, HTTP/1.1 and h2 by ALPN.
    pub async fn echo_tls(name: &str, tls: Arc<rustls::ServerConfig>) -> HttpBackend {
        Self::builder(name)
            .answer(Answer::Echo)
            .protocols(Protocols::Http1AndH2)
            .tls(tls)
            .start()
            .await
    }

    /// [`Answer::Content`] (named "content"), HTTP/1.1.
    pub async fn content() -> HttpBackend {
        Self::builder("content")
            .answer(Answer::Content)
            .start()
            .await
    }

    /// [`Answer::Script`]: raw `replies` in order, the last repeating.
    pub async fn scripted(name: &str, replies: Vec<Vec<u8>>, close: bool) -> HttpBackend {
        Self::builder(name)
            .answer(Answer::Script { replies, close })
            .start()
            .await
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The requests received for `path` (without the query).
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// Requests received with this method.
    pub fn count_method(&self, method: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }

    /// From now on, a [`Answer::Named`] backend answers with this status.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// From now on, a [`Answer::Script`] backend answers with these bytes.
    pub fn set_script(&self, replies: Vec<Vec<u8>>) {
        *self.shared.script.lock().unwrap() = replies;
    }

    /// [`Answer::Content`]: `/slow` sent the first 50 000 bytes of its text and holds the
    /// rest until this.
    pub fn finish_slow(&self) {
        super::content::finish_slow(&self.shared.held);
    }

    /// Stops listening and closes every open connection (a crashed server).
    pub fn kill(&self) {
        self.stop.cancel();
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Setup {
    answer: Answer,
    protocols: Protocols,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    setup: Setup,
    stop: CancellationToken,
) {
    let setup = Arc::new(setup);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let (shared, setup, stop) = (shared.clone(), setup.clone(), stop.clone());
        tokio::spawn(async move {
            let serve = async {
                match &setup.tls {
                    None => serve_conn(tcp, &setup, shared).await,
                    Some(acceptor) => {
                        let handshake = acceptor.accept(tcp);
                        if let Ok(Ok(tls)) =
                            tokio::time::timeout(Duration::from_secs(5), handshake).await
                        {
                            serve_conn(tls, &setup, shared).await
                        }
                    }
                }
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = serve => {}
            }
        });
    }
}

async fn serve_conn<S>(io: S, setup: &Setup, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Answer::Script { close, .. } = setup.answer {
        return serve_script(io, &shared, close).await;
    }
    let answer = setup.answer.clone();
    let service = service_fn(move |req| {
        let (shared, answer) = (shared.clone(), answer.clone());
        async move { Ok::<_, Infallible>(respond(req, &answer, &shared).await) }
    });
    match setup.protocols {
        Protocols::Http1 => {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(io), service)
                .await;
        }
        Protocols::Http1AndH2 => {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), service)
                .await;
        }
    }
}

async fn respond(
    req: Request<Incoming>,
    answer: &Answer,
    shared: &Shared,
) -> Response<BackendBody> {
    if let Answer::Content = answer {
        let (parts, _) = req.into_parts();
        shared.record(Seen::from_parts(&parts, 0));
        return content_answer(&parts, &shared.held);
    }
    let (parts, body) = req.into_parts();
    let body: Bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    shared.record(Seen::from_parts(&parts, body.len()));
    match answer {
        Answer::Echo => echo_answer(&parts, &shared.name).await,
        _ => named_answer(&shared.name, shared.status.load(Ordering::SeqCst)),
    }
}

//! Accept loops and one HTTP/1.1 connection each (hyper). Who asked is known here (peer
//! credentials or address), checked here (the bearer token on TCP), and every write is
//! logged here with it, whatever the outcome.

use http::{header, Method, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{ApiError, Body, Code};
use super::rejections::Rejected;
use super::{listen, router};
use crate::Node;

/// A client that stalls before finishing its request head is cut after this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The caller of one connection.
struct Caller {
    /// For logs: "unix uid 0 pid 4242" or "tcp 127.0.0.1:51234".
    who: String,
    /// TCP only: where the expected bearer token is.
    token_file: Option<PathBuf>,
}

pub async fn accept_unix(
    listener: tokio::net::UnixListener,
    node: Arc<Node>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let who = match stream.peer_cred() {
            Ok(cred) => match cred.pid() {
                Some(pid) => format!("unix uid {} pid {pid}", cred.uid()),
                None => format!("unix uid {}", cred.uid()),
            },
            Err(_) => "unix (peer unknown)".to_string(),
        };
        let caller = Caller {
            who,
            token_file: None,
        };
        tasks.spawn(serve(stream, node.clone(), caller, stop.clone()));
    }
}

pub async fn accept_tcp(
    listener: tokio::net::TcpListener,
    token_file: PathBuf,
    node: Arc<Node>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin TCP: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let caller = Caller {
            who: format!("tcp {peer}"),
            token_file: Some(token_file.clone()),
        };
        tasks.spawn(serve(stream, node.clone(), caller, stop.clone()));
    }
}

/// Serves one connection until the client closes it, or until `stop` (then the request
/// in progress finishes first).
async fn serve<S>(stream: S, node: Arc<Node>, caller: Caller, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let caller = Arc::new(caller);
    let handler = move |req| {
        let (node, caller) = (node.clone(), caller.clone());
        async move { handle(&node, &caller, req).await }
    };
    serve_http1(stream, handler, stop, "admin").await;
}

/// Serves one HTTP/1.1 connection of a control-plane listener (the admin API, the status
/// listener) with `handler`, a bounded wait for the request head, and a graceful end when
/// `stop` fires.
pub(crate) async fn serve_http1<S, F, Fut, B>(
    stream: S,
    handler: F,
    stop: CancellationToken,
    what: &'static str,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = hyper::service::service_fn(move |req| {
        let response = handler(req);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "{what} connection ended with an error");
    }
}

async fn handle(node: &Node, caller: &Caller, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if let Some(file) = &caller.token_file {
        if let Err(e) = authorize(&req, file) {
            node.admin_rejections()
                .refuse(Rejected::Unauthorized, &caller.who, &path, &e.message);
            return e.into_response();
        }
    }
    let response = router::route(node, req, &caller.who).await;
    let status = response.status().as_u16();
    if method == Method::GET || method == Method::HEAD {
        tracing::debug!(who = %caller.who, %method, %path, status, "admin read");
    } else {
        tracing::info!(who = %caller.who, %method, %path, status, "admin request");
    }
    response
}

/// TCP callers must send `Authorization: Bearer <the token file's content>`.
fn authorize(req: &Request<Incoming>, token_file: &std::path::Path) -> Result<(), ApiError> {
    let unauthorized = |m: &str| ApiError::new(Code::Unauthorized, m);
    let expected = listen::read_token(token_file).map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "the admin token cannot be read; refusing TCP admin requests");
        unauthorized("the node cannot read its admin token file; see its log")
    })?;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    let token = given
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
    if listen::same_token(token.trim(), &expected) {
        Ok(())
    } else {
        Err(unauthorized("wrong bearer token"))
    }
}

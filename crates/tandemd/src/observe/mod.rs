//! The read-only observability listener (`[node.status]`): the HTML status page at `/`,
//! the same state as JSON at `/status`, and Prometheus metrics at `/metrics`, on an
//! address of its own. It has no write endpoint at all, so opening it to a monitoring
//! network (optionally behind a read-only token) never exposes what the admin API can do.
//!
//! Layout: this module binds, accepts and routes; `snapshot` gathers the state; `page`
//! renders it as HTML; `tls` serves it over HTTPS when `[node.status.tls]` is set.

mod page;
mod snapshot;
mod tls;

pub use page::REFRESH_SECONDS;
pub use snapshot::{gather, Rates, Snapshot};

use anyhow::Context;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tandem_config::StatusListener;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Node;

/// The status listener, bound (before the node starts, like the admin sockets).
pub struct StatusSocket {
    listener: TcpListener,
    token_file: Option<PathBuf>,
    tls: Option<Arc<tls::StatusCert>>,
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `[node.status]`. A token file must be readable and not empty now, and a TLS
/// certificate must load, so a typo stops start-up rather than locking every scraper out
/// later.
pub async fn bind(config: &StatusListener) -> anyhow::Result<StatusSocket> {
    if let Some(file) = &config.token_file {
        read_token(file)?;
    }
    let tls = match &config.tls {
        Some(t) => Some(Arc::new(tls::StatusCert::load(t)?)),
        None => None,
    };
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "binding the status listener on {} (node.status.listen); pick a free port",
            config.listen
        )
    })?;
    Ok(StatusSocket {
        listener,
        token_file: config.token_file.clone(),
        tls,
    })
}

impl StatusSocket {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop`; connections are tracked by `tasks`.
    pub fn serve(self, node: Arc<Node>, stop: CancellationToken, tasks: &TaskTracker) {
        let address = self.local_addr();
        tracing::info!(address = ?address, token = self.token_file.is_some(),
            tls = self.tls.is_some(), "status page listening (read-only: /, /status, /metrics)");
        let state = Arc::new(State {
            node,
            token_file: self.token_file,
            rates: Rates::default(),
        });
        tasks.spawn(accept(self.listener, self.tls, state, stop, tasks.clone()));
    }
}

struct State {
    node: Arc<Node>,
    token_file: Option<PathBuf>,
    rates: Rates,
}

async fn accept(
    listener: TcpListener,
    tls: Option<Arc<tls::StatusCert>>,
    state: Arc<State>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "status listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let handler = move |req| {
            let state = state.clone();
            async move { handle(&state, req).await }
        };
        let Some(tls) = &tls else {
            tasks.spawn(crate::admin::serve_http1(
                stream,
                handler,
                stop.clone(),
                "status",
            ));
            continue;
        };
        let (acceptor, stop) = (tls.acceptor(), stop.clone());
        tasks.spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%client, error = %e, "status listener: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%client, "status listener: TLS handshake timed out");
                    return;
                }
            };
            crate::admin::serve_http1(stream, handler, stop, "status").await;
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        // Live state: a cached copy during an incident would mislead.
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(body.into()))
        .expect("static headers make a valid response")
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if let Some(file) = &state.token_file {
        if let Err(why) = authorize(&req, file) {
            tracing::debug!(path = %req.uri().path(), reason = why, "status request refused");
            let mut r = reply(StatusCode::UNAUTHORIZED, TEXT, format!("{why}\n"));
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"tandem status\""),
            );
            return r;
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "read-only: only GET and HEAD; changes go through the admin API\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/" => {
            let snap = gather(&state.node, &state.rates).await;
            reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                page::render(&snap),
            )
        }
        "/status" => {
            let snap = gather(&state.node, &state.rates).await;
            let body = serde_json::to_vec_pretty(&snap).unwrap_or_default();
            reply(StatusCode::OK, "application/json", body)
        }
        "/metrics" => {
            let text = crate::metrics::render(&state.node).await;
            reply(StatusCode::OK, crate::metrics::CONTENT_TYPE, text)
        }
        other => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            format!("no page {other}; try / (status page), /status (JSON) or /metrics\n"),
        ),
    }
}

fn read_token(file: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "reading the status token file {} (node.status.token_file)",
            file.display()
        )
    })?;
    let token = text.trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "the status token file {} is empty; put a long random string in it",
        file.display()
    );
    Ok(token)
}

/// `Authorization: Bearer <token>`, or `?token=<token>` (a browser cannot add a header
/// to a page it refreshes itself; the meta refresh keeps the query).
fn authorize(req: &Request<Incoming>, file: &std::path::Path) -> Result<(), &'static str> {
    let expected = read_token(file).map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "the status token cannot be read; refusing status requests");
        "the node cannot read its status token file; see its log"
    })?;
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    match from_header.or(from_query) {
        None => Err("missing token: send Authorization: Bearer <token> or ?token=<token>"),
        Some(given) if crate::admin::same_token(&given, &expected) => Ok(()),
        Some(_) => Err("wrong token"),
    }
}

//! A small HTTP/1.1 client for the admin API, over the Unix socket or TCP: one connection
//! per call (calls are rare and a fresh connection never meets a half-closed one).

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A call that takes longer than this is reported instead of hanging a script.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where tandemd's admin API is.
#[derive(Clone, Debug)]
pub enum Target {
    Unix(PathBuf),
    Tcp { url: String, token: String },
}

/// Why a call did not succeed; each kind has its own exit code.
#[derive(Debug)]
pub enum Failure {
    /// Nothing answered: the message says where we looked and what to try.
    Unreachable(String),
    /// tandemd answered with an error: its message, and the whole body as JSON (whose
    /// `error.code` scripts branch on).
    Refused { message: String, body: Value },
    /// Something answered, but not like tandemd.
    Protocol(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(m) | Failure::Protocol(m) => f.write_str(m),
            Failure::Refused { message, .. } => f.write_str(message),
        }
    }
}

pub struct Client {
    target: Target,
}

impl Client {
    pub fn new(target: Target) -> Client {
        Client { target }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> Failure {
        Failure::Unreachable(match &self.target {
            Target::Unix(path) => format!(
                "cannot reach tandemd at {}: {e}; is it running? (--socket to choose another)",
                path.display()
            ),
            Target::Tcp { url, .. } => format!(
                "cannot reach tandemd at {url}: {e}; is it running? (--url to choose another)"
            ),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.json(Method::GET, path, None).await
    }

    /// Calls the API with an optional JSON body and returns the JSON answer.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let body = body.map(|v| (Bytes::from(v.to_string()), "application/json"));
        self.call_json(method, path, body).await
    }

    /// Calls the API with a raw body (`content_type` given) and returns the JSON answer.
    pub async fn call_json(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Value, Failure> {
        let (status, bytes) = self.call(method, path, body).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Protocol(format!(
                "the answer to {path} is not JSON ({e}); is this tandemd's admin API?"
            ))
        })?;
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        Err(Failure::Refused {
            message: error["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("tandemd answered {status}")),
            body: value,
        })
    }

    /// One request; returns the status and body whatever the status.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<(StatusCode, Bytes), Failure> {
        tokio::time::timeout(CALL_TIMEOUT, self.call_inner(method, path, body))
            .await
            .map_err(|_| {
                self.unreachable(format!("no answer within {}s", CALL_TIMEOUT.as_secs()))
            })?
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<(StatusCode, Bytes), Failure> {
        let mut builder = Request::builder().method(method).uri(path);
        match &self.target {
            Target::Unix(_) => builder = builder.header(header::HOST, "tandemd"),
            Target::Tcp { url, token } => {
                let host = url.trim_start_matches("http://").trim_end_matches('/');
                builder = builder
                    .header(header::HOST, host)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
        }
        let (bytes, content_type) = body.unwrap_or((Bytes::new(), "application/json"));
        let request = builder
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(bytes))
            .map_err(|e| Failure::Protocol(format!("building the request for {path}: {e}")))?;
        match &self.target {
            Target::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        // It runs; this user may not use it. "Is it running?" would mislead.
                        Failure::Unreachable(format!(
                            "cannot use tandemd's admin socket {}: {e}; run as root or as a \
                             member of the socket's group",
                            socket.display()
                        ))
                    } else {
                        self.unreachable(e)
                    }
                })?;
                self.exchange(stream, request).await
            }
            Target::Tcp { url, .. } => {
                let host = url.trim_start_matches("http://").trim_end_matches('/');
                let stream = tokio::net::TcpStream::connect(host)
                    .await
                    .map_err(|e| self.unreachable(e))?;
                self.exchange(stream, request).await
            }
        }
    }

    async fn exchange<S>(
        &self,
        stream: S,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e))?;
        let driver = tokio::spawn(conn);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(format!("the connection broke: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        driver.abort();
        Ok((status, body))
    }
}

/// Percent-encodes a query value (a file name, for `config check`).
pub fn encode_query(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

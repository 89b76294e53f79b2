//! Connections to backends, with our own connector (TCP with a connect timeout, optional
//! TLS with SNI and ALPN). HTTP/1.1 pools speak tandem-h1's codec over their
//! connections from the request's own task, through
//! [`H1Pool`](crate::upstream_pool::H1Pool): idle keep-alive connections per worker and
//! backend address, no task per connection or request. HTTP/2 pools use hyper-util's pooled client
//! (one multiplexed connection per backend), keyed by URI authority, which we set to the
//! chosen backend's address.

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

pub use crate::upstream_body::PooledBody;
use crate::upstream_h1::ExchangeError;
use crate::upstream_pool::H1Pool;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request bodies sent upstream: whatever the client sent (size-limited), boxed.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// TLS towards the backends of one pool.
#[derive(Clone)]
pub struct UpstreamTls {
    pub config: Arc<tokio_rustls::rustls::ClientConfig>,
    /// SNI and verified name; None = the backend's IP.
    pub server_name: Option<ServerName<'static>>,
}

#[derive(Clone)]
pub struct Connector {
    connect_timeout: Duration,
    tls: Option<UpstreamTls>,
}

/// A plain or TLS stream to one backend.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// hyper's view of a backend connection.
pub struct UpstreamIo {
    io: TokioIo<Stream>,
    h2: bool,
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

/// Why a connection to a backend failed: the proxy retries these and counts them for
/// outlier detection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0} timed out after {1} ms")]
    Timeout(SocketAddr, u128),
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, io::Error),
    #[error("TLS handshake with {0}: {1}")]
    Tls(SocketAddr, io::Error),
    #[error("bad backend address in {0}")]
    BadUri(Uri),
}

impl Connector {
    pub fn new(connect_timeout: Duration, tls: Option<UpstreamTls>) -> Self {
        Connector {
            connect_timeout,
            tls,
        }
    }

    /// A new connection to `addr`, TLS handshake included when the pool speaks TLS.
    pub async fn connect(&self, addr: SocketAddr) -> Result<UpstreamIo, ConnectError> {
        let (stream, h2) = self.connect_stream(addr).await?;
        Ok(UpstreamIo {
            io: TokioIo::new(stream),
            h2,
        })
    }

    /// A new connection to `addr` as a plain stream, and whether TLS's ALPN chose h2.
    pub async fn connect_stream(&self, addr: SocketAddr) -> Result<(Stream, bool), ConnectError> {
        let this = self;
        let tcp = tokio::time::timeout(this.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout(addr, this.connect_timeout.as_millis()))?
            .map_err(|e| ConnectError::Io(addr, e))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &this.tls else {
            return Ok((Stream::Plain(tcp), false));
        };
        let name = tls
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let stream = tokio::time::timeout(this.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| ConnectError::Timeout(addr, this.connect_timeout.as_millis()))?
            .map_err(|e| ConnectError::Tls(addr, e))?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok((Stream::Tls(Box::new(stream)), h2))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let addr: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or_else(|| ConnectError::BadUri(uri.clone()))?;
            this.connect(addr).await
        })
    }
}

/// The HTTP/2 receive window per stream towards backends.
const UPSTREAM_H2_STREAM_WINDOW: u32 = 256 * 1024;

/// The pooled client of one backend pool.
#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, UpstreamBody>,
    h1: Arc<H1Pool>,
    pub scheme: &'static str,
    pub http2: bool,
}

/// A failed exchange with a backend.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Connect(ConnectError),
    /// An HTTP/1.1 exchange failed after connecting (the backend's fault, or the
    /// client's body's: see [`UpstreamError::as_error`]).
    #[error(transparent)]
    Exchange(ExchangeError),
    #[error(transparent)]
    Pooled(hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// No request reached the backend: another backend may be tried.
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Connect(_) => true,
            UpstreamError::Exchange(_) => false,
            UpstreamError::Pooled(e) => e.is_connect(),
        }
    }

    /// Our connector's error, when the exchange failed connecting.
    pub fn connect_error(&self) -> Option<&ConnectError> {
        match self {
            UpstreamError::Connect(c) => Some(c),
            UpstreamError::Pooled(e) => {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
                while let Some(c) = cause {
                    if let Some(connect) = c.downcast_ref::<ConnectError>() {
                        return Some(connect);
                    }
                    cause = c.source();
                }
                None
            }
            _ => None,
        }
    }

    /// The error itself, for walking its chain of causes.
    pub fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            // The client's body error itself, so the chain shows whose fault it was.
            UpstreamError::Exchange(ExchangeError::ClientBody(e)) => e.as_ref(),
            UpstreamError::Exchange(e) => e,
            UpstreamError::Pooled(e) => e,
            UpstreamError::Connect(e) => e,
        }
    }
}

/// A response from a backend; its body gives the connection back to the pool at its end.
pub type UpstreamResponse = http::Response<PooledBody>;

impl Upstream {
    pub fn new(
        http2: bool,
        tls: Option<UpstreamTls>,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle_per_backend: usize,
        workers: usize,
    ) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let connector = Connector::new(connect_timeout, tls);
        let h1 = Arc::new(H1Pool::new(
            connector.clone(),
            max_idle_per_backend,
            idle_timeout,
            workers,
        ));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(idle_timeout)
            .pool_max_idle_per_host(max_idle_per_backend)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // Response bytes a backend may send ahead per stream: hyper's 2 MiB default
            // is what each stalled client would pin. Backends are near: 256 KiB is plenty.
            .http2_initial_stream_window_size(UPSTREAM_H2_STREAM_WINDOW)
            .http2_only(http2);
        Upstream {
            client: builder.build(connector),
            h1,
            scheme,
            http2,
        }
    }

    /// Workers with idle HTTP/1.1 connections of their own.
    pub fn workers(&self) -> usize {
        self.h1.workers()
    }

    /// Sends `req` to the backend at `addr`. HTTP/1.1: `req` carries an origin-form URI
    /// and a Host header. HTTP/2: an absolute URI whose authority is `addr`.
    pub async fn send(
        &self,
        addr: SocketAddr,
        req: http::Request<UpstreamBody>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        if self.http2 {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(UpstreamError::Pooled)?;
            return Ok(resp.map(PooledBody::h2));
        }
        self.h1.send(addr, req).await
    }
}

//! `Upgrade` requests (WebSocket and others): after the backend's 101, both sides become
//! one bidirectional byte stream.
//!
//! The client's side is handed over by the HTTP/1.1 connection loop (`server_h1`): the
//! request that answers 101 leaves a [`Handover`] slot and the loop fills it with the
//! client's stream (what the client sent after its request in front) once the 101 is out.

use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tandem_pool::BackendLease;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

/// A client's byte stream after its upgrade, with whatever it sent after the request
/// already in front.
pub trait ClientStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ClientStream for T {}

pub type ClientIo = Box<dyn ClientStream>;

/// Where a connection's upgraded stream goes: at most one upgrade per connection.
#[derive(Default)]
pub struct Handover(Mutex<Option<oneshot::Sender<ClientIo>>>);

impl Handover {
    /// The response being sent is a 101: the connection loop hands the client's stream
    /// over once it is written.
    pub fn expect(&self) -> oneshot::Receiver<ClientIo> {
        let (tx, rx) = oneshot::channel();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// The connection loop's side: whoever waits for the client's stream, if anyone.
    pub fn take(&self) -> Option<oneshot::Sender<ClientIo>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Joins the client's and the backend's upgraded connections and copies both ways; the
/// lease (and so the backend's connection count) lasts as long as the stream.
pub fn tunnel(
    client: oneshot::Receiver<ClientIo>,
    backend: BackendIo,
    lease: BackendLease,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let backend_id = lease.backend_id().to_string();
        let mut client = match client.await {
            Ok(client) => client,
            Err(_) => {
                tracing::debug!(backend = %backend_id, "upgrade did not complete: the client's connection ended before the 101 was sent");
                return;
            }
        };
        let mut backend = backend;
        match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            Ok((up, down)) => {
                tracing::debug!(backend = %backend_id, up, down, "upgraded stream closed")
            }
            Err(e) => {
                tracing::debug!(backend = %backend_id, error = %e, "upgraded stream ended with an error")
            }
        }
    });
}

/// A backend connection after its 101, with the bytes the backend sent after the
/// response head already in front.
pub struct BackendIo {
    io: crate::upstream::Stream,
    read_first: Bytes,
}

impl BackendIo {
    pub fn new(io: crate::upstream::Stream, read_first: Bytes) -> Self {
        BackendIo { io, read_first }
    }
}

impl AsyncRead for BackendIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read_first.is_empty() {
            let n = this.read_first.len().min(buf.remaining());
            buf.put_slice(&this.read_first[..n]);
            this.read_first.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for BackendIo {
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
}

/// A 101 response's backend connection, carried in the response's extensions from the
/// exchange to the response phase (extensions must be `Clone`: hence the shared slot).
#[derive(Clone)]
pub struct BackendUpgrade(Arc<Mutex<Option<BackendIo>>>);

impl BackendUpgrade {
    pub fn new(io: BackendIo) -> Self {
        BackendUpgrade(Arc::new(Mutex::new(Some(io))))
    }

    /// The connection, once.
    pub fn take(&self) -> Option<BackendIo> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

//! `Upgrade` requests (WebSocket and others): after the backend's 101, both sides become
//! one bidirectional byte stream.
//!
//! The client's side is handed over by the connection loop (`connection.rs`): hyper's
//! HTTP/1 server runs there without its own upgrade machinery (so that an idle
//! connection can be taken back from it), so the request that answers 101 leaves a
//! [`Handover`] slot and the loop fills it with the client's stream once the 101 is out.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Mutex;
use tandem_pool::BackendLease;
use tokio::io::{AsyncRead, AsyncWrite};
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
    backend: OnUpgrade,
    lease: BackendLease,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let backend_id = lease.backend_id().to_string();
        let client = async {
            client
                .await
                .map_err(|_| "the client's connection ended before the 101 was sent".to_string())
        };
        let backend = async { backend.await.map_err(|e| e.to_string()) };
        let (mut client, backend) = match tokio::try_join!(client, backend) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(backend = %backend_id, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut backend = TokioIo::new(backend);
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

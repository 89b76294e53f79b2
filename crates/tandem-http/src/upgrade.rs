//! `Upgrade` requests (WebSocket and others): after the backend's 101, both sides become
//! one bidirectional byte stream.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tandem_proxy::BackendLease;
use tokio_util::task::TaskTracker;

/// Joins the client's and the backend's upgraded connections and copies both ways; the
/// lease (and so the backend's connection count) lasts as long as the stream.
pub fn tunnel(client: OnUpgrade, backend: OnUpgrade, lease: BackendLease, tracker: &TaskTracker) {
    tracker.spawn(async move {
        let backend_id = lease.backend_id().to_string();
        let (client, backend) = match tokio::try_join!(client, backend) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(backend = %backend_id, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
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

//! `Upgrade` requests (WebSocket and others): after the backend's 101, both sides become
//! one bidirectional byte stream.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Joins the client's and the backend's upgraded connections and copies both ways.
pub fn tunnel(client: OnUpgrade, backend: OnUpgrade, backend_id: String) {
    tokio::spawn(async move {
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

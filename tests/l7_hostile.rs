//! Hostile clients against the L7 plane, end to end (issue 14): request bodies the client
//! gets wrong never count against a backend; one checked authority per request; clients
//! that stop reading are closed after `send_timeout`, with bounded memory each. Real
//! tandemd (in process, or the binary where its memory is measured), real backends, raw
//! TCP for the malformed bytes and hyper for HTTP/2.

#[path = "l7_hostile/bodies.rs"]
mod bodies;
#[path = "l7_hostile/host.rs"]
mod host;
#[allow(dead_code)]
mod metrics_support;
#[path = "l7_hostile/stalled.rs"]
mod stalled;

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Writes `bytes` (ignoring a peer that closes or resets meanwhile), optionally shuts the
/// write side, then reads until the peer closes or `limit` passes.
pub async fn send_raw(target: SocketAddr, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut tcp = TcpStream::connect(target).await.expect("connecting");
    let _ = tcp.write_all(bytes).await;
    if half_close {
        let _ = tcp.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// The status of the first response in `raw` (None: no response at all).
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(raw.get(..12)?).ok()?;
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

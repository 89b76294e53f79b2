//! Clients that request a large response and never read it: each is closed after
//! `send_timeout` (HTTP/1.1 and HTTP/2), counted and logged once, and holds a bounded
//! amount of tandemd's memory meanwhile. Measured on the real binary: RSS and descriptors
//! from /proc, before, while stalled, and after the timeout.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tandem_tests::http_kit::{curl_output, HttpBackend};
use tandem_tests::TempDir;
use tandem_tests::*;
use tandem_tests::{Config, Listener, Pool};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::addr;

/// Readers per protocol. Enough that per-reader memory stands out from the noise.
const READERS: usize = 60;
const BIG: usize = 8 << 20;

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// A client socket with a 4 KiB receive buffer, as in the issue.
async fn small_window_connect(port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr(port)).await.unwrap()
}

/// A stream whose reads stop for good once `frozen` is set (a client that stops reading
/// while its HTTP/2 machinery stays alive).
struct Freezable {
    inner: TcpStream,
    frozen: Arc<AtomicBool>,
}

impl AsyncRead for Freezable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.frozen.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Freezable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// An h2c client that asks for a large response with big windows, then stops reading.
async fn stalled_h2(port: u16) -> Arc<AtomicBool> {
    let frozen = Arc::new(AtomicBool::new(false));
    let io = Freezable {
        inner: small_window_connect(port).await,
        frozen: frozen.clone(),
    };
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(16 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake(TokioIo::new(io))
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://ok.example/big/{BIG}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.expect("response headers");
    assert_eq!(resp.status(), 200);
    frozen.store(true, Ordering::SeqCst);
    // Keep the response (and its stream) alive, unread, until the proxy gives up.
    tokio::spawn(async move {
        let _keep = (resp, sender);
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    frozen
}

/// Waits until tandemd holds at most `want` descriptors; returns how long it took.
async fn fds_settle(pid: u32, want: usize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    eventually(limit, || fds(pid) <= want)
        .await
        .then(|| start.elapsed())
}

#[tokio::test]
async fn stalled_readers_are_closed_after_the_send_timeout_with_bounded_memory() {
    let b = HttpBackend::echo("big").await;
    let port = free_port();
    let dir = TempDir::new();
    let http = "[listener.http]\nsend_timeout = \"3s\"\naccess_log = false";
    let toml = Config::test_node()
        .listener(Listener::http("front", port).pool("p").tables(http))
        .pool(Pool::new("p").backend("big", b.addr))
        .to_toml();
    let config = dir.write("tandem.toml", toml);
    let (child, lines) = super::daemon(&config, "warn");
    let pid = child.0.id();
    assert!(
        wait_listening(addr(port), Duration::from_secs(10)).await,
        "tandemd did not listen: {:?}",
        lines.lock().unwrap()
    );
    // Warm up: a full large response, read by a real client, over both protocols.
    let url = format!("http://127.0.0.1:{port}/big/{BIG}");
    for extra in ["--http1.1", "--http2-prior-knowledge"] {
        let out = curl_output(&["-o", "/dev/null", "-w", "%{http_code}", extra, &url]).await;
        assert_eq!(out.stdout, "200", "{out:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // HTTP/1.1: the client, a 4 KiB receive buffer and no read.
    let (rss0, fds0) = (rss_kib(pid), fds(pid));
    let mut h1 = Vec::new();
    for _ in 0..READERS {
        let mut tcp = small_window_connect(port).await;
        let head = format!("GET /big/{BIG} HTTP/1.1\r\nHost: ok.example\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        h1.push(tcp);
    }
    // Each holds its client socket and a backend connection, and the buffers fill. (The
    // warm-up's pooled backend connections, up to one per protocol and worker, may close
    // meanwhile.)
    assert!(
        eventually(Duration::from_secs(10), || fds(pid) + 2
            >= fds0 + 2 * READERS)
        .await,
        "descriptors: {} from {fds0}; tandemd: {:?}",
        fds(pid),
        lines.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss1 = rss_kib(pid);
    let per_h1 = rss1.saturating_sub(rss0) / READERS as u64;
    let closed_after = fds_settle(pid, fds0 + 2, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("HTTP/1.1 stalled readers still held: {} fds", fds(pid)));
    drop(h1);

    // HTTP/2: big windows granted, then no more reading.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss2, fds2) = (rss_kib(pid), fds(pid));
    let mut h2 = Vec::new();
    for _ in 0..READERS {
        h2.push(stalled_h2(port).await);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss3 = rss_kib(pid);
    let per_h2 = rss3.saturating_sub(rss2) / READERS as u64;
    let h2_closed_after = fds_settle(pid, fds2 + 2, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("HTTP/2 stalled readers still held: {} fds", fds(pid)));

    println!(
        "stalled readers ({READERS} per protocol, {BIG} B responses, send_timeout 3s): \
         HTTP/1.1 {per_h1} KiB each (RSS {rss0} -> {rss1} KiB), closed {closed_after:?} after the buffers filled; \
         HTTP/2 {per_h2} KiB each (RSS {rss2} -> {rss3} KiB), closed {h2_closed_after:?} after"
    );
    assert!(per_h1 < 200, "HTTP/1.1: {per_h1} KiB per stalled reader");
    assert!(per_h2 < 400, "HTTP/2: {per_h2} KiB per stalled reader");
    let warnings = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("send timeout"))
        .count();
    assert_eq!(warnings, 1, "logged once: {:?}", lines.lock().unwrap());
    drop(h2);
}

//! HTTP/2 clients that ask for a large response and never open their flow-control window:
//! one sets SETTINGS_INITIAL_WINDOW_SIZE to 0, the other lets the connection window run
//! out at 64 KiB and sends no WINDOW_UPDATE. hyper then writes nothing for the stream, so
//! the socket never blocks; each connection must still be closed after `send_timeout`,
//! counted, logged once, with bounded memory meanwhile. A client that reads slowly but
//! steadily is not cut. Real tandemd binary, hyper as the raw HTTP/2 client.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::{Duration, Instant};
use tandem_tests::admin::Daemon;
use tandem_tests::http_kit::{curl_output, HttpBackend};
use tandem_tests::*;
use tandem_tests::{Config, Listener, Pool};

use super::addr;
use crate::metrics_support::scrape_daemon as scrape;

const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Clients per kind of stall: enough that per-stream memory stands out from the noise.
const CLIENTS: usize = 20;
const BIG: usize = 8 << 20;

#[derive(Clone, Copy, Debug)]
enum Stall {
    /// SETTINGS_INITIAL_WINDOW_SIZE = 0: not one DATA byte may be sent.
    ZeroStreamWindow,
    /// The 64 KiB connection window is used up and never reopened.
    SpentConnectionWindow,
}

/// A stalled client: its connection task (it ends when tandemd closes the connection),
/// when its response head arrived, and the response it never reads.
struct Stalled {
    conn: tokio::task::JoinHandle<()>,
    head_at: Instant,
    _keep: Box<dyn Send>,
}

async fn stalled_client(port: u16, stall: Stall) -> Stalled {
    let tcp = tokio::net::TcpStream::connect(addr(port)).await.unwrap();
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder.adaptive_window(false);
    match stall {
        Stall::ZeroStreamWindow => builder.initial_stream_window_size(0),
        Stall::SpentConnectionWindow => builder
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535),
    };
    let (mut sender, conn) = builder
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2c handshake");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(format!("http://ok.example/big/{BIG}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.expect("response head");
    assert_eq!(resp.status(), 200, "{stall:?}");
    Stalled {
        conn,
        head_at: Instant::now(),
        _keep: Box::new((resp, sender)),
    }
}

/// An HTTP/2 client that reads `len` bytes one DATA frame at a time, 50 ms apart, with
/// small windows: it opens them again after every read. Returns the bytes and the time.
async fn slow_reader(port: u16, len: usize) -> (usize, Duration) {
    use http_body_util::BodyExt;
    let started = Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr(port)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .adaptive_window(false)
        .initial_stream_window_size(16 << 10)
        .initial_connection_window_size(65_535)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://ok.example/big/{len}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let mut body = sender
        .send_request(req)
        .await
        .expect("response head")
        .into_body();
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        read += frame.data_ref().map_or(0, |d| d.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (read, started.elapsed())
}

#[tokio::test]
async fn http2_streams_without_a_window_are_closed_after_the_send_timeout() {
    let b = HttpBackend::echo("big").await;
    let port = free_port();
    let http = "[listener.http]\nsend_timeout = \"2s\"\naccess_log = false\nworkers = 1";
    let toml = Config::test_node()
        .listener(Listener::http("front", port).pool("p").tables(http))
        .pool(Pool::new("p").backend("big", b.addr))
        .to_toml();
    let daemon = Daemon::start(&toml).await;
    let pid = daemon.child.0.id();
    assert!(wait_listening(addr(port), Duration::from_secs(10)).await);
    let url = format!("http://127.0.0.1:{port}/big/{BIG}");
    let warm = curl_output(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--http2-prior-knowledge",
        &url,
    ])
    .await;
    assert_eq!(warm.stdout, "200", "{warm:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let rss0 = rss_kib(pid);
    let mut clients = Vec::new();
    for stall in [Stall::ZeroStreamWindow, Stall::SpentConnectionWindow] {
        for _ in 0..CLIENTS {
            clients.push((stall, stalled_client(port, stall).await));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_stream = rss_kib(pid).saturating_sub(rss0) / clients.len() as u64;

    // Meanwhile a slow but steady HTTP/2 reader (16 KiB windows, 50 ms between reads:
    // 512 KiB in over 3 s, longer than the send timeout) is served in full.
    let slow = tokio::spawn(slow_reader(port, 512 << 10));
    for (stall, client) in clients {
        let ended = tokio::time::timeout(SEND_TIMEOUT + Duration::from_secs(4), client.conn).await;
        let after = client.head_at.elapsed();
        assert!(
            ended.is_ok(),
            "{stall:?}: connection still open {after:?} after its response head; tandemd: {}",
            daemon.log()
        );
        assert!(
            after >= SEND_TIMEOUT - Duration::from_millis(300),
            "{stall:?}: closed after {after:?}, before the send timeout"
        );
    }
    let (read, took) = slow.await.unwrap();
    assert_eq!(read, 512 << 10, "the slow reader got all of it");
    assert!(
        took > SEND_TIMEOUT,
        "the slow reader was not slow: {took:?}"
    );

    let m = scrape(&daemon).await;
    let front = [("listener", "front")];
    let stalls = m.value("tandem_http_h2_window_stalls_total", &front);
    assert_eq!(stalls, (2 * CLIENTS) as f64, "{}", m.text);
    assert_eq!(m.value("tandem_http_send_timeouts_total", &front), stalls);
    let warnings = daemon
        .log()
        .lines()
        .filter(|l| l.contains("opened no flow-control window"))
        .count();
    assert_eq!(warnings, 1, "logged once: {}", daemon.log());
    println!(
        "HTTP/2 streams without a window: {per_stream} KiB of RSS each ({} streams)",
        2 * CLIENTS
    );
    assert!(per_stream < 400, "{per_stream} KiB per stalled stream");

    // And the listener serves on.
    let after = curl_output(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--http2-prior-knowledge",
        &url,
    ])
    .await;
    assert_eq!(after.stdout, "200", "{after:?}");
}

//! The HTTP plane's client-side metrics and access-log byte counts, read the way an
//! operator reads them: a real tandemd in front of a real backend, requests sent with curl,
//! and `/metrics` scraped over HTTP from the status listener (`[node.status]`).
//!
//! Bytes must be exact, also for a chunked response (no Content-Length: the count is what
//! went out, taken at the body's end) and a chunked request body; the request-duration
//! histogram must hold one observation per response, in the right buckets.

use crate::metrics_support::Metrics;
use prometheus_parse::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tandem_tests::admin::Daemon;
use tandem_tests::http_kit::{curl_output, HttpBackend};
use tandem_tests::TempDir;
use tandem_tests::*;
use tandem_tests::{Config, Listener, Pool};

/// GET (or POST with `--data-binary`) through curl; returns (body, bytes curl received).
async fn fetch(url: &str, extra: &[&str]) -> (String, u64) {
    let mut args = vec!["--write-out", "\n%{size_download}", url];
    args.extend_from_slice(extra);
    let out = curl_output(&args).await;
    assert_eq!(out.code, 0, "curl {url}: {}", out.stderr);
    let (body, size) = out.stdout.rsplit_once('\n').expect("the size line");
    (body.to_string(), size.trim().parse().expect("a byte count"))
}

/// `/metrics` from the status listener, over HTTP, as a scraper gets it.
async fn scrape(status: SocketAddr) -> Metrics {
    let out = curl_output(&[&format!("http://{status}/metrics")]).await;
    assert_eq!(out.code, 0, "scraping {status}: {}", out.stderr);
    Metrics::parse(&out.stdout)
}

/// The cumulative count of the bucket `le` of the listener's request-duration histogram.
fn bucket(m: &Metrics, listener: &str, le: f64) -> f64 {
    let found: Vec<_> = m
        .scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "tandem_http_request_duration_seconds"
                && s.labels.get("listener") == Some(listener)
        })
        .collect();
    assert_eq!(found.len(), 1, "one histogram for {listener}:\n{}", m.text);
    match &found[0].value {
        Value::Histogram(buckets) => {
            buckets
                .iter()
                .find(|b| b.less_than == le)
                .unwrap_or_else(|| panic!("no bucket le={le}:\n{}", m.text))
                .count
        }
        other => panic!("not a histogram: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_durations_and_exact_body_bytes_reach_metrics_and_the_access_log() {
    let app = HttpBackend::echo("app").await;
    let (port, status_port) = (free_port(), free_port());
    let toml = Config::test_node()
        .node_tables(&format!(
            "[node.status]\nlisten = \"127.0.0.1:{status_port}\""
        ))
        .listener(Listener::http("web", port).pool("app"))
        .pool(Pool::new("app").backend("a", app.addr))
        .to_toml();
    let daemon = Daemon::start(&toml).await;
    let status: SocketAddr = ([127, 0, 0, 1], status_port).into();
    assert!(wait_listening(status, Duration::from_secs(10)).await);
    let before = scrape(status).await;
    assert_eq!(
        before.value(
            "tandem_http_request_duration_seconds_count",
            &[("listener", "web")]
        ),
        0.0
    );
    for direction in ["in", "out"] {
        assert_eq!(
            before.value(
                "tandem_http_body_bytes_total",
                &[("listener", "web"), ("direction", direction)]
            ),
            0.0
        );
    }

    let base = format!("http://127.0.0.1:{port}");
    // Chunked: the backend streams "one two three" with no Content-Length.
    let out = curl_output(&["--include", &format!("{base}/stream")]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let head = out.stdout.to_ascii_lowercase();
    assert!(
        head.contains("transfer-encoding: chunked") && !head.contains("content-length"),
        "the client gets a chunked response: {}",
        out.stdout
    );
    let (body, streamed) = fetch(&format!("{base}/stream"), &[]).await;
    assert_eq!((body.as_str(), streamed), ("one two three", 13));
    // A known length, several frames.
    let (_, big) = fetch(&format!("{base}/big/200000"), &[]).await;
    assert_eq!(big, 200_000);
    // A chunked request body of 5000 bytes.
    let dir = TempDir::new();
    let upload = dir.write("upload", vec![b'u'; 5000]);
    let (_, echoed) = fetch(
        &format!("{base}/upload"),
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", upload.display()),
        ],
    )
    .await;
    assert_eq!(
        app.seen_at("/upload")[0].body_len,
        5000,
        "the backend got it all"
    );
    // A slow one, for the buckets.
    let (_, slow) = fetch(&format!("{base}/slow/300"), &[]).await;

    let responses = 5.0;
    let sent = 13 + 13 + big + echoed + slow;
    let mut m = scrape(status).await;
    // Counted when each body ends, which may be a moment after curl saw its last byte.
    for _ in 0..100 {
        if m.value(
            "tandem_http_request_duration_seconds_count",
            &[("listener", "web")],
        ) == responses
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = scrape(status).await;
    }
    let web = [("listener", "web")];
    assert_eq!(
        m.value("tandem_http_request_duration_seconds_count", &web),
        responses,
        "one observation per response:\n{}",
        m.text
    );
    assert_eq!(
        m.value(
            "tandem_http_body_bytes_total",
            &[("listener", "web"), ("direction", "out")]
        ),
        sent as f64,
        "exactly the body bytes curl received"
    );
    assert_eq!(
        m.value(
            "tandem_http_body_bytes_total",
            &[("listener", "web"), ("direction", "in")]
        ),
        5000.0
    );
    let sum = m.value("tandem_http_request_duration_seconds_sum", &web);
    assert!(sum >= 0.3, "the slow request alone took 300 ms: sum {sum}");
    assert!(
        bucket(&m, "web", 0.25) <= responses - 1.0,
        "the slow request is above 250 ms:\n{}",
        m.text
    );
    assert!(bucket(&m, "web", 0.1) >= 1.0, "loopback requests are fast");
    assert_eq!(bucket(&m, "web", f64::INFINITY), responses);

    // The access log says the same per request: the chunked response's real size, the
    // chunked request body's.
    assert!(
        daemon.log_contains("path=\"/stream\"").await,
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    let line = |path: &str| {
        log.lines()
            .find(|l| l.contains(&format!("path=\"{path}\"")))
            .unwrap_or_else(|| panic!("no access line for {path}:\n{log}"))
            .to_string()
    };
    let stream_line = line("/stream");
    assert!(stream_line.contains("bytes_out=13"), "{stream_line}");
    let upload_line = line("/upload");
    assert!(
        upload_line.contains("bytes_in=5000")
            && upload_line.contains(&format!("bytes_out={echoed}")),
        "{upload_line}"
    );
}

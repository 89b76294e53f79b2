//! The L7 plane end to end, protection side: retries (connect failures, retried statuses,
//! the retry budget), passive outlier detection, and the listener limits and timeouts
//! (header timeout, head size, header count, body size, keep-alive timeout, connections per
//! client, rate limit). Real hyper backends and real clients (curl, hyper, raw TCP).

use super::{addr, url};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tandem_tests::http_kit::*;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Pool lines for backends given as (id, address).
fn pool_of(name: &str, algorithm: &str, backends: &[(&str, SocketAddr)], extra: &str) -> String {
    let pool = Pool::new(name).algorithm(algorithm).raw(extra);
    let pool = backends
        .iter()
        .fold(pool, |pool, (id, a)| pool.backend(id, a));
    Config::shared().pool(pool).to_toml()
}

fn single_node(port: u16, listener_extra: &str, pool: &str) -> std::sync::Arc<tandemd::Node> {
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("front", port, "p", listener_extra);
    toml += pool;
    start_node(&toml)
}

#[tokio::test]
async fn connect_failures_are_retried_on_another_backend() {
    let (b1, b2) = (
        HttpBackend::start("r1").await,
        HttpBackend::start("r2").await,
    );
    let port = free_port();
    // Outlier detection off, so the dead backend keeps being picked.
    let node = single_node(
        port,
        "",
        &pool_of(
            "p",
            "round_robin",
            &[("dead", dead_address()), ("r1", b1.addr), ("r2", b2.addr)],
            "[pool.http]\noutlier = { consecutive_5xx = 0 }\n",
        ),
    );
    for i in 0..12 {
        let r = http_get(addr(port), &format!("/{i}"), &[]).await;
        assert_eq!(r.status, 200, "GET {i}: {r:?}");
        assert!(matches!(r.backend(), Some("r1" | "r2")));
    }
    assert_eq!(b1.requests() + b2.requests(), 12, "each GET answered once");
    let retries = node
        .http()
        .listener("front")
        .unwrap()
        .stats
        .retries
        .load(Ordering::Relaxed);
    assert!(
        retries >= 4,
        "the dead backend was met and retried: {retries}"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retried_status_is_retried_for_get_but_not_for_post() {
    let sick = HttpBackend::start_with_status("sick", 503).await;
    let well = HttpBackend::start("well").await;
    let port = free_port();
    let node = single_node(
        port,
        "",
        &pool_of(
            "p",
            "round_robin",
            &[("sick", sick.addr), ("well", well.addr)],
            "[pool.http]\nretry = { attempts = 1, on_status = [503] }\noutlier = { consecutive_5xx = 0 }\n",
        ),
    );
    for i in 0..10 {
        let r = http_get(addr(port), &format!("/g{i}"), &[]).await;
        assert_eq!((r.status, r.backend()), (200, Some("well")), "GET {i}");
    }
    assert!(
        sick.count_method("GET") >= 4,
        "round robin met the sick backend"
    );
    assert_eq!(well.count_method("GET"), 10);

    let mut got_503 = 0;
    for i in 0..10 {
        let r = request_from(addr(port), None, "POST", &format!("/p{i}"), &[], b"a=1")
            .await
            .unwrap();
        match r.status {
            200 => assert_eq!(r.backend(), Some("well")),
            503 => {
                // The backend's own answer, passed through.
                assert_eq!(r.backend(), Some("sick"), "{r:?}");
                got_503 += 1;
            }
            s => panic!("POST {i}: unexpected {s}: {r:?}"),
        }
    }
    assert!(
        got_503 >= 4,
        "POSTs that met the sick backend got its 503: {got_503}"
    );
    assert_eq!(sick.count_method("POST"), got_503, "no POST was sent twice");
    assert_eq!(well.count_method("POST"), 10 - got_503);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_retry_budget_limits_retries() {
    let alive = HttpBackend::start("alive").await;
    let (none_port, some_port) = (free_port(), free_port());
    let backends = [("dead", dead_address()), ("alive", alive.addr)];
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("none", none_port, "none", "");
    toml += &http_listener_toml("some", some_port, "some", "");
    toml += &pool_of(
        "none",
        "round_robin",
        &backends,
        "[pool.http]\nretry = { attempts = 2, budget_percent = 0, min_per_second = 0 }\noutlier = { consecutive_5xx = 0 }\n",
    );
    // 1 retry per second over a 10 s window: 10 retries, then none.
    toml += &pool_of(
        "some",
        "round_robin",
        &backends,
        "[pool.http]\nretry = { attempts = 2, budget_percent = 0, min_per_second = 1 }\noutlier = { consecutive_5xx = 0 }\n",
    );
    let node = start_node(&toml);

    let mut failed = 0;
    for i in 0..10 {
        let r = http_get(addr(none_port), &format!("/{i}"), &[]).await;
        match r.status {
            200 => assert_eq!(r.backend(), Some("alive")),
            502 => failed += 1,
            s => panic!("unexpected {s}: {r:?}"),
        }
    }
    let stats = node.http().listener("none").unwrap().stats;
    assert_eq!(stats.retries.load(Ordering::Relaxed), 0, "an empty budget");
    assert!(
        failed >= 4,
        "without retries the dead backend's picks fail: {failed}"
    );

    let mut failed = 0;
    for i in 0..40 {
        let r = http_get(addr(some_port), &format!("/{i}"), &[]).await;
        if r.status != 200 {
            assert_eq!(r.status, 502);
            failed += 1;
        }
    }
    let stats = node.http().listener("some").unwrap().stats;
    assert_eq!(
        stats.retries.load(Ordering::Relaxed),
        10,
        "the budget's floor"
    );
    assert!(
        failed >= 5,
        "once spent, failures are not retried: {failed}"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_backend_answering_5xx_is_ejected_for_base_ejection() {
    let bad = HttpBackend::start_with_status("bad", 500).await;
    let good = HttpBackend::start("good").await;
    let port = free_port();
    let node = single_node(
        port,
        "",
        &pool_of(
            "p",
            "round_robin",
            &[("bad", bad.addr), ("good", good.addr)],
            "[pool.http]\noutlier = { consecutive_5xx = 3, base_ejection = \"1500ms\", max_ejection = \"10s\", max_ejected_share = 0.5 }\n",
        ),
    );
    let front = addr(port);
    // Round robin alternates: bad's third 500 ejects it.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(http_get(front, "/", &[]).await.status);
    }
    assert_eq!(statuses, [500, 200, 500, 200, 500]);
    let ejected_at = Instant::now();
    assert_eq!(bad.requests(), 3);
    // While ejected it receives nothing.
    let mut n = 0;
    while ejected_at.elapsed() < Duration::from_millis(1100) && n < 200 {
        let r = http_get(front, "/", &[]).await;
        assert_eq!((r.status, r.backend()), (200, Some("good")), "request {n}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(n >= 10, "enough requests during the ejection: {n}");
    assert_eq!(bad.requests(), 3, "nothing reached the ejected backend");
    // After base_ejection it is tried again.
    while ejected_at.elapsed() < Duration::from_millis(1600) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut back = false;
    for _ in 0..4 {
        if http_get(front, "/", &[]).await.backend() == Some("bad") {
            back = true;
            break;
        }
    }
    assert!(back, "the backend is back in rotation after base_ejection");
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn max_ejected_share_keeps_the_last_backends() {
    let a = HttpBackend::start_with_status("fa", 500).await;
    let b = HttpBackend::start_with_status("fb", 500).await;
    let port = free_port();
    let node = single_node(
        port,
        "",
        &pool_of(
            "p",
            "round_robin",
            &[("fa", a.addr), ("fb", b.addr)],
            "[pool.http]\noutlier = { consecutive_5xx = 2, base_ejection = \"30s\", max_ejection = \"60s\", max_ejected_share = 0.5 }\n",
        ),
    );
    let mut order = Vec::new();
    for _ in 0..20 {
        let r = http_get(addr(port), "/", &[]).await;
        assert_eq!(
            r.status, 500,
            "the backends' own 500, never 'no backend': {r:?}"
        );
        order.push(r.backend().unwrap().to_string());
    }
    // fa fails twice first (requests 1 and 3) and is ejected; fb can never be (one of two
    // is the share), so it takes everything after.
    assert_eq!(a.requests(), 2, "{order:?}");
    assert_eq!(b.requests(), 18, "{order:?}");
    let tail: BTreeSet<&String> = order[3..].iter().collect();
    assert_eq!(tail.len(), 1, "{order:?}");
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_cuts_slow_clients() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = single_node(
        port,
        "[listener.http]\nheader_timeout = \"1s\"\nkeepalive_timeout = \"20s\"\n",
        &pool_pool("p", &app),
    );
    let front = addr(port);
    let started = Instant::now();
    // A partial head, then silence.
    let partial = async {
        let (_, closed) = raw_exchange(
            front,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n",
            Duration::from_secs(5),
        )
        .await;
        (closed, started.elapsed())
    };
    // A drip: one byte every 200 ms, each well inside any per-read timeout.
    let drip = async {
        let mut tcp = TcpStream::connect(front).await.unwrap();
        let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut closed_at = None;
        for byte in head.iter() {
            if tcp.write_all(&[*byte]).await.is_err() {
                closed_at = Some(started.elapsed());
                break;
            }
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed_at = Some(started.elapsed());
                    break;
                }
                _ => {}
            }
        }
        closed_at
    };
    // Connects and sends nothing at all.
    let silent = async {
        let mut tcp = TcpStream::connect(front).await.unwrap();
        let (_, closed) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
        (closed, started.elapsed())
    };
    let ((p_closed, p_at), drip_at, (s_closed, s_at)) = tokio::join!(partial, drip, silent);
    assert!(p_closed, "a partial head is cut");
    assert!(
        p_at >= Duration::from_millis(900) && p_at < Duration::from_millis(2500),
        "partial head cut after {p_at:?}"
    );
    let drip_at = drip_at.expect("a dripping client is cut");
    assert!(
        drip_at >= Duration::from_millis(900) && drip_at < Duration::from_millis(2500),
        "drip cut after {drip_at:?}"
    );
    assert!(s_closed, "a silent connection is cut");
    assert!(
        s_at >= Duration::from_millis(900) && s_at < Duration::from_millis(2500),
        "silent connection cut after {s_at:?} (header_timeout = 1s, keepalive_timeout = 20s)"
    );
    assert_eq!(app.requests(), 0);
    // A prompt client is still served.
    assert_eq!(http_get(front, "/", &[]).await.status, 200);
    node.shutdown_within(Duration::from_secs(1)).await;
}

fn pool_pool(name: &str, b: &HttpBackend) -> String {
    pool_toml(name, "round_robin", &[b], "")
}

#[tokio::test]
async fn oversized_heads_and_too_many_headers_get_431() {
    let app = HttpBackend::start("app").await;
    let (default_port, small_port) = (free_port(), free_port());
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("dflt", default_port, "p", "");
    toml += &http_listener_toml(
        "small",
        small_port,
        "p",
        "[listener.http]\nmax_header_bytes = 4096\nmax_headers = 20\n",
    );
    toml += &pool_pool("p", &app);
    let node = start_node(&toml);

    // Default limit (16 KiB): a 20 000-byte header is refused, a 10 000-byte one passes.
    let huge = format!("X-Big: {}", "a".repeat(20_000));
    let r = curl(&["-H", &huge, &url(default_port, "/")]).await;
    assert_eq!(r.status, 431, "{:?}", (r.status, &r.headers));
    let big = format!("X-Big: {}", "a".repeat(10_000));
    assert_eq!(
        curl(&["-H", &big, &url(default_port, "/")]).await.status,
        200
    );

    // A 4 KiB limit: 6 000 bytes of header are refused, 2 000 pass.
    let over = format!("X-Big: {}", "a".repeat(6_000));
    let r = curl(&["-H", &over, &url(small_port, "/")]).await;
    assert_eq!(
        r.status,
        431,
        "max_header_bytes = 4096: {:?}",
        (r.status, &r.headers)
    );
    let under = format!("X-Big: {}", "a".repeat(2_000));
    assert_eq!(
        curl(&["-H", &under, &url(small_port, "/")]).await.status,
        200
    );

    // max_headers = 20: 30 headers are refused, 10 pass (curl adds Host, User-Agent, Accept).
    let many: Vec<String> = (0..30).map(|i| format!("X-H{i}: v")).collect();
    let mut args: Vec<&str> = many.iter().flat_map(|h| ["-H", h.as_str()]).collect();
    let target = url(small_port, "/");
    args.push(&target);
    assert_eq!(curl(&args).await.status, 431);
    let mut args: Vec<&str> = many[..10].iter().flat_map(|h| ["-H", h.as_str()]).collect();
    args.push(&target);
    assert_eq!(curl(&args).await.status, 200);
    assert_eq!(
        app.requests(),
        3,
        "only the acceptable requests reached the backend"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn oversized_bodies_get_413_without_reaching_the_backend() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = single_node(
        port,
        "[listener.http]\nmax_body_bytes = 1000\n",
        &pool_pool("p", &app),
    );
    let front = addr(port);
    // With Content-Length, over the limit: 413 from tandem, the backend sees nothing.
    let r = request_from(front, None, "POST", "/up", &[], &[b'x'; 5000])
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.backend(), None);
    // curl too (it sends Expect: 100-continue for this size).
    let body = "y".repeat(3000);
    let r = curl(&["--data-binary", &body, &url(port, "/up")]).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(app.requests(), 0, "no oversized body reached the backend");
    // Within the limit: forwarded whole.
    let r = request_from(front, None, "POST", "/up", &[], &[b'x'; 1000])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(app.seen()[0].body_len, 1000);
    // Chunked (no Content-Length) over the limit: refused with 413 as well.
    let r = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Expect:",
        "--data-binary",
        &body,
        &url(port, "/chunked"),
    ])
    .await;
    assert_eq!(r.status, 413, "chunked body over max_body_bytes: {r:?}");
    assert!(
        app.seen().iter().all(|s| s.body_len <= 1000),
        "the backend never got more than the limit"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_timeout_closes_idle_connections() {
    let app = HttpBackend::start("app").await;
    let (port, long_port) = (free_port(), free_port());
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml(
        "short",
        port,
        "p",
        "[listener.http]\nkeepalive_timeout = \"1s\"\nheader_timeout = \"10s\"\n",
    );
    // An idle keep-alive outlives a shorter header timeout: header_timeout is for heads
    // being received, keepalive_timeout for idleness between requests.
    toml += &http_listener_toml(
        "long",
        long_port,
        "p",
        "[listener.http]\nkeepalive_timeout = \"3s\"\nheader_timeout = \"1s\"\n",
    );
    toml += &pool_pool("p", &app);
    let node = start_node(&toml);

    let idle_close = |port: u16| async move {
        let mut tcp = TcpStream::connect(addr(port)).await.unwrap();
        tcp.write_all(b"GET /ka HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // Read the whole response (it has a Content-Length), then time the close.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(3);
        while parse_http_response(&got).is_none_or(|r| r.body.len() < 3) {
            assert!(Instant::now() < deadline, "no response: {got:?}");
            let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
                .await
                .expect("response in time")
                .unwrap();
            assert!(n > 0, "closed before the response");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
        let served = Instant::now();
        let (rest, closed) = read_to_close(&mut tcp, Duration::from_secs(6)).await;
        assert!(rest.is_empty(), "nothing more was sent: {rest:?}");
        closed.then(|| served.elapsed())
    };
    let (short, long) = tokio::join!(idle_close(port), idle_close(long_port));
    let short = short.expect("the idle connection is closed");
    assert!(
        short >= Duration::from_millis(800) && short < Duration::from_millis(2500),
        "keepalive_timeout = 1s closed it after {short:?}"
    );
    let long = long.expect("the idle connection is closed");
    assert!(
        long >= Duration::from_millis(2700) && long < Duration::from_millis(4500),
        "keepalive_timeout = 3s (header_timeout = 1s) closed it after {long:?}"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn max_connections_per_client_refuses_the_extra_connection() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = single_node(
        port,
        "[listener.http]\nmax_connections_per_client = 2\n",
        &pool_pool("p", &app),
    );
    let front = addr(port);
    let mut c1 = HttpConn::open(front, None).await.unwrap();
    let mut c2 = HttpConn::open(front, None).await.unwrap();
    assert_eq!(c1.send("GET", "/", &[], b"").await.unwrap().status, 200);
    assert_eq!(c2.send("GET", "/", &[], b"").await.unwrap().status, 200);
    // The third from the same address is accepted and closed at once.
    let (got, closed) = raw_exchange(
        front,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        closed && got.is_empty(),
        "refused without an answer: {got:?}"
    );
    let stats = node.http().listener("front").unwrap().stats;
    assert_eq!(stats.over_client_limit.load(Ordering::Relaxed), 1);
    // Another client address is not affected.
    let other = http_get_from(front, IpAddr::from([127, 0, 0, 9]), "/").await;
    assert_eq!(other.status, 200);
    // Both open connections still work; once one closes, a new one is accepted.
    assert_eq!(c1.send("GET", "/", &[], b"").await.unwrap().status, 200);
    drop(c2);
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = request_from(front, None, "GET", "/", &[], b"").await {
            ok = r.status == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a slot freed by a closed connection is reused");
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = single_node(
        port,
        "[listener.http]\nrate_limit = { requests_per_second = 1, burst = 3 }\n",
        &pool_pool("p", &app),
    );
    let front = addr(port);
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..5 {
        let r = http_get(front, "/", &[]).await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.backend(), None);
            retry_after.push(r.header("retry-after").map(str::to_string));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "burst of 3");
    for ra in &retry_after {
        let secs: u64 = ra.as_deref().expect("Retry-After").parse().unwrap();
        assert_eq!(secs, 1, "one token per second");
    }
    // Per client: another address has its own bucket (curl from 127.0.0.4).
    let r = curl(&["--interface", "127.0.0.4", &url(port, "/")]).await;
    assert_eq!(r.status, 200);
    let stats = node.http().listener("front").unwrap().stats;
    assert_eq!(stats.rate_limited.load(Ordering::Relaxed), 2);
    assert_eq!(app.requests(), 4);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2c_connections_follow_the_keepalive_timeout() {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = single_node(
        port,
        "[listener.http]\nkeepalive_timeout = \"3s\"\nheader_timeout = \"1s\"\n",
        &pool_pool("p", &app),
    );
    let tcp = TcpStream::connect(addr(port)).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let request = || {
        hyper::Request::builder()
            .uri(format!("http://127.0.0.1:{port}/h2"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let resp = sender
        .send_request(request())
        .await
        .expect("first h2 request");
    assert_eq!(resp.status(), 200);
    // Idle for twice the header timeout, well within the keep-alive timeout: still open.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resp = sender
        .send_request(request())
        .await
        .expect("the idle h2 connection is still open");
    assert_eq!(resp.status(), 200);
    assert_eq!(app.requests(), 2);
    assert_eq!(app.connections(), 1, "one backend connection, reused");
    node.shutdown_within(Duration::from_secs(1)).await;
}

//! The proxy's own error responses: 503 without a healthy backend, 502 when the backend
//! refuses, 504 after the response timeout, each prompt and carrying the request id; and a
//! pooled backend connection the backend closed is never reused into a 502.

use super::*;

/// Asserts a prompt error response carrying a request id in header and body.
fn assert_error(out: &CurlOutput, status: u16, limit: Duration) -> String {
    assert_eq!(out.code, 0, "curl got a complete response: {out:?}");
    assert!(
        out.stdout.starts_with(&format!("HTTP/1.1 {status}")),
        "{}",
        out.stdout
    );
    assert!(
        out.elapsed < limit,
        "{status} after {:?}, limit {limit:?}",
        out.elapsed
    );
    let id = response_header(&out.stdout, "x-request-id").expect("x-request-id on errors");
    assert!(
        out.stdout.contains(&format!("request id: {id}")),
        "the body names the request id {id}:\n{}",
        out.stdout
    );
    id
}

#[tokio::test]
async fn no_healthy_backend_is_503_with_the_request_id() {
    let dead = local(free_port());
    let port = free_port();
    let node = start_node(&http_config(
        port,
        "",
        "panic_threshold = 0.0\n[pool.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfall = 1\n",
        &[("dead", dead)],
    ));
    assert!(
        eventually(Duration::from_secs(5), || health_of(&node, "dead")
            == Health::Down)
        .await,
        "the dead backend is marked down"
    );
    let url = format!("http://127.0.0.1:{port}/x");
    let out = curl_output(&["--http1.1", "-i", &url]).await;
    assert_error(&out, 503, Duration::from_secs(2));
    assert!(out.stdout.contains("no healthy backend"), "{}", out.stdout);
    // A client-given id is the one reported.
    let out = curl_output(&["--http1.1", "-i", "-H", "X-Request-Id: trace-42", &url]).await;
    assert_eq!(assert_error(&out, 503, Duration::from_secs(2)), "trace-42");
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn refused_backend_connection_is_502() {
    let dead = local(free_port());
    let port = free_port();
    let node = start_node(&http_config(port, "", "", &[("dead", dead)]));
    let url = format!("http://127.0.0.1:{port}/x");
    let out = curl_output(&["--http1.1", "-i", &url]).await;
    assert_error(&out, 502, Duration::from_secs(2));
    // Not retryable (POST with a body) fails the same way.
    let out = curl_output(&["--http1.1", "-i", "-d", "payload", &url]).await;
    assert_error(&out, 502, Duration::from_secs(2));
    let stats = node.http().listener("front").unwrap().stats;
    assert_eq!(stats.responses_5xx.load(Ordering::Relaxed), 2);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn slow_backend_is_504_after_response_timeout() {
    let b = HttpBackend::echo("slow").await;
    let port = free_port();
    let node = start_node(&http_config(
        port,
        "",
        "[pool.http]\nresponse_timeout = \"300ms\"\n",
        &[("slow", b.addr)],
    ));
    let base = format!("http://127.0.0.1:{port}");
    // The 504 comes on time, and the client connection is still usable after it.
    let out = curl_output(&[
        "--http1.1",
        "-i",
        &format!("{base}/slow/3000"),
        "-w",
        "\n%{num_connects}\n",
        &format!("{base}/health"),
    ])
    .await;
    assert_error(&out, 504, Duration::from_secs(3));
    assert!(
        out.stdout.contains("did not answer in time"),
        "{}",
        out.stdout
    );
    assert!(
        out.elapsed >= Duration::from_millis(250),
        "not before the timeout: {:?}",
        out.elapsed
    );
    let second = out
        .stdout
        .split("HTTP/1.1 ")
        .nth(2)
        .expect("a second response");
    assert!(second.starts_with("200"), "{second}");
    assert!(
        second.trim_end().ends_with("ok\n\n0"),
        "the same connection served the next request: {second:?}"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

/// A backend that answers one request per connection with a keep-alive response, then
/// closes: the proxy's idle connection is dead by the next request, which must go out on
/// a new connection and succeed, never surface as a 502.
#[tokio::test]
async fn pooled_backend_connection_closed_by_the_backend_is_not_reused() {
    // Closed 20 ms after each answer, without `Connection: close`: the proxy learns it
    // from the socket.
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    let b1 = HttpBackend::scripted("b1", vec![reply], true).await;
    let port = free_port();
    let node = start_node(&http_config(port, "", "", &[("b1", b1.addr)]));
    for i in 0..5 {
        let out = curl_output(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{response_code}",
            &format!("http://127.0.0.1:{port}/n{i}"),
        ])
        .await;
        assert_eq!(out.stdout, "200", "request {i}: {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b1.connections(), 5, "one backend connection per request");
    node.shutdown_within(Duration::from_secs(1)).await;
}

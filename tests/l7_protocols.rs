//! The L7 plane end to end over plain TCP: HTTP/1.1 keep-alive, h2c, WebSocket upgrades,
//! gRPC-style HTTP/2 with trailers, forwarding and hop-by-hop headers, and the proxy's own
//! error responses. Real clients (curl, hyper) and real backends (hyper, raw TCP) on
//! loopback. TLS is in `l7_protocols/tls.rs`.

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tandem_balance::Health;
use tandem_tests::http_kit::*;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "l7_protocols/errors.rs"]
mod errors;
#[path = "l7_protocols/parking.rs"]
mod parking;
#[path = "l7_protocols/tls.rs"]
mod tls;
#[path = "l7_protocols/workers.rs"]
mod workers;

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// The value of `name:` in curl's `-i`/`-D -` output (response headers), lowercased name.
fn response_header(out: &str, name: &str) -> Option<String> {
    let head = out.split("\r\n\r\n").next().unwrap_or("");
    head_value(head, name)
}

#[tokio::test]
async fn http1_keep_alive_through_curl() {
    let b = HttpBackend::echo("b1").await;
    let port = free_port();
    let node = start_node(&http_config(port, "", "", &[("b1", b.addr)]));
    let base = format!("http://127.0.0.1:{port}");

    // Two URLs in one curl command: the second reuses the first connection.
    let out = curl_output(&[
        "--http1.1",
        "-w",
        "%{num_connects} %{http_version} %{response_code}\n",
        "-o",
        "/dev/null",
        &format!("{base}/one"),
        "-o",
        "/dev/null",
        &format!("{base}/two"),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["1 1.1 200", "0 1.1 200"],
        "one connection, HTTP/1.1 both times: {out:?}"
    );
    // The proxy pooled its backend connection too.
    assert_eq!(b.seen().len(), 2);
    assert_eq!(
        b.connections(),
        1,
        "backend connection kept alive and reused"
    );

    // A body goes through and the backend sees HTTP/1.1; the client gets HTTP/1.1 back.
    let out = curl_output(&[
        "--http1.1",
        "-i",
        "-d",
        "hello world",
        &format!("{base}/post"),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("HTTP/1.1 200"), "{}", out.stdout);
    assert!(out.stdout.contains("POST /post HTTP/1.1"), "{}", out.stdout);
    let post = b.seen_at("/post");
    assert_eq!(post.len(), 1);
    assert_eq!(post[0].body_len, 11);
    assert_eq!(post[0].version, Version::HTTP_11);

    // A large upload with `Expect: 100-continue`: curl waits up to 1 s for the 100.
    let dir = TempDir::new();
    let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let file = dir.write("upload.bin", &upload);
    let data = format!("@{}", file.display());
    let out = curl_output(&[
        "--http1.1",
        "-v",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &data,
        "-o",
        "/dev/null",
        "-w",
        "%{response_code}",
        &format!("{base}/upload"),
    ])
    .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "200"), "{out:?}");
    assert!(
        out.stderr.contains("Expect: 100-continue"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("HTTP/1.1 100"),
        "the proxy answered 100 Continue: {}",
        out.stderr
    );
    assert!(
        out.elapsed < Duration::from_millis(900),
        "{:?}",
        out.elapsed
    );
    assert_eq!(b.seen_at("/upload")[0].body_len, upload.len());

    // The query string and escapes reach the backend untouched.
    let out = curl_output(&["--http1.1", &format!("{base}/q/a%20b?x=1&y=%2F&z")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("GET /q/a%20b?x=1&y=%2F&z HTTP/1.1"),
        "{}",
        out.stdout
    );

    // An HTTP/1.0 client gets HTTP/1.0 back.
    let out = curl_output(&["--http1.0", "-i", &format!("{base}/old")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("HTTP/1.0 200"), "{}", out.stdout);
    assert_eq!(b.seen_at("/old")[0].header_text("via"), "1.0 tandem");

    let stats = node.http().listener("front").unwrap().stats;
    assert_eq!(stats.requests.load(Ordering::Relaxed), 6);
    assert_eq!(stats.responses_2xx.load(Ordering::Relaxed), 6);
    node.shutdown_within(Duration::from_secs(1)).await;
}

/// An h2c client connection to the proxy (hyper, prior knowledge).
async fn h2c_client(port: u16) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(local(port)).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake with the proxy");
    tokio::spawn(conn);
    sender
}

#[tokio::test]
async fn h2c_by_prior_knowledge() {
    let b = HttpBackend::echo("b1").await;
    let port = free_port();
    let node = start_node(&http_config(port, "", "", &[("b1", b.addr)]));
    // curl 7.88.1 cannot reuse a prior-knowledge connection (curl/curl#10634, fixed in
    // 8.0), so curl makes one request per run and hyper shows the multiplexing below.
    let out = curl_output(&[
        "--http2-prior-knowledge",
        "-H",
        "Host: app.example.test",
        "-w",
        "\n%{http_version}",
        &format!("http://127.0.0.1:{port}/h2"),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.trim_end().ends_with("\n2"),
        "HTTP/2 to the client: {out:?}"
    );
    let seen = &b.seen_at("/h2")[0];
    // The default upstream protocol is HTTP/1.1, whatever the client spoke.
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.header_text("via"), "2 tandem");
    assert_eq!(seen.header_text("x-forwarded-host"), "app.example.test");
    assert_eq!(
        seen.header_text("host"),
        "app.example.test",
        "the client's :authority reaches an HTTP/1.1 backend as Host"
    );

    // A body without Content-Length (HTTP/2 DATA frames) reaches the HTTP/1.1 backend.
    let out = curl_output(&[
        "--http2-prior-knowledge",
        "-H",
        "Content-Length:",
        "--data-binary",
        "twelve bytes",
        &format!("http://127.0.0.1:{port}/h2-post"),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(b.seen_at("/h2-post")[0].body_len, 12);
    // The backend's hop-by-hop headers would be illegal in HTTP/2: they are dropped.
    let out = curl_output(&[
        "--http2-prior-knowledge",
        "-i",
        &format!("http://127.0.0.1:{port}/hop"),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("HTTP/2 200"), "{}", out.stdout);
    assert!(
        response_header(&out.stdout, "x-backend-hop").is_none(),
        "{}",
        out.stdout
    );
    assert!(
        response_header(&out.stdout, "keep-alive").is_none(),
        "{}",
        out.stdout
    );

    // Several requests, concurrently, on one client connection.
    let mut sender = h2c_client(port).await;
    let mut pending = Vec::new();
    for i in 0..4 {
        let req = Request::get(format!("http://127.0.0.1:{port}/multi/{i}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        pending.push(sender.send_request(req));
    }
    for (i, resp) in pending.into_iter().enumerate() {
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .expect("answer within 5 s")
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(&format!("GET /multi/{i} HTTP/1.1")), "{text}");
    }
    let stats = node.http().listener("front").unwrap().stats;
    assert_eq!(
        stats.connections.load(Ordering::Relaxed),
        4,
        "curl's three and hyper's"
    );
    assert_eq!(stats.requests.load(Ordering::Relaxed), 7);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled() {
    let ws = WsBackend::start().await;
    let port = free_port();
    let node = start_node(&http_config(port, "", "", &[("ws", ws.addr)]));
    let mut tcp = TcpStream::connect(local(port)).await.unwrap();
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let (head, rest) = read_head(&mut tcp, Duration::from_secs(5))
        .await
        .expect("a response head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455's own example: the backend computed it, the proxy passed it on.
    assert_eq!(
        head_value(&head, "sec-websocket-accept").as_deref(),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
    assert!(head_value(&head, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(rest.is_empty());

    let backend_head = ws.heads.lock().unwrap()[0].clone();
    assert!(head_value(&backend_head, "upgrade").is_some_and(|v| v == "websocket"));
    assert!(
        head_value(&backend_head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade"))
    );
    assert_eq!(
        head_value(&backend_head, "sec-websocket-key").as_deref(),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );

    // After the 101 the proxy pipes bytes: a masked text frame comes back as sent.
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"Hello".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    for round in 0..3 {
        tcp.write_all(&frame).await.unwrap();
        let mut back = vec![0u8; frame.len()];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut back))
            .await
            .unwrap_or_else(|_| panic!("echo {round} within 5 s"))
            .unwrap();
        assert_eq!(back, frame, "round {round}");
    }
    // A larger burst, both ways at once.
    let big: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut rd, mut wr) = tcp.into_split();
    let sent = big.clone();
    let writer = tokio::spawn(async move { wr.write_all(&sent).await.map(|_| wr) });
    let mut back = vec![0u8; big.len()];
    tokio::time::timeout(Duration::from_secs(5), rd.read_exact(&mut back))
        .await
        .expect("64 KiB echoed within 5 s")
        .unwrap();
    assert!(back == big, "bytes echoed unchanged");
    let mut wr = writer.await.unwrap().unwrap();
    // Closing our side closes the backend's, and then ours reads EOF.
    wr.shutdown().await.unwrap();
    let mut tail = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut tail))
        .await
        .expect("the tunnel closes after our half-close")
        .unwrap_or(0);
    assert_eq!(n, 0);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn grpc_style_http2_streams_body_and_trailers() {
    let b = HttpBackend::echo("grpc").await;
    let port = free_port();
    let node = start_node(&http_config(
        port,
        "",
        "[pool.http]\nprotocol = \"http2\"\n",
        &[("grpc", b.addr)],
    ));
    let mut sender = h2c_client(port).await;
    let message = Bytes::from_static(b"\0\0\0\0\x05hello");
    let req = Request::post(format!("http://127.0.0.1:{port}/stream"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(message.clone()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("response headers within 5 s")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let mut body = resp.into_body();
    let (mut data, mut trailers, mut data_frames) = (Vec::new(), None, 0);
    for _ in 0..100 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a frame within 5 s");
        let Some(frame) = frame else { break };
        let frame = frame.expect("body frame");
        if let Some(d) = frame.data_ref() {
            data.extend_from_slice(d);
            data_frames += 1;
        } else if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    assert_eq!(data, b"one two three");
    assert!(
        data_frames >= 2,
        "streamed, not buffered: {data_frames} frame(s)"
    );
    let trailers = trailers.expect("trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "all-good");

    let seen = b.seen_at("/stream");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, Version::HTTP_2, "upstream is HTTP/2");
    assert_eq!(
        seen[0].header_text("te"),
        "trailers",
        "te: trailers survives"
    );
    assert_eq!(seen[0].header_text("content-type"), "application/grpc");
    assert_eq!(seen[0].body_len, message.len());

    // An HTTP/1.1 client in front of the same HTTP/2 pool.
    let out = curl_output(&["--http1.1", &format!("http://127.0.0.1:{port}/plain")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("GET /plain HTTP/2.0"), "{}", out.stdout);
    node.shutdown_within(Duration::from_secs(1)).await;
}

/// One HTTP/1.1 GET with `TE: trailers` by hyper's client: (body, trailers).
async fn h1_get_with_trailers(addr: SocketAddr, path: &str) -> (Vec<u8>, Option<http::HeaderMap>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "trailers.example.test")
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("response within 5 s")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let collected = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("body within 5 s")
        .expect("body");
    let trailers = collected.trailers().cloned();
    (collected.to_bytes().to_vec(), trailers)
}

#[tokio::test]
async fn http1_trailers_reach_an_http1_client_that_asked_for_them() {
    let b = HttpBackend::echo("b1").await;
    let port = free_port();
    let node = start_node(&http_config(port, "", "", &[("b1", b.addr)]));
    // The backend alone sends them (the test is sound)...
    let (body, trailers) = h1_get_with_trailers(b.addr, "/trailers").await;
    assert_eq!(body, b"one two three");
    assert_eq!(
        trailers.expect("trailers from the backend")["x-checksum"],
        "c0ffee"
    );
    // ...and through the proxy they arrive too: `Trailer` is end to end (RFC 9110 6.6.2).
    let (body, trailers) = h1_get_with_trailers(local(port), "/trailers").await;
    assert_eq!(body, b"one two three");
    let trailers = trailers.expect("trailers through the proxy");
    assert_eq!(trailers["x-checksum"], "c0ffee");
    assert_eq!(b.seen_at("/trailers")[1].header_text("te"), "trailers");
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn forwarding_and_hop_by_hop_headers() {
    let b = HttpBackend::echo("b1").await;
    let (with, without) = (free_port(), free_port());
    let forwarded = "[listener.http.forwarded]\nforwarded = true";
    let config = Config::new("l7")
        .listener(Listener::http("with", with).pool("p").tables(forwarded))
        .listener(Listener::http("without", without).pool("p"))
        .pool(Pool::new("p").backend("b1", b.addr))
        .to_toml();
    let node = start_node(&config);
    let out = curl_output(&[
        "--http1.1",
        "-H",
        "Host: shop.example.test",
        "-H",
        "X-Forwarded-For: 192.0.2.1",
        "-H",
        "Via: 1.0 edge",
        "-H",
        "Connection: keep-alive, X-Client-Hop",
        "-H",
        "X-Client-Hop: secret",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "-H",
        "X-Request-Id: req-abc-123",
        &format!("http://127.0.0.1:{with}/echo"),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = &b.seen_at("/echo")[0];
    assert_eq!(seen.header_text("x-forwarded-for"), "192.0.2.1, 127.0.0.1");
    assert_eq!(seen.header_text("x-forwarded-proto"), "http");
    assert_eq!(seen.header_text("x-forwarded-host"), "shop.example.test");
    assert_eq!(seen.header_text("host"), "shop.example.test");
    assert_eq!(seen.header_text("via"), "1.0 edge, 1.1 tandem");
    assert_eq!(
        seen.header_text("forwarded"),
        "for=127.0.0.1;proto=http;host=\"shop.example.test\""
    );
    assert_eq!(
        seen.header_text("x-request-id"),
        "req-abc-123",
        "the client's id is kept"
    );
    for hop in ["x-client-hop", "keep-alive", "proxy-authorization"] {
        assert!(
            seen.header(hop).is_none(),
            "{hop} must not reach the backend: {:?}",
            seen.headers
        );
    }
    assert!(
        !seen
            .header_text("connection")
            .to_ascii_lowercase()
            .contains("x-client-hop"),
        "{:?}",
        seen.headers
    );

    // The other listener leaves Forwarded out (the default) and makes up a request id.
    let out = curl_output(&["--http1.1", &format!("http://127.0.0.1:{without}/plain")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = &b.seen_at("/plain")[0];
    assert!(seen.header("forwarded").is_none(), "{:?}", seen.headers);
    assert_eq!(seen.header_text("x-forwarded-for"), "127.0.0.1");
    assert_eq!(seen.header_text("via"), "1.1 tandem");
    let id = seen.header_text("x-request-id");
    assert!(
        id.len() == 16 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "a generated request id: {id:?}"
    );

    // The backend's hop-by-hop headers stay on its side.
    let out = curl_output(&[
        "--http1.1",
        "-i",
        &format!("http://127.0.0.1:{without}/hop"),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("HTTP/1.1 200"), "{}", out.stdout);
    assert_eq!(
        response_header(&out.stdout, "x-backend-normal").as_deref(),
        Some("yes")
    );
    for hop in ["x-backend-hop", "keep-alive"] {
        assert!(
            response_header(&out.stdout, hop).is_none(),
            "{hop} must not reach the client:\n{}",
            out.stdout
        );
    }
    assert!(
        response_header(&out.stdout, "connection")
            .is_none_or(|v| !v.to_ascii_lowercase().contains("x-backend-hop")),
        "{}",
        out.stdout
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

//! HTTP/1.1 keep-alive connections hold no buffer between requests (tandem's own server
//! frees it while a connection is idle) and are served again by their next bytes:
//! pipelined requests, a head split across the pause, `Connection: close`, a TLS client,
//! and the idle count.

use super::*;
use tandem_http::HttpStats;

/// Reads one response (head and a Content-Length body) from `tcp`; returns the head and
/// the body. `buffered` holds what was read past the previous response.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(
    io: &mut S,
    buffered: &mut Vec<u8>,
) -> (String, Vec<u8>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffered[..end]).to_string();
            let len: usize = head_value(&head, "content-length")
                .map(|v| v.parse().unwrap())
                .unwrap_or(0);
            if buffered.len() >= end + 4 + len {
                let body = buffered[end + 4..end + 4 + len].to_vec();
                buffered.drain(..end + 4 + len);
                return (head, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, io.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .expect("read from the proxy");
        assert!(
            n > 0,
            "the proxy closed before a whole response: {buffered:?}"
        );
        buffered.extend_from_slice(&chunk[..n]);
    }
}

/// Waits (up to 2 s) until the listener counts `want` parked connections.
async fn parked_becomes(stats: &HttpStats, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let now = stats.idle_connections.load(Ordering::Relaxed);
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "parked connections stayed at {now}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: park.example\r\n\r\n")
}

#[tokio::test]
async fn idle_keep_alive_connections_park_and_serve_again() {
    let b = HttpBackend::echo("b1").await;
    let port = free_port();
    let node = start_node(&http_config(port, "", "", &[("b1", b.addr)]));
    let stats = node.http().listener("front").unwrap().stats;
    let mut tcp = TcpStream::connect(local(port)).await.unwrap();
    let mut buf = Vec::new();

    // One request, then the connection is idle: parked.
    tcp.write_all(get("/one").as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut tcp, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    parked_becomes(&stats, 1).await;

    // Its next request is served on the same connection.
    tcp.write_all(get("/two").as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut tcp, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    parked_becomes(&stats, 1).await;

    // Three pipelined requests in one write: three answers, in order.
    let three = [get("/p1"), get("/p2"), get("/p3")].concat();
    tcp.write_all(three.as_bytes()).await.unwrap();
    for path in ["/p1", "/p2", "/p3"] {
        let (head, _) = read_response(&mut tcp, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    }
    let seen: Vec<String> = b.seen().iter().map(|r| r.path.clone()).collect();
    assert_eq!(seen, ["/one", "/two", "/p1", "/p2", "/p3"]);
    parked_becomes(&stats, 1).await;

    // A head split across a pause: the first bytes unpark it, the rest complete it.
    tcp.write_all(b"GET /split HT").await.unwrap();
    parked_becomes(&stats, 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    tcp.write_all(b"TP/1.1\r\nHost: park.example\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut tcp, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(b.seen_at("/split").len(), 1);

    // A request asking to close is answered, then the connection ends (not parked).
    tcp.write_all(b"GET /last HTTP/1.1\r\nHost: park.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut tcp, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(head_value(&head, "connection").as_deref(), Some("close"));
    let mut rest = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut rest))
        .await
        .expect("the proxy closes after Connection: close")
        .unwrap();
    assert_eq!(n, 0, "bytes after the last response: {:?}", &rest[..n]);
    parked_becomes(&stats, 0).await;

    // A parked connection whose client goes away is closed and no longer counted.
    let mut other = TcpStream::connect(local(port)).await.unwrap();
    other.write_all(get("/x").as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut other, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    parked_becomes(&stats, 1).await;
    drop(other);
    parked_becomes(&stats, 0).await;
    assert_eq!(stats.active_connections.load(Ordering::Relaxed), 0);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn many_idle_connections_are_all_parked_and_all_served_again() {
    let b = HttpBackend::echo("b1").await;
    let port = free_port();
    let node = start_node(&http_config(port, "", "", &[("b1", b.addr)]));
    let stats = node.http().listener("front").unwrap().stats;
    let mut conns = Vec::new();
    for i in 0..50 {
        let mut tcp = TcpStream::connect(local(port)).await.unwrap();
        tcp.write_all(get(&format!("/first/{i}")).as_bytes())
            .await
            .unwrap();
        let (head, _) = read_response(&mut tcp, &mut Vec::new()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{i}: {head}");
        conns.push(tcp);
    }
    parked_becomes(&stats, 50).await;
    for (i, tcp) in conns.iter_mut().enumerate() {
        tcp.write_all(get(&format!("/again/{i}")).as_bytes())
            .await
            .unwrap();
        let (head, _) = read_response(tcp, &mut Vec::new()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{i}: {head}");
    }
    parked_becomes(&stats, 50).await;
    assert_eq!(stats.requests.load(Ordering::Relaxed), 100);
    // A graceful stop closes parked connections at once.
    node.shutdown_within(Duration::from_secs(2)).await;
    for (i, tcp) in conns.iter_mut().enumerate() {
        let mut rest = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("connection {i} still open after the stop"))
            .unwrap_or(0);
        assert_eq!(n, 0, "connection {i}");
    }
}

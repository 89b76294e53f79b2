//! Request heads tandem's HTTP/1.1 server refuses before any backend sees them (the
//! request-smuggling shapes and malformed heads: 400, 505 for a version, the connection
//! closed, nothing forwarded, not even the request hidden in the body), and the framing
//! it must get right for honest clients: `Expect: 100-continue`, HTTP/1.0 keep-alive,
//! pipelining, HEAD.

use tandem_tests::http_kit::*;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{addr, send_raw, status_of};

/// A request some proxy or backend could read as two: what follows the head is a second
/// request, `GET /smuggled`.
fn smuggling(fields: &str) -> Vec<u8> {
    format!(
        "POST /front HTTP/1.1\r\nHost: ok.example\r\n{fields}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ok.example\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn smuggling_shapes_and_malformed_heads_are_refused_before_any_backend() {
    let b = HttpBackend::start("sm").await;
    let port = free_port();
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("front", port, "p", "");
    toml += &pool_toml("p", "round_robin", &[&b], "");
    let _node = start_node(&toml);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("CL then TE", smuggling("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400),
        ("TE then CL", smuggling("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), 400),
        ("two different CL", smuggling("Content-Length: 5\r\nContent-Length: 50\r\n"), 400),
        ("a CL list", smuggling("Content-Length: 5, 50\r\n"), 400),
        ("a signed CL", smuggling("Content-Length: +5\r\n"), 400),
        ("xchunked", smuggling("Transfer-Encoding: xchunked\r\n"), 400),
        ("chunked, then another coding", smuggling("Transfer-Encoding: chunked, identity\r\n"), 400),
        ("TE on two lines", smuggling("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), 400),
        ("a space before the colon", smuggling("Transfer-Encoding : chunked\r\n"), 400),
        ("obsolete line folding", smuggling("X-A: 1\r\n chunked\r\nContent-Length: 5\r\n"), 400),
        (
            "TE in HTTP/1.0",
            b"POST /front HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        ("a control byte", b"GET /front HTTP/1.1\r\nHost: ok.example\r\nX-A: a\x01b\r\n\r\n".to_vec(), 400),
        ("HTTP/1.2", b"GET /front HTTP/1.2\r\nHost: ok.example\r\n\r\n".to_vec(), 505),
    ];
    for (what, bytes, want) in cases {
        let got = send_raw(addr(port), &bytes, false).await;
        assert_eq!(
            status_of(&got),
            Some(want),
            "{what}: {}",
            String::from_utf8_lossy(&got)
        );
        let text = String::from_utf8_lossy(&got).to_lowercase();
        assert!(text.contains("connection: close"), "{what}: {text}");
        // One answer, then the connection ended (send_raw read until the close).
        assert_eq!(text.matches("http/1.1 ").count(), 1, "{what}: {text}");
    }
    assert_eq!(
        b.seen().len(),
        0,
        "nothing reached the backend: {:?}",
        b.seen()
    );
    // The listener still serves honest requests.
    let ok = send_raw(
        addr(port),
        b"GET /after HTTP/1.1\r\nHost: ok.example\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(
        status_of(&ok),
        Some(200),
        "{}",
        String::from_utf8_lossy(&ok)
    );
}

fn seen_at(b: &HttpBackend, uri: &str) -> Vec<Seen> {
    b.seen().into_iter().filter(|s| s.uri == uri).collect()
}

/// Reads from `tcp` until `buf` holds `want` (or 5 s pass).
async fn read_until(tcp: &mut TcpStream, buf: &mut Vec<u8>, want: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(buf).contains(want) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {want:?} within 5 s: {}", String::from_utf8_lossy(buf)))
            .expect("reading");
        assert!(
            n > 0,
            "closed before {want:?}: {}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn expect_continue_http10_keep_alive_pipelining_and_head() {
    let b = HttpBackend::start("fr").await;
    let port = free_port();
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("front", port, "p", "");
    toml += &pool_toml("p", "round_robin", &[&b], "");
    let _node = start_node(&toml);

    // Expect: 100-continue: the 100 comes before the body is sent, then the answer.
    let mut tcp = TcpStream::connect(addr(port)).await.unwrap();
    tcp.write_all(b"PUT /up HTTP/1.1\r\nHost: ok.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut tcp, &mut got, "HTTP/1.1 100 Continue\r\n\r\n").await;
    assert!(got.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"), "{got:?}");
    tcp.write_all(b"hello").await.unwrap();
    read_until(&mut tcp, &mut got, "HTTP/1.1 200").await;
    assert_eq!(seen_at(&b, "/up")[0].body_len, 5);

    // HTTP/1.0 with keep-alive: answered in HTTP/1.0, kept open, served again.
    let mut tcp = TcpStream::connect(addr(port)).await.unwrap();
    tcp.write_all(b"GET /ten HTTP/1.0\r\nHost: ok.example\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut tcp, &mut got, "\r\n\r\n").await;
    let head = String::from_utf8_lossy(&got).to_lowercase();
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(head.contains("connection: keep-alive"), "{head}");
    tcp.write_all(b"GET /ten HTTP/1.0\r\nHost: ok.example\r\n\r\n")
        .await
        .unwrap();
    // Without keep-alive this time: answered, then closed.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut rest),
    )
    .await;
    let rest = String::from_utf8_lossy(&rest).to_lowercase();
    assert_eq!(rest.matches("http/1.0 200").count(), 1, "{rest}");
    assert_eq!(seen_at(&b, "/ten").len(), 2);

    // Pipelined: a HEAD, a GET and a POST with a body in one write, answered in order; the
    // HEAD's answer has a length but no body.
    let pipelined = b"HEAD /p1 HTTP/1.1\r\nHost: ok.example\r\n\r\nGET /p2 HTTP/1.1\r\nHost: ok.example\r\n\r\nPOST /p3 HTTP/1.1\r\nHost: ok.example\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let got = send_raw(addr(port), pipelined, false).await;
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    let order: Vec<String> = b.seen().iter().skip(3).map(|s| s.uri.clone()).collect();
    assert_eq!(order, ["/p1", "/p2", "/p3"]);
    assert_eq!(seen_at(&b, "/p3")[0].body_len, 3);
    let end = text.find("\r\n\r\n").expect("a head") + 4;
    let first = &text[..end];
    assert!(first.to_lowercase().contains("content-length"), "{first}");
    assert!(
        text[end..].starts_with("HTTP/1.1 200"),
        "a HEAD answer has no body: {text}"
    );
}

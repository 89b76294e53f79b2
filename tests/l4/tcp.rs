//! TCP forwarding behaviour: retries, half-close, idle timeout, connection limit, PROXY
//! protocol. Real sockets on loopback.

use std::net::SocketAddr;
use std::time::Duration;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn proxy_addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

#[tokio::test]
async fn connect_failure_is_retried_on_another_backend() {
    let alive = NameBackend::start("alive").await;
    let port = free_port();
    let spec = vec![
        ("dead1", dead_address(), 1),
        ("dead2", dead_address(), 1),
        ("alive", alive.addr, 1),
    ];
    // Passive ejection off, so every connection meets the dead backends again.
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &spec,
        "",
        "[pool.passive]\nconsecutive_failures = 0\n",
    ));
    for _ in 0..9 {
        assert_eq!(
            which_backend(proxy_addr(port)).await.as_deref(),
            Some("alive")
        );
    }
    let stats = node.plane().listener("front").unwrap().stats.snapshot();
    assert!(
        stats.connect_failures >= 6,
        "dead backends were tried and counted: {stats:?}"
    );
    assert_eq!(stats.no_backend, 0);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retries_are_bounded_by_connect_attempts() {
    let alive = NameBackend::start("alive").await;
    let port = free_port();
    let spec = vec![
        ("dead1", dead_address(), 1),
        ("dead2", dead_address(), 1),
        ("alive", alive.addr, 1),
    ];
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &spec,
        "connect_attempts = 1",
        "[pool.passive]\nconsecutive_failures = 0\n",
    ));
    let mut refused = 0;
    for _ in 0..9 {
        if which_backend(proxy_addr(port)).await.is_none() {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 6,
        "with one attempt, the 6 picks of dead backends fail"
    );
    assert_eq!(
        node.plane()
            .listener("front")
            .unwrap()
            .stats
            .snapshot()
            .no_backend,
        6
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn passive_ejection_stops_sending_to_a_failing_backend() {
    let alive = NameBackend::start("alive").await;
    let port = free_port();
    let spec = vec![("dead", dead_address(), 1), ("alive", alive.addr, 1)];
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &spec,
        "",
        "[pool.passive]\nconsecutive_failures = 2\neject_for = \"1m\"\n",
    ));
    for _ in 0..20 {
        assert_eq!(
            which_backend(proxy_addr(port)).await.as_deref(),
            Some("alive")
        );
    }
    let failures = node
        .plane()
        .listener("front")
        .unwrap()
        .stats
        .snapshot()
        .connect_failures;
    assert_eq!(
        failures, 2,
        "ejected after 2 failures, never tried again within eject_for"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn half_close_propagates_and_the_other_direction_continues() {
    let backend = NameBackend::start("echo").await;
    let port = free_port();
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("echo", backend.addr, 1)],
        "",
        "",
    ));
    let mut s = TcpStream::connect(proxy_addr(port)).await.unwrap();
    assert_eq!(
        read_line(&mut s, Duration::from_secs(5)).await.as_deref(),
        Some("echo")
    );
    let payload = vec![b'x'; 200_000];
    s.write_all(&payload).await.unwrap();
    // Client half-closes; the backend sees EOF only through the proxy's shutdown, and it
    // keeps answering (the echo) until it has sent everything, then closes.
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut back))
        .await
        .expect("the backend's EOF reaches the client")
        .unwrap();
    assert_eq!(
        back.len(),
        payload.len(),
        "every byte echoed after the half-close"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn server_half_close_reaches_the_client_which_can_still_send() {
    // A backend that sends a banner, half-closes, then reads what the client sends.
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let received = tokio::spawn(async move {
        let (mut s, _) = backend.accept().await.unwrap();
        s.write_all(b"banner").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got
    });
    let port = free_port();
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("b", backend_addr, 1)],
        "",
        "",
    ));
    let mut s = TcpStream::connect(proxy_addr(port)).await.unwrap();
    let mut banner = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut banner))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(banner, b"banner");
    s.write_all(b"after the server's FIN").await.unwrap();
    s.shutdown().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), received)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"after the server's FIN");
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let backend = NameBackend::start("b").await;
    let port = free_port();
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("b", backend.addr, 1)],
        "idle_timeout = \"300ms\"",
        "",
    ));
    let mut s = TcpStream::connect(proxy_addr(port)).await.unwrap();
    assert_eq!(
        read_line(&mut s, Duration::from_secs(5)).await.as_deref(),
        Some("b")
    );
    // Activity keeps it open past the timeout...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.write_all(b"ping\n").await.unwrap();
        assert_eq!(
            read_line(&mut s, Duration::from_secs(5)).await.as_deref(),
            Some("ping")
        );
    }
    // ...silence closes it.
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(n.is_ok(), "the proxy closed the idle connection");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );
    let stats = node.plane().listener("front").unwrap().stats.snapshot();
    assert_eq!(stats.idle_timeouts, 1);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn excess_connections_are_closed_at_once_and_counted() {
    let backend = NameBackend::start("b").await;
    let port = free_port();
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("b", backend.addr, 1)],
        "max_connections = 2",
        "",
    ));
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy_addr(port)).await.unwrap();
        assert_eq!(
            read_line(&mut s, Duration::from_secs(5)).await.as_deref(),
            Some("b")
        );
        held.push(s);
    }
    for _ in 0..3 {
        assert_eq!(
            which_backend(proxy_addr(port)).await,
            None,
            "over the limit: closed at once"
        );
    }
    let stats = node.plane().listener("front").unwrap().stats.snapshot();
    assert_eq!(stats.over_limit, 3);
    assert_eq!(
        backend.accepted(),
        2,
        "refused clients never reach a backend"
    );
    // Free a slot: service resumes.
    drop(held.pop());
    let listener_stats = node.plane().listener("front").unwrap().stats.clone();
    assert!(
        eventually(Duration::from_secs(5), || listener_stats.snapshot().active
            < 2)
        .await
    );
    assert_eq!(which_backend(proxy_addr(port)).await.as_deref(), Some("b"));
    node.shutdown_within(Duration::from_secs(1)).await;
}

/// A backend that reads a PROXY header and reports the bytes it got before `\n`/the v2 length.
async fn proxy_header_backend() -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = vec![0u8; 256];
        let mut n = 0;
        // Header first, then the client's "hello".
        while !got[..n].ends_with(b"hello") {
            let k = s.read(&mut got[n..]).await.unwrap();
            assert!(k > 0, "connection closed before the client data");
            n += k;
        }
        got.truncate(n - 5);
        got
    });
    (addr, task)
}

#[tokio::test]
async fn proxy_protocol_v1_tells_the_backend_the_client_address() {
    let (backend, header) = proxy_header_backend().await;
    let port = free_port();
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("b", backend, 1)],
        "proxy_protocol = \"v1\"",
        "",
    ));
    let mut s = TcpStream::connect(proxy_addr(port)).await.unwrap();
    let client = s.local_addr().unwrap();
    s.write_all(b"hello").await.unwrap();
    let header = tokio::time::timeout(Duration::from_secs(5), header)
        .await
        .unwrap()
        .unwrap();
    let expected = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n",
        client.port()
    );
    assert_eq!(String::from_utf8(header).unwrap(), expected);
    node.shutdown_within(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn proxy_protocol_v2_tells_the_backend_the_client_address() {
    let (backend, header) = proxy_header_backend().await;
    let port = free_port();
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("b", backend, 1)],
        "proxy_protocol = \"v2\"",
        "",
    ));
    let mut s = TcpStream::connect(proxy_addr(port)).await.unwrap();
    let client = s.local_addr().unwrap();
    s.write_all(b"hello").await.unwrap();
    let h = tokio::time::timeout(Duration::from_secs(5), header)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.len(), 28);
    assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
    assert_eq!(&h[16..24], &[127, 0, 0, 1, 127, 0, 0, 1]);
    assert_eq!(u16::from_be_bytes([h[24], h[25]]), client.port());
    assert_eq!(u16::from_be_bytes([h[26], h[27]]), port);
    node.shutdown_within(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_port_in_use_is_a_start_error_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let backend = NameBackend::start("b").await;
    let text = tcp_config(port, "round_robin", &[("b", backend.addr, 1)], "", "");
    let config = tandem_config::parse(&text, "test.toml").unwrap();
    let err = match tandemd::Node::start(config) {
        Ok(_) => panic!("a second bind on a used port must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("\"front\""), "{err}");
    assert!(err.contains("already uses this address"), "{err}");
}

//! Active health checks against real backends: down after `fall`, up after `rise`, and the
//! panic threshold.

use std::net::SocketAddr;
use std::time::Duration;
use tandem_balance::Health;
use tandem_tests::http_kit::HttpBackend;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_killed_backend_goes_down_after_fall_checks_and_returns_after_rise() {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let port = free_port();
    let check = "[pool.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 2\nfall = 3\n[pool.passive]\nconsecutive_failures = 0\n";
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1), ("b", b.addr, 1)],
        "connect_attempts = 1",
        check,
    ));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();

    let b_addr = b.kill();
    let killed_at = tokio::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || health_of(&node, "b")
            == Health::Down)
        .await,
        "b marked down"
    );
    let took = killed_at.elapsed();
    // fall = 3 at 100 ms: not before the third failed check (~200 ms after the first).
    assert!(
        took >= Duration::from_millis(150),
        "marked down too early ({took:?}): fall not honoured"
    );

    for _ in 0..20 {
        assert_eq!(
            which_backend(proxy).await.as_deref(),
            Some("a"),
            "a down backend gets no new connections"
        );
    }

    let b = NameBackend::start_on("b", b_addr).await;
    let back_at = tokio::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || health_of(&node, "b")
            == Health::Up)
        .await,
        "b back up"
    );
    assert!(
        back_at.elapsed() >= Duration::from_millis(80),
        "rise = 2 needs two passing checks"
    );
    let mut saw_b = false;
    for _ in 0..6 {
        saw_b |= which_backend(proxy).await.as_deref() == Some("b");
    }
    assert!(saw_b, "a recovered backend takes traffic again");
    assert!(b.accepted() > 0);
    node.shutdown_within(Duration::from_secs(1)).await;
}

/// What the health-checked backends answer: 200 "healthy" or `status` "sick", then close.
fn health_reply(status: u16) -> Vec<Vec<u8>> {
    let body = if status == 200 { "healthy" } else { "sick" };
    let reply = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    vec![reply.into_bytes()]
}

/// An HTTP backend answering `health_reply(status)`; `set_script` changes it while it runs.
async fn http_backend(status: u16) -> HttpBackend {
    HttpBackend::scripted("health", health_reply(status), true).await
}

#[tokio::test]
async fn http_checks_judge_status_and_body() {
    let a = http_backend(200).await;
    let b = http_backend(200).await;
    let port = free_port();
    let check = "[pool.health_check]\nkind = \"http\"\npath = \"/health\"\nexpect_status = \"200-299\"\nexpect_body = \"healthy\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 2\n";
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1), ("b", b.addr, 1)],
        "",
        check,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health_of(&node, "b"), Health::Up);
    b.set_script(health_reply(503));
    assert!(
        eventually(Duration::from_secs(5), || health_of(&node, "b")
            == Health::Down)
        .await
    );
    assert_eq!(health_of(&node, "a"), Health::Up);
    b.set_script(health_reply(200));
    assert!(
        eventually(Duration::from_secs(5), || health_of(&node, "b")
            == Health::Up)
        .await
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn in_panic_the_pool_balances_over_all_backends() {
    // 3 backends, 2 of them failing their HTTP check but still serving TCP. With a panic
    // threshold of 0.5, 1/3 healthy is below it: traffic goes to all three.
    let a = http_backend(200).await;
    let b = http_backend(500).await;
    let c = http_backend(500).await;
    let port = free_port();
    let check = "panic_threshold = 0.5\n[pool.health_check]\nkind = \"http\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n";
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1), ("b", b.addr, 1), ("c", c.addr, 1)],
        "",
        check,
    ));
    let pool = node.plane().pool("p").unwrap().clone();
    assert!(
        eventually(Duration::from_secs(5), || pool.in_panic()).await,
        "pool enters panic mode"
    );
    let before: Vec<u64> = pool.snapshot().iter().map(|b| b.total_picks).collect();
    for _ in 0..9 {
        let mut s = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    }
    let after: Vec<u64> = pool.snapshot().iter().map(|b| b.total_picks).collect();
    for (i, (x, y)) in before.iter().zip(&after).enumerate() {
        assert!(
            y > x,
            "backend {i} got traffic in panic mode: {before:?} -> {after:?}"
        );
    }
    // Heal the sick ones: the pool leaves panic mode.
    for healed in [&b, &c] {
        healed.set_script(health_reply(200));
    }
    assert!(eventually(Duration::from_secs(5), || !pool.in_panic()).await);
    node.shutdown_within(Duration::from_secs(1)).await;
}

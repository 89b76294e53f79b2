//! Each balancing algorithm, through a real listener to real backends on loopback.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tandem_tests::*;

async fn three_backends() -> Vec<NameBackend> {
    vec![
        NameBackend::start("a").await,
        NameBackend::start("b").await,
        NameBackend::start("c").await,
    ]
}

/// Runs `n` sequential connections through a node with `algorithm` and weights, returns
/// how many each backend served.
async fn distribution(algorithm: &str, weights: [u32; 3], n: usize) -> HashMap<String, usize> {
    let backends = three_backends().await;
    let port = free_port();
    let spec: Vec<(&str, SocketAddr, u32)> = backends
        .iter()
        .zip(weights)
        .map(|(b, w)| (b.name.as_str(), b.addr, w))
        .collect();
    let node = start_node(&tcp_config(port, algorithm, &spec, "", ""));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let name = which_backend(proxy)
            .await
            .expect("every connection reaches a backend");
        *counts.entry(name).or_insert(0) += 1;
    }
    node.shutdown_within(Duration::from_secs(2)).await;
    counts
}

fn count(c: &HashMap<String, usize>, k: &str) -> usize {
    c.get(k).copied().unwrap_or(0)
}

#[tokio::test]
async fn round_robin_is_exactly_even() {
    let c = distribution("round_robin", [1, 1, 1], 60).await;
    assert_eq!(
        (count(&c, "a"), count(&c, "b"), count(&c, "c")),
        (20, 20, 20),
        "{c:?}"
    );
}

#[tokio::test]
async fn weighted_round_robin_follows_weights_exactly() {
    let c = distribution("weighted_round_robin", [3, 2, 1], 60).await;
    assert_eq!(
        (count(&c, "a"), count(&c, "b"), count(&c, "c")),
        (30, 20, 10),
        "{c:?}"
    );
}

#[tokio::test]
async fn least_connections_spreads_sequential_connections_evenly() {
    // Sequential short connections leave every backend at 0 active; ties must rotate.
    let c = distribution("least_connections", [1, 1, 1], 60).await;
    for k in ["a", "b", "c"] {
        assert!((15..=25).contains(&count(&c, k)), "{k}: {c:?}");
    }
}

#[tokio::test]
async fn least_connections_avoids_a_busy_backend() {
    let backends = three_backends().await;
    let port = free_port();
    let spec: Vec<_> = backends
        .iter()
        .map(|b| (b.name.as_str(), b.addr, 1))
        .collect();
    let node = start_node(&tcp_config(port, "least_connections", &spec, "", ""));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    // Hold 4 connections open; least-conn spreads them, then each new one goes to the
    // backend with the fewest open.
    let mut held = Vec::new();
    let mut names = Vec::new();
    for _ in 0..6 {
        let mut s = connect_from(proxy, None).await.unwrap();
        names.push(read_line(&mut s, Duration::from_secs(5)).await.unwrap());
        held.push(s);
    }
    for k in ["a", "b", "c"] {
        assert_eq!(names.iter().filter(|n| *n == k).count(), 2, "{names:?}");
    }
    node.shutdown_within(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn weighted_least_connections_loads_by_weight() {
    let backends = three_backends().await;
    let port = free_port();
    let spec = vec![
        ("a", backends[0].addr, 4),
        ("b", backends[1].addr, 1),
        ("c", backends[2].addr, 1),
    ];
    let node = start_node(&tcp_config(
        port,
        "weighted_least_connections",
        &spec,
        "",
        "",
    ));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut held = Vec::new();
    let mut names = Vec::new();
    for _ in 0..12 {
        let mut s = connect_from(proxy, None).await.unwrap();
        names.push(read_line(&mut s, Duration::from_secs(5)).await.unwrap());
        held.push(s);
    }
    let a = names.iter().filter(|n| *n == "a").count();
    assert_eq!(
        a, 8,
        "weight 4 of 6 should hold 8 of 12 open connections: {names:?}"
    );
    node.shutdown_within(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn least_response_time_prefers_the_fast_backend() {
    // At L4 a backend's response time is how long it takes to send its first byte.
    let backends = [
        NameBackend::start("a").await,
        NameBackend::start("b").await,
        NameBackend::start_slow("slow", Duration::from_millis(60)).await,
    ];
    let port = free_port();
    let spec: Vec<_> = backends
        .iter()
        .map(|b| (b.name.as_str(), b.addr, 1))
        .collect();
    let node = start_node(&tcp_config(port, "least_response_time", &spec, "", ""));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut c: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        let name = which_backend(proxy).await.unwrap();
        *c.entry(name).or_insert(0) += 1;
    }
    assert!(
        count(&c, "slow") <= 2,
        "the slow backend is tried, then avoided: {c:?}"
    );
    assert!(count(&c, "a") >= 10 && count(&c, "b") >= 10, "{c:?}");
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn power_of_two_choices_uses_every_backend() {
    let c = distribution("power_of_two_choices", [1, 1, 1], 90).await;
    for k in ["a", "b", "c"] {
        assert!((15..=45).contains(&count(&c, k)), "{k}: {c:?}");
    }
}

#[tokio::test]
async fn random_spreads_by_weight() {
    let c = distribution("random", [2, 1, 1], 400).await;
    let a = count(&c, "a");
    assert!(
        (150..=250).contains(&a),
        "weight 2 of 4 should get about 200 of 400: {c:?}"
    );
    assert!(count(&c, "b") > 50 && count(&c, "c") > 50, "{c:?}");
}

#[tokio::test]
async fn source_ip_hash_pins_each_client_and_spreads_clients() {
    let backends = three_backends().await;
    let port = free_port();
    let spec: Vec<_> = backends
        .iter()
        .map(|b| (b.name.as_str(), b.addr, 1))
        .collect();
    let node = start_node(&tcp_config(port, "source_ip_hash", &spec, "", ""));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut per_backend: HashMap<String, usize> = HashMap::new();
    for host in 1..=30u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 1, host));
        let first = which_backend_from(proxy, Some(ip)).await.unwrap();
        for _ in 0..3 {
            assert_eq!(
                which_backend_from(proxy, Some(ip)).await.unwrap(),
                first,
                "client {ip} moved"
            );
        }
        *per_backend.entry(first).or_insert(0) += 1;
    }
    assert_eq!(
        per_backend.len(),
        3,
        "30 client IPs should land on all 3 backends: {per_backend:?}"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn draining_backend_gets_nothing_new_but_keeps_its_connections() {
    let backends = three_backends().await;
    let port = free_port();
    let spec: Vec<_> = backends
        .iter()
        .map(|b| (b.name.as_str(), b.addr, 1))
        .collect();
    let node = start_node(&tcp_config(port, "round_robin", &spec, "", ""));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();

    // Open one connection per backend and keep them.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from(proxy, None).await.unwrap();
        let name = read_line(&mut s, Duration::from_secs(5)).await.unwrap();
        held.push((name, s));
    }
    let pool = node.plane().pool("p").unwrap();
    assert!(pool.set_admin("b", tandem_balance::AdminState::Draining));

    let before = backends[1].accepted();
    for _ in 0..30 {
        let name = which_backend(proxy).await.unwrap();
        assert_ne!(name, "b", "a draining backend got a new connection");
    }
    assert_eq!(backends[1].accepted(), before);

    // The existing connection to b still works both ways.
    let (_, stream) = held.iter_mut().find(|(n, _)| n == "b").unwrap();
    use tokio::io::AsyncWriteExt;
    stream.write_all(b"still here\n").await.unwrap();
    assert_eq!(
        read_line(stream, Duration::from_secs(5)).await.as_deref(),
        Some("still here")
    );
    let status = pool.snapshot();
    let b = status.iter().find(|s| s.id == "b").unwrap();
    assert_eq!(
        b.active, 1,
        "the drained backend still carries its one connection"
    );
    drop(held);
    assert!(
        eventually(Duration::from_secs(5), || pool
            .snapshot()
            .iter()
            .all(|s| s.active == 0))
        .await,
        "connections end and the drain empties"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

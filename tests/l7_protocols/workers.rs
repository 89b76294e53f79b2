//! The HTTP plane's worker threads: each accepts on its own SO_REUSEPORT socket and keeps
//! its own backend connections; `workers` in `[listener.http]` sets how many.

use std::net::SocketAddr;
use std::time::Duration;
use tandem_tests::http_kit::*;
use tandem_tests::*;

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

fn node_with(port: u16, listener_extra: &str, app: &HttpBackend) -> std::sync::Arc<tandemd::Node> {
    let toml = Config::test_node()
        .listener(Listener::http("front", port).pool("p").raw(listener_extra))
        .pool(Pool::of("p", &[app]).algorithm("round_robin"))
        .to_toml();
    start_node(&toml)
}

/// Opens `n` client connections, all held, and sends one GET on each in turn; returns
/// them for more requests.
async fn one_request_each(port: u16, n: usize, path: &str) -> Vec<HttpConn> {
    let mut conns = Vec::new();
    for i in 0..n {
        let mut c = HttpConn::open(addr(port), None)
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let r = c
            .send("GET", path, &[], b"")
            .await
            .unwrap_or_else(|e| panic!("request on connection {i}: {e}"));
        assert_eq!(r.status, 200, "connection {i}: {r:?}");
        conns.push(c);
    }
    conns
}

#[tokio::test]
async fn two_workers_both_accept_and_each_keeps_its_own_backend_connection() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = node_with(port, "[listener.http]\nworkers = 2\n", &app);
    // 40 connections from 40 source ports: the kernel hashes them over the two sockets
    // (all on one socket: a chance of 2^-39).
    let mut conns = one_request_each(port, 40, "/first").await;
    let front = node.http().listener("front").expect("listener front");
    assert_eq!(front.workers, 2);
    assert_eq!(front.accepted_per_worker.len(), 2);
    assert_eq!(front.accepted_per_worker.iter().sum::<u64>(), 40);
    assert!(
        front.accepted_per_worker.iter().all(|&n| n > 0),
        "both workers accepted: {:?}",
        front.accepted_per_worker
    );
    // Requests one at a time: each worker reuses its own idle backend connection and never
    // takes the other's, so the backend saw exactly one connection per worker.
    assert_eq!(
        app.connections(),
        2,
        "one backend connection per worker, reused"
    );
    // Kept-alive client connections keep being served by their worker.
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.send("GET", "/second", &[], b"").await.unwrap();
        assert_eq!(r.status, 200, "second request on connection {i}: {r:?}");
    }
    assert_eq!(app.requests(), 80);
    assert_eq!(app.connections(), 2);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn one_worker_binds_without_reuseport_and_the_default_is_one_per_cpu() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = node_with(port, "[listener.http]\nworkers = 1\n", &app);
    one_request_each(port, 3, "/").await;
    let front = node.http().listener("front").expect("listener front");
    assert_eq!(front.workers, 1);
    assert_eq!(front.accepted_per_worker, vec![3]);
    // One worker, one plain socket: another process cannot quietly share the address.
    let second = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    second.set_reuse_address(true).unwrap();
    second.set_reuse_port(true).unwrap();
    let err = second
        .bind(&addr(port).into())
        .expect_err("a second SO_REUSEPORT socket on a one-worker listener's address");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    node.shutdown_within(Duration::from_secs(1)).await;

    let port = free_port();
    let node = node_with(port, "", &app);
    let cpus = std::thread::available_parallelism().unwrap().get();
    let front = node.http().listener("front").expect("listener front");
    assert_eq!(front.workers, cpus, "no workers key: one per CPU");
    let r = http_get(addr(port), "/", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_reload_keeps_a_listeners_workers_and_starts_more_for_a_new_listener() {
    let app = HttpBackend::start("app").await;
    let (port, second_port) = (free_port(), free_port());
    let config = |workers: u32, second: bool| {
        let mut toml = NODE_TOML.to_string();
        toml += &http_listener_toml(
            "front",
            port,
            "p",
            &format!("[listener.http]\nworkers = {workers}\n"),
        );
        if second {
            toml += &http_listener_toml("more", second_port, "p", "[listener.http]\nworkers = 3\n");
        }
        toml += &pool_toml("p", "round_robin", &[&app], "");
        toml
    };
    let node = start_node(&config(2, false));
    let mut held = one_request_each(port, 4, "/before").await;
    let parse = |text: &str| tandem_config::parse(text, "reload.toml").unwrap().cluster;
    node.apply(parse(&config(1, true)), "test").await.unwrap();
    // A kept listener keeps its sockets and workers (the change waits for a restart).
    let front = node.http().listener("front").expect("listener front");
    assert_eq!(front.workers, 2);
    for (i, c) in held.iter_mut().enumerate() {
        let r = c.send("GET", "/after", &[], b"").await.unwrap();
        assert_eq!(r.status, 200, "held connection {i} after the reload: {r:?}");
    }
    // The new listener gets three workers, one more than were running, all serving (60
    // connections: one worker left out has a chance of 3 x (2/3)^60).
    one_request_each(second_port, 60, "/more").await;
    let more = node.http().listener("more").expect("listener more");
    assert_eq!(more.workers, 3);
    assert_eq!(more.accepted_per_worker.iter().sum::<u64>(), 60);
    assert!(
        more.accepted_per_worker.iter().all(|&n| n > 0),
        "every worker of the new listener accepted: {:?}",
        more.accepted_per_worker
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

//! UDP forwarding: round trip, one flow per client, flow expiry, bounded table.

use std::net::SocketAddr;
use std::time::Duration;
use tandem_tests::*;
use tokio::net::UdpSocket;

fn udp_config(port: u16, backends: &[(&str, SocketAddr)], extra: &str) -> String {
    let pool = backends
        .iter()
        .fold(Pool::new("p"), |pool, (id, addr)| pool.backend(id, addr));
    Config::shared()
        .listener(Listener::udp("dns", port).pool("p").raw(extra))
        .pool(pool)
        .to_toml()
}

async fn ask(socket: &UdpSocket, to: SocketAddr, what: &str) -> Option<String> {
    socket.send_to(what.as_bytes(), to).await.ok()?;
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    assert_eq!(from, to, "replies come from the listener's address");
    String::from_utf8(buf[..n].to_vec()).ok()
}

#[tokio::test]
async fn datagrams_round_trip_and_a_flow_sticks_to_its_backend() {
    let (a, _ta) = udp_name_backend("a").await;
    let (b, _tb) = udp_name_backend("b").await;
    let port = free_udp_port();
    let node = start_node(&udp_config(port, &[("a", a), ("b", b)], ""));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let first = ask(&client, proxy, "q1").await.expect("a reply");
    let backend = first.split(':').next().unwrap().to_string();
    assert_eq!(first, format!("{backend}:q1"));
    for i in 0..5 {
        assert_eq!(
            ask(&client, proxy, &format!("q{i}")).await.unwrap(),
            format!("{backend}:q{i}")
        );
    }
    // A second client is a second flow: round robin sends it to the other backend.
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let reply = ask(&other, proxy, "x").await.unwrap();
    assert!(
        !reply.starts_with(&backend),
        "second flow went to the other backend: {reply}"
    );
    let stats = node.plane().listener("dns").unwrap().stats.snapshot();
    assert_eq!(stats.accepted, 2, "two flows");
    assert_eq!(stats.active, 2);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn idle_flows_expire() {
    let (a, _ta) = udp_name_backend("a").await;
    let port = free_udp_port();
    let node = start_node(&udp_config(port, &[("a", a)], "idle_timeout = \"300ms\""));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(ask(&client, proxy, "hi").await.as_deref(), Some("a:hi"));
    let stats = node.plane().listener("dns").unwrap().stats.clone();
    assert_eq!(stats.snapshot().active, 1);
    assert!(
        eventually(Duration::from_secs(3), || stats.snapshot().active == 0).await,
        "the flow is forgotten after the idle timeout"
    );
    assert_eq!(stats.snapshot().idle_timeouts, 1);
    // The same client comes back: a new flow, still served.
    assert_eq!(
        ask(&client, proxy, "again").await.as_deref(),
        Some("a:again")
    );
    assert_eq!(stats.snapshot().accepted, 2);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_flow_table_is_bounded() {
    let (a, _ta) = udp_name_backend("a").await;
    let port = free_udp_port();
    let node = start_node(&udp_config(port, &[("a", a)], "max_connections = 2"));
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(ask(&c, proxy, "in").await.is_some());
        clients.push(c);
    }
    let third = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        ask(&third, proxy, "no room").await,
        None,
        "a new flow beyond the table is dropped"
    );
    let stats = node.plane().listener("dns").unwrap().stats.snapshot();
    assert_eq!(stats.over_limit, 1);
    // Existing flows keep working.
    assert!(ask(&clients[0], proxy, "still").await.is_some());
    node.shutdown_within(Duration::from_secs(1)).await;
}

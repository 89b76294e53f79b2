//! Live reload (`Node::apply`): nothing in flight is dropped, kept listeners keep their
//! sockets, new settings take effect at once, a bad config changes nothing.

use std::net::SocketAddr;
use std::time::Duration;
use tandem_tests::http_kit::{curl_output, CertFiles, CurlOutput, TestCa};
use tandem_tests::TempDir;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

fn cluster(text: &str) -> tandem_config::ClusterConfig {
    tandem_config::parse(text, "reload.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .cluster
}

#[tokio::test]
async fn an_l4_reload_keeps_open_connections_and_moves_new_ones_to_the_new_pool() {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let port = free_port();
    let node = start_node(&tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1)],
        "",
        "",
    ));
    let mut held = TcpStream::connect(local(port)).await.unwrap();
    assert_eq!(
        read_line(&mut held, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("a")
    );

    let report = node
        .apply(
            cluster(&tcp_config(
                port,
                "round_robin",
                &[("b", b.addr, 1)],
                "",
                "",
            )),
            "test",
        )
        .await
        .expect("a valid config applies");
    assert_eq!(
        report.listeners_added,
        Vec::<String>::new(),
        "the listener kept its socket"
    );
    assert_eq!(report.pools_updated, vec!["p".to_string()]);

    for _ in 0..5 {
        assert_eq!(which_backend(local(port)).await.as_deref(), Some("b"));
    }
    held.write_all(b"still a\n").await.unwrap();
    assert_eq!(
        read_line(&mut held, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("still a"),
        "the open connection lives on"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn listeners_are_added_and_removed_while_connections_finish() {
    let a = NameBackend::start("a").await;
    let (old, new) = (free_port(), free_port());
    let node = start_node(&tcp_config(old, "round_robin", &[("a", a.addr, 1)], "", ""));
    let mut held = TcpStream::connect(local(old)).await.unwrap();
    assert_eq!(
        read_line(&mut held, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("a")
    );
    let report = node
        .apply(
            cluster(&tcp_config(new, "round_robin", &[("a", a.addr, 1)], "", "")),
            "test",
        )
        .await
        .unwrap();
    assert_eq!(report.listeners_added, vec!["front".to_string()]);
    assert_eq!(report.listeners_removed, vec!["front".to_string()]);
    assert_eq!(which_backend(local(new)).await.as_deref(), Some("a"));
    assert!(
        eventually(Duration::from_secs(3), || std::net::TcpStream::connect(
            local(old)
        )
        .is_err())
        .await,
        "the removed listener stops accepting"
    );
    held.write_all(b"ok\n").await.unwrap();
    assert_eq!(
        read_line(&mut held, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("ok")
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_refused_config_changes_nothing() {
    let a = NameBackend::start("a").await;
    let port = free_port();
    let good = tcp_config(port, "round_robin", &[("a", a.addr, 1)], "", "");
    let node = start_node(&good);
    // The parser refuses duplicates too; build the broken cluster by hand to reach apply.
    let mut cluster_bad = cluster(&good);
    let twin = cluster_bad.pools[0].backends[0].clone();
    cluster_bad.pools[0].backends.push(twin);
    let err = node
        .apply(cluster_bad, "test")
        .await
        .expect_err("duplicate backend ids are refused");
    assert!(
        err.to_string()
            .contains("pool[0].backend[1].id: duplicate backend id \"a\""),
        "{err}"
    );
    assert_eq!(
        which_backend(local(port)).await.as_deref(),
        Some("a"),
        "the old config still serves"
    );
    assert_eq!(node.config().cluster.pools[0].backends.len(), 1);

    // Valid, but a new listener's port is held by someone else (TCP for an HTTP listener,
    // UDP for a UDP one): refused before the pool moves to b or the old listener goes.
    let b = NameBackend::start("b").await;
    let tcp_taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp_taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (protocol, taken) in [
        ("http", tcp_taken.local_addr().unwrap()),
        ("udp", udp_taken.local_addr().unwrap()),
    ] {
        let moved = Config::test_node()
            .drain_timeout("2s")
            .listener(Listener::tcp("front", free_port()).pool("p"))
            .listener(
                Listener::tcp("taken", taken)
                    .pool("p")
                    .key("protocol", &quoted(protocol)),
            )
            .pool(
                Pool::new("p")
                    .algorithm("round_robin")
                    .weighted("b", b.addr, 1),
            )
            .to_toml();
        let err = node
            .apply(cluster(&moved), "test")
            .await
            .expect_err("a port someone holds is refused");
        assert!(
            err.to_string().contains(&format!("cannot bind {taken}")),
            "{protocol}: {err}"
        );
        assert_eq!(
            which_backend(local(port)).await.as_deref(),
            Some("a"),
            "{protocol}: the old listener and pool still serve"
        );
        assert_eq!(node.config().cluster.listeners.len(), 1);
    }
    node.shutdown_within(Duration::from_secs(1)).await;
}

/// One HTTP/1.1 request on an open keep-alive connection; returns the body.
async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: reload.test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if buf.len() >= head_end + 4 + len {
                return text[head_end + 4..head_end + 4 + len].to_string();
            }
        }
    }
}

#[tokio::test]
async fn new_routes_apply_to_requests_on_an_open_keep_alive_connection() {
    let port = free_port();
    let config = |body: &str| {
        let route = Route::answering().path_prefix("/").respond(200, body);
        Config::shared()
            .listener(Listener::http("web", port).route(route))
            .to_toml()
    };
    let node = start_node(&config("before"));
    let mut conn = TcpStream::connect(local(port)).await.unwrap();
    assert_eq!(get_on(&mut conn, "/x").await, "before");
    node.apply(cluster(&config("after")), "test").await.unwrap();
    assert_eq!(
        get_on(&mut conn, "/x").await,
        "after",
        "same connection, new routes"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

/// Header rules are compiled with the listener: a reload swaps them with the routes.
#[tokio::test]
async fn header_rules_change_with_a_reload() {
    let port = free_port();
    let config = |value: &str| {
        let headers = format!(
            "[listener.headers.response]\nset = {{ \"X-Config\" = \"{value} {{request_id}}\" }}"
        );
        let web = Listener::http("web", port)
            .tables(&headers)
            .route(Route::answering().respond(200, "ok"));
        Config::shared().listener(web).to_toml()
    };
    let node = start_node(&config("one"));
    let url = format!("http://127.0.0.1:{port}/");
    let head = |out: CurlOutput| out.stdout.to_ascii_lowercase();
    let before = head(curl_output(&["-i", "-H", "X-Request-Id: r1", &url]).await);
    assert!(before.contains("x-config: one r1"), "{before}");
    node.apply(cluster(&config("two")), "test").await.unwrap();
    let after = head(curl_output(&["-i", "-H", "X-Request-Id: r2", &url]).await);
    assert!(after.contains("x-config: two r2"), "{after}");
    node.shutdown_within(Duration::from_secs(1)).await;
}

fn tls_config(port: u16, cert: &CertFiles) -> String {
    let tls = format!(
        "[listener.tls]\ncertificates = [{{ cert = {}, key = {} }}]",
        toml_path(&cert.cert),
        toml_path(&cert.key)
    );
    let listener = Listener::http("tls", port)
        .tables(&tls)
        .route(Route::answering().respond(200, "ok"));
    Config::shared().listener(listener).to_toml()
}

#[tokio::test]
async fn certificates_are_reloaded_without_a_restart() {
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "reload");
    let old = ca.leaf(&dir, "site", "old", &["old.example.test"]);
    let port = free_port();
    let node = start_node(&tls_config(port, &old));
    let ask = |name: &'static str| {
        let ca_path = ca.path.display().to_string();
        async move {
            let resolve = format!("{name}:{port}:127.0.0.1");
            let url = format!("https://{name}:{port}/");
            curl_output(&["--resolve", &resolve, "--cacert", &ca_path, &url]).await
        }
    };
    assert_eq!(ask("old.example.test").await.code, 0);
    assert_eq!(
        ask("new.example.test").await.code,
        60,
        "the old certificate does not cover the new name"
    );
    // Same paths, new contents, then a reload of the same config.
    let new = ca.leaf(&dir, "site", "new", &["new.example.test"]);
    assert_eq!(new.cert, old.cert);
    node.apply(cluster(&tls_config(port, &new)), "test")
        .await
        .unwrap();
    let out = ask("new.example.test").await;
    assert_eq!(
        out.code, 0,
        "the new certificate is served after the reload: {out:?}"
    );
    // A broken certificate is refused at reload; the running one stays.
    std::fs::write(&new.key, "not a key").unwrap();
    let err = node
        .apply(cluster(&tls_config(port, &new)), "test")
        .await
        .expect_err("a bad key is refused");
    assert!(err.to_string().contains("holds no private key"), "{err}");
    assert_eq!(ask("new.example.test").await.code, 0);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn health_checks_continue_from_the_pool_state_across_a_reload() {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let port = free_port();
    let check = |interval: &str| {
        format!("[pool.health_check]\nkind = \"tcp\"\ninterval = \"{interval}\"\ntimeout = \"100ms\"\nrise = 2\nfall = 2\n")
    };
    let text = |interval: &str, b_addr: SocketAddr| {
        tcp_config(
            port,
            "round_robin",
            &[("a", a.addr, 1), ("b", b_addr, 1)],
            "",
            &check(interval),
        )
    };
    let node = start_node(&text("100ms", b.addr));
    let pool = node.plane().pool("p").unwrap();
    let health = |id: &str| {
        pool.snapshot()
            .into_iter()
            .find(|s| s.id == id)
            .unwrap()
            .health
    };
    let b_addr = b.kill();
    assert!(
        eventually(Duration::from_secs(5), || health("b")
            == tandem_balance::Health::Down)
        .await
    );
    // A changed check restarts the checks; b must stay down (not be assumed up again).
    let report = node
        .apply(cluster(&text("150ms", b_addr)), "test")
        .await
        .unwrap();
    assert_eq!(report.checks_restarted, vec!["p".to_string()]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        health("b"),
        tandem_balance::Health::Down,
        "restarted checks start from Down"
    );
    let _b = NameBackend::start_on("b", b_addr).await;
    assert!(
        eventually(Duration::from_secs(5), || health("b")
            == tandem_balance::Health::Up)
        .await,
        "and the backend comes back after rise"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

//! IPv6 on the HTTP plane: a `[::]` listener made dual-stack with `ipv6_only = false` sees
//! IPv4 clients as IPv4 (not `::ffff:` addresses) in X-Forwarded-For, Forwarded and the
//! header variables; IPv6 clients get RFC 7239's bracketed, quoted `for=`; the default
//! (`ipv6_only` true) turns IPv4 clients away; check-config explains the two keys. In
//! network namespaces (root): per-client connection and rate limits key IPv6 clients by
//! their /64 (`client_ipv6_prefix`).

use std::net::{Ipv6Addr, SocketAddr};

use tandem_tests::http_kit::*;
use tandem_tests::TempDir;
use tandem_tests::*;

/// An HTTP listener that writes `Forwarded`; `extra` is raw TOML after its keys.
fn listener(name: &str, bind: String, pool: &str, extra: &str) -> Listener {
    Listener::http(name, bind)
        .pool(pool)
        .raw(extra)
        .tables("[listener.http.forwarded]\nforwarded = true")
}

#[tokio::test]
async fn dual_stack_listeners_see_ipv4_clients_as_ipv4() {
    let web = HttpBackend::start("web").await;
    let (dual, v6_only) = (free_port(), free_port());
    let dual_stack =
        "ipv6_only = false\n[listener.headers.request]\nset = { \"X-Client\" = \"{client_ip}\" }";
    let toml = Config::test_node()
        .listener(listener("dual", format!("[::]:{dual}"), "web", dual_stack))
        .listener(listener("v6", format!("[::]:{v6_only}"), "web", ""))
        .pool(Pool::of("web", &[&web]).algorithm("round_robin"))
        .to_toml();
    let _node = start_node(&toml);

    let reply = http_get(SocketAddr::from(([127, 0, 0, 1], dual)), "/", &[]).await;
    assert_eq!(reply.status, 200);
    let seen = web.seen().pop().expect("the backend saw the request");
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-client"), Some("127.0.0.1"));
    let forwarded = seen.header("forwarded").unwrap_or_default().to_string();
    assert!(forwarded.starts_with("for=127.0.0.1;"), "{forwarded}");

    let reply = http_get(SocketAddr::from((Ipv6Addr::LOCALHOST, dual)), "/", &[]).await;
    assert_eq!(reply.status, 200);
    let seen = web.seen().pop().expect("the backend saw the request");
    assert_eq!(seen.header("x-forwarded-for"), Some("::1"));
    assert_eq!(seen.header("x-client"), Some("::1"));
    let forwarded = seen.header("forwarded").unwrap_or_default().to_string();
    assert!(forwarded.starts_with("for=\"[::1]\";"), "{forwarded}");

    // ipv6_only (the default): IPv6 clients only.
    let reply = http_get(SocketAddr::from((Ipv6Addr::LOCALHOST, v6_only)), "/", &[]).await;
    assert_eq!(reply.status, 200);
    let v4 = tokio::net::TcpStream::connect(("127.0.0.1", v6_only)).await;
    assert!(v4.is_err(), "an IPv4 client reached an IPv6-only listener");
}

#[test]
fn check_config_explains_the_ipv6_keys() {
    let dir = TempDir::new();
    let v4 = format!("127.0.0.1:{}", free_port());
    let v6 = format!("[::]:{}", free_port());
    let text = Config::test_node()
        .listener(listener("v4", v4, "p", "ipv6_only = false"))
        .listener(listener("v6", v6, "p", "client_ipv6_prefix = 129"))
        .pool(Pool::new("p").backend("a", "[::1]:9"))
        .to_toml();
    let file = dir.write("ipv6.toml", text);
    let report = check_config_refusal(&file);
    for words in [
        "listener[0].ipv6_only: applies to listeners bound to an IPv6 address",
        "listener[1].client_ipv6_prefix: must be between 1 and 128",
    ] {
        assert!(report.contains(words), "{words:?} missing from:\n{report}");
    }
}

/// One HTTP/1.1 GET on a new connection from `source` (an address of the client's
/// namespace); the status, or None when the connection was closed without an answer.
/// The connection stays open (returned) so that it keeps counting against a limit.
async fn get_from(
    lab: &tandem_tests::netns::Lab,
    source: Ipv6Addr,
    target: SocketAddr,
) -> (Option<u16>, Option<tokio::net::TcpStream>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = lab.socket_in_domain(&lab.client.ns, socket2::Type::STREAM, socket2::Domain::IPV6);
    s.bind(&SocketAddr::from((source, 0)).into())
        .unwrap_or_else(|e| panic!("bind {source} in the client: {e}"));
    s.set_nonblocking(true).unwrap();
    let socket = tokio::net::TcpSocket::from_std_stream(s.into());
    let limit = std::time::Duration::from_secs(3);
    let Ok(Ok(mut stream)) = tokio::time::timeout(limit, socket.connect(target)).await else {
        return (None, None);
    };
    let request = format!("GET / HTTP/1.1\r\nHost: [{}]\r\n\r\n", target.ip());
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (None, None);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return (None, None),
        }
    }
    let status = parse_http_response(&got).map(|r| r.status);
    (status, Some(stream))
}

/// Per-client limits over IPv6, in network namespaces (root): the HTTP plane's connection
/// limit and rate limit key an IPv6 client by its /64 (`client_ipv6_prefix`, default 64),
/// so addresses rotated inside one /64 share one allowance; with 128 each address is its
/// own client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_http_limits_key_clients_by_their_64() {
    use tandem_tests::netns::{run, Lab};
    const BACKEND: u16 = 7201;
    const CONNS_64: u16 = 7210;
    const CONNS_128: u16 = 7211;
    const RATE_64: u16 = 7212;
    let mut lab = Lab::new(2);
    lab.enable_ipv6();
    let (node, backend) = (lab.nodes[0].ip6(), lab.nodes[1].ip6());
    // Three more addresses in the client's /64 (2001:db8:51::/64).
    let sources: Vec<Ipv6Addr> = (0x60..0x63)
        .map(|n| Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, n))
        .collect();
    for ip in &sources {
        let cidr = format!("{ip}/64");
        run(
            "ip",
            &[
                "-n",
                &lab.client.ns,
                "addr",
                "add",
                &cidr,
                "dev",
                "eth0",
                "nodad",
            ],
        );
    }
    let listener = lab.listen_in(&lab.nodes[1].ns, SocketAddr::from((backend, BACKEND)));
    let _backend = HttpBackend::builder("b").serve_on(listener);

    let dir = tandem_tests::vrrp_lab::scratch(&lab);
    let http = |name: &str, port: u16, listener_keys: &str, http_keys: &str| {
        format!("\n[[listener]]\nname = \"{name}\"\nprotocol = \"http\"\nbind = \"[::]:{port}\"\npool = \"web\"\n{listener_keys}\n[listener.http]\n{http_keys}\n")
    };
    let mut config = format!(
        "[node]\nid = \"n1\"\ndrain_timeout = \"1s\"\nadmin_socket = \"{}\"\n",
        dir.join("n1.sock").display()
    );
    config += &http("conns64", CONNS_64, "", "max_connections_per_client = 2");
    config += &http(
        "conns128",
        CONNS_128,
        "client_ipv6_prefix = 128",
        "max_connections_per_client = 2",
    );
    // One request per 100 s after a burst of two: no refill during the test.
    config += &http(
        "rate64",
        RATE_64,
        "",
        "rate_limit = { requests_per_second = 0.01, burst = 2 }",
    );
    config += &format!("\n[[pool]]\nname = \"web\"\n[[pool.backend]]\nid = \"b\"\naddress = \"[{backend}]:{BACKEND}\"\n");
    let path = dir.join("n1.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.join("n1.log");
    let bin = tandem_tests::tandemd_bin();
    let ns = lab.nodes[0].ns.clone();
    lab.spawn(
        &ns,
        bin.to_str().unwrap(),
        &["run", "--config", path.to_str().unwrap()],
        Some(&log),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Wait for the listeners: the client's own address gets answers.
    let first = SocketAddr::from((node, CONNS_128));
    let mut up = false;
    for _ in 0..100 {
        if get_from(&lab, lab.client.ip6(), first).await.0 == Some(200) {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "no answer from [{node}]:{CONNS_128}\n{}", logs());

    // Connection limit by /64: two connections from two addresses are the client's two;
    // the third address of the same /64 is refused (closed without an answer).
    let target = SocketAddr::from((node, CONNS_64));
    let mut held = Vec::new();
    let mut statuses = Vec::new();
    for ip in &sources {
        let (status, stream) = get_from(&lab, *ip, target).await;
        statuses.push(status);
        held.extend(stream);
    }
    assert_eq!(
        statuses,
        [Some(200), Some(200), None],
        "max_connections_per_client = 2 keyed by /64: three addresses of one /64 are one client\n{}",
        logs()
    );
    // The same three addresses against client_ipv6_prefix = 128: three clients.
    let target = SocketAddr::from((node, CONNS_128));
    let mut statuses = Vec::new();
    for ip in &sources {
        let (status, stream) = get_from(&lab, *ip, target).await;
        statuses.push(status);
        held.extend(stream);
    }
    assert_eq!(
        statuses,
        [Some(200); 3],
        "client_ipv6_prefix = 128: each address is its own client\n{}",
        logs()
    );
    drop(held);

    // Rate limit by /64: a burst of two shared by every address of the /64.
    let target = SocketAddr::from((node, RATE_64));
    let mut statuses = Vec::new();
    for ip in &sources {
        statuses.push(get_from(&lab, *ip, target).await.0);
    }
    assert_eq!(
        statuses,
        [Some(200), Some(200), Some(429)],
        "rate_limit burst 2 keyed by /64\n{}",
        logs()
    );
}

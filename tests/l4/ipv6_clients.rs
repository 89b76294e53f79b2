//! IPv6 clients on the L4 plane, in network namespaces (root): a TCP listener on `[::]`
//! forwards to IPv6 backends with a PROXY protocol v2 header carrying the IPv6 client
//! (TCP over IPv6, family byte 0x21), health checks reach IPv6 backends, and source-IP
//! hashing keys IPv6 clients by their /64 (`client_ipv6_prefix`, default 64), so the
//! addresses of one /64 are one client, while with 128 they are not.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tandem_tests::netns::{run, Lab};
use tandem_tests::vrrp_lab::scratch;
use tandem_tests::{Config, Listener, Pool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LISTEN_PORT: u16 = 7100;
/// The same pool behind a listener keying clients by whole addresses.
const LISTEN_128_PORT: u16 = 7105;
/// Backends "a" and "b" (PROXY v2 echoes), on node 2.
const BACKEND_PORTS: [u16; 2] = [7101, 7103];
/// Nothing listens here: the health check must find it down.
const DEAD_PORT: u16 = 7102;
/// The health-checked pool's listener (not connected to).
const HC_PORT: u16 = 7104;

fn v6(a: u16, b: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, a, 0, 0, 0, 0, b)
}

/// Reads a PROXY v2 header and answers "SRC DST NAME\n" (addresses as `[ip]:port`), then
/// holds the connection until the client closes it.
async fn proxy_v2_echo(name: &'static str, listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut head = [0u8; 16];
            if stream.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
            let mut body = vec![0u8; len];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            let signature = b"\r\n\r\n\0\r\nQUIT\n";
            let reply = if &head[..12] != signature || head[12] != 0x21 {
                format!("bad header {:02x?}\n", &head)
            } else if head[13] != 0x21 || len < 36 {
                format!("not TCP over IPv6: family {:#04x}, {len} bytes\n", head[13])
            } else {
                let ip = |at: usize| {
                    let octets: [u8; 16] = body[at..at + 16].try_into().unwrap();
                    Ipv6Addr::from(octets)
                };
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                format!(
                    "{} {} {name}\n",
                    SocketAddr::from((ip(0), port(32))),
                    SocketAddr::from((ip(16), port(34)))
                )
            };
            let _ = stream.write_all(reply.as_bytes()).await;
            let mut rest = [0u8; 64];
            while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
        });
    }
}

/// A connection from `source` (on the client) to the listener; the first line or None
/// (closed at once, or nothing within 2 s). The stream stays open while held.
async fn ask_from(
    lab: &Lab,
    source: Ipv6Addr,
    target: SocketAddr,
) -> (Option<String>, Option<tokio::net::TcpStream>) {
    let s = lab.socket_in_domain(&lab.client.ns, socket2::Type::STREAM, socket2::Domain::IPV6);
    s.bind(&SocketAddr::from((source, 0)).into())
        .unwrap_or_else(|e| panic!("bind {source} in the client: {e}"));
    s.set_nonblocking(true).unwrap();
    let socket = tokio::net::TcpSocket::from_std_stream(s.into());
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(2), socket.connect(target)).await
    else {
        return (None, None);
    };
    let line = tandem_tests::read_line(&mut stream, Duration::from_secs(2)).await;
    (line, Some(stream))
}

fn metric_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn metrics(socket: &std::path::Path) -> String {
    let Ok(stream) = tokio::net::UnixStream::connect(socket).await else {
        return String::new();
    };
    match tandem_tests::admin::exchange(stream, http::Method::GET, "/metrics", &[], None).await {
        Ok((_, _, body)) => String::from_utf8_lossy(&body).into_owned(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_proxy_v2_health_checks_and_hashing_by_prefix() {
    let mut lab = Lab::new(2);
    lab.enable_ipv6();
    let (node, backend) = (lab.nodes[0].ip6(), lab.nodes[1].ip6());
    // Eight more client addresses in the client's /64.
    let same_64: Vec<Ipv6Addr> = (0x60..0x68).map(|n| v6(0x51, n)).collect();
    for ip in &same_64 {
        run(
            "ip",
            &[
                "-n",
                &lab.client.ns,
                "addr",
                "add",
                &format!("{ip}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
    }
    let _echoes: Vec<_> = ["a", "b"]
        .into_iter()
        .zip(BACKEND_PORTS)
        .map(|(name, port)| {
            let listener = lab.listen_in(&lab.nodes[1].ns, SocketAddr::from((backend, port)));
            tokio::spawn(proxy_v2_echo(name, listener))
        })
        .collect();

    let dir = scratch(&lab);
    let admin = dir.join("n1.sock");
    let addr = |port: u16| SocketAddr::from((backend, port));
    let pp = |name: &str, port: u16| {
        Listener::tcp(name, format!("[::]:{port}"))
            .pool("pp")
            .key("proxy_protocol", "\"v2\"")
    };
    let health = "[pool.health_check]\nkind = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 2";
    let config = Config::new("n1")
        .drain_timeout("1s")
        .admin_socket(admin.to_str().unwrap())
        .listener(pp("pp", LISTEN_PORT))
        .listener(pp("pp128", LISTEN_128_PORT).key("client_ipv6_prefix", "128"))
        .listener(Listener::tcp("hc", format!("[::]:{HC_PORT}")).pool("hc"))
        .pool(
            Pool::new("pp")
                .algorithm("source_ip_hash")
                .backend("a", addr(BACKEND_PORTS[0]))
                .backend("b", addr(BACKEND_PORTS[1])),
        )
        .pool(
            Pool::new("hc")
                .raw(health)
                .backend("live", addr(BACKEND_PORTS[0]))
                .backend("dead", addr(DEAD_PORT)),
        )
        .to_toml();
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

    // Health checks over IPv6: the live backend up, the dead one down (half healthy).
    let series = r#"tandem_pool_healthy_ratio{pool="hc"}"#;
    let mut half = false;
    for _ in 0..100 {
        half = metric_of(&metrics(&admin).await, series) == Some(0.5);
        if half {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        half,
        "IPv6 health checks: {series} never reached 0.5\n{}",
        logs()
    );

    // PROXY v2 carries the IPv6 client and the address it connected to.
    let target = SocketAddr::from((node, LISTEN_PORT));
    let client = lab.client.ip6();
    let (line, _held) = ask_from(&lab, client, target).await;
    let line = line.unwrap_or_else(|| panic!("no answer through [::]:{LISTEN_PORT}\n{}", logs()));
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words.len(), 3, "SRC DST NAME: {line}");
    let src: SocketAddr = words[0].parse().expect("source address");
    assert_eq!(src.ip(), IpAddr::V6(client), "PROXY v2 source: {line}");
    assert_eq!(words[1], target.to_string(), "PROXY v2 destination: {line}");

    // Source-IP hashing by /64: every address of the client's /64 is one client.
    let mut by_64 = Vec::new();
    let mut by_128 = Vec::new();
    for ip in &same_64 {
        for (port, out) in [(LISTEN_PORT, &mut by_64), (LISTEN_128_PORT, &mut by_128)] {
            let target = SocketAddr::from((node, port));
            let (line, _) = ask_from(&lab, *ip, target).await;
            let line = line.unwrap_or_else(|| panic!("{ip} -> {target}: no answer\n{}", logs()));
            assert!(
                line.starts_with(&format!("[{ip}]:")),
                "PROXY v2 source of {ip}: {line}"
            );
            out.push(line.rsplit(' ').next().unwrap_or_default().to_string());
        }
    }
    println!("backends by /64: {by_64:?}; by /128: {by_128:?}");
    assert!(
        by_64.iter().all(|b| *b == by_64[0]),
        "one /64, one client: every address should hash to one backend: {by_64:?}"
    );
    assert!(
        by_128.iter().any(|b| *b != by_128[0]),
        "client_ipv6_prefix = 128 keys whole addresses: eight should not all hash alike: {by_128:?}"
    );
}

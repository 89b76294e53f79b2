//! `tandemd demo`: three small backends on loopback and a TCP, an HTTP and a UDP listener
//! in front of them, all in one process, so a newcomer can watch balancing and health
//! checks work on both planes (L4 and L7), with the status page to watch.

use anyhow::Context;
use std::net::SocketAddr;
use tandem_config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Number of built-in backends.
pub const BACKENDS: usize = 3;

/// Starts the demo backends and returns their (TCP, UDP) addresses.
pub async fn start_backends() -> anyhow::Result<Vec<(SocketAddr, SocketAddr)>> {
    let mut addrs = Vec::new();
    for n in 1..=BACKENDS {
        let name = format!("backend-{n}");
        let tcp = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a demo backend")?;
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("binding a demo backend")?;
        addrs.push((tcp.local_addr()?, udp.local_addr()?));
        tokio::spawn(http_backend(tcp, name.clone()));
        tokio::spawn(udp_backend(udp, name));
    }
    Ok(addrs)
}

/// The demo's listener ports on 127.0.0.1.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// The L4 TCP listener.
    pub tcp: u16,
    /// The L7 HTTP listener.
    pub http: u16,
    /// The L4 UDP listener.
    pub udp: u16,
    /// The read-only status page (`[node.status]`).
    pub status: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            tcp: 8080,
            http: 8081,
            udp: 8053,
            status: 8404,
        }
    }
}

/// The demo's admin socket: in the temp directory (anyone may run the demo, without
/// root), named after the TCP port so that two demos never share one.
pub fn admin_socket(tcp_port: u16) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tandem-demo-{tcp_port}.sock"))
}

/// The demo config as TOML, pointing at the given backends.
pub fn config_text(ports: Ports, backends: &[(SocketAddr, SocketAddr)]) -> String {
    let Ports {
        tcp: tcp_port,
        http: http_port,
        udp: udp_port,
        status: status_port,
    } = ports;
    let admin_socket = admin_socket(tcp_port)
        .display()
        .to_string()
        .replace('\\', "\\\\");
    let mut text = format!(
        r#"# tandem's built-in demo: `tandemd demo --print-config` shows this.
[node]
id = "demo"
drain_timeout = "5s"
admin_socket = "{admin_socket}"

[node.status]
listen = "127.0.0.1:{status_port}"

[[listener]]
name = "demo-tcp"
bind = "127.0.0.1:{tcp_port}"
pool = "demo-web"

[[listener]]
name = "demo-http"
protocol = "http"
bind = "127.0.0.1:{http_port}"
pool = "demo-web"

[[listener]]
name = "demo-udp"
protocol = "udp"
bind = "127.0.0.1:{udp_port}"
pool = "demo-echo"

[[pool]]
name = "demo-web"
algorithm = "round_robin"
[pool.health_check]
kind = "http"
path = "/health"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
"#
    );
    for (i, (tcp, _)) in backends.iter().enumerate() {
        text.push_str(&format!(
            "[[pool.backend]]\nid = \"backend-{}\"\naddress = \"{tcp}\"\n",
            i + 1
        ));
    }
    text.push_str("\n[[pool]]\nname = \"demo-echo\"\nalgorithm = \"source_ip_hash\"\n");
    for (i, (_, udp)) in backends.iter().enumerate() {
        text.push_str(&format!(
            "[[pool.backend]]\nid = \"echo-{}\"\naddress = \"{udp}\"\n",
            i + 1
        ));
    }
    text
}

/// Starts the backends and returns the parsed demo config.
pub async fn prepare(ports: Ports) -> anyhow::Result<Config> {
    let backends = start_backends().await?;
    let text = config_text(ports, &backends);
    tandem_config::parse(&text, "<built-in demo config>").map_err(|e| anyhow::anyhow!("{e}"))
}

/// What to type to try the demo.
pub fn banner(config: &Config) -> String {
    let tcp = config
        .cluster
        .listeners
        .iter()
        .find(|l| l.name == "demo-tcp");
    let http = config
        .cluster
        .listeners
        .iter()
        .find(|l| l.name == "demo-http");
    let udp = config
        .cluster
        .listeners
        .iter()
        .find(|l| l.name == "demo-udp");
    let mut s =
        String::from("tandem demo is running: 3 backends on loopback behind three listeners.\n\n");
    if let Some(l) = tcp {
        s.push_str(&format!(
            "  L4 TCP, round robin:         curl -s http://{}/   (repeat it: the backend changes)\n",
            l.bind
        ));
    }
    if let Some(l) = http {
        s.push_str(&format!(
            "  L7 HTTP proxy, round robin:  curl -si http://{}/  (X-Forwarded-For, access log)\n",
            l.bind
        ));
    }
    if let Some(l) = udp {
        s.push_str(&format!(
            "  UDP echo, source-IP hash:    echo hello | nc -u -w1 {} {}\n",
            l.bind.ip(),
            l.bind.port()
        ));
    }
    if let Some(status) = &config.node.status {
        s.push_str(&format!(
            "  Status page (a browser):     http://{}/   (JSON: /status, metrics: /metrics)\n",
            status.listen
        ));
    }
    if !config.node.admin_socket.as_os_str().is_empty() {
        s.push_str(&format!(
            "  Watch and steer it:          tandemctl --socket {} status   (or: top, backends)\n",
            config.node.admin_socket.display()
        ));
    }
    s.push_str("\nThe config behind it: tandemd demo --print-config. Stop with Ctrl-C.\n");
    s
}

/// Answers every HTTP/1 request with a short text naming the backend.
async fn http_backend(listener: TcpListener, name: String) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut used = 0;
            // Read up to the end of the request head (bounded), then answer and close.
            while used < buf.len() {
                match stream.read(&mut buf[used..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => used += n,
                }
                if buf[..used].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let body = format!("hello from {name}\n");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Echoes each datagram back, prefixed with the backend's name.
async fn udp_backend(socket: UdpSocket, name: String) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let mut reply = format!("{name}: ").into_bytes();
        reply.extend_from_slice(&buf[..n]);
        let _ = socket.send_to(&reply, from).await;
    }
}

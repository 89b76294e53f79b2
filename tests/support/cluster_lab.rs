//! A fenced cluster in a [`Lab`]: n1 and n2 forward traffic and speak VRRP, n3 is the
//! witness, n4 and n5 are HTTP backends (web1, web2), plus the client. The VIP carries a
//! "who am I" TCP listener (:7000, answers the node's name) and an HTTP listener (:8080,
//! round robin over web1/web2 with source-IP stickiness). The whole lab runs in one
//! address family ([`Family`]): the drills run over IPv4 and over IPv6.
//!
//! What the drills watch ([`Observer`], [`Probe`]) is in `cluster_lab/observe.rs`.

mod family;
mod observe;

pub use family::{Family, VIP2, VIP2_6};
pub use observe::{Observation, Observer, Probe};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::{run, Lab};
use crate::vrrp_lab::{scratch, start_who_backend, PORT, VRID};
use crate::NameBackend;

pub const WEB_PORT: u16 = 8080;
pub const BACKEND_PORT: u16 = 8000;
pub const RAFT_PORT: u16 = 7300;
/// Forwarding nodes (lab indices) and the witness.
pub const FORWARDERS: [usize; 2] = [0, 1];
pub const WITNESS: usize = 2;
/// The second VIP group, "back" ([`Family::vip2`]): preferred by n2 (active-active with
/// "front" on n1).
pub const VRID2: u8 = 52;

pub struct ClusterLab {
    pub lab: Lab,
    pub family: Family,
    pub dir: PathBuf,
    /// Child index of each node's tandemd (None while stopped).
    pub daemons: Vec<Option<usize>>,
    _who: Vec<NameBackend>,
    _web: Vec<tokio::task::JoinHandle<()>>,
}

fn priority(i: usize) -> u8 {
    [150, 100][i]
}

/// Priorities for "back": the other way round.
fn priority_back(i: usize) -> u8 {
    [100, 150][i]
}

pub fn config(lab: &Lab, family: Family, dir: &std::path::Path, i: usize) -> String {
    let k = i + 1;
    let listen = family.host_addr(&lab.nodes[i], RAFT_PORT);
    let hosts: Vec<String> = (0..3)
        .map(|j| format!("n{} = \"{}\"", j + 1, family.host_ip(&lab.nodes[j])))
        .collect();
    // Top-level keys (`version`) must come before any table header.
    let cluster = if i == WITNESS {
        String::new()
    } else {
        cluster_part(lab, family, 1, "")
    };
    let mut text = format!(
        r#"{cluster}
[node]
id = "n{k}"
drain_timeout = "1s"
admin_socket = "{dir}/n{k}.sock"
data_dir = "{dir}/n{k}-data"

[node.cluster]
raft_id = {k}
listen = "{listen}"
bootstrap = {bootstrap}
cert_dir = "{dir}/pki"
hosts = {{ {hosts} }}
heartbeat = "100ms"
election_timeout = "300ms"
"#,
        dir = dir.display(),
        bootstrap = i == 0,
        hosts = hosts.join(", "),
    );
    if i == WITNESS {
        text.push_str("role = \"witness\"\n");
        return text;
    }
    text.push_str(&format!(
        r#"
[node.vrrp]
interface = "eth0"
fencing = "raft"
garp_refresh = "2s"

[[node.vrrp.instance]]
group = "front"
priority = {prio}

[[node.vrrp.instance]]
group = "back"
priority = {back}
"#,
        prio = priority(i),
        back = priority_back(i)
    ));
    text
}

/// The cluster-wide part: `version` and optional extra pool lines for web. Over IPv6 the
/// web listener keys clients by their full address (`client_ipv6_prefix = 128`): the
/// drills' clients share one /64. A dual-stack lab's listeners take IPv4 clients too.
pub fn cluster_part(lab: &Lab, family: Family, version: u64, extra_web_backend: &str) -> String {
    let (front, vip2, len, any) = (
        family.front_addresses(),
        family.vip2(),
        family.prefix_len(),
        family.any(),
    );
    let (client_prefix, dual) = match family {
        Family::V4 => ("", ""),
        Family::V6 => ("client_ipv6_prefix = 128\n", ""),
        Family::DualStack => ("client_ipv6_prefix = 128\n", "ipv6_only = false\n"),
    };
    format!(
        r#"
version = {version}

[[vip_group]]
name = "front"
vrid = {VRID}
addresses = [{front}]
advert_interval = "200ms"
preempt = true

[[vip_group]]
name = "back"
vrid = {VRID2}
addresses = ["{vip2}/{len}"]
advert_interval = "200ms"
preempt = true

[[listener]]
name = "who"
bind = "{any}:{PORT}"
pool = "local"
{dual}
[[listener]]
name = "web"
protocol = "http"
bind = "{any}:{WEB_PORT}"
pool = "web"
{client_prefix}{dual}
[[pool]]
name = "local"
[[pool.backend]]
id = "self"
address = "127.0.0.1:{backend}"

[[pool]]
name = "web"
algorithm = "round_robin"
[pool.http]
sticky = {{ kind = "source_ip", ttl = "10m", max_entries = 1000 }}
[[pool.backend]]
id = "web1"
address = "{web1}"
[[pool.backend]]
id = "web2"
address = "{web2}"
{extra_web_backend}
"#,
        backend = PORT + 1,
        web1 = family.host_addr(&lab.nodes[3], BACKEND_PORT),
        web2 = family.host_addr(&lab.nodes[4], BACKEND_PORT),
    )
}

/// Runs a program to completion and returns (success, stdout+stderr).
pub fn run_quiet(program: &str, args: &[&str]) -> (bool, String) {
    match Command::new(program).args(args).output() {
        Ok(out) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run {program}: {e}")),
    }
}

pub fn tandemctl_bin() -> String {
    crate::tandemd_bin()
        .with_file_name("tandemctl")
        .to_string_lossy()
        .into_owned()
}

impl ClusterLab {
    /// [`ClusterLab::start_in`] over IPv4.
    pub async fn start() -> ClusterLab {
        Self::start_in(Family::V4).await
    }

    /// Builds the lab in `family`, starts the backends and all three daemons, and joins
    /// n2 and n3 to n1.
    pub async fn start_in(family: Family) -> ClusterLab {
        let lab = Lab::new(5);
        family.prepare(&lab);
        let dir = scratch(&lab);
        let pki = dir.join("pki");
        let (ok, out) = run_quiet(
            &tandemctl_bin(),
            &[
                "cluster",
                "init",
                "--dir",
                pki.to_str().unwrap(),
                "n1",
                "n2",
                "n3",
            ],
        );
        assert!(ok, "tandemctl cluster init: {out}");
        let who = FORWARDERS
            .iter()
            .map(|i| start_who_backend(&lab, *i))
            .collect();
        let web = (3..5)
            .map(|i| {
                let listener = lab.listen_in(
                    &lab.nodes[i].ns,
                    family.host_addr(&lab.nodes[i], BACKEND_PORT),
                );
                tokio::spawn(http_name_server(format!("web{}", i - 2), listener))
            })
            .collect();
        let mut cl = ClusterLab {
            lab,
            family,
            dir,
            daemons: vec![None; 3],
            _who: who,
            _web: web,
        };
        for i in 0..3 {
            std::fs::write(cl.config_path(i), config(&cl.lab, family, &cl.dir, i)).unwrap();
        }
        cl.start_node(0);
        cl.wait_admin(0).await;
        for i in [1, WITNESS] {
            cl.start_node(i);
            cl.wait_admin(i).await;
            let seed = format!("n1:{RAFT_PORT}");
            let out = cl.ctl_ok(i, &["cluster", "join", &seed]);
            assert!(out.contains("joined"), "join n{}: {out}", i + 1);
        }
        assert!(
            cl.wait_voters(3, Duration::from_secs(10)).await,
            "the cluster did not reach 3 voters: {}",
            cl.ctl(0, &["cluster", "status"]).1
        );
        cl
    }

    /// Adds `ip` (from [`Family::client_address`]) to the client's eth0, usable at once.
    pub fn add_client_address(&self, ip: IpAddr) {
        let len = self.family.prefix_len();
        let mut args = vec!["-n", &self.lab.client.ns, "addr", "add"];
        let with_len = format!("{ip}/{len}");
        args.extend([with_len.as_str(), "dev", "eth0"]);
        if ip.is_ipv6() {
            args.push("nodad");
        }
        run("ip", &args);
    }

    /// The client's own address in the lab's family.
    pub fn client_ip(&self) -> IpAddr {
        self.family.host_ip(&self.lab.client)
    }

    pub fn config_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{}.toml", i + 1))
    }

    pub fn socket(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{}.sock", i + 1))
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{}.log", i + 1))).unwrap_or_default()
    }

    /// Every node's log tail, for failure messages.
    pub fn logs(&self) -> String {
        (0..3)
            .map(|i| {
                let log = self.log(i);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- n{} ---\n{}\n", i + 1, tail.join("\n"))
            })
            .collect()
    }

    pub fn start_node(&mut self, i: usize) {
        let config = self.config_path(i);
        let log = self.dir.join(format!("n{}.log", i + 1));
        // Keep the earlier log: append a marker and write to a fresh numbered file.
        if log.exists() {
            let n = (1..)
                .find(|n| !self.dir.join(format!("n{}.log.{n}", i + 1)).exists())
                .unwrap();
            let _ = std::fs::rename(&log, self.dir.join(format!("n{}.log.{n}", i + 1)));
        }
        let ns = self.lab.nodes[i].ns.clone();
        let bin = crate::tandemd_bin();
        std::env::set_var("RUST_LOG", "info,tandem_cluster=info,openraft=warn");
        let command = if i == WITNESS { "witness" } else { "run" };
        let child = self.lab.spawn(
            &ns,
            bin.to_str().unwrap(),
            &[command, "--config", config.to_str().unwrap()],
            Some(&log),
        );
        self.daemons[i] = Some(child);
    }

    pub fn signal(&mut self, i: usize, sig: nix::sys::signal::Signal) {
        let child = self.daemons[i].expect("node running");
        self.lab.child(child).signal(sig);
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self, i: usize) {
        let child = self.daemons[i].take().expect("node running");
        let c = self.lab.child(child);
        c.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = c.wait_for_exit(Duration::from_secs(5)).await;
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn stop(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let child = self.daemons[i].take().expect("node running");
        let c = self.lab.child(child);
        c.signal(nix::sys::signal::Signal::SIGTERM);
        c.wait_for_exit(Duration::from_secs(10)).await
    }

    pub fn ctl(&self, i: usize, args: &[&str]) -> (bool, String) {
        let socket = self.socket(i);
        let mut all = vec!["--socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        run_quiet(&tandemctl_bin(), &all)
    }

    pub fn ctl_ok(&self, i: usize, args: &[&str]) -> String {
        let (ok, out) = self.ctl(i, args);
        assert!(
            ok,
            "tandemctl {args:?} on n{}: {out}\n{}",
            i + 1,
            self.logs()
        );
        out
    }

    pub fn status_json(&self, i: usize) -> Option<serde_json::Value> {
        let (ok, out) = self.ctl(i, &["--json", "cluster", "status"]);
        ok.then(|| serde_json::from_str(&out).ok()).flatten()
    }

    pub async fn wait_admin(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.status_json(i).is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "n{} never answered on its admin socket:\n{}",
            i + 1,
            self.logs()
        );
    }

    /// Until node 0 (or any live node) reports `n` voters.
    pub async fn wait_voters(&self, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            for i in 0..3 {
                if let Some(s) = self.status_json(i) {
                    let voters = s["raft"]["members"]
                        .as_array()
                        .map_or(0, |m| m.iter().filter(|m| m["voter"] == true).count());
                    if voters == n && !s["raft"]["leader"].is_null() {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// GET /metrics on node `i`'s admin socket: the OpenMetrics text.
    pub async fn metrics(&self, i: usize) -> String {
        let stream = tokio::net::UnixStream::connect(self.socket(i))
            .await
            .unwrap_or_else(|e| panic!("n{} admin socket: {e}\n{}", i + 1, self.logs()));
        let (status, _, body) =
            crate::admin::exchange(stream, http::Method::GET, "/metrics", &[], None)
                .await
                .unwrap_or_else(|e| panic!("n{} GET /metrics: {e}", i + 1));
        assert!(status.is_success(), "n{} GET /metrics: {status}", i + 1);
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Applied replicated config version on node `i`.
    pub fn config_version(&self, i: usize) -> Option<u64> {
        self.status_json(i)?["config"]["applied_version"].as_u64()
    }
}

/// The value of one series of an exposition, written as it appears there
/// (`name{label="value",...}`, labels in the order tandemd writes them).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Answers every HTTP/1.1 request with its name as the body, then closes.
pub async fn http_name_server(name: String, listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                name.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        });
    }
}

/// One HTTP GET through the "front" VIP from `source` (an address on the client's eth0);
/// the body.
pub async fn http_get_from(cl: &ClusterLab, source: IpAddr, limit: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = SocketAddr::from((cl.family.vip(), WEB_PORT));
    let s = cl.lab.socket_in_domain(
        &cl.lab.client.ns,
        socket2::Type::STREAM,
        socket2::Domain::for_address(target),
    );
    s.set_reuse_address(true).ok()?;
    s.bind(&SocketAddr::from((source, 0)).into()).ok()?;
    s.set_nonblocking(true).ok()?;
    let socket = tokio::net::TcpSocket::from_std_stream(s.into());
    let attempt = async {
        let mut stream = socket.connect(target).await.ok()?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: vip\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(limit, attempt).await.ok().flatten()
}

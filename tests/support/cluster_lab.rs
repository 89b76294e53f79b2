//! A fenced cluster in a [`Lab`]: n1 and n2 forward traffic and speak VRRP, n3 is the
//! witness, n4 and n5 are HTTP backends (web1, web2), plus the client. The VIP carries a
//! "who am I" TCP listener (:7000, answers the node's name) and an HTTP listener (:8080,
//! round robin over web1/web2 with source-IP stickiness).
//!
//! [`Observer`] samples every node's addresses and kernel fence every 10 ms from one thread
//! (setns into each namespace, read /proc/thread-self/net and dump the fence's `held` set
//! over nfnetlink) and counts every sample with two holders.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::Lab;
use crate::vrrp_lab::{scratch, start_who_backend, PORT, VIP, VRID};
use crate::NameBackend;

pub const WEB_PORT: u16 = 8080;
pub const BACKEND_PORT: u16 = 8000;
pub const RAFT_PORT: u16 = 7300;
/// Forwarding nodes (lab indices) and the witness.
pub const FORWARDERS: [usize; 2] = [0, 1];
pub const WITNESS: usize = 2;
/// The second VIP group, "back": preferred by n2 (active-active with "front" on n1).
pub const VIP2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);
pub const VRID2: u8 = 52;

pub struct ClusterLab {
    pub lab: Lab,
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

pub fn config(lab: &Lab, dir: &std::path::Path, i: usize) -> String {
    let k = i + 1;
    let ip = lab.nodes[i].ip;
    let hosts: Vec<String> = (0..3)
        .map(|j| format!("n{} = \"{}\"", j + 1, lab.nodes[j].ip))
        .collect();
    // Top-level keys (`version`) must come before any table header.
    let cluster = if i == WITNESS {
        String::new()
    } else {
        cluster_part(lab, 1, "")
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
listen = "{ip}:{RAFT_PORT}"
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

/// The cluster-wide part: `version` and optional extra pool lines for web.
pub fn cluster_part(lab: &Lab, version: u64, extra_web_backend: &str) -> String {
    format!(
        r#"
version = {version}

[[vip_group]]
name = "front"
vrid = {VRID}
addresses = ["{VIP}/24"]
advert_interval = "200ms"
preempt = true

[[vip_group]]
name = "back"
vrid = {VRID2}
addresses = ["{VIP2}/24"]
advert_interval = "200ms"
preempt = true

[[listener]]
name = "who"
bind = "0.0.0.0:{PORT}"
pool = "local"

[[listener]]
name = "web"
protocol = "http"
bind = "0.0.0.0:{WEB_PORT}"
pool = "web"

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
address = "{web1}:{BACKEND_PORT}"
[[pool.backend]]
id = "web2"
address = "{web2}:{BACKEND_PORT}"
{extra_web_backend}
"#,
        backend = PORT + 1,
        web1 = lab.nodes[3].ip,
        web2 = lab.nodes[4].ip,
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
    /// Builds the lab, starts the backends and all three daemons, joins n2 and n3 to n1,
    /// and waits until n1 holds the VIP.
    pub async fn start() -> ClusterLab {
        let lab = Lab::new(5);
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
                    SocketAddr::from((lab.nodes[i].ip, BACKEND_PORT)),
                );
                tokio::spawn(http_name_server(format!("web{}", i - 2), listener))
            })
            .collect();
        let mut cl = ClusterLab {
            lab,
            dir,
            daemons: vec![None; 3],
            _who: who,
            _web: web,
        };
        for i in 0..3 {
            std::fs::write(cl.config_path(i), config(&cl.lab, &cl.dir, i)).unwrap();
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
async fn http_name_server(name: String, listener: tokio::net::TcpListener) {
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

/// One HTTP GET through the VIP from `source` (an address on the client's eth0); the body.
pub async fn http_get_from(lab: &Lab, source: Ipv4Addr, limit: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = lab.socket_in(&lab.client.ns, socket2::Type::STREAM);
    s.set_reuse_address(true).ok()?;
    s.bind(&SocketAddr::from((source, 0)).into()).ok()?;
    s.set_nonblocking(true).ok()?;
    let socket = tokio::net::TcpSocket::from_std_stream(s.into());
    let attempt = async {
        let mut stream = socket
            .connect(SocketAddr::from((VIP, WEB_PORT)))
            .await
            .ok()?;
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

/// What the observer saw.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    pub samples: u64,
    /// Samples with two or more holders: must stay 0.
    pub overlaps: u64,
    /// (time since start, holders) at each change.
    pub changes: Vec<(Duration, Vec<usize>)>,
    pub longest_round: Duration,
}

/// Samples every 10 ms, from one thread, until stopped.
pub struct Observer {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Observation>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The VIP is held: the address is local and the kernel fence (if any) lets it through.
fn holds_vip(vip: Ipv4Addr) -> bool {
    use tandem_vrrp::io::{fence_state, FenceState};
    has_address(vip)
        && fence_state(vip).expect("reading the kernel fence over nfnetlink") != FenceState::Closed
}

fn has_address(vip: Ipv4Addr) -> bool {
    // Local addresses appear in the FIB trie as "|-- ADDR" followed by "/32 host LOCAL".
    let trie = std::fs::read_to_string("/proc/thread-self/net/fib_trie").unwrap_or_default();
    let needle = format!("-- {vip}");
    let mut lines = trie.lines();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with(&needle) {
            if let Some(next) = lines.next() {
                if next.contains("host LOCAL") {
                    return true;
                }
            }
        }
    }
    false
}

impl Observer {
    /// Watches the "front" VIP.
    pub fn start(lab: &Lab) -> Observer {
        Self::start_for(lab, VIP)
    }

    /// Watches `vip`.
    pub fn start_for(lab: &Lab, vip: Ipv4Addr) -> Observer {
        let namespaces: Vec<File> = FORWARDERS
            .iter()
            .map(|i| File::open(format!("/var/run/netns/{}", lab.nodes[*i].ns)).unwrap())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Observation::default()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut last: Option<Vec<usize>> = None;
            while !stop2.load(Ordering::Relaxed) {
                let round = Instant::now();
                let mut holders = Vec::new();
                for (i, ns) in namespaces.iter().enumerate() {
                    if nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).is_ok()
                        && holds_vip(vip)
                    {
                        holders.push(FORWARDERS[i]);
                    }
                }
                let took = round.elapsed();
                let mut s = seen2.lock().unwrap();
                s.samples += 1;
                s.longest_round = s.longest_round.max(took);
                if holders.len() > 1 {
                    s.overlaps += 1;
                }
                if last.as_ref() != Some(&holders) {
                    s.changes.push((start.elapsed(), holders.clone()));
                    last = Some(holders);
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(10).saturating_sub(took));
            }
        });
        Observer {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn now(&self) -> Observation {
        self.seen.lock().unwrap().clone()
    }

    /// Until exactly `holders` hold the VIP (as last sampled); the time it took.
    pub async fn wait_for(&self, holders: &[usize], limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let s = self.now();
            if s.changes.last().map(|(_, h)| h.as_slice()) == Some(holders) {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    pub fn finish(mut self) -> Observation {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.now()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The client-seen view: probes the "who" listener through the VIP every 10 ms with a
/// 100 ms timeout and records the answers.
pub struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Duration, Option<String>)>>,
}

impl Probe {
    pub fn start(lab: &Lab) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let sockets_ns = lab.client.ns.clone();
        let make = move || {
            let path = format!("/var/run/netns/{sockets_ns}");
            File::open(path).unwrap()
        };
        let ns = make();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let start = Instant::now();
            // Bounded: at most 10 minutes of probing even if nobody stops it.
            while !stop2.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(600) {
                let socket = std::thread::scope(|s| {
                    s.spawn(|| {
                        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                            .ok()
                    })
                    .join()
                    .ok()
                    .flatten()
                });
                let answer = match socket {
                    Some(s) => {
                        s.set_nonblocking(true).ok();
                        let socket = tokio::net::TcpSocket::from_std_stream(s.into());
                        let limit = Duration::from_millis(100);
                        tokio::time::timeout(limit, async {
                            let mut stream =
                                socket.connect(crate::vrrp_lab::vip_addr()).await.ok()?;
                            crate::read_line(&mut stream, limit).await
                        })
                        .await
                        .ok()
                        .flatten()
                    }
                    None => None,
                };
                seen.push((start.elapsed(), answer));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        });
        Probe { stop, task }
    }

    /// Stops and returns the longest run without an answer (the client-seen outage).
    pub async fn finish(self) -> (Duration, Vec<(Duration, Option<String>)>) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.task.await.unwrap_or_default();
        let mut longest = Duration::ZERO;
        let mut gap_start = None;
        for (t, answer) in &seen {
            match (answer, gap_start) {
                (None, None) => gap_start = Some(*t),
                (Some(_), Some(s)) => {
                    longest = longest.max(*t - s);
                    gap_start = None;
                }
                _ => {}
            }
        }
        (longest, seen)
    }
}

//! Shared helpers for the end-to-end tests: real backends on loopback, free ports, a
//! running node, the daemon binary, a scratch directory, and polling with a deadline
//! (never a bare sleep). The one copy of each for every test binary in tests/.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// A port on 127.0.0.1 that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// A fresh directory under the system temp dir, removed on drop (also when a test fails).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tandem-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// `name` inside the directory (a leading `/` is ignored: `path("/etc/x")` is `<dir>/etc/x`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name.trim_start_matches('/'))
    }

    /// The directory itself.
    pub fn root(&self) -> &std::path::Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 127.0.0.1 on a port that was free a moment ago: nothing listens there (a dead backend).
pub fn dead_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The health of backend `id` in pool "p" (the pool `tcp_config` makes) of a running node.
pub fn health_of(node: &tandemd::Node, id: &str) -> tandem_balance::Health {
    node.plane()
        .pool("p")
        .unwrap()
        .snapshot()
        .iter()
        .find(|b| b.id == id)
        .unwrap()
        .health
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("binding udp 127.0.0.1:0 to find a free port")
}

/// A TCP backend that greets each connection with `<name>\n`, then echoes every byte it
/// receives until the client half-closes, then closes. Counts the connections it accepted.
pub struct NameBackend {
    pub name: String,
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl NameBackend {
    pub async fn start(name: &str) -> NameBackend {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on a given address (to bring a killed backend back on the same port).
    pub async fn start_on(name: &str, addr: SocketAddr) -> NameBackend {
        Self::start_with(name, addr, Duration::ZERO).await
    }

    /// A backend that waits `greeting_delay` before it answers (a slow server).
    pub async fn start_slow(name: &str, greeting_delay: Duration) -> NameBackend {
        Self::start_with(name, "127.0.0.1:0".parse().unwrap(), greeting_delay).await
    }

    /// Serves on a listener made elsewhere (e.g. inside a lab namespace).
    pub fn from_listener(name: &str, listener: TcpListener) -> NameBackend {
        Self::serve(name, listener, Duration::ZERO)
    }

    async fn start_with(name: &str, addr: SocketAddr, greeting_delay: Duration) -> NameBackend {
        let listener = bind_retrying(addr).await;
        Self::serve(name, listener, greeting_delay)
    }

    fn serve(name: &str, listener: TcpListener, greeting_delay: Duration) -> NameBackend {
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let (n, count) = (name.to_string(), accepted.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let greeting = format!("{n}\n");
                tokio::spawn(async move {
                    tokio::time::sleep(greeting_delay).await;
                    if stream.write_all(greeting.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => {
                                if stream.write_all(&buf[..k]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        NameBackend {
            name: name.to_string(),
            addr,
            accepted,
            task,
        }
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops listening: new connections are refused. Open ones are left to their tasks.
    pub fn kill(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }
}

async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("cannot bind a test backend on {addr}");
}

/// A UDP backend that answers each datagram with `<name>:<payload>`.
pub async fn udp_name_backend(name: &str) -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let prefix = format!("{name}:");
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let mut reply = prefix.clone().into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    (addr, task)
}

/// Connects through the proxy and returns the greeting line (the backend's name), or
/// `None` when the proxy closed the connection without one.
pub async fn which_backend(proxy: SocketAddr) -> Option<String> {
    which_backend_from(proxy, None).await
}

/// Same, from a chosen local address (e.g. 127.0.0.7) to vary the client IP.
pub async fn which_backend_from(
    proxy: SocketAddr,
    local: Option<std::net::IpAddr>,
) -> Option<String> {
    let mut stream = connect_from(proxy, local).await.ok()?;
    let line = read_line(&mut stream, Duration::from_secs(5)).await;
    let _ = stream.shutdown().await;
    line
}

pub async fn connect_from(
    target: SocketAddr,
    local: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    match local {
        None => TcpStream::connect(target).await,
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(target).await
        }
    }
}

/// Reads one `\n`-terminated line (without it) within `limit`; None on EOF or timeout.
pub async fn read_line(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        loop {
            match stream.read(&mut byte).await {
                Ok(1) if byte[0] == b'\n' => return Some(()),
                Ok(1) => line.push(byte[0]),
                _ => return None,
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()?;
    String::from_utf8(line).ok()
}

/// Polls `check` every 20 ms until it is true or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, check: impl FnMut() -> bool) -> bool {
    wait_until(limit, Duration::from_millis(20), check)
        .await
        .is_some()
}

/// Polls `check` every `every` until it is true or `limit` passes; returns how long it
/// took (None: it never held). The one polling loop of the tests: never a bare sleep.
pub async fn wait_until(
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> bool,
) -> Option<Duration> {
    wait_until_async(limit, every, || std::future::ready(check())).await
}

/// [`wait_until`] with a check that awaits (asks a daemon, sends a probe).
pub async fn wait_until_async<F, Fut>(
    limit: Duration,
    every: Duration,
    mut check: F,
) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Starts a node from config text; panics with the config error if it is invalid.
pub fn start_node(toml: &str) -> std::sync::Arc<tandemd::Node> {
    let config = tandem_config::parse(toml, "test.toml")
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n---\n{toml}"));
    tandemd::Node::start(config).expect("node starts")
}

/// The repository root (tests/ lives in it), for the scripts, units and examples a test
/// runs or compares against.
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

/// `tandemd check-config FILE` for a config it must refuse: asserts exit status 1 and
/// returns everything it printed (stderr, then stdout), for the caller to look for the key
/// paths in.
pub fn check_config_refusal(file: &std::path::Path) -> String {
    let out = std::process::Command::new(tandemd_bin())
        .arg("check-config")
        .arg(file)
        .output()
        .expect("running tandemd check-config");
    assert_eq!(
        out.status.code(),
        Some(1),
        "check-config must refuse {file:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// The `tandemd` binary next to the test executable (scripts/test builds it first).
pub fn tandemd_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/tandemd
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let bin = dir.join("tandemd");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p tandemd` (scripts/test does this)",
        bin.display()
    );
    bin
}

/// A child process killed (by PID) when dropped, so a failing test leaves nothing behind.
pub struct Child(pub std::process::Child);

impl Child {
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0.id() as i32)
    }
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(self.pid(), sig);
    }
    /// Waits up to `limit` for exit; returns the status, or None if still running.
    /// Async, so backends running in the test's own runtime keep being served meanwhile.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The resident memory of process `pid` (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_listening(addr: SocketAddr, limit: Duration) -> bool {
    let connects = || async move { TcpStream::connect(addr).await.is_ok() };
    wait_until_async(limit, Duration::from_millis(20), connects)
        .await
        .is_some()
}
pub mod admin;
pub mod appliance_install;
pub mod cluster_lab;
pub mod config;
pub mod dnsmasq;
pub mod http_kit;
pub mod lab_script;
pub mod netns;
pub mod pebble;
pub mod tls_client;
pub mod vrrp_lab;

pub use config::*;

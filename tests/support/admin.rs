//! Fixtures for the control-surface tests: a real `tandemd run` with its admin socket in
//! a scratch directory, a small HTTP client for that socket (and for TCP), the
//! `tandemctl` binary, and a bounded load generator that records which backend answered.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::TempDir;
use crate::{read_line, tandemd_bin, Child};

/// `tandemctl`, built beside `tandemd` (scripts/test builds every binary).
pub fn tandemctl_bin() -> PathBuf {
    let bin = tandemd_bin().with_file_name("tandemctl");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p tandemctl` (scripts/test does this)",
        bin.display()
    );
    bin
}

/// A running `tandemd run --config FILE` whose admin socket is in its own scratch dir.
/// Killed when dropped. Its stderr is kept for assertions and failure messages.
pub struct Daemon {
    pub child: Child,
    pub dir: TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// `config` must hold `admin_socket = ""` (as `tcp_config` does): it is pointed at the
    /// scratch dir. Waits until the API answers.
    pub async fn start(config: &str) -> Daemon {
        let dir = TempDir::new();
        let socket = dir.path("admin.sock");
        let config = Self::with_socket(config, &socket);
        let path = dir.write("tandem.toml", &config);
        let daemon = Self::spawn(dir, path, socket);
        daemon.wait_ready().await;
        daemon
    }

    /// Points `admin_socket = ""` at `socket`.
    pub fn with_socket(config: &str, socket: &Path) -> String {
        assert!(
            config.contains("admin_socket = \"\""),
            "the test config needs admin_socket = \"\""
        );
        config.replace(
            "admin_socket = \"\"",
            &format!("admin_socket = \"{}\"", socket.display()),
        )
    }

    /// Starts tandemd on an existing config file, without waiting.
    pub fn spawn(dir: TempDir, config: PathBuf, socket: PathBuf) -> Daemon {
        Self::spawn_command(
            std::process::Command::new(tandemd_bin()),
            dir,
            config,
            socket,
        )
    }

    /// [`spawn`](Self::spawn) inside a network namespace (`ip netns exec` execs tandemd,
    /// so the PID is tandemd's own). The admin socket is a file: reachable from here.
    pub fn spawn_in(ns: &str, dir: TempDir, config: PathBuf, socket: PathBuf) -> Daemon {
        let mut command = std::process::Command::new("ip");
        command.args(["netns", "exec", ns]).arg(tandemd_bin());
        Self::spawn_command(command, dir, config, socket)
    }

    fn spawn_command(
        mut command: std::process::Command,
        dir: TempDir,
        config: PathBuf,
        socket: PathBuf,
    ) -> Daemon {
        let mut child = Child(
            command
                .args(["run", "--config"])
                .arg(&config)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting tandemd"),
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.0.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            dir,
            config,
            socket,
            log,
        }
    }

    /// Waits (up to 20 s: a loaded CI box) until GET /v1/status answers on the socket.
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            if let Ok((StatusCode::OK, _)) = self.try_call(Method::GET, "/v1/status", None).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "tandemd's admin API did not answer on {}; its log:\n{}",
            self.socket.display(),
            self.log()
        );
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (up to 5 s) until the daemon's log contains `needle`: log lines are written
    /// after the answer goes out, so a test must not expect them at the same instant.
    pub async fn log_contains(&self, needle: &str) -> bool {
        crate::eventually(std::time::Duration::from_secs(5), || {
            self.log().contains(needle)
        })
        .await
    }

    /// Replaces the config file (for reload tests); `admin_socket = ""` is pointed at the
    /// running socket again.
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(&self.config, Self::with_socket(config, &self.socket)).unwrap();
    }

    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(StatusCode, Value)> {
        let stream = tokio::net::UnixStream::connect(&self.socket).await?;
        let (status, _, bytes) = exchange(stream, method, path, &[], body).await?;
        Ok((status, json(&bytes)))
    }

    /// One API call; panics (with the daemon's log) if the socket does not answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        match self.try_call(method.clone(), path, body).await {
            Ok(answer) => answer,
            Err(e) => panic!("{method} {path}: {e}; tandemd's log:\n{}", self.log()),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, value) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {value}");
        value
    }

    /// The backend `id` of pool `pool` as the API shows it.
    pub async fn backend(&self, pool: &str, id: &str) -> Value {
        self.get(&format!("/v1/pools/{pool}/backends/{id}")).await
    }

    /// Runs tandemctl against this daemon's socket (async: the test's backends keep
    /// being served meanwhile). Returns (exit code, stdout, stderr).
    pub async fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["--socket", self.socket.to_str().unwrap()];
        all.extend_from_slice(args);
        ctl(&all).await
    }
}

/// Runs tandemctl with exactly these arguments, bounded to 60 s.
pub async fn ctl(args: &[&str]) -> (i32, String, String) {
    let run = tokio::process::Command::new(tandemctl_bin())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("tandemctl {args:?} did not finish within 60 s"))
        .expect("running tandemctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A JSON body, or the text as a JSON string when it is not JSON (e.g. /metrics).
pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// One HTTP/1.1 request on `stream`; returns status, headers and body.
pub async fn exchange<S>(
    stream: S,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(StatusCode, http::HeaderMap, Bytes)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = |e: hyper::Error| std::io::Error::other(e);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io)?;
    let driver = tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "tandemd");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .expect("a valid test request");
    let call = async {
        let response = sender.send_request(request).await.map_err(io)?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(io)?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    };
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no answer within 30 s")));
    driver.abort();
    result
}

/// One request to the admin API on TCP, with optional extra headers.
pub async fn tcp_call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Value) {
    let stream = TcpStream::connect(addr).await.expect("admin TCP connects");
    let (status, headers, bytes) = exchange(stream, method, path, headers, None)
        .await
        .expect("admin TCP answers");
    (status, headers, json(&bytes))
}

/// What a bounded load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub ok: u64,
    pub failures: Vec<String>,
    /// Greeting (backend name) → connections, for connections started before the mark.
    pub before: HashMap<String, u64>,
    /// Same, for connections started after the mark was set.
    pub after: HashMap<String, u64>,
}

/// Clients making one short exchange per connection (greeting, echo, close) through a
/// listener until stopped, each bounded to `max_per_worker` connections.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub mark: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<LoadReport>>,
}

impl Load {
    pub fn start(proxy: SocketAddr, workers: usize, max_per_worker: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mark = Arc::new(AtomicBool::new(false));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, mark) = (stop.clone(), mark.clone());
                tokio::spawn(async move {
                    let mut report = LoadReport::default();
                    for _ in 0..max_per_worker {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let after = mark.load(Ordering::SeqCst);
                        match one_exchange(proxy).await {
                            Ok(name) => {
                                report.ok += 1;
                                let seen = if after {
                                    &mut report.after
                                } else {
                                    &mut report.before
                                };
                                *seen.entry(name).or_default() += 1;
                            }
                            Err(e) => report.failures.push(e),
                        }
                    }
                    report
                })
            })
            .collect();
        Load { stop, mark, tasks }
    }

    /// Marks the moment a change was acknowledged: later connections count as "after".
    pub fn set_mark(&self) {
        self.mark.store(true, Ordering::SeqCst);
    }

    /// Total of every worker's report so far (stops the load).
    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = LoadReport::default();
        for task in self.tasks {
            let r = task.await.expect("a load worker panicked");
            total.ok += r.ok;
            total.failures.extend(r.failures);
            for (k, v) in r.before {
                *total.before.entry(k).or_default() += v;
            }
            for (k, v) in r.after {
                *total.after.entry(k).or_default() += v;
            }
        }
        total
    }
}

/// Connect, read the backend's greeting, echo a line, close. Err says which step failed.
pub async fn one_exchange(proxy: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = read_line(&mut stream, Duration::from_secs(5))
        .await
        .ok_or("no greeting")?;
    stream
        .write_all(b"ping\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let echo = read_line(&mut stream, Duration::from_secs(5)).await;
    if echo.as_deref() != Some("ping") {
        return Err(format!("{name}: echo was {echo:?}"));
    }
    let _ = stream.shutdown().await;
    Ok(name)
}

/// Opens connections until one lands on `backend`, and keeps that one open.
pub async fn hold_connection_to(proxy: SocketAddr, backend: &str) -> TcpStream {
    for _ in 0..50 {
        let mut stream = TcpStream::connect(proxy).await.expect("connect");
        if read_line(&mut stream, Duration::from_secs(5))
            .await
            .as_deref()
            == Some(backend)
        {
            return stream;
        }
    }
    panic!("no connection landed on {backend} in 50 tries");
}

//! Hostile clients against the L7 plane, end to end (issue 14): request bodies the client
//! gets wrong never count against a backend; one checked authority per request; clients
//! that stop reading are closed after `send_timeout`, with bounded memory each. Real
//! tandemd (in process, or the binary where its memory is measured), real backends, raw
//! TCP for the malformed bytes and the rapid-reset frames, hyper for HTTP/2.

#[path = "l7_hostile/accept.rs"]
mod accept;
#[path = "l7_hostile/bodies.rs"]
mod bodies;
#[path = "l7_hostile/framing.rs"]
mod framing;
#[path = "l7_hostile/h2_window.rs"]
mod h2_window;
#[path = "l7_hostile/host.rs"]
mod host;
#[path = "l7_hostile/logs.rs"]
mod logs;
#[path = "l7_hostile/rapid_reset.rs"]
mod rapid_reset;
#[path = "l7_hostile/stalled.rs"]
mod stalled;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_tests::Child;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Writes `bytes` (ignoring a peer that closes or resets meanwhile), optionally shuts the
/// write side, then reads until the peer closes or `limit` passes.
pub async fn send_raw(target: SocketAddr, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut tcp = TcpStream::connect(target).await.expect("connecting");
    let _ = tcp.write_all(bytes).await;
    if half_close {
        let _ = tcp.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// The status of the first response in `raw` (None: no response at all).
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(raw.get(..12)?).ok()?;
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

/// The tandemd binary run on `config` with `RUST_LOG=rust_log`; its stderr lines collect
/// in the returned list.
pub fn daemon(config: &Path, rust_log: &str) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut command = std::process::Command::new(tandem_tests::tandemd_bin());
    command.args(["run", "--config"]).arg(config);
    daemon_with(command, rust_log)
}

/// The same, started by `command` (e.g. a shell that lowers a limit first).
pub fn daemon_with(
    mut command: std::process::Command,
    rust_log: &str,
) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = Child(
        command
            .env("RUST_LOG", rust_log)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting tandemd"),
    );
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.0.stderr.take().expect("piped stderr");
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    (child, lines)
}

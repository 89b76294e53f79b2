//! The tandemd binary as an operator meets it: check-config, bad configs, SIGTERM drain,
//! and the demo driven with real curl; the example configs, logs and live reload as modules
//! (one test binary, issue 14).

use nix::sys::signal::Signal;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;
use tandem_tests::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[path = "daemon/examples.rs"]
mod examples;
#[path = "daemon/logs.rs"]
mod logs;
#[path = "daemon/reload.rs"]
mod reload;

#[test]
fn check_config_accepts_a_good_file() {
    let scratch = TempDir::new();
    let path = scratch.write(
        "good.toml",
        tcp_config(
            8080,
            "round_robin",
            &[("a", "127.0.0.1:9001".parse().unwrap(), 1)],
            "",
            "",
        ),
    );
    let out = Command::new(tandemd_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 listeners, 1 pools, 1 backends)"));
}

#[test]
fn a_bad_config_exits_non_zero_naming_file_and_key_path() {
    let text = tcp_config(
        8080,
        "round_robin",
        &[
            ("a", "127.0.0.1:9001".parse().unwrap(), 1),
            ("a", "127.0.0.1:9002".parse().unwrap(), 1),
        ],
        "",
        "",
    );
    let scratch = TempDir::new();
    let path = scratch.write("dup.toml", &text);
    for args in [vec!["check-config"], vec!["run", "--config"]] {
        let out = Command::new(tandemd_bin())
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&path.display().to_string()), "{args:?}: {err}");
        assert!(
            err.contains("pool[0].backend[1].id: duplicate backend id \"a\""),
            "{args:?}: {err}"
        );
    }
    let missing = Command::new(tandemd_bin())
        .args(["check-config", "/nonexistent/tandem.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the file"));
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(tandemd_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "demo", "check-config"] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[tokio::test]
async fn sigterm_stops_accepting_and_lets_open_connections_finish() {
    let backend = NameBackend::start("b").await;
    let port = free_port();
    let text = tcp_config(port, "round_robin", &[("b", backend.addr, 1)], "", "")
        .replace("drain_timeout = \"2s\"", "drain_timeout = \"10s\"");
    let scratch = TempDir::new();
    let path = scratch.write(&format!("drain-{port}.toml"), &text);
    let mut child = Child(
        Command::new(tandemd_bin())
            .args(["run", "--config"])
            .arg(&path)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(
        wait_listening(proxy, Duration::from_secs(10)).await,
        "tandemd listens"
    );

    let mut open = TcpStream::connect(proxy).await.unwrap();
    assert_eq!(
        read_line(&mut open, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("b")
    );
    child.signal(Signal::SIGTERM);

    // New connections are refused once the listener is closed.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(proxy).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener closes on SIGTERM");
    // The open connection still works, and the process waits for it.
    open.write_all(b"in flight\n").await.unwrap();
    assert_eq!(
        read_line(&mut open, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("in flight")
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "still draining while a connection is open"
    );
    open.shutdown().await.unwrap();
    drop(open);
    let status = child
        .wait_for_exit(Duration::from_secs(5))
        .await
        .expect("exits once the connection ends");
    assert!(status.success(), "graceful stop exits 0: {status:?}");
}

#[tokio::test]
async fn the_drain_timeout_bounds_a_graceful_stop() {
    let backend = NameBackend::start("b").await;
    let port = free_port();
    let text = tcp_config(port, "round_robin", &[("b", backend.addr, 1)], "", "")
        .replace("drain_timeout = \"2s\"", "drain_timeout = \"500ms\"");
    let scratch = TempDir::new();
    let path = scratch.write(&format!("cut-{port}.toml"), &text);
    let mut child = Child(
        Command::new(tandemd_bin())
            .args(["run", "--config"])
            .arg(&path)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(wait_listening(proxy, Duration::from_secs(10)).await);
    let mut open = TcpStream::connect(proxy).await.unwrap();
    assert_eq!(
        read_line(&mut open, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("b")
    );
    let sent = std::time::Instant::now();
    child.signal(Signal::SIGTERM);
    let status = child
        .wait_for_exit(Duration::from_secs(5))
        .await
        .expect("exits at the drain timeout");
    assert!(status.success());
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "waited for the drain: {took:?}"
    );
    drop(open);
}

#[tokio::test]
async fn the_demo_serves_curl_round_robin_http_and_udp() {
    let port = free_port();
    let http_port = free_port();
    let status_port = free_port();
    let udp_port = free_udp_port();
    let mut child = Child(
        Command::new(tandemd_bin())
            .args([
                "demo",
                "--port",
                &port.to_string(),
                "--http-port",
                &http_port.to_string(),
                "--udp-port",
                &udp_port.to_string(),
                "--status-port",
                &status_port.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(
        wait_listening(proxy, Duration::from_secs(10)).await,
        "demo listens"
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .output()
            .expect("curl is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        seen.push(String::from_utf8(out.stdout).unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            "hello from backend-1\n",
            "hello from backend-2\n",
            "hello from backend-3\n"
        ]
    );

    // The L7 plane: the same backends through the HTTP proxy, which adds its headers.
    let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
    assert!(wait_listening(http, Duration::from_secs(10)).await);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-i",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{http_port}/"),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        seen.push(text.lines().last().unwrap_or_default().to_string());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "hello from backend-1",
            "hello from backend-2",
            "hello from backend-3"
        ]
    );

    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"ping", ("127.0.0.1", udp_port))
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        reply.starts_with("backend-") && reply.ends_with(": ping"),
        "{reply}"
    );

    child.signal(Signal::SIGTERM);
    let status = child
        .wait_for_exit(Duration::from_secs(10))
        .await
        .expect("demo stops on SIGTERM");
    assert!(status.success());
    let mut banner = String::new();
    use std::io::Read;
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut banner)
        .unwrap();
    assert!(
        banner.contains(&format!("curl -s http://127.0.0.1:{port}/")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("curl -si http://127.0.0.1:{http_port}/")),
        "{banner}"
    );
}

/// A unit or command line that lost its --config must not serve the demo: `tandemd run`
/// reads /etc/tandem/tandem.toml, and without it exits 1 naming the file.
#[test]
fn run_without_config_reads_etc_and_never_serves_the_demo() {
    let default = std::path::Path::new("/etc/tandem/tandem.toml");
    assert!(
        !default.exists(),
        "this test needs a machine without {} (it checks tandemd's answer to its absence)",
        default.display()
    );
    let out = Command::new(tandemd_bin())
        .arg("run")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/etc/tandem/tandem.toml: no such config file"),
        "{err}"
    );
    assert!(err.contains("tandemd demo"), "{err}");
    assert!(out.stdout.is_empty(), "no demo banner: {:?}", out.stdout);
    // --help says so too.
    let help = Command::new(tandemd_bin())
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("/etc/tandem/tandem.toml"), "{help}");
}

/// `tandemd` with no command is the demo on its documented ports (8080, 8081, 8053). Run
/// in a network namespace of its own (root, `unshare -n`) so those ports are free.
#[tokio::test]
async fn no_command_runs_the_demo_on_its_default_ports() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (unshare -n for a private loopback)"
    );
    let mut child = Child(
        Command::new("unshare")
            .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\""])
            .arg(tandemd_bin())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) and ip (iproute2) are installed"),
    );
    let mut stdout = tokio::process::ChildStdout::from_std(child.0.stdout.take().unwrap())
        .expect("async stdout");
    let mut banner = String::new();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        while !banner.contains("Stop with Ctrl-C") {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => banner.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
    for line in [
        "curl -s http://127.0.0.1:8080/",
        "curl -si http://127.0.0.1:8081/",
        "nc -u -w1 127.0.0.1 8053",
        "http://127.0.0.1:8404/",
    ] {
        assert!(banner.contains(line), "{line} in:\n{banner}");
    }
    // The banner comes before the signal handlers: wait until SIGTERM is caught.
    let pid = child.0.id();
    let catches_term = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                let mask = s
                    .lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))?
                    .trim()
                    .to_string();
                u64::from_str_radix(&mask, 16).ok()
            })
            .is_some_and(|mask| mask & (1 << (Signal::SIGTERM as u64 - 1)) != 0)
    };
    assert!(eventually(Duration::from_secs(10), catches_term).await);
    child.signal(Signal::SIGTERM);
    let status = child.wait_for_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

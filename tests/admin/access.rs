//! Who may use the admin API and how it is found: the bearer token on TCP, the log line
//! naming who asked, and the Unix socket's life cycle (never stolen from a live daemon,
//! a stale one replaced, removed on stop). A real `tandemd run` each time.

use super::{local, two_backends};
use http::{Method, StatusCode};
use nix::sys::signal::Signal;
use std::time::Duration;
use tandem_tests::admin::*;
use tandem_tests::TempDir;
use tandem_tests::*;

#[tokio::test]
async fn tcp_admin_needs_the_bearer_token() {
    let (_a, _b, _port, config) = two_backends().await;
    let dir = TempDir::new();
    let token = dir.write("token", "first-secret\n");
    let admin = local(free_port());
    let config = config.replace(
        "admin_socket = \"\"",
        &format!(
            "admin_socket = \"\"\nadmin_tcp = \"{admin}\"\nadmin_token_file = \"{}\"",
            token.display()
        ),
    );
    let daemon = Daemon::start(&config).await;
    assert!(wait_listening(admin, Duration::from_secs(5)).await);

    let (status, headers, body) = tcp_call(admin, Method::GET, "/v1/status", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(headers["www-authenticate"], "Bearer");
    for wrong in [
        "Bearer nope",
        "Basic Zmlyc3Qtc2VjcmV0",
        "Bearer first-secre",
    ] {
        let (status, _, body) = tcp_call(
            admin,
            Method::POST,
            "/v1/pools/p/backends/a/drain",
            &[("authorization", wrong)],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}: {body}");
    }
    assert_eq!(
        daemon.backend("p", "a").await["state"],
        "enabled",
        "refused writes change nothing"
    );
    let good = [("authorization", "Bearer first-secret")];
    let (status, _, body) = tcp_call(admin, Method::GET, "/v1/status", &good).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["node"], "test");
    let (status, _, body) =
        tcp_call(admin, Method::POST, "/v1/pools/p/backends/a/drain", &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        daemon.log_contains("who=tcp 127.0.0.1:").await,
        "{}",
        daemon.log()
    );

    // Rotating the token is rewriting the file.
    std::fs::write(&token, "second-secret").unwrap();
    let (status, _, _) = tcp_call(admin, Method::GET, "/v1/status", &good).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = tcp_call(
        admin,
        Method::GET,
        "/v1/status",
        &[("authorization", "Bearer second-secret")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Every refusal counted (none missing, none twice), one warning for all of them.
    let metrics = daemon.get("/metrics").await;
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains("tandem_admin_rejected_total{reason=\"unauthorized\"} 5\n"),
        "{text}"
    );
    let warnings = daemon
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("admin request refused"))
        .count();
    assert_eq!(warnings, 1, "{}", daemon.log());
}

#[tokio::test]
async fn writes_are_logged_with_who_asked() {
    let (_a, _b, _port, config) = two_backends().await;
    let daemon = Daemon::start(&config).await;
    let (status, _) = daemon
        .call(Method::POST, "/v1/pools/p/backends/b/drain", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = daemon
        .call(Method::POST, "/v1/pools/p/backends/zz/drain", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let who = format!(
        "unix uid {} pid {}",
        nix::unistd::getuid(),
        std::process::id()
    );
    let found = eventually(Duration::from_secs(5), || {
        let log = daemon.log();
        log.lines().any(|l| {
            l.contains("admin request")
                && l.contains(&who)
                && l.contains("/backends/b/drain")
                && l.contains("status=200")
        }) && log.lines().any(|l| {
            l.contains("admin request")
                && l.contains(&who)
                && l.contains("/backends/zz/drain")
                && l.contains("status=404")
        })
    })
    .await;
    assert!(found, "no log line naming {who}:\n{}", daemon.log());
}

#[tokio::test]
async fn the_socket_is_never_stolen_from_a_live_daemon_and_a_stale_one_is_replaced() {
    let (_a, _b, port, config) = two_backends().await;
    let first = Daemon::start(&config).await;

    // A second daemon on the same socket (other listener port) refuses to start.
    let other = config.replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
    );
    let dir = TempDir::new();
    let path = dir.write("second.toml", Daemon::with_socket(&other, &first.socket));
    let out = std::process::Command::new(tandemd_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answers on the admin socket"), "{err}");
    assert_eq!(
        first.get("/v1/status").await["node"],
        "test",
        "the first one still answers"
    );

    // SIGKILL leaves the socket file behind: the next start replaces it.
    let mut first = first;
    first.child.signal(Signal::SIGKILL);
    first
        .child
        .wait_for_exit(Duration::from_secs(5))
        .await
        .expect("killed");
    assert!(
        first.socket.exists(),
        "a killed daemon leaves its socket file"
    );
    let Daemon {
        dir,
        config: file,
        socket,
        ..
    } = first;
    let second = Daemon::spawn(dir, file, socket);
    second.wait_ready().await;
    assert!(
        second.log_contains("removed a stale admin socket").await,
        "{}",
        second.log()
    );

    // A graceful stop removes the socket.
    let mut second = second;
    second.child.signal(Signal::SIGTERM);
    let status = second
        .child
        .wait_for_exit(Duration::from_secs(10))
        .await
        .expect("stops");
    assert!(status.success());
    assert!(
        !second.socket.exists(),
        "the socket file is removed on stop"
    );
}

/// Runs tandemctl as user nobody (uid 65534), with `groups` as its supplementary groups.
async fn ctl_as_nobody(groups: &str, socket: &std::path::Path) -> (i32, String, String) {
    let out = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            &format!("--groups={groups}"),
        ])
        .arg(tandemctl_bin())
        .args(["--socket", socket.to_str().unwrap(), "status"])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("tandemctl finishes")
        .expect("setpriv (util-linux) runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_socket_admits_its_group_and_tells_others_why_not() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test switches to user nobody to check the socket's 0660 mode, which needs root; \
         run it as root (CI does). It does not skip."
    );
    let (_a, _b, _port, config) = two_backends().await;
    let daemon = Daemon::start(&config).await;
    let socket_group = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&daemon.socket).unwrap().gid()
    };
    let (code, out, err) = ctl_as_nobody(&socket_group.to_string(), &daemon.socket).await;
    assert_eq!(code, 0, "a member of the socket's group may use it: {err}");
    assert!(out.starts_with("node test"), "{out}");
    let (code, _, err) = ctl_as_nobody("65534", &daemon.socket).await;
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "tandemctl: cannot use tandemd's admin socket {}: Permission denied (os error 13); \
             run as root or as a member of the socket's group",
            daemon.socket.display()
        )
    );
}

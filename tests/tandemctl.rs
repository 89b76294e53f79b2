//! tandemctl against a real `tandemd run`: every command in its table form and with
//! `--json`, refusals with the daemon's message, an unreachable daemon, TCP with a token.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tandem_tests::admin::*;
use tandem_tests::TempDir;
use tandem_tests::*;
use tokio::io::AsyncWriteExt;

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

async fn node() -> (NameBackend, NameBackend, u16, Daemon) {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let port = free_port();
    let config = tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1), ("b", b.addr, 1)],
        "",
        "",
    );
    let daemon = Daemon::start(&config).await;
    (a, b, port, daemon)
}

fn parse(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn status_and_backends_print_tables_and_json() {
    let (a, _b, port, daemon) = node().await;
    assert!(which_backend(local(port)).await.is_some());

    let (code, out, err) = daemon.ctl(&["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("node test (tandemd "), "{out}");
    for words in [
        "LISTENER",
        "front",
        "tcp",
        &local(port).to_string(),
        "pool p (round_robin)",
        &a.addr.to_string(),
        "enabled",
        "up",
    ] {
        assert!(out.contains(words), "{words:?} missing:\n{out}");
    }
    let (code, out, _) = daemon.ctl(&["--json", "status"]).await;
    assert_eq!(code, 0);
    let status = parse(&out);
    assert_eq!(status["node"], "test");
    assert_eq!(status["listeners"][0]["counters"]["accepted"], 1);

    let (code, out, _) = daemon.ctl(&["backends"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("BACKEND") && out.contains(" a ") && out.contains(" b "),
        "{out}"
    );
    let (code, out, _) = daemon.ctl(&["backends", "p", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(parse(&out)["backends"][1]["id"], "b");
    let (code, out, _) = daemon.ctl(&["backend", "show", "p", "a"]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!(
            "backend a at {}: enabled, health up, weight 1",
            a.addr
        )),
        "{out}"
    );
}

#[tokio::test]
async fn backend_commands_change_the_running_pool() {
    let (_a, _b, port, daemon) = node().await;
    let (code, out, err) = daemon.ctl(&["backend", "drain", "p", "a"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("backend a at")
            && out.contains(": drain,")
            && out.contains("config version 2"),
        "{out}"
    );
    assert_eq!(which_backend(local(port)).await.as_deref(), Some("b"));
    assert_eq!(which_backend(local(port)).await.as_deref(), Some("b"));

    let (code, out, _) = daemon
        .ctl(&["backend", "disable", "p", "a", "--json"])
        .await;
    assert_eq!(code, 0);
    assert_eq!(parse(&out)["backend"]["state"], "disabled");
    let (code, out, _) = daemon.ctl(&["backend", "enable", "p", "a"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(": enabled,"), "{out}");
    let (code, out, _) = daemon.ctl(&["backend", "weight", "p", "a", "5"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("weight 5"), "{out}");
    assert_eq!(daemon.backend("p", "a").await["weight"], 5);

    let c = NameBackend::start("c").await;
    let address = c.addr.to_string();
    let (code, out, err) = daemon
        .ctl(&[
            "backend", "add", "p", "c", &address, "--weight", "2", "--json",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let added = parse(&out);
    assert_eq!(added["backend"]["id"], "c");
    assert_eq!(added["backend"]["weight"], 2);
    let mut saw_c = false;
    for _ in 0..10 {
        saw_c |= which_backend(local(port)).await.as_deref() == Some("c");
    }
    assert!(saw_c, "the added backend receives connections");
    let (code, out, _) = daemon.ctl(&["backend", "remove", "p", "c"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("removed backend c from pool p"), "{out}");
    let (code, _, err) = daemon.ctl(&["backend", "show", "p", "c"]).await;
    assert_eq!(code, 1, "{err}");
}

#[tokio::test]
async fn drain_wait_returns_when_the_last_connection_ends() {
    let (_a, _b, port, daemon) = node().await;
    let mut held = hold_connection_to(local(port), "b").await;

    // Bounded by --timeout: the held connection keeps b busy.
    let (code, out, err) = daemon
        .ctl(&["backend", "drain", "p", "b", "--wait", "--timeout", "300ms"])
        .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("backend b still has 1 active connection(s) after 300ms"),
        "{err}"
    );

    let socket = daemon.socket.to_str().unwrap().to_string();
    let waiter = tokio::spawn(async move {
        ctl(&[
            "--socket",
            &socket,
            "backend",
            "drain",
            "p",
            "b",
            "--wait",
            "--timeout",
            "20s",
        ])
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiter.is_finished(),
        "still waiting while a connection is open"
    );
    held.shutdown().await.unwrap();
    drop(held);
    let (code, out, err) = waiter.await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("backend b is drained: no connection left\n"),
        "{out}"
    );

    let (code, out, _) = daemon
        .ctl(&["--json", "backend", "drain", "p", "b", "--wait"])
        .await;
    assert_eq!(code, 0);
    assert_eq!(parse(&out)["drained"], true);
}

#[tokio::test]
async fn refusals_carry_the_daemons_message_and_exit_non_zero() {
    let (_a, _b, _port, daemon) = node().await;
    let cases: [(&[&str], &str); 5] = [
        (&["backend", "drain", "nope", "a"], "no pool named \"nope\""),
        (
            &["backend", "enable", "p", "zz"],
            "pool \"p\" has no backend \"zz\"",
        ),
        (&["backends", "nope"], "no pool named \"nope\""),
        (
            &["backend", "weight", "p", "a", "20000"],
            "pool[0].backend[0].weight: must be at most 10000",
        ),
        (
            &["backend", "add", "p", "a", "127.0.0.1:9"],
            "pool \"p\" already has a backend \"a\"",
        ),
    ];
    for (args, words) in cases {
        let (code, out, err) = daemon.ctl(args).await;
        assert_eq!(code, 1, "{args:?}: {out}");
        assert_eq!(err.trim_end(), format!("tandemctl: {words}"), "{args:?}");
    }
    let (code, out, _) = daemon.ctl(&["--json", "backend", "show", "p", "zz"]).await;
    assert_eq!(code, 1);
    assert_eq!(parse(&out)["error"]["code"], "not_found");
    // Bad command lines never reach the daemon.
    for args in [
        &["backend", "weight", "p", "a", "heavy"][..],
        &["backend", "explode"],
        &["top", "--interval", "soon"],
    ] {
        let (code, _, err) = daemon.ctl(args).await;
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    assert_eq!(daemon.get("/v1/status").await["config_version"], 1);
}

#[tokio::test]
async fn an_unreachable_daemon_is_a_clear_message() {
    let dir = TempDir::new();
    let socket = dir.path("none.sock");
    let (code, out, err) = ctl(&["--socket", socket.to_str().unwrap(), "status"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        err.starts_with(&format!(
            "tandemctl: cannot reach tandemd at {}: ",
            socket.display()
        )) && err
            .trim_end()
            .ends_with("is it running? (--socket to choose another)"),
        "{err}"
    );
    let token = dir.write("token", "t");
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = ctl(&[
        "--url",
        &url,
        "--token-file",
        token.to_str().unwrap(),
        "vrrp",
    ])
    .await;
    assert_eq!(code, 3);
    assert!(
        err.contains(&format!("cannot reach tandemd at {url}: ")) && err.contains("--url"),
        "{err}"
    );
    let (code, _, err) = ctl(&["--url", &url, "status"]).await;
    assert_eq!(code, 2, "--url without --token-file: {err}");
}

#[tokio::test]
async fn vrrp_reload_and_config_check() {
    let (_a, _b, _port, daemon) = node().await;
    let (code, out, _) = daemon.ctl(&["vrrp"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "no VRRP on this node (its config has no [node.vrrp])\n"
    );
    let (code, out, _) = daemon.ctl(&["vrrp", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(parse(&out), json!({ "instances": [] }));

    let (code, out, err) = daemon.ctl(&["reload"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, "reloaded: config version 1\n",
        "an unchanged file changes nothing"
    );
    let (code, out, _) = daemon.ctl(&["reload", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(parse(&out)["applied"]["pools_updated"], json!([]));

    let config = daemon.config.to_str().unwrap().to_string();
    let (code, out, err) = daemon.ctl(&["config", "check", &config]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{config}: ok\n"));
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    let bad = daemon
        .dir
        .write("bad.toml", text.replace("round_robin", "round_robbin"));
    let (code, _, err) = daemon
        .ctl(&["config", "check", bad.to_str().unwrap()])
        .await;
    assert_eq!(code, 1);
    let expected = std::process::Command::new(tandemd_bin())
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(
        err,
        String::from_utf8_lossy(&expected.stderr),
        "check-config's own lines"
    );
    let (code, out, _) = daemon
        .ctl(&["--json", "config", "check", bad.to_str().unwrap()])
        .await;
    assert_eq!(code, 1);
    assert_eq!(parse(&out)["ok"], false);
    let (code, _, err) = daemon
        .ctl(&["config", "check", "/nonexistent/t.toml"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/t.toml"), "{err}");
}

#[tokio::test]
async fn top_shows_rates_for_a_bounded_run() {
    let (_a, _b, port, daemon) = node().await;
    let load = Load::start(local(port), 2, 2000);
    let (code, out, err) = daemon
        .ctl(&["top", "--interval", "300ms", "--count", "2"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("tandem top: node test").count(), 2, "{out}");
    assert!(
        !out.contains("\x1b["),
        "no escape codes when stdout is not a terminal"
    );
    assert!(out.contains("CONN/S") && out.contains("PICKS/S"), "{out}");
    let (code, out, _) = daemon
        .ctl(&["top", "--interval", "300ms", "--count", "2", "--json"])
        .await;
    assert_eq!(code, 0);
    let samples: Vec<Value> = out.lines().map(parse).collect();
    assert_eq!(samples.len(), 2);
    for s in &samples {
        let rate = s["listeners"][0]["connections_per_s"].as_f64().unwrap();
        assert!(rate > 0.0, "traffic flows, so the rate is positive: {s}");
        let picks: f64 = s["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["picks_per_s"].as_f64().unwrap())
            .sum();
        assert!(picks > 0.0, "{s}");
    }
    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
}

#[tokio::test]
async fn tcp_with_url_and_token_file() {
    let a = NameBackend::start("a").await;
    let dir = TempDir::new();
    let token = dir.write("token", "s3cret\n");
    let wrong = dir.write("wrong", "guess\n");
    let admin = local(free_port());
    let config = tcp_config(free_port(), "round_robin", &[("a", a.addr, 1)], "", "").replace(
        "admin_socket = \"\"",
        &format!(
            "admin_socket = \"\"\nadmin_tcp = \"{admin}\"\nadmin_token_file = \"{}\"",
            token.display()
        ),
    );
    let _daemon = Daemon::start(&config).await;
    let url = format!("http://{admin}");
    let (code, out, err) = ctl(&[
        "--url",
        &url,
        "--token-file",
        token.to_str().unwrap(),
        "status",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("node test"), "{out}");
    let (code, _, err) = ctl(&[
        "--url",
        &url,
        "--token-file",
        wrong.to_str().unwrap(),
        "status",
    ])
    .await;
    assert_eq!(code, 1);
    assert_eq!(err.trim_end(), "tandemctl: wrong bearer token");
}

#[tokio::test]
async fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_tandemctl()"),
        ("zsh", "#compdef tandemctl"),
        ("fish", "complete -c tandemctl"),
    ] {
        let (code, out, err) = ctl(&["completions", shell]).await;
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(
            out.contains(marker),
            "{shell}: {}",
            &out[..out.len().min(200)]
        );
        assert!(out.contains("drain"), "{shell} completes subcommands");
    }
    let (code, _, _) = ctl(&["completions", "cmd.exe"]).await;
    assert_eq!(code, 2);
}

//! Changes through the admin API while traffic flows through a real `tandemd run`: no
//! request fails, and the change shows in where new connections go. Each load is a
//! bounded number of short connections (greeting, echo, close) from a few clients.

use super::local;
use http::{Method, StatusCode};
use nix::sys::signal::Signal;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tandem_tests::admin::*;
use tandem_tests::*;
use tokio::io::AsyncWriteExt;

/// Lets the load run until at least `n` more exchanges have happened (bounded wait).
async fn let_traffic_flow(proxy: SocketAddr, daemon: &Daemon, n: u64) {
    let count = || async {
        daemon.get("/v1/status").await["listeners"][0]["counters"]["accepted"]
            .as_u64()
            .unwrap()
    };
    let start = count().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if count().await >= start + n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "no traffic through {proxy}; tandemd's log:\n{}",
        daemon.log()
    );
}

#[tokio::test]
async fn draining_under_load_fails_nothing_and_sends_nothing_new_to_the_backend() {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let c = NameBackend::start("c").await;
    let port = free_port();
    let proxy = local(port);
    let config = tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1), ("b", b.addr, 1), ("c", c.addr, 1)],
        "",
        "",
    );
    let daemon = Daemon::start(&config).await;
    // One long connection on b, open across the drain.
    let mut held = hold_connection_to(proxy, "b").await;

    let load = Load::start(proxy, 4, 400);
    let_traffic_flow(proxy, &daemon, 40).await;
    let (status, answer) = daemon
        .call(Method::POST, "/v1/pools/p/backends/b/drain", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    load.set_mark();
    assert_eq!(answer["backend"]["state"], "drain");
    assert!(
        answer["backend"]["active"].as_u64().unwrap() >= 1,
        "the held connection (and load in flight): {answer}"
    );
    assert_eq!(answer["backend"]["drained"], false);
    let_traffic_flow(proxy, &daemon, 100).await;
    let report = load.finish().await;

    assert!(
        report.failures.is_empty(),
        "failed requests: {:?}",
        report.failures
    );
    assert!(
        report.before.get("b").copied().unwrap_or(0) > 0,
        "b served before: {report:?}"
    );
    assert_eq!(
        report.after.get("b"),
        None,
        "b got new connections after the drain: {report:?}"
    );
    assert!(report.after.values().sum::<u64>() >= 50, "{report:?}");
    assert_eq!(
        b.accepted(),
        report.before["b"] + 1,
        "b accepted only the load's connections from before the drain and the held one"
    );

    // The held connection still works, and `drained` turns true once it ends.
    held.write_all(b"still here\n").await.unwrap();
    assert_eq!(
        read_line(&mut held, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("still here")
    );
    assert_eq!(daemon.backend("p", "b").await["drained"], false);
    held.shutdown().await.unwrap();
    drop(held);
    let mut drained = false;
    for _ in 0..100 {
        let backend = daemon.backend("p", "b").await;
        if backend["drained"] == true {
            assert_eq!(backend["active"], 0);
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        drained,
        "b never showed drained: {}",
        daemon.backend("p", "b").await
    );
}

#[tokio::test]
async fn adding_and_removing_backends_under_load_fails_nothing() {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let c = NameBackend::start("c").await;
    let port = free_port();
    let proxy = local(port);
    let config = tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1), ("b", b.addr, 1)],
        "",
        "",
    );
    let daemon = Daemon::start(&config).await;
    let mut held = hold_connection_to(proxy, "a").await;

    let load = Load::start(proxy, 4, 400);
    let_traffic_flow(proxy, &daemon, 40).await;
    let body = json!({ "id": "c", "address": c.addr.to_string(), "weight": 1 });
    let (status, answer) = daemon
        .call(
            Method::POST,
            "/v1/pools/p/backends",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let_traffic_flow(proxy, &daemon, 60).await;
    assert!(c.accepted() > 0, "the new backend receives connections");

    let (status, answer) = daemon
        .call(Method::DELETE, "/v1/pools/p/backends/a", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    load.set_mark();
    let_traffic_flow(proxy, &daemon, 100).await;
    let report = load.finish().await;

    assert!(
        report.failures.is_empty(),
        "failed requests: {:?}",
        report.failures
    );
    assert_eq!(
        report.after.get("a"),
        None,
        "a removed, yet chosen: {report:?}"
    );
    assert!(
        report.after.get("c").copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    assert_eq!(
        a.accepted(),
        report.before.get("a").copied().unwrap_or(0) + 1,
        "a accepted only connections from before its removal and the held one"
    );
    // A connection to the removed backend finishes normally.
    held.write_all(b"after removal\n").await.unwrap();
    assert_eq!(
        read_line(&mut held, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("after removal")
    );
    let ids: Vec<String> = daemon.get("/v1/pools/p").await["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["b", "c"]);
}

/// Counts which backend answers `n` sequential connections.
async fn distribution(proxy: SocketAddr, n: usize) -> (u64, u64) {
    let (mut a, mut b) = (0, 0);
    for _ in 0..n {
        match one_exchange(proxy).await.as_deref() {
            Ok("a") => a += 1,
            Ok("b") => b += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (a, b)
}

#[tokio::test]
async fn reload_under_load_applies_new_weights_by_api_and_by_sighup() {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let port = free_port();
    let proxy = local(port);
    let weights = |wa: u32, wb: u32, version: u32| {
        let pool = [("a", a.addr, wa), ("b", b.addr, wb)];
        format!(
            "version = {version}\n{}",
            tcp_config(port, "weighted_round_robin", &pool, "", "")
        )
    };
    let daemon = Daemon::start(&weights(1, 1, 1)).await;
    let (da, db) = distribution(proxy, 40).await;
    assert_eq!((da, db), (20, 20), "1:1 at start");

    let mut held = hold_connection_to(proxy, "a").await;
    let load = Load::start(proxy, 4, 300);
    let_traffic_flow(proxy, &daemon, 40).await;
    daemon.rewrite_config(&weights(3, 1, 2));
    let (status, answer) = daemon.call(Method::POST, "/v1/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["applied"]["version"], 2);
    assert_eq!(
        answer["applied"]["listeners_added"],
        json!([]),
        "the listener kept its socket"
    );
    let_traffic_flow(proxy, &daemon, 60).await;
    let report = load.finish().await;
    assert!(
        report.failures.is_empty(),
        "failed requests: {:?}",
        report.failures
    );
    let (da, db) = distribution(proxy, 80).await;
    assert!(
        (58..=62).contains(&da) && da + db == 80,
        "3:1 after the reload: a {da}, b {db}"
    );

    // SIGHUP takes the same path.
    daemon.rewrite_config(&weights(1, 3, 3));
    daemon.child.signal(Signal::SIGHUP);
    let mut version = json!(null);
    for _ in 0..500 {
        version = daemon.get("/v1/status").await["config_version"].clone();
        if version == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(version, 3, "SIGHUP reloaded: {}", daemon.log());
    let (da, db) = distribution(proxy, 80).await;
    assert!(
        (18..=22).contains(&da) && da + db == 80,
        "1:3 after SIGHUP: a {da}, b {db}"
    );

    held.write_all(b"across reloads\n").await.unwrap();
    assert_eq!(
        read_line(&mut held, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("across reloads")
    );
}

#[tokio::test]
async fn a_bad_config_on_reload_is_refused_and_the_old_one_keeps_running() {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let port = free_port();
    let proxy = local(port);
    let good = tcp_config(
        port,
        "weighted_round_robin",
        &[("a", a.addr, 3), ("b", b.addr, 1)],
        "",
        "",
    );
    let daemon = Daemon::start(&good).await;

    let bad = good
        .replace("id = \"b\"", "id = \"a\"")
        .replace("weight = 3", "weight = 30000");
    daemon.rewrite_config(&bad);
    let load = Load::start(proxy, 2, 200);
    let (status, answer) = daemon.call(Method::POST, "/v1/reload", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid");
    let message = answer["error"]["message"].as_str().unwrap();
    let out = std::process::Command::new(tandemd_bin())
        .arg("check-config")
        .arg(&daemon.config)
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert!(!expected.is_empty());
    assert_eq!(
        message, expected,
        "the reload refusal is check-config's report"
    );
    let_traffic_flow(proxy, &daemon, 40).await;
    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);

    let status = daemon.get("/v1/status").await;
    assert_eq!(status["config_version"], 1);
    assert_eq!(
        status["pools"][0]["backends"][0]["weight"], 3,
        "the old config runs"
    );
    let (da, db) = distribution(proxy, 40).await;
    assert_eq!((da, db), (30, 10), "still 3:1");
    assert!(
        daemon.log_contains("status=400").await,
        "the refusal is logged"
    );
}

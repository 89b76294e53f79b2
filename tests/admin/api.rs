//! The admin API of a real `tandemd run`, over its real Unix socket: every
//! endpoint and its JSON errors (access, tokens and the socket: access.rs).

use super::{local, two_backends};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;
use tandem_tests::admin::*;
use tandem_tests::*;

#[tokio::test]
async fn status_pools_and_backends_describe_the_running_node() {
    let (a, _b, port, config) = two_backends().await;
    let daemon = Daemon::start(&config).await;
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "the socket is 0660"
    );
    for _ in 0..4 {
        assert!(which_backend(local(port)).await.is_some());
    }
    // The proxied connections close a moment after the client's: wait for a quiet node.
    let mut status = serde_json::Value::Null;
    for _ in 0..250 {
        status = daemon.get("/v1/status").await;
        if status["listeners"][0]["counters"]["active"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["node"], "test");
    assert_eq!(status["config_version"], 1);
    assert!(status["uptime_seconds"].as_u64().is_some(), "{status}");
    let front = &status["listeners"][0];
    assert_eq!(front["name"], "front");
    assert_eq!(front["protocol"], "tcp");
    assert_eq!(front["address"], local(port).to_string());
    assert_eq!(front["pool"], "p");
    assert_eq!(front["counters"]["accepted"], 4, "{front}");
    let pool = &status["pools"][0];
    assert_eq!(pool["name"], "p");
    assert_eq!(pool["algorithm"], "round_robin");
    let backends = pool["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2);
    let first = &backends[0];
    assert_eq!(first["id"], "a");
    assert_eq!(first["address"], a.addr.to_string());
    assert_eq!(first["state"], "enabled");
    assert_eq!(first["health"], "up");
    assert_eq!(first["weight"], 1);
    assert_eq!(first["active"], 0);
    assert_eq!(first["ejected"], false);
    assert_eq!(first["drained"], false);
    assert_eq!(first["health_history"], json!([]));
    let picks: u64 = backends
        .iter()
        .map(|b| b["total_picks"].as_u64().unwrap())
        .sum();
    assert_eq!(picks, 4);

    let pools = daemon.get("/v1/pools").await;
    assert_eq!(pools["pools"][0]["backends"], pool["backends"]);
    assert_eq!(daemon.get("/v1/pools/p").await["name"], "p");
    let b = daemon.backend("p", "b").await;
    assert_eq!(
        (b["id"].clone(), b["weight"].clone()),
        (json!("b"), json!(2))
    );
    assert_eq!(daemon.get("/v1/vrrp").await, json!({ "instances": [] }));
}

/// (method, path, body, status, error code, words in the message)
type ErrorCase = (
    Method,
    &'static str,
    Option<&'static str>,
    StatusCode,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn errors_are_json_with_a_code_and_the_right_status() {
    let (_a, _b, _port, config) = two_backends().await;
    let daemon = Daemon::start(&config).await;
    let cases: Vec<ErrorCase> = vec![
        (
            Method::GET,
            "/v1/pools/nope",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "no pool named \"nope\"",
        ),
        (
            Method::GET,
            "/v1/pools/p/backends/zz",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "pool \"p\" has no backend \"zz\"",
        ),
        (
            Method::POST,
            "/v1/pools/p/backends/zz/drain",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "pool \"p\" has no backend \"zz\"",
        ),
        (
            Method::POST,
            "/v1/pools/nope/backends/a/enable",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "no pool named \"nope\"",
        ),
        (
            Method::PUT,
            "/v1/pools/p/backends/a/weight",
            Some(r#"{"weight":20000}"#),
            StatusCode::BAD_REQUEST,
            "invalid",
            "pool[0].backend[0].weight: must be at most 10000",
        ),
        (
            Method::PUT,
            "/v1/pools/p/backends/a/weight",
            Some(r#"{"weight":"x"}"#),
            StatusCode::BAD_REQUEST,
            "invalid",
            "request body: invalid type",
        ),
        (
            Method::POST,
            "/v1/pools/p/backends",
            Some(r#"{"id":"a","address":"127.0.0.1:9"}"#),
            StatusCode::BAD_REQUEST,
            "invalid",
            "pool \"p\" already has a backend \"a\"",
        ),
        (
            Method::POST,
            "/v1/pools/p/backends",
            Some(r#"{"id":"c","address":"nowhere"}"#),
            StatusCode::BAD_REQUEST,
            "invalid",
            "\"nowhere\" has no port",
        ),
        (
            Method::POST,
            "/v1/pools/p/backends",
            Some(r#"{"id":"bad id!","address":"127.0.0.1:9"}"#),
            StatusCode::BAD_REQUEST,
            "invalid",
            "pool[0].backend[2].id",
        ),
        (
            Method::DELETE,
            "/v1/pools/p/backends/zz",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "pool \"p\" has no backend \"zz\"",
        ),
        (
            Method::POST,
            "/v1/status",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET",
        ),
        (
            Method::GET,
            "/v1/reload",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST",
        ),
        (
            Method::POST,
            "/v1/pools/p/backends/a/weight",
            Some(r#"{"weight":2}"#),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use PUT",
        ),
        (
            Method::GET,
            "/v2/status",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "no endpoint GET /v2/status",
        ),
        (
            Method::POST,
            "/v1/pools/p/backends/a/explode",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            "no endpoint",
        ),
    ];
    for (method, path, body, status, code, words) in cases {
        let (got, value) = daemon.call(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {value}");
        assert_eq!(value["error"]["code"], code, "{method} {path}: {value}");
        let message = value["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(words),
            "{method} {path}: {message:?} lacks {words:?}"
        );
    }
    // Nothing of that changed the running config.
    assert_eq!(daemon.get("/v1/status").await["config_version"], 1);
    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let (_, headers, _) = exchange(stream, Method::DELETE, "/v1/status", &[], None)
        .await
        .unwrap();
    assert_eq!(headers["allow"], "GET");
}

#[tokio::test]
async fn backend_writes_change_the_running_pool() {
    let (_a, _b, port, config) = two_backends().await;
    let daemon = Daemon::start(&config).await;
    let post = |path: &'static str| daemon.call(Method::POST, path, None);

    let (status, answer) = post("/v1/pools/p/backends/a/drain").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["backend"]["state"], "drain");
    assert_eq!(answer["backend"]["drained"], true, "no connection was open");
    assert_eq!(answer["applied"]["version"], 2);
    assert_eq!(answer["applied"]["pools_updated"], json!(["p"]));
    for _ in 0..4 {
        assert_eq!(which_backend(local(port)).await.as_deref(), Some("b"));
    }
    let (_, answer) = post("/v1/pools/p/backends/a/disable").await;
    assert_eq!(answer["backend"]["state"], "disabled");
    assert_eq!(
        answer["backend"]["drained"], false,
        "drained means state drain"
    );
    let (_, answer) = post("/v1/pools/p/backends/a/enable").await;
    assert_eq!(answer["backend"]["state"], "enabled");

    let (status, answer) = daemon
        .call(
            Method::PUT,
            "/v1/pools/p/backends/a/weight",
            Some(r#"{"weight":7}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["backend"]["weight"], 7);
    assert_eq!(daemon.backend("p", "a").await["weight"], 7);

    let c = NameBackend::start("c").await;
    let body =
        json!({"id": "c", "address": c.addr.to_string(), "weight": 3, "max_connections": 10});
    let (status, answer) = daemon
        .call(
            Method::POST,
            "/v1/pools/p/backends",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["backend"]["id"], "c");
    assert_eq!(answer["backend"]["max_connections"], 10);
    let (status, answer) = daemon
        .call(Method::DELETE, "/v1/pools/p/backends/c", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["removed"], "c");
    let (status, _) = daemon
        .call(Method::GET, "/v1/pools/p/backends/c", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        daemon.get("/v1/status").await["config_version"],
        7,
        "one version per write"
    );
}

#[tokio::test]
async fn health_history_keeps_the_changes_with_their_reasons() {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let port = free_port();
    let checks = "[pool.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n";
    let config = tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1), ("b", b.addr, 1)],
        "",
        checks,
    );
    let daemon = Daemon::start(&config).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let _gone = b.kill();
    let mut last = Value::Null;
    for _ in 0..200 {
        last = daemon.backend("p", "b").await;
        if last["health"] == "down" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["health"], "down", "{last}");
    let event = &last["health_history"][0];
    assert_eq!(event["health"], "down");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .contains("consecutive checks failed"),
        "{event}"
    );
    let at = event["at"].as_u64().unwrap();
    assert!(
        at >= before && at <= before + 30,
        "unix time: {at} vs {before}"
    );
    assert_eq!(daemon.backend("p", "a").await["health_history"], json!([]));
}

#[tokio::test]
async fn config_check_answers_with_check_configs_own_lines() {
    let (_a, _b, _port, config) = two_backends().await;
    let daemon = Daemon::start(&config).await;
    let (status, answer) = daemon
        .call(
            Method::POST,
            "/v1/config/check?origin=good.toml",
            Some(&config),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({ "ok": true, "problems": [] }));

    let bad = config.replace("id = \"b\"", "id = \"a\"").replace(
        "algorithm = \"round_robin\"",
        "algorithm = \"round_robin\"\npanic_threshold = 2.0",
    );
    let file = daemon.dir.write("bad.toml", &bad);
    let origin = file.display().to_string();
    let (status, answer) = daemon
        .call(
            Method::POST,
            &format!("/v1/config/check?origin={origin}"),
            Some(&bad),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a bad config is a successful check");
    assert_eq!(answer["ok"], false);
    let out = std::process::Command::new(tandemd_bin())
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let expected: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert_eq!(answer["problems"], json!(expected));
}

#[tokio::test]
async fn metrics_are_served_in_the_openmetrics_text_format() {
    let (_a, _b, port, config) = two_backends().await;
    let daemon = Daemon::start(&config).await;
    assert!(which_backend(local(port)).await.is_some());
    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let (status, headers, body) = exchange(stream, Method::GET, "/metrics", &[], None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], tandemd::metrics::CONTENT_TYPE);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("# TYPE tandem_"), "{text}");
    assert!(
        text.trim_end().ends_with("# EOF"),
        "a complete exposition: {text}"
    );
    assert!(
        text.contains("listener=\"front\""),
        "the running listener is in it: {text}"
    );
    let (status, _) = daemon.call(Method::POST, "/metrics", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

//! L7 access rules (the small WAF), the listener's total connection cap and the JSON
//! access log, end to end.

use super::{addr, ip, is_token, url};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_tests::http_kit::*;
use tandem_tests::*;

/// The value of cookie `name` in a Set-Cookie header value.

#[tokio::test]
async fn access_rules_allow_and_deny_in_order() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let rules = r#"
[[listener.rule]]
action = "allow"
client_cidrs = ["127.0.0.5/32"]
path_prefix = "/admin"

[[listener.rule]]
action = "deny"
client_cidrs = ["127.0.0.2/32"]

[[listener.rule]]
action = "deny"
methods = ["DELETE", "TRACE"]

[[listener.rule]]
action = "deny"
path_prefix = "/admin"

[[listener.rule]]
action = "deny"
path_regex = "\\.(php|env)$"

[[listener.rule]]
action = "deny"
header = { name = "User-Agent", regex = "(?i)sqlmap|nikto" }
"#;
    let toml = Config::test_node()
        .listener(Listener::http("edge", port).pool("app").raw(rules))
        .pool(Pool::of("app", &[&app]).algorithm("round_robin"))
        .to_toml();
    let node = start_node(&toml);

    // (curl arguments before the URL, path, expected status)
    let cases: &[(&[&str], &str, u16)] = &[
        (&[], "/", 200),                              // no rule matches: allowed
        (&["--interface", "127.0.0.2"], "/", 403),    // denied client
        (&["--interface", "127.0.0.3"], "/", 200),    // a neighbour is not
        (&["-X", "DELETE"], "/thing", 403),           // method
        (&["-X", "TRACE"], "/", 403),                 // method
        (&["-X", "PUT"], "/thing", 200),              // other methods pass
        (&[], "/admin", 403),                         // path prefix
        (&[], "/admin/users", 403),                   // under it
        (&[], "/administrator", 200),                 // segment-aware: not under /admin
        (&["--path-as-is"], "//admin/x", 403),        // normalised before matching
        (&["--path-as-is"], "/public/../admin", 403), // dot segments resolved
        (&[], "/%61dmin", 403),                       // unreserved escapes decoded
        (&[], "/index.php", 403),                     // path regex
        (&[], "/a/.env", 403),                        // path regex
        (&[], "/index.php.txt", 200),                 // anchored at the end
        (&[], "/index.php?x=1", 403),                 // the path matches, whatever the query
        (&[], "/page?file=.env", 200),                // only the path is searched
        (&["-A", "sqlmap/1.7"], "/", 403),            // header regex
        (&["-A", "Mozilla/5.0 (NiKtO)"], "/", 403),   // case-insensitive regex
        (&["-A", "curl/8"], "/", 200),
        // Allow before deny: 127.0.0.5 may reach /admin, even with a denied user agent
        // (the first matching rule decides).
        (&["--interface", "127.0.0.5"], "/admin/x", 200),
        (&["--interface", "127.0.0.5", "-A", "sqlmap"], "/admin", 200),
        // ...but outside /admin the allow rule does not match, so later rules apply.
        (&["--interface", "127.0.0.5", "-A", "sqlmap"], "/", 403),
    ];
    let mut denied = 0;
    for (args, path, want) in cases {
        let target = url(port, path);
        let mut all: Vec<&str> = args.to_vec();
        all.push(&target);
        let r = curl(&all).await;
        assert_eq!(r.status, *want, "curl {all:?}: {r:?}");
        if *want == 403 {
            denied += 1;
            assert_eq!(
                r.backend(),
                None,
                "a denied request never reaches a backend"
            );
            assert!(r.body.contains("denied"), "{r:?}");
        } else {
            assert_eq!(r.backend(), Some("app"));
        }
    }
    let allowed = cases.len() - denied;
    assert_eq!(app.requests(), allowed as u64);
    let stats = node.http().listener("edge").unwrap().stats;
    assert_eq!(stats.denied.load(Ordering::Relaxed), denied as u64);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn json_access_log_from_the_daemon() {
    let app = HttpBackend::start("logged").await;
    let port = free_port();
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml(
        "web",
        port,
        "app",
        "[listener.http]\naccess_log_format = \"json\"\n",
    );
    toml += &pool_toml("app", "round_robin", &[&app], "");
    let dir = std::env::temp_dir().join(format!("tandem-l7-log-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tandem.toml");
    std::fs::write(&file, &toml).unwrap();

    let mut child = Child(
        std::process::Command::new(tandemd_bin())
            .args(["run", "--config"])
            .arg(&file)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting tandemd"),
    );
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.0.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    assert!(
        wait_listening(addr(port), Duration::from_secs(10)).await,
        "tandemd did not listen; stderr: {:?}",
        lines.lock().unwrap()
    );

    let r = curl(&[
        "-H",
        "Host: log.example.test",
        "-H",
        "X-Request-Id: req-abc-123",
        &url(port, "/hello/world?x=1&y=a%20b"),
    ])
    .await;
    assert_eq!(r.status, 200);
    let r2 = curl(&["-X", "POST", "-d", "a=1", &url(port, "/form")]).await;
    assert_eq!(r2.status, 200);
    // A request id with a quote and a backslash must still give valid JSON; such a Host
    // is refused (400: not a host[:port]) and logged as no host.
    let r3 = curl(&[
        "-H",
        "Host: we\"ird\\host",
        "-H",
        "X-Request-Id: we\"ird\\id",
        &url(port, "/escape"),
    ])
    .await;
    assert_eq!(r3.status, 400);

    // The access lines: the JSON object after the tracing prefix.
    let find = |needle: &str| {
        lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("\"request_id\"") && l.contains(needle))
            .cloned()
    };
    let parse = |line: &str| -> serde_json::Value {
        let start = line.find('{').expect("a JSON object in the access line");
        serde_json::from_str(&line[start..])
            .unwrap_or_else(|e| panic!("access line is not JSON ({e}): {line}"))
    };
    assert!(
        eventually(Duration::from_secs(5), || find("req-abc-123").is_some()
            && find("/form").is_some()
            && find("/escape").is_some())
        .await,
        "no access lines; stderr: {:?}",
        lines.lock().unwrap()
    );
    let first = parse(&find("req-abc-123").unwrap());
    assert_eq!(first["listener"], "web");
    let client = first["client"].as_str().unwrap();
    assert!(
        client.parse::<SocketAddr>().unwrap().ip() == ip(1),
        "{first}"
    );
    assert_eq!(first["host"], "log.example.test");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/hello/world?x=1&y=a%20b");
    assert_eq!(first["status"], 200);
    assert_eq!(first["upstream"], app.addr.to_string());
    assert_eq!(first["request_id"], "req-abc-123");
    assert!(first["total_ms"].as_f64().unwrap() >= 0.0, "{first}");
    // The backend got the same request id.
    assert_eq!(app.seen()[0].header("x-request-id"), Some("req-abc-123"));

    let second = parse(&find("/form").unwrap());
    assert_eq!(second["method"], "POST");
    assert_eq!(second["host"], format!("127.0.0.1:{port}"));
    let id = second["request_id"].as_str().unwrap();
    assert!(is_token(id), "a generated request id: {second}");
    assert_eq!(app.seen()[1].header("x-request-id"), Some(id));

    let third = parse(&find("/escape").unwrap());
    assert_eq!(third["request_id"], "we\"ird\\id", "{third}");
    assert_eq!(third["host"], "-", "{third}");
    assert_eq!(third["status"], 400, "{third}");

    child.signal(nix::sys::signal::Signal::SIGTERM);
    let status = child.wait_for_exit(Duration::from_secs(5)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `max_connections` on an http listener caps its client connections, whatever their
/// address: one more is accepted and closed at once, counted, and shown in the metrics.
#[tokio::test]
async fn max_connections_caps_an_http_listener() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let toml = Config::test_node()
        .listener(
            Listener::http("front", port)
                .pool("p")
                .key("max_connections", "2"),
        )
        .pool(Pool::new("p").backend("app", app.addr))
        .to_toml();
    let node = start_node(&toml);
    let front = addr(port);
    let mut c1 = HttpConn::open(front, None).await.unwrap();
    let mut c2 = HttpConn::open(front, None).await.unwrap();
    assert_eq!(c1.send("GET", "/", &[], b"").await.unwrap().status, 200);
    assert_eq!(c2.send("GET", "/", &[], b"").await.unwrap().status, 200);
    // A third client: accepted and closed without an answer.
    let (got, closed) = raw_exchange(
        front,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        closed && got.is_empty(),
        "refused without an answer: {got:?}"
    );
    let stats = node.http().listener("front").unwrap().stats;
    assert!(stats.over_limit.load(Ordering::Relaxed) >= 1);
    // The two open connections still work; once one closes, a new one gets in.
    assert_eq!(c1.send("GET", "/", &[], b"").await.unwrap().status, 200);
    drop(c2);
    let mut back = false;
    for _ in 0..100 {
        if let Ok(r) = request_from(front, None, "GET", "/", &[], b"").await {
            back = r.status == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "a slot freed by a closed connection is reused");
    node.shutdown_within(Duration::from_secs(1)).await;
}

//! Prometheus metrics end to end: a node with an L4 and an HTTP listener in front of real
//! loopback backends, scraped with `tandemd::metrics::render` and read with a real parser
//! (prometheus-parse). Counters must follow the traffic the test sends and what the
//! backends saw; health and ejection states must follow backends dying.

#[path = "metrics/cluster.rs"]
mod cluster;
#[path = "metrics/http_metrics.rs"]
mod http_metrics;
mod metrics_support;

use metrics_support::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tandem_tests::http_kit::*;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects through the L4 listener, reads the greeting, has "ping\n" echoed, half-closes
/// and reads to the end. Returns the backend's name.
async fn echo_once(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connecting to l4");
    let name = read_line(&mut s, Duration::from_secs(5))
        .await
        .expect("greeting");
    s.write_all(b"ping\n").await.unwrap();
    let echo = read_line(&mut s, Duration::from_secs(5)).await;
    assert_eq!(echo.as_deref(), Some("ping"));
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_l4_and_http_traffic() {
    let (t1, t2) = (
        NameBackend::start("t1").await,
        NameBackend::start("t2").await,
    );
    let (h1, h2) = (
        HttpBackend::start("h1").await,
        HttpBackend::start("h2").await,
    );
    let (l4, web) = (free_port(), free_port());
    let node = start_node(&config(
        l4,
        web,
        &[("t1", t1.addr), ("t2", t2.addr)],
        &[("h1", h1.addr), ("h2", h2.addr)],
        "",
    ));
    let m = Metrics::of(&node).await;
    for listener in ["l4", "web"] {
        assert_eq!(m.value(ACCEPTED, &[("listener", listener)]), 0.0);
    }
    assert_eq!(
        m.value("tandem_http_requests_total", &[("listener", "web")]),
        0.0
    );
    assert_eq!(
        m.histogram_count(&[("pool", "web"), ("backend", "h1")]),
        0.0
    );
    assert_eq!(m.value("tandem_backend_up", &[("backend", "t2")]), 1.0);

    // L4: four echo exchanges, 5 bytes in and greeting + 5 bytes out each.
    let mut out_bytes = 0;
    for _ in 0..4 {
        out_bytes += echo_once(addr(l4)).await.len() + 1 + 5;
    }
    let m = scrape_until(&node, |m| {
        m.value(ACTIVE, &[("listener", "l4")]) == 0.0
            && m.value(BYTES, &[("listener", "l4"), ("direction", "out")]) == out_bytes as f64
    })
    .await;
    let l4_labels = [("listener", "l4"), ("protocol", "tcp")];
    assert_eq!(m.value(ACCEPTED, &l4_labels), 4.0);
    assert_eq!(
        m.value(BYTES, &[("listener", "l4"), ("direction", "in")]),
        20.0
    );
    for t in ["t1", "t2"] {
        let b = [("pool", "tcp"), ("backend", t)];
        assert_eq!(m.value("tandem_backend_picks_total", &b), 2.0, "{t}");
        assert_eq!(m.value("tandem_backend_active_connections", &b), 0.0);
    }
    assert_eq!(t1.accepted() + t2.accepted(), 4);

    // HTTP: five 200s, then h2 answers 503; two more requests reach each backend once.
    let mut by_backend: BTreeMap<(String, u16), u64> = BTreeMap::new();
    for i in 0..7 {
        if i == 5 {
            h2.set_status(503);
        }
        let r = http_get(addr(web), "/", &[]).await;
        let backend = r.backend().expect("a backend answered").to_string();
        *by_backend.entry((backend, r.status)).or_default() += 1;
    }
    assert_eq!(
        by_backend.get(&("h2".into(), 503)),
        Some(&1),
        "{by_backend:?}"
    );
    let m = scrape_until(&node, |m| m.value(ACTIVE, &[("listener", "web")]) == 0.0).await;
    assert_eq!(m.value(ACCEPTED, &[("listener", "web")]), 7.0);
    assert_eq!(
        m.value("tandem_http_requests_total", &[("listener", "web")]),
        7.0
    );
    let responses = |class| {
        m.value(
            "tandem_http_responses_total",
            &[("listener", "web"), ("class", class)],
        )
    };
    assert_eq!(
        (responses("2xx"), responses("5xx"), responses("4xx")),
        (6.0, 1.0, 0.0)
    );
    for (b, backend) in [("h1", &h1), ("h2", &h2)] {
        let labels = [("pool", "web"), ("backend", b)];
        let seen = |status| {
            by_backend
                .get(&(b.to_string(), status))
                .copied()
                .unwrap_or(0)
        };
        let class = |c| {
            m.value(
                "tandem_backend_requests_total",
                &[labels[0], labels[1], ("class", c)],
            )
        };
        assert_eq!(class("2xx"), seen(200) as f64, "{b}");
        assert_eq!(class("5xx"), seen(503) as f64, "{b}");
        let errors_5xx = [labels[0], labels[1], ("kind", "status_5xx")];
        assert_eq!(m.value(ERRORS, &errors_5xx), seen(503) as f64, "{b}");
        // One histogram observation per request the backend answered.
        assert_eq!(m.histogram_count(&labels), backend.requests() as f64, "{b}");
        assert_eq!(
            m.value("tandem_backend_picks_total", &labels),
            backend.requests() as f64
        );
        let buckets = m.buckets(&labels);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(buckets.last().copied(), Some(backend.requests() as f64));
        let sum = m.value("tandem_backend_response_seconds_sum", &labels);
        assert!(
            sum > 0.0 && sum < 5.0 * backend.requests() as f64,
            "sum {sum}"
        );
    }
    assert_eq!(h1.requests() + h2.requests(), 7);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_state_follows_a_killed_and_restarted_backend() {
    let (t1, t2) = (
        NameBackend::start("t1").await,
        NameBackend::start("t2").await,
    );
    let h1 = HttpBackend::start("h1").await;
    let check = "[pool.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n[pool.passive]\nconsecutive_failures = 0\n";
    let node = start_node(&config(
        free_port(),
        free_port(),
        &[("t1", t1.addr), ("t2", t2.addr)],
        &[("h1", h1.addr)],
        check,
    ));
    let up =
        |m: &Metrics, b: &str| m.value("tandem_backend_up", &[("pool", "tcp"), ("backend", b)]);
    let ratio = |m: &Metrics| m.value("tandem_pool_healthy_ratio", &[("pool", "tcp")]);
    let m = Metrics::of(&node).await;
    assert_eq!((up(&m, "t1"), up(&m, "t2"), ratio(&m)), (1.0, 1.0, 1.0));

    let t2_addr = t2.kill();
    let m = scrape_until(&node, |m| up(m, "t2") == 0.0).await;
    assert_eq!((up(&m, "t1"), ratio(&m)), (1.0, 0.5));
    assert_eq!(m.value("tandem_pool_panic_mode", &[("pool", "tcp")]), 0.0);

    let _t2 = NameBackend::start_on("t2", t2_addr).await;
    let m = scrape_until(&node, |m| up(m, "t2") == 1.0).await;
    assert_eq!(ratio(&m), 1.0);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_counted_per_backend_with_ejections() {
    let t1 = NameBackend::start("t1").await;
    let h1 = HttpBackend::start("h1").await;
    let dead = addr(free_port()); // nothing listens here
    let (l4, web) = (free_port(), free_port());
    let passive = "[pool.passive]\nconsecutive_failures = 1\neject_for = \"60s\"\n";
    let node = start_node(&config(
        l4,
        web,
        &[("t1", t1.addr), ("dead", dead)],
        &[("h1", h1.addr), ("dead", dead)],
        passive,
    ));
    // L4: the dead backend is tried once, ejected, and the client retried on t1.
    for _ in 0..3 {
        assert_eq!(which_backend(addr(l4)).await.as_deref(), Some("t1"));
    }
    // HTTP: a GET that met the dead backend was retried on h1.
    for _ in 0..4 {
        assert_eq!(http_get(addr(web), "/", &[]).await.status, 200);
    }
    let m = Metrics::of(&node).await;
    let err = |pool, backend, kind| {
        m.value(
            ERRORS,
            &[("pool", pool), ("backend", backend), ("kind", kind)],
        )
    };
    let tcp_dead = [("pool", "tcp"), ("backend", "dead")];
    assert_eq!(err("tcp", "dead", "connect"), 1.0);
    assert_eq!(err("tcp", "t1", "connect"), 0.0);
    assert_eq!(m.value("tandem_backend_ejections_total", &tcp_dead), 1.0);
    assert_eq!(m.value("tandem_backend_ejected", &tcp_dead), 1.0);
    assert_eq!(
        m.value(
            "tandem_listener_backend_connect_failures_total",
            &[("listener", "l4")]
        ),
        1.0
    );
    let retries = m.value("tandem_http_retries_total", &[("listener", "web")]);
    assert!(retries >= 1.0, "round robin sent a GET to the dead backend");
    assert_eq!(err("web", "dead", "connect"), retries);
    assert_eq!(
        m.histogram_count(&[("pool", "web"), ("backend", "dead")]),
        0.0
    );
    assert_eq!(
        m.histogram_count(&[("pool", "web"), ("backend", "h1")]),
        4.0
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_and_node_metrics_are_sane_and_vrrp_is_absent() {
    let t1 = NameBackend::start("t1").await;
    let h1 = HttpBackend::start("h1").await;
    let node = start_node(&config(
        free_port(),
        free_port(),
        &[("t1", t1.addr)],
        &[("h1", h1.addr)],
        "",
    ));
    let text = tandemd::metrics::render(&node).await;
    assert!(!text.contains("tandem_vrrp"), "no VRRP configured:\n{text}");
    let m = Metrics::parse(&text);
    assert_eq!(
        m.value("tandem_config_version", &[]),
        node.config().cluster.version as f64
    );
    assert_eq!(m.value("tandem_build_info", &[("node", "test")]), 1.0);
    let fds = m.value("tandem_process_open_fds", &[]);
    assert!(
        fds >= 4.0 && fds <= m.value("tandem_process_max_fds", &[]),
        "{fds}"
    );
    let rss = m.value("tandem_process_resident_memory_bytes", &[]);
    assert!(rss > 1e6 && rss <= m.value("tandem_process_virtual_memory_bytes", &[]));
    assert!(m.value("tandem_process_threads", &[]) >= 2.0);
    assert!(m.value("tandem_process_cpu_seconds_total", &[]) >= 0.0);
    // The standard names carry the same values (the old ones stay for one release).
    for name in [
        "process_max_fds",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
    ] {
        let old = m.value(&format!("tandem_{name}"), &[]);
        assert_eq!(m.value(name, &[]), old, "{name}");
    }
    assert!(m.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(m.value("process_open_fds", &[]) >= 4.0);
    assert!(m.value("process_cpu_seconds_total", &[]) >= 0.0);
    assert_eq!(text.matches("# EOF").count(), 1, "one EOF, at the end");
    assert!(text.ends_with("# EOF\n"));
    let uptime = m.value("tandem_process_uptime_seconds", &[]);
    assert!((0.0..60.0).contains(&uptime), "{uptime}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = m.value("tandem_process_start_time_seconds", &[]);
    assert!(
        (start + uptime - now).abs() < 5.0,
        "start {start} + uptime {uptime} vs {now}"
    );
    let later = scrape_until(&node, |m| {
        m.value("tandem_process_uptime_seconds", &[]) > uptime
    })
    .await;
    assert!(later.value("tandem_process_uptime_seconds", &[]) < uptime + 30.0);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vrrp_instances_expose_state_priorities_and_drops() {
    use tandem_vrrp::machine::State;
    let t1 = NameBackend::start("t1").await;
    let h1 = HttpBackend::start("h1").await;
    let cfg = config(
        free_port(),
        free_port(),
        &[("t1", t1.addr)],
        &[("h1", h1.addr)],
        "",
    );
    let node = start_node(&cfg);
    let mut snapshot = tandemd::metrics::Snapshot::gather(&node).await;
    assert!(snapshot.vrrp.is_empty(), "no VRRP configured");
    snapshot.vrrp.push(vrrp_sample(
        "web-vip",
        State::Master,
        &[("bad_ttl", 3), ("odd", 1)],
    ));
    snapshot
        .vrrp
        .push(vrrp_sample("db-vip", State::Backup, &[]));
    let m = Metrics::parse(&snapshot.encode());
    let state = |group, s| m.value("tandem_vrrp_state", &[("group", group), ("state", s)]);
    for s in ["initialize", "backup", "master", "fault"] {
        assert_eq!(state("web-vip", s), f64::from(s == "master"), "{s}");
        assert_eq!(state("db-vip", s), f64::from(s == "backup"), "{s}");
    }
    let web = [("group", "web-vip")];
    assert_eq!(m.value("tandem_vrrp_priority", &web), 150.0);
    assert_eq!(m.value("tandem_vrrp_effective_priority", &web), 120.0);
    assert_eq!(m.value("tandem_vrrp_holds_addresses", &web), 1.0);
    assert_eq!(
        m.value("tandem_vrrp_holds_addresses", &[("group", "db-vip")]),
        0.0
    );
    assert_eq!(m.value("tandem_vrrp_adverts_sent_total", &web), 40.0);
    assert_eq!(m.value("tandem_vrrp_adverts_received_total", &web), 7.0);
    assert_eq!(m.value("tandem_vrrp_transitions_total", &web), 2.0);
    let dropped = |group, reason| {
        m.value(
            "tandem_vrrp_adverts_dropped_total",
            &[("group", group), ("reason", reason)],
        )
    };
    assert_eq!(dropped("web-vip", "bad_ttl"), 3.0);
    assert_eq!(
        dropped("web-vip", "odd"),
        1.0,
        "reasons not known in advance show too"
    );
    for reason in tandemd::metrics::KNOWN_DROP_REASONS {
        assert_eq!(dropped("db-vip", reason), 0.0, "known reasons start at 0");
    }
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_docs_name_only_metrics_the_exposition_has() {
    use tandem_vrrp::machine::State;
    let t1 = NameBackend::start("t1").await;
    let h1 = HttpBackend::start("h1").await;
    let mut cfg = config(
        free_port(),
        free_port(),
        &[("t1", t1.addr)],
        &[("h1", h1.addr)],
        "",
    );
    let udp = free_udp_port();
    cfg += &Config::shared()
        .listener(Listener::udp("dns", udp).pool("tcp"))
        .to_toml();
    let node = start_node(&cfg);
    let mut snapshot = tandemd::metrics::Snapshot::gather(&node).await;
    snapshot.vrrp.push(vrrp_sample("vip", State::Backup, &[]));
    // A cluster member (leader: every leader-only series) and a sticky pool.
    let mut cluster = cluster_sample();
    cluster.status.state = "Leader".into();
    cluster.status.leader = Some(cluster.status.id);
    cluster.status.millis_since_quorum_ack = Some(40);
    for m in &mut cluster.status.members {
        m.matched_index = Some(9);
    }
    snapshot.cluster = Some(cluster);
    snapshot.sticky.push(("web".into(), 3));
    let m = Metrics::parse(&snapshot.encode());
    let names = m.names();

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/");
    let json = std::fs::read_to_string(format!("{root}grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert!(dashboard["panels"]
        .as_array()
        .is_some_and(|p| p.len() >= 10));
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    let used: std::collections::BTreeSet<String> =
        exprs.iter().flat_map(|e| metric_names_in(e)).collect();
    assert!(used.len() >= 15, "the dashboard uses the metrics: {used:?}");
    let unknown: Vec<&String> = used.difference(&names).collect();
    assert!(
        unknown.is_empty(),
        "dashboard queries name metrics the exposition lacks: {unknown:?}"
    );
    // Labels too: every `by (...)` label is carried by the query's metrics in the scrape
    // (`instance` is Prometheus'), and the L4 panels' protocol matcher selects series.
    for expr in &exprs {
        let metrics = metric_names_in(expr);
        let series: Vec<_> = m
            .scrape
            .samples
            .iter()
            .filter(|s| {
                metrics.contains(&s.metric) || metrics.contains(&format!("{}_bucket", s.metric))
            })
            .collect();
        let carried: std::collections::BTreeSet<&str> = series
            .iter()
            .flat_map(|s| s.labels.keys().map(String::as_str))
            .chain(["instance", "le"])
            .collect();
        for clause in expr.split("by (").skip(1) {
            let labels = clause.split(')').next().unwrap_or_default();
            for label in labels.split(',').map(str::trim) {
                assert!(carried.contains(label), "{expr}: no series has {label}");
            }
        }
        if expr.contains(r#"protocol=~"tcp|udp""#) {
            assert!(
                series
                    .iter()
                    .any(|s| matches!(s.labels.get("protocol"), Some("tcp" | "udp"))),
                "{expr}: selects no L4 series"
            );
        }
    }
    // L4-only pools do not look idle: their connections, open counts and bytes are shown.
    for needed in [
        r#"tandem_listener_connections_accepted_total{instance=~"$instance",protocol=~"tcp|udp"}"#,
        r#"tandem_listener_connections_active{instance=~"$instance",protocol=~"tcp|udp"}"#,
        r#"tandem_listener_bytes_total{instance=~"$instance",protocol=~"tcp|udp"}"#,
        "rate(tandem_backend_picks_total",
        "sum by (pool) (tandem_backend_active_connections",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "no dashboard query with {needed}"
        );
    }

    // Every exposed metric is documented; histogram series by their family name.
    let docs = std::fs::read_to_string(format!("{root}metrics.md")).unwrap();
    let histograms: std::collections::BTreeSet<&str> = m
        .scrape
        .samples
        .iter()
        .filter(|s| matches!(s.value, prometheus_parse::Value::Histogram(_)))
        .map(|s| s.metric.as_str())
        .collect();
    assert!(
        histograms.contains(HISTOGRAM)
            && histograms.contains("tandem_http_request_duration_seconds"),
        "{histograms:?}"
    );
    let family = |n: &str| {
        ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| n.strip_suffix(s).filter(|b| histograms.contains(b)))
            .unwrap_or(n)
            .to_string()
    };
    let exposed: std::collections::BTreeSet<String> = names.iter().map(|n| family(n)).collect();
    let undocumented: Vec<&String> = exposed
        .iter()
        .filter(|n| !docs.contains(&format!("`{n}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/metrics.md: {undocumented:?}"
    );
    // And the docs name nothing that does not exist (TLS listeners only: handshakes; ACME
    // listeners in a cluster only: the order counters).
    let documented: std::collections::BTreeSet<String> =
        metric_names_in(&docs).iter().map(|n| family(n)).collect();
    let only_with_tls = [
        "tandem_http_tls_handshake_failures_total",
        "tandem_tls_certificate_expiry_timestamp_seconds",
        "tandem_acme_orders_failed_total",
        "tandem_acme_order_failures_in_a_row",
    ];
    let phantom: Vec<&String> = documented
        .difference(&exposed)
        .filter(|n| !only_with_tls.contains(&n.as_str()))
        .collect();
    assert!(
        phantom.is_empty(),
        "docs/metrics.md names unknown metrics: {phantom:?}"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

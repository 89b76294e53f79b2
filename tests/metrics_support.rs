//! Reading a scrape in the metrics tests: parse with prometheus-parse, look samples up by
//! name and labels, poll until a condition holds; and the node config they share.

use prometheus_parse::{Scrape, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tandem_tests::{Config, Listener, Pool};

pub const ACCEPTED: &str = "tandem_listener_connections_accepted_total";
pub const ACTIVE: &str = "tandem_listener_connections_active";
pub const BYTES: &str = "tandem_listener_bytes_total";
pub const ERRORS: &str = "tandem_backend_errors_total";
pub const HISTOGRAM: &str = "tandem_backend_response_seconds";

pub fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// A node with a TCP listener "l4" (pool "tcp") on `l4` and an HTTP listener "web" (pool
/// "web") on `web`. `pool_extra` goes into both pools (health checks, passive ejection).
pub fn config(
    l4: u16,
    web: u16,
    tcp: &[(&str, SocketAddr)],
    http: &[(&str, SocketAddr)],
    pool_extra: &str,
) -> String {
    let mut config = Config::test_node()
        .listener(
            Listener::tcp("l4", l4)
                .pool("tcp")
                .key("connect_attempts", "2"),
        )
        .listener(Listener::http("web", web).pool("web"));
    for (name, backends) in [("tcp", tcp), ("web", http)] {
        let pool = backends.iter().fold(
            Pool::new(name).algorithm("round_robin").raw(pool_extra),
            |pool, (id, a)| pool.backend(id, a),
        );
        config = config.pool(pool);
    }
    config.to_toml()
}

/// One parsed scrape.
pub struct Metrics {
    pub scrape: Scrape,
    pub text: String,
}

impl Metrics {
    pub async fn of(node: &tandemd::Node) -> Metrics {
        Metrics::parse(&tandemd::metrics::render(node).await)
    }

    pub fn parse(text: &str) -> Metrics {
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics ends with # EOF:\n{text}"
        );
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Metrics {
            scrape: Scrape::parse(lines).expect("the exposition parses"),
            text: text.to_string(),
        }
    }

    /// The samples named `name` whose labels include every pair of `labels`.
    fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&prometheus_parse::Sample> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect()
    }

    /// The value of the one sample `name{labels...}`; panics when none or several match.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.matching(name, labels);
        assert!(
            found.len() == 1,
            "expected one sample {name}{labels:?}, found {}:\n{}",
            found.len(),
            self.text
        );
        match &found[0].value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name}: not a single value: {other:?}"),
        }
    }

    /// Cumulative bucket counts of the response-time histogram of one backend, by bound.
    pub fn buckets(&self, labels: &[(&str, &str)]) -> Vec<f64> {
        let found = self.matching(HISTOGRAM, labels);
        assert_eq!(found.len(), 1, "one histogram {labels:?}:\n{}", self.text);
        match &found[0].value {
            Value::Histogram(b) => {
                let mut b = b.clone();
                b.sort_by(|x, y| x.less_than.total_cmp(&y.less_than));
                assert_eq!(b.last().map(|c| c.less_than), Some(f64::INFINITY));
                b.iter().map(|c| c.count).collect()
            }
            other => panic!("not a histogram: {other:?}"),
        }
    }

    pub fn histogram_count(&self, labels: &[(&str, &str)]) -> f64 {
        self.value(&format!("{HISTOGRAM}_count"), labels)
    }

    /// Every sample name in the scrape (`_bucket` for histogram buckets, as queries use).
    pub fn names(&self) -> BTreeSet<String> {
        self.scrape
            .samples
            .iter()
            .map(|s| match s.value {
                Value::Histogram(_) => format!("{}_bucket", s.metric),
                _ => s.metric.clone(),
            })
            .collect()
    }
}

/// One scrape of a `tandemd` binary run by the admin fixture: GET /metrics on its admin
/// socket with an HTTP client, which must answer 200 with the exposition content type.
pub async fn scrape_daemon(daemon: &tandem_tests::admin::Daemon) -> Metrics {
    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .expect("the admin socket accepts");
    let (status, headers, body) =
        tandem_tests::admin::exchange(stream, http::Method::GET, "/metrics", &[], None)
            .await
            .expect("GET /metrics answers");
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(
        headers.get(http::header::CONTENT_TYPE).unwrap(),
        tandemd::metrics::CONTENT_TYPE
    );
    Metrics::parse(std::str::from_utf8(&body).expect("UTF-8 exposition"))
}

/// Scrapes every 20 ms until `check` holds (at most 5 s); returns that scrape, or panics
/// with the last one.
pub async fn scrape_until(node: &tandemd::Node, check: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = Metrics::of(node).await;
        if check(&m) {
            return m;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("condition not met within 5 s; last scrape:\n{}", m.text);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A VRRP instance as a scrape would see it (VRRP needs raw sockets and namespaces, so
/// the VRRP encoding is checked on samples; the gathering side is `Node::vrrp_status`).
pub fn vrrp_sample(
    group: &str,
    state: tandem_vrrp::machine::State,
    dropped: &[(&str, u64)],
) -> tandemd::metrics::VrrpSample {
    tandemd::metrics::VrrpSample {
        status: tandem_vrrp::io::InstanceStatus {
            group: group.to_string(),
            vrid: 51,
            state,
            base_priority: 150,
            effective_priority: 120,
            master: None,
            holds_addresses: state == tandem_vrrp::machine::State::Master,
            last_transition: None,
            waiting_for_fence: false,
            demoted: false,
            fenced_out: false,
            kernel_fence_until: None,
        },
        adverts_sent: 40,
        adverts_received: 7,
        transitions: 2,
        became_master: 1,
        garp_bursts: 1,
        dropped: dropped.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        family: None,
    }
}

/// A follower (n1) of a three-voter cluster whose leader is n2: n1 holds the lease of
/// "front" (epoch 2, 1.5 s left in its hold window), "back" was released, n3 never heard.
pub fn cluster_sample() -> tandemd::metrics::ClusterSample {
    use tandemd::metrics::{ClusterStatus, GroupView, LeaseStatus, MemberStatus, RpcCalls};
    let member = |id: u64, contact: Option<u64>| MemberStatus {
        id,
        addr: format!("n{id}:7300"),
        voter: true,
        last_contact_ms: contact,
        matched_index: None,
    };
    tandemd::metrics::ClusterSample {
        status: ClusterStatus {
            id: 1,
            name: "n1".into(),
            state: "Follower".into(),
            term: 3,
            leader: Some(2),
            last_log_index: Some(9),
            commit_index: Some(9),
            applied_index: Some(8),
            millis_since_quorum_ack: None,
            members: vec![member(1, Some(0)), member(2, Some(250)), member(3, None)],
            config_version: Some(4),
            leases: vec![
                LeaseStatus {
                    group: "back".into(),
                    holder: None,
                    epoch: 1,
                    seq: 7,
                    pinned_to: None,
                },
                LeaseStatus {
                    group: "front".into(),
                    holder: Some(1),
                    epoch: 2,
                    seq: 5,
                    pinned_to: None,
                },
            ],
            sticky_entries: 12,
            rpc_calls: RpcCalls {
                datagram: 40,
                stream: 3,
            },
        },
        role: tandem_config::cluster::Role::Voter,
        config_refused: false,
        groups: vec![GroupView {
            group: "front".into(),
            wants: true,
            holding: true,
            hold_left_ms: 1500,
            able: true,
            ..Default::default()
        }],
        rejected: vec![("tls_handshake", 2), ("frame_too_large", 1)],
    }
}

/// Every `tandem_...` name in `text` (a bare `tandem_` prefix is not a name).
pub fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tandem_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        if name.len() > "tandem_".len() {
            names.insert(name);
        }
    }
    names
}

/// Every string under an `expr` or `query` key of a Grafana dashboard.
pub fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

//! Cluster metrics: a real single-node cluster (tandemd with `[node.cluster]`, scraped on
//! its admin socket) for Raft, config and sticky-table gauges, and a built cluster sample
//! for leases, members and hold windows.

use std::time::Duration;

use crate::metrics_support::*;
use tandem_tests::http_kit::*;
use tandem_tests::*;

/// The config of a single-node cluster (`n1`, bootstrap) whose cluster transport listens on
/// 127.0.0.1:`raft`, in front of `backends` through an HTTP listener "web" on `web` with
/// source-IP stickiness. `dir` holds the certificates (`pki`) and the Raft state (`data`).
fn cluster_config(
    dir: &std::path::Path,
    raft: u16,
    web: u16,
    version: u64,
    backends: &[(&str, std::net::SocketAddr)],
) -> String {
    let cluster = Cluster::single(dir, raft)
        .key("heartbeat", "\"100ms\"")
        .key("election_timeout", "\"300ms\"")
        .key("sticky_batch", "\"50ms\"");
    let node = Config::cluster_node(dir, cluster).version(version);
    web_pool(node, web, backends).to_toml()
}

/// An HTTP listener "web" on `web` in front of `backends`, with source-IP stickiness.
fn web_pool(config: Config, web: u16, backends: &[(&str, std::net::SocketAddr)]) -> Config {
    let sticky =
        "[pool.http]\nsticky = { kind = \"source_ip\", ttl = \"10m\", max_entries = 1000 }";
    let pool = backends.iter().fold(
        Pool::new("web").algorithm("round_robin").raw(sticky),
        |pool, (id, a)| pool.backend(id, a),
    );
    config
        .listener(Listener::http("web", web).pool("web"))
        .pool(pool)
}

/// Scrapes every 50 ms until `check` holds (at most 10 s).
async fn scrape_daemon_until(
    daemon: &tandem_tests::admin::Daemon,
    what: &str,
    check: impl Fn(&Metrics) -> bool,
) -> Metrics {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape_daemon(daemon).await;
        if check(&m) {
            return m;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{what}: not seen within 10 s; last scrape:\n{}\ntandemd's log:\n{}",
                m.text,
                daemon.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_cluster_exposes_raft_config_and_sticky_metrics() {
    let (h1, h2) = (
        HttpBackend::start("h1").await,
        HttpBackend::start("h2").await,
    );
    let work = tandem_tests::TempDir::new();
    let pki = work.path("pki");
    let (code, out, err) =
        tandem_tests::admin::ctl(&["cluster", "init", "--dir", pki.to_str().unwrap(), "n1"]).await;
    assert_eq!(code, 0, "tandemctl cluster init: {out}{err}");
    let web = free_port();
    let backends = [("h1", h1.addr), ("h2", h2.addr)];
    let daemon = tandem_tests::admin::Daemon::start(&cluster_config(
        &work.path(""),
        free_port(),
        web,
        1,
        &backends,
    ))
    .await;

    // Bootstrapped: this node leads a cluster of one, and seeded its file's config.
    let m = scrape_daemon_until(&daemon, "leadership", |m| {
        m.value("tandem_cluster_is_leader", &[]) == 1.0
            && m.names().contains("tandem_cluster_config_version")
    })
    .await;
    let term = m.value("tandem_cluster_term", &[]);
    assert!(term >= 1.0, "term {term}");
    assert_eq!(m.value("tandem_cluster_leader_id", &[]), 1.0);
    assert_eq!(
        m.value(
            "tandem_cluster_info",
            &[("raft_id", "1"), ("role", "voter")]
        ),
        1.0
    );
    for state in ["leader", "follower", "candidate", "learner", "shutdown"] {
        assert_eq!(
            m.value("tandem_cluster_raft_state", &[("state", state)]),
            f64::from(state == "leader"),
            "{state}"
        );
    }
    assert_eq!(m.value("tandem_cluster_voters", &[]), 1.0);
    assert_eq!(m.value("tandem_cluster_members", &[]), 1.0);
    assert_eq!(
        m.value(
            "tandem_cluster_member_last_contact_seconds",
            &[("member", "n1"), ("raft_id", "1")]
        ),
        0.0
    );
    let commit = m.value("tandem_cluster_commit_index", &[]);
    assert!(commit >= 2.0, "membership and the seeded config: {commit}");
    assert!(m.value("tandem_cluster_applied_index", &[]) <= commit);
    assert!(m.value("tandem_cluster_last_log_index", &[]) >= commit);
    assert_eq!(m.value("tandem_cluster_config_version", &[]), 1.0);
    assert_eq!(m.value("tandem_config_version", &[]), 1.0);
    assert_eq!(m.value("tandem_cluster_config_refused", &[]), 0.0);
    assert_eq!(m.value("tandem_cluster_sticky_entries", &[]), 0.0);
    // A member alone calls nobody (tests/cluster_node/lossy_links.rs counts real calls).
    for transport in ["datagram", "stream"] {
        assert_eq!(
            m.value(
                "tandem_cluster_rpc_calls_total",
                &[("transport", transport)]
            ),
            0.0,
            "{transport}"
        );
    }
    assert_eq!(
        m.value("tandem_pool_sticky_entries", &[("pool", "web")]),
        0.0
    );
    let names = m.names();
    assert!(
        !names.iter().any(|n| n.starts_with("tandem_vip_lease")),
        "no VRRP, no leases: {names:?}"
    );

    // Four clients (127.0.0.2 to .5: loopback takes any 127/8 source) are pinned; the
    // entries are in the local table at once and replicated in the next batch.
    for i in 2..=5u8 {
        let r = http_get_from(addr(web), std::net::IpAddr::from([127, 0, 0, i]), "/").await;
        assert_eq!(r.status, 200);
    }
    let m = scrape_daemon_until(&daemon, "replicated sticky entries", |m| {
        m.value("tandem_cluster_sticky_entries", &[]) == 4.0
    })
    .await;
    assert_eq!(
        m.value("tandem_pool_sticky_entries", &[("pool", "web")]),
        4.0
    );
    let after_sticky = m.value("tandem_cluster_commit_index", &[]);
    assert!(after_sticky > commit, "{after_sticky} after {commit}");

    // `tandemctl config apply`: one more committed entry, a new replicated version, applied.
    let v2 = work.write(
        "v2.toml",
        web_pool(Config::shared().version(2), web, &backends[..1]).to_toml(),
    );
    let (code, out, err) = daemon.ctl(&["config", "apply", v2.to_str().unwrap()]).await;
    assert_eq!(code, 0, "tandemctl config apply: {out}{err}");
    let m = scrape_daemon_until(&daemon, "config version 2 applied", |m| {
        m.value("tandem_cluster_config_version", &[]) == 2.0
            && m.value("tandem_config_version", &[]) == 2.0
    })
    .await;
    let after_apply = m.value("tandem_cluster_commit_index", &[]);
    assert!(
        after_apply > after_sticky,
        "{after_apply} after {after_sticky}"
    );
    assert_eq!(m.value("tandem_cluster_term", &[]), term, "no election");
    assert_eq!(m.value("tandem_cluster_is_leader", &[]), 1.0);
    assert_eq!(m.value("tandem_cluster_config_refused", &[]), 0.0);
    assert_eq!(
        m.value(
            "tandem_backend_weight",
            &[("pool", "web"), ("backend", "h1")]
        ),
        1.0
    );
    assert!(
        !m.text.contains("backend=\"h2\""),
        "h2 left the pool with version 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_samples_expose_leases_members_and_hold_windows() {
    let dead = addr(free_port()); // never dialled: no checks, no traffic
    let node = start_node(&config(
        free_port(),
        free_port(),
        &[("t1", dead)],
        &[("h1", dead)],
        "",
    ));
    let mut snapshot = tandemd::metrics::Snapshot::gather(&node).await;
    assert!(snapshot.cluster.is_none(), "no [node.cluster]");
    assert!(snapshot.sticky.is_empty(), "no sticky pool");
    let text = snapshot.encode();
    assert!(!text.contains("tandem_cluster_"), "{text}");
    assert!(!text.contains("tandem_vip_lease"), "{text}");

    snapshot.cluster = Some(cluster_sample());
    let m = Metrics::parse(&snapshot.encode());
    assert_eq!(m.value("tandem_cluster_term", &[]), 3.0);
    assert_eq!(m.value("tandem_cluster_leader_id", &[]), 2.0);
    assert_eq!(m.value("tandem_cluster_is_leader", &[]), 0.0);
    assert_eq!(
        m.value("tandem_cluster_raft_state", &[("state", "follower")]),
        1.0
    );
    assert_eq!(m.value("tandem_cluster_voters", &[]), 3.0);
    assert_eq!(m.value("tandem_cluster_members", &[]), 3.0);
    assert_eq!(
        m.value(
            "tandem_cluster_rpc_calls_total",
            &[("transport", "datagram")]
        ),
        40.0
    );
    assert_eq!(
        m.value("tandem_cluster_rpc_calls_total", &[("transport", "stream")]),
        3.0
    );
    let contact = |member| {
        m.value(
            "tandem_cluster_member_last_contact_seconds",
            &[("member", member)],
        )
    };
    assert_eq!((contact("n1"), contact("n2")), (0.0, 0.25));
    assert!(
        !m.text.contains("member=\"n3\""),
        "a member never heard from has no contact series:\n{}",
        m.text
    );
    let front = [("group", "front")];
    assert_eq!(
        m.value(
            "tandem_vip_lease_holder",
            &[("group", "front"), ("node", "n1")]
        ),
        1.0
    );
    assert_eq!(m.value("tandem_vip_lease_holder_id", &front), 1.0);
    assert_eq!(m.value("tandem_vip_lease_epoch", &front), 2.0);
    assert_eq!(m.value("tandem_vip_lease_sequence", &front), 5.0);
    assert_eq!(m.value("tandem_vip_lease_holding", &front), 1.0);
    assert_eq!(m.value("tandem_vip_lease_remaining_seconds", &front), 1.5);
    assert_eq!(m.value("tandem_vip_lease_forced", &front), 0.0);
    assert_eq!(m.value("tandem_vip_lease_able", &front), 1.0);
    // A released lease: no holder series, holder id 0.
    let back = [("group", "back")];
    assert_eq!(m.value("tandem_vip_lease_holder_id", &back), 0.0);
    assert!(!m.text.contains("tandem_vip_lease_holder{group=\"back\""));
    node.shutdown_within(Duration::from_secs(1)).await;
}

//! Source-IP sticky tables as a cluster layer replicates them: a plane reports the entries
//! it pins, another plane given them through `merge_sticky` routes the same client to the
//! same backend, and nothing learnt that way is reported back. Real HTTP over loopback:
//! two backends naming themselves (the kit's `HttpBackend`), clients on 127.0.0.x.
//! (Moved here from crates/tandem-http/tests/sticky_replication.rs, issue 14.)

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tandem_config::ClusterConfig;
use tandem_http::HttpPlane;
use tandem_policy::StickyEntry;
use tandem_proxy::{Clock, SharedPool};
use tandem_tests::http_kit::*;
use tandem_tests::{http_listener_toml, pool_toml, NODE_TOML};

const TTL: Duration = Duration::from_secs(600);

/// The config: listener "front" on pool "web" (round robin over a then b, source-IP
/// sticky), plus a pool "plain" without stickiness. `response_timeout` lets a reload
/// change the pool's HTTP settings without touching `sticky`.
fn config(a: &HttpBackend, b: &HttpBackend, response_timeout: &str) -> ClusterConfig {
    let web_http = format!(
        "[pool.http]\nresponse_timeout = \"{response_timeout}\"\nsticky = {{ kind = \"source_ip\", ttl = \"10m\", max_entries = 100 }}"
    );
    let toml = format!(
        "{NODE_TOML}{}{}{}",
        http_listener_toml(
            "front",
            1,
            "web",
            "[[listener.route]]\npath_prefix = \"/plain\"\npool = \"plain\""
        ),
        pool_toml("web", "round_robin", &[a, b], &web_http),
        pool_toml("plain", "round_robin", &[a], ""),
    );
    let mut cluster = tandem_config::parse(&toml, "test.toml")
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n---\n{toml}"))
        .cluster;
    // Validation wants a fixed port; the plane itself binds any.
    cluster.listeners[0].bind = "127.0.0.1:0".parse().unwrap();
    cluster
}

struct Node {
    plane: HttpPlane,
    pools: HashMap<String, Arc<SharedPool>>,
    front: SocketAddr,
}

fn start(config: &ClusterConfig) -> Node {
    let clock = Clock::new();
    let pools = config
        .pools
        .iter()
        .map(|p| (p.name.clone(), SharedPool::new(p, clock)))
        .collect();
    let plane = HttpPlane::start(config, &pools, clock).expect("plane starts");
    let front = plane.listener("front").expect("listener front").local_addr;
    Node {
        plane,
        pools,
        front,
    }
}

/// GET / from source address 127.0.0.`host`; returns the backend that answered.
async fn get_from(front: SocketAddr, host: u8) -> String {
    let reply = http_get_from(front, IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), "/").await;
    assert_eq!(reply.status, 200, "unexpected response: {reply:?}");
    reply
        .backend()
        .unwrap_or_else(|| panic!("no x-backend header: {reply:?}"))
        .to_string()
}

fn key(host: u8) -> Vec<u8> {
    vec![127, 0, 0, host]
}

#[tokio::test]
async fn sticky_entries_replicate_between_planes() {
    let (a, b) = (HttpBackend::start("a").await, HttpBackend::start("b").await);
    let cfg = config(&a, &b, "30s");
    let one = start(&cfg);

    // Round robin: the first client gets a, the second b; each is pinned.
    assert_eq!(get_from(one.front, 2).await, "a");
    assert_eq!(get_from(one.front, 1).await, "b");
    let now = one.plane.clock().now();
    let changes = one.plane.take_sticky_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (pool, entries) = &changes[0];
    assert_eq!(pool, "web");
    let pinned: Vec<_> = entries
        .iter()
        .map(|e| (e.key.clone(), e.backend.as_str()))
        .collect();
    assert_eq!(pinned, [(key(1), "b"), (key(2), "a")]);
    for e in entries {
        assert!(
            e.expires_at > now && e.expires_at <= now + TTL,
            "{e:?} at {now:?}"
        );
    }
    // Nothing changed since: nothing to report, and a refresh within ttl/2 is no news.
    assert!(one.plane.take_sticky_changes().is_empty());
    assert_eq!(get_from(one.front, 1).await, "b");
    assert!(one.plane.take_sticky_changes().is_empty());
    assert_eq!(one.plane.sticky_sizes(), [("web".to_string(), 2)]);

    // Another node learns 127.0.0.1 → b, its expiry moved onto its own clock.
    let two = start(&cfg);
    let learnt = entries.iter().find(|e| e.key == key(1)).unwrap().clone();
    let learnt = StickyEntry {
        expires_at: learnt.expires_at - one.plane.clock().now() + two.plane.clock().now(),
        ..learnt
    };
    assert_eq!(
        two.plane.merge_sticky("web", std::slice::from_ref(&learnt)),
        1
    );
    assert_eq!(two.plane.sticky_sizes(), [("web".to_string(), 1)]);
    // Not again (same expiry), not an earlier expiry, not an unknown backend, pool or
    // a pool without a sticky table.
    assert_eq!(
        two.plane.merge_sticky("web", std::slice::from_ref(&learnt)),
        0
    );
    let earlier = StickyEntry {
        backend: "a".into(),
        expires_at: two.plane.clock().now() + Duration::from_secs(60),
        ..learnt.clone()
    };
    assert_eq!(two.plane.merge_sticky("web", &[earlier]), 0);
    let unknown = StickyEntry {
        key: key(3),
        backend: "zzz".into(),
        expires_at: learnt.expires_at,
    };
    assert_eq!(two.plane.merge_sticky("web", &[unknown]), 0);
    assert_eq!(
        two.plane
            .merge_sticky("nope", std::slice::from_ref(&learnt)),
        0
    );
    assert_eq!(
        two.plane
            .merge_sticky("plain", std::slice::from_ref(&learnt)),
        0
    );
    assert_eq!(two.plane.sticky_sizes(), [("web".to_string(), 1)]);
    assert!(two.plane.take_sticky_changes().is_empty(), "merges echoed");

    // 127.0.0.1 goes to b although this plane's round robin starts at a: the next,
    // unpinned client shows it.
    assert_eq!(get_from(two.front, 1).await, "b");
    assert_eq!(get_from(two.front, 3).await, "a");
    // Only the client this node pinned itself is reported; the merged one is not echoed.
    let changes = two.plane.take_sticky_changes();
    let reported: Vec<_> = changes
        .iter()
        .flat_map(|(pool, es)| es.iter().map(move |e| (pool.as_str(), e.key.clone())))
        .collect();
    assert_eq!(reported, [("web", key(3))]);
    assert_eq!(two.plane.sticky_sizes(), [("web".to_string(), 2)]);

    // A later expiry from the cluster re-points a local entry (and is not echoed).
    let repoint = StickyEntry {
        key: key(3),
        backend: "b".into(),
        expires_at: two.plane.clock().now() + TTL + Duration::from_secs(60),
    };
    assert_eq!(two.plane.merge_sticky("web", &[repoint]), 1);
    assert_eq!(get_from(two.front, 3).await, "b");
    assert!(two.plane.take_sticky_changes().is_empty());
}

#[tokio::test]
async fn sticky_tables_survive_reloads() {
    let (a, b) = (HttpBackend::start("a").await, HttpBackend::start("b").await);
    let cfg = config(&a, &b, "30s");
    let node = start(&cfg);
    assert_eq!(get_from(node.front, 2).await, "a");
    assert_eq!(get_from(node.front, 1).await, "b");
    assert_eq!(node.plane.take_sticky_changes().len(), 1);

    // The same config, then other pool HTTP settings with the same `sticky`: the table
    // (and its journal state) stays, clients keep their backends.
    node.plane.apply(&cfg, &node.pools).unwrap();
    assert_eq!(node.plane.sticky_sizes(), [("web".to_string(), 2)]);
    node.plane
        .apply(&config(&a, &b, "20s"), &node.pools)
        .unwrap();
    assert_eq!(node.plane.sticky_sizes(), [("web".to_string(), 2)]);
    assert_eq!(get_from(node.front, 1).await, "b");
    assert_eq!(get_from(node.front, 2).await, "a");
    assert!(node.plane.take_sticky_changes().is_empty());
    let _ = node.plane.shutdown(Duration::from_secs(1)).await;
}

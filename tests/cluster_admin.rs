//! The cluster side of the admin API on a one-node cluster over loopback (no root): status,
//! admin changes going through the Raft log, and the VIP commands refusing clearly where
//! they cannot act.

#[path = "cluster_admin/abuse.rs"]
mod abuse;

use std::time::Duration;

use tandem_tests::admin::{ctl, Daemon};
use tandem_tests::TempDir;
use tandem_tests::*;

/// A bootstrapped one-node cluster (`n1`) with one TCP listener and a VIP group but no
/// `[node.vrrp]`: it forwards, it holds no VIP.
fn config(dir: &std::path::Path, raft: u16, port: u16) -> String {
    Config::cluster_node(dir, Cluster::single(dir, raft))
        .version(1)
        .listener(Listener::tcp("l", port).pool("p"))
        .pool(Pool::new("p").backend("b", "127.0.0.1:9"))
        .raw("[[vip_group]]\nname = \"front\"\nvrid = 51\naddresses = [\"198.51.100.100/24\"]")
        .to_toml()
}

/// Waits (up to 10 s) until `tandemctl cluster status` shows n1 (raft id 1) leading;
/// returns that status.
async fn wait_leader(daemon: &Daemon) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, _) = daemon.ctl(&["--json", "cluster", "status"]).await;
        let s: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        if code == 0 && s["raft"]["leader"] == 1 {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader in cluster status: {out}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_cluster_answers_status_changes_and_refuses_vip_overrides() {
    let work = TempDir::new();
    let pki = work.path("pki");
    let (code, out, err) = ctl(&["cluster", "init", "--dir", pki.to_str().unwrap(), "n1"]).await;
    assert_eq!(code, 0, "tandemctl cluster init: {out}{err}");
    let daemon = Daemon::start(&config(&work.path(""), free_port(), free_port())).await;

    // Status: this node leads a cluster of one.
    let status = wait_leader(&daemon).await;
    assert!(status["raft"]["term"].as_u64() >= Some(1), "{status}");

    // A backend change goes through the log: the replicated version moves on.
    let (code, out, err) = daemon.ctl(&["backend", "weight", "p", "b", "7"]).await;
    assert_eq!(code, 0, "backend weight: {out}{err}\n{}", daemon.log());
    let backend = daemon.backend("p", "b").await;
    assert_eq!(backend["weight"], 7, "{backend}");
    // Version 1 was seeded from the file; the change is version 2, applied from the log.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !daemon.log().contains("replicated config applied version=2") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change did not come back through the log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // No [node.vrrp]: there is no lease here to override.
    let (code, out, err) = daemon
        .ctl(&["vip", "force-hold", "front", "--yes-i-know"])
        .await;
    assert_ne!(code, 0, "force-hold without VRRP: {out}");
    assert!(err.contains("nothing to override"), "{err}");
    // A move names a group that exists.
    let (code, _, err) = daemon.ctl(&["vip", "move", "nosuch", "n1"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no vip_group \"nosuch\""), "{err}");
    let (code, out, err) = daemon.ctl(&["--json", "vip", "move", "front", "n1"]).await;
    assert_eq!(code, 0, "vip move: {out}{err}");
    assert!(out.contains("\"pinned_to\""), "{out}");
}

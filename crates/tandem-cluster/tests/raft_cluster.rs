//! Three Raft nodes in one process on the redb store and the in-memory network: election,
//! replication of config and lease commands, leader loss, and a restarted node catching up
//! from its reopened store (through a snapshot, since the leader purged what it missed).

#[path = "raft_support/fixtures.rs"]
mod fixtures;
#[path = "raft_support/net.rs"]
mod net;
#[path = "raft_support/temp.rs"]
mod temp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fixtures::CONFIG_V2;
use net::Router;
use openraft::BasicNode;
use openraft::Config;
use openraft::SnapshotPolicy;
use tandem_cluster::raft::open_store;
use tandem_cluster::raft::types::ClientWriteResponse;
use tandem_cluster::raft::AppliedState;
use tandem_cluster::raft::NodeId;
use tandem_cluster::raft::Raft;
use tandem_cluster::raft::Response;
use tandem_cluster::raft::StoreError;
use tandem_cluster::state::Command;
use tandem_cluster::state::LeaseCommand;
use tandem_cluster::state::Outcome;
use temp::TempDir;
use tokio::sync::watch;

const WAIT: Option<Duration> = Some(Duration::from_secs(15));

/// Fast timers for a test, and a small snapshot interval with no log kept behind the
/// snapshot, so a node that was down for a dozen entries can only catch up by snapshot.
fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "tandem-test".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(8),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

struct Member {
    raft: Raft,
    applied: watch::Receiver<AppliedState>,
}

struct Cluster {
    router: Router,
    dirs: BTreeMap<NodeId, TempDir>,
    up: BTreeMap<NodeId, Member>,
}

impl Cluster {
    fn new(ids: &[NodeId]) -> Self {
        let dirs = ids
            .iter()
            .map(|&id| (id, TempDir::new(&format!("raft-node{id}"))))
            .collect();
        Cluster {
            router: Router::default(),
            dirs,
            up: BTreeMap::new(),
        }
    }

    /// Start (or restart) `id` on its store. A just-shut-down node's tasks may still hold
    /// the redb file for a moment, so "already open" is retried briefly.
    async fn start(&mut self, id: NodeId) {
        let dir = self.dirs[&id].path().to_path_buf();
        let mut tries = 0;
        let (log, sm) = loop {
            match open_store(&dir) {
                Ok(store) => break store,
                Err(StoreError::Open { .. }) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("node {id}: {e}"),
            }
        };
        let applied = sm.subscribe();
        let raft = Raft::new(id, config(), self.router.clone(), log, sm)
            .await
            .expect("raft starts");
        self.router.add(id, raft.clone());
        self.up.insert(id, Member { raft, applied });
    }

    async fn kill(&mut self, id: NodeId) {
        self.router.remove(id);
        let member = self.up.remove(&id).expect("node is up");
        member.raft.shutdown().await.expect("clean shutdown");
    }

    /// The leader every running node agrees on.
    async fn leader(&self) -> NodeId {
        let first = self.up.values().next().unwrap();
        let m = first
            .raft
            .wait(WAIT)
            .metrics(
                |m| m.current_leader.is_some_and(|l| self.up.contains_key(&l)),
                "a live leader",
            )
            .await
            .expect("a leader is elected");
        let leader = m.current_leader.unwrap();
        for member in self.up.values() {
            member
                .raft
                .wait(WAIT)
                .current_leader(leader, "all agree")
                .await
                .unwrap();
        }
        leader
    }

    async fn write(&self, command: Command) -> ClientWriteResponse {
        let leader = self.leader().await;
        self.up[&leader]
            .raft
            .client_write(command)
            .await
            .expect("leader accepts the write")
    }

    /// Wait until every running node applied `index`, then check they all hold the same
    /// state, as their subscribers see it.
    async fn converged(&self, index: u64) -> AppliedState {
        let mut states = Vec::new();
        for (id, member) in &self.up {
            member
                .raft
                .wait(WAIT)
                .applied_index_at_least(Some(index), format!("node {id} applies {index}"))
                .await
                .unwrap();
            let mut rx = member.applied.clone();
            let seen = rx
                .wait_for(|s| s.last_applied.is_some_and(|l| l.index >= index))
                .await
                .expect("state machine alive")
                .clone();
            states.push((*id, seen));
        }
        let (first_id, first) = &states[0];
        for (id, s) in &states[1..] {
            assert_eq!(s.state, first.state, "node {id} and node {first_id} differ");
        }
        first.clone()
    }
}

fn acquire(group: &str, node: NodeId) -> Command {
    Command::Lease(LeaseCommand::Acquire {
        group: group.into(),
        node,
        seen: (0, 0),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_three_nodes_replicate_fail_over_and_catch_up() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    for id in [1, 2, 3] {
        cluster.start(id).await;
    }
    let members: BTreeMap<NodeId, BasicNode> = (1..=3)
        .map(|id| (id, BasicNode::new(format!("node-{id}"))))
        .collect();
    cluster.up[&1]
        .raft
        .initialize(members)
        .await
        .expect("initialize");

    let first_leader = cluster.leader().await;
    let config = Command::ApplyConfig {
        version: 2,
        toml: CONFIG_V2.into(),
    };
    let resp = cluster.write(config).await;
    assert_eq!(
        resp.data,
        Response::Applied(Outcome::ConfigApplied { version: 2 })
    );
    let resp = cluster.write(acquire("vip-a", first_leader)).await;
    let Response::Applied(Outcome::LeaseGranted { group, .. }) = &resp.data else {
        panic!("first acquire is granted: {:?}", resp.data);
    };
    assert_eq!(group, "vip-a");
    let applied = cluster.converged(resp.log_id.index).await;
    assert_eq!(applied.state.config(), Some((2, CONFIG_V2)));

    // Lose the leader: the other two elect one of themselves and keep accepting writes.
    let down_at = cluster.up[&first_leader]
        .raft
        .metrics()
        .borrow()
        .last_log_index;
    cluster.kill(first_leader).await;
    let second_leader = cluster.leader().await;
    assert_ne!(second_leader, first_leader);
    let resp = cluster.write(acquire("vip-b", second_leader)).await;
    assert!(
        matches!(resp.data, Response::Applied(Outcome::LeaseGranted { .. })),
        "{:?}",
        resp.data
    );
    // Enough entries for the leader to snapshot and purge past what the dead node has.
    let mut last = resp.log_id.index;
    for now_ms in 1..=12 {
        last = cluster
            .write(Command::PurgeSticky { now_ms })
            .await
            .log_id
            .index;
    }
    let before_restart = cluster.converged(last).await;
    let purged = cluster.up[&second_leader]
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.purged.is_some_and(|p| Some(p.index) > down_at),
            "leader purged",
        )
        .await
        .unwrap()
        .purged;
    assert!(purged.is_some());

    // The old leader comes back on its reopened store and catches up.
    cluster.start(first_leader).await;
    let after = cluster.converged(last).await;
    assert_eq!(after.state, before_restart.state);
    assert_eq!(after.state.config(), Some((2, CONFIG_V2)));

    // And it takes part again: a new write reaches all three.
    let resp = cluster.write(Command::PurgeSticky { now_ms: 99 }).await;
    cluster.converged(resp.log_id.index).await;
    assert_eq!(cluster.up.len(), 3);

    for id in [1, 2, 3] {
        cluster.kill(id).await;
    }
}

//! Three Raft nodes in one process over the real transport: TCP on 127.0.0.1, mutual TLS
//! with each node's own certificate from one cluster CA, each node on its own redb store.
//! Election, replication of a config and a lease acquire to all three, loss of the leader
//! (its listener stopped and its Raft shut down, as in a crash), a new leader that commits,
//! and the old leader restarted on its store, catching up by snapshot over the wire.

#[path = "raft_support/fixtures.rs"]
mod fixtures;
#[path = "transport_support/harness.rs"]
mod harness;
#[path = "raft_support/temp.rs"]
mod temp;

use std::collections::BTreeMap;
use std::time::Duration;

use fixtures::CONFIG_V2;
use harness::Server;
use openraft::BasicNode;
use tandem_cluster::raft::types::ClientWriteResponse;
use tandem_cluster::raft::AppliedState;
use tandem_cluster::raft::NodeId;
use tandem_cluster::raft::Raft;
use tandem_cluster::raft::Response;
use tandem_cluster::state::Command;
use tandem_cluster::state::LeaseCommand;
use tandem_cluster::state::Outcome;
use tandem_cluster::transport::ClusterTls;
use temp::TempDir;
use tokio::sync::watch;

const WAIT: Option<Duration> = Some(Duration::from_secs(20));
const NAMES: [&str; 3] = ["node-1", "node-2", "node-3"];

struct Member {
    raft: Raft,
    applied: watch::Receiver<AppliedState>,
    server: Server,
}

struct Cluster {
    _pki: TempDir,
    tls: BTreeMap<NodeId, ClusterTls>,
    stores: BTreeMap<NodeId, TempDir>,
    ports: BTreeMap<NodeId, u16>,
    up: BTreeMap<NodeId, Member>,
}

impl Cluster {
    async fn new() -> Self {
        let pki = harness::pki("cluster-pki", &NAMES);
        let mut cluster = Cluster {
            tls: BTreeMap::new(),
            stores: BTreeMap::new(),
            ports: BTreeMap::new(),
            up: BTreeMap::new(),
            _pki: pki,
        };
        for id in [1, 2, 3] {
            let name = NAMES[id as usize - 1];
            cluster
                .tls
                .insert(id, harness::tls(cluster._pki.path(), name));
            cluster
                .stores
                .insert(id, TempDir::new(&format!("cluster-node{id}")));
            // Learn a free port; each node keeps it across restarts, as a real one would.
            let port = harness::bind(0).await.local_addr().unwrap().port();
            cluster.ports.insert(id, port);
        }
        cluster
    }

    /// The membership: node `id` is `node-<id>:<its port>`, as operators would configure it.
    fn members(&self) -> BTreeMap<NodeId, BasicNode> {
        let addr = |id: &NodeId| format!("node-{id}:{}", self.ports[id]);
        self.ports
            .keys()
            .map(|id| (*id, BasicNode::new(addr(id))))
            .collect()
    }

    async fn start(&mut self, id: NodeId) {
        let tls = &self.tls[&id];
        let network = harness::network(tls.client.clone(), &NAMES);
        let (raft, applied) = harness::raft(id, self.stores[&id].path(), network).await;
        let listener = harness::bind(self.ports[&id]).await;
        let server = Server::start(listener, tls, raft.clone());
        self.up.insert(
            id,
            Member {
                raft,
                applied,
                server,
            },
        );
    }

    /// Crash-like: nothing reaches the node and it sends nothing any more.
    async fn kill(&mut self, id: NodeId) {
        let member = self.up.remove(&id).expect("node is up");
        member.server.stop().await;
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

    /// Wait until every running node applied `index`, then check they hold the same state.
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
async fn transport_three_nodes_elect_replicate_fail_over_and_catch_up() {
    // The transport's log lines (peer lost, reachable again...) show with a failure's output;
    // RUST_LOG widens them (e.g. RUST_LOG=openraft=debug,tandem_cluster=debug).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("tandem_cluster=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let mut cluster = Cluster::new().await;
    for id in [1, 2, 3] {
        cluster.start(id).await;
    }
    cluster.up[&1]
        .raft
        .initialize(cluster.members())
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
    assert_eq!(cluster.up.len(), 3, "all three applied both");

    // Lose the leader: the other two elect one of themselves and keep committing.
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
    // Enough entries for the leader to snapshot and purge past what the dead node has, so
    // the restarted node can only catch up through InstallSnapshot over the transport.
    let mut last = resp.log_id.index;
    for now_ms in 1..=12 {
        last = cluster
            .write(Command::PurgeSticky { now_ms })
            .await
            .log_id
            .index;
    }
    let before_restart = cluster.converged(last).await;
    cluster.up[&second_leader]
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.purged.is_some_and(|p| Some(p.index) > down_at),
            "leader purged past the dead node",
        )
        .await
        .unwrap();

    // The old leader restarts on its store and port and catches up.
    cluster.start(first_leader).await;
    let after = cluster.converged(last).await;
    assert_eq!(after.state, before_restart.state);
    assert_eq!(after.state.config(), Some((2, CONFIG_V2)));
    let snapshot = cluster.up[&first_leader].raft.metrics().borrow().snapshot;
    assert!(
        snapshot.is_some_and(|s| Some(s.index) > down_at),
        "caught up by snapshot: {snapshot:?}"
    );

    // And it takes part again: a new write reaches all three.
    let resp = cluster.write(Command::PurgeSticky { now_ms: 99 }).await;
    cluster.converged(resp.log_id.index).await;
    assert_eq!(cluster.up.len(), 3);

    for id in [1, 2, 3] {
        cluster.kill(id).await;
    }
}

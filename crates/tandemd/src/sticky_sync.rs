//! Sticky-table replication: new local entries go out as one `StickyBatch` per pool every
//! `node.cluster.sticky_batch`; the replicated tables are merged into the local ones (an
//! entry is taken when it is newer than the local one), so the node that takes over a VIP
//! already routes each pinned client where it was. The leader purges expired entries.

use std::sync::{Arc, Weak};
use std::time::Duration;
use tandem_cluster::state::Command;
use tokio_util::sync::CancellationToken;

use crate::cluster::{from_record, to_record, wall_ms, Cluster};
use crate::node::Node;

/// How often the replicated tables are merged into the local ones.
const MERGE_EVERY: Duration = Duration::from_millis(200);
/// How often the leader proposes dropping expired entries.
const PURGE_EVERY: Duration = Duration::from_secs(30);

pub async fn run(
    cluster: Arc<Cluster>,
    node: Weak<Node>,
    batch: Duration,
    stop: CancellationToken,
) {
    let mut send = tokio::time::interval(batch);
    let mut merge = tokio::time::interval(MERGE_EVERY);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    for t in [&mut send, &mut merge, &mut purge] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut merged_at = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = send.tick() => {
                let Some(node) = node.upgrade() else { return };
                send_batches(&cluster, &node).await;
            }
            _ = merge.tick() => {
                let Some(node) = node.upgrade() else { return };
                let applied = cluster.node.applied().borrow().clone();
                if applied.last_applied != merged_at {
                    merged_at = applied.last_applied;
                    merge_tables(&applied.state, &node);
                }
            }
            _ = purge.tick() => {
                if cluster.node.metrics().current_leader == Some(cluster.node.id())
                    && cluster.node.applied().borrow().state.sticky_len() > 0
                {
                    let _ = cluster.write(Command::PurgeSticky { now_ms: wall_ms() }).await;
                }
            }
        }
    }
}

async fn send_batches(cluster: &Cluster, node: &Node) {
    let changes = node.http().take_sticky_changes();
    if changes.is_empty() {
        return;
    }
    let (plane_now, wall_now) = (node.http().clock().now(), wall_ms());
    for (pool, entries) in changes {
        let records: Vec<_> = entries
            .iter()
            .map(|e| to_record(e, plane_now, wall_now))
            .collect();
        let count = records.len();
        let command = Command::StickyBatch {
            pool: pool.clone(),
            entries: records,
        };
        if let Err(e) = cluster.write(command).await {
            // Local stickiness is unaffected; only the other nodes miss these entries.
            tracing::warn!(%pool, entries = count, error = %e, "sticky batch not replicated");
        }
    }
}

fn merge_tables(state: &tandem_cluster::state::ClusterState, node: &Node) {
    let (plane_now, wall_now) = (node.http().clock().now(), wall_ms());
    for (pool, _) in node.http().sticky_sizes() {
        let entries: Vec<_> = state
            .sticky(&pool)
            .iter()
            .filter_map(|r| from_record(r, plane_now, wall_now))
            .collect();
        if !entries.is_empty() {
            let merged = node.http().merge_sticky(&pool, &entries);
            if merged > 0 {
                tracing::debug!(%pool, merged, "sticky entries learnt from the cluster");
            }
        }
    }
}

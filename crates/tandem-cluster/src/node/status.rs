//! `tandemctl cluster status` and the cluster metrics, from openraft's metrics, the applied
//! state and the contact book.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::raft::types::RaftMetrics;
use crate::raft::AppliedState;
use crate::raft::NodeId;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub id: NodeId,
    pub name: String,
    /// Leader, Follower, Candidate, Learner or Shutdown.
    pub state: String,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Leader only: ms since a majority last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    pub members: Vec<MemberStatus>,
    /// The replicated config's version (None until one is applied).
    pub config_version: Option<u64>,
    pub leases: Vec<LeaseStatus>,
    pub sticky_entries: usize,
    /// RPCs this node sent, by how they travelled.
    #[serde(default)]
    pub rpc_calls: RpcCalls,
}

/// Answered RPCs this node made to its peers since it started, by transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcCalls {
    /// As sealed datagrams (heartbeats, renewals, votes once a peer's session works).
    pub datagram: u64,
    /// Over a TLS connection (the first calls, large ones, and any when UDP fails).
    pub stream: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub addr: String,
    pub voter: bool,
    /// Milliseconds since this node last heard from it (None: never; this node: 0).
    pub last_contact_ms: Option<u64>,
    /// Leader only: the last log index replicated to it.
    pub matched_index: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseStatus {
    pub group: String,
    pub holder: Option<NodeId>,
    pub epoch: u64,
    pub seq: u64,
    /// The node the group is pinned to by `tandemctl vip move` (None: VRRP decides).
    pub pinned_to: Option<NodeId>,
}

pub(super) fn build(
    id: NodeId,
    name: &str,
    m: &RaftMetrics,
    committed: Option<u64>,
    applied: &AppliedState,
    contacts: &BTreeMap<NodeId, Instant>,
) -> ClusterStatus {
    let membership = m.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(nid, node)| MemberStatus {
            id: *nid,
            addr: node.addr.clone(),
            voter: voters.contains(nid),
            last_contact_ms: if *nid == id {
                Some(0)
            } else {
                contacts.get(nid).map(|t| t.elapsed().as_millis() as u64)
            },
            matched_index: m
                .replication
                .as_ref()
                .and_then(|r| r.get(nid).copied().flatten())
                .map(|log_id| log_id.index),
        })
        .collect();
    let state = &applied.state;
    let mut groups: Vec<String> = state.leases().keys().cloned().collect();
    for group in state.pins().keys() {
        if !groups.contains(group) {
            groups.push(group.clone());
        }
    }
    groups.sort();
    let leases = groups
        .into_iter()
        .map(|group| {
            let lease = state.lease(&group);
            LeaseStatus {
                pinned_to: state.pin(&group),
                holder: lease.holder,
                epoch: lease.epoch,
                seq: lease.seq,
                group,
            }
        })
        .collect();
    ClusterStatus {
        id,
        name: name.to_string(),
        state: format!("{:?}", m.state),
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: m.last_log_index,
        commit_index: committed,
        applied_index: m.last_applied.map(|l| l.index),
        millis_since_quorum_ack: m.millis_since_quorum_ack,
        members,
        config_version: state.config().map(|(v, _)| v),
        leases,
        sticky_entries: state.sticky_len(),
        rpc_calls: RpcCalls::default(),
    }
}

//! Cluster operations: the writes and membership changes only a leader can make, run here
//! when this node leads and forwarded once to the leader otherwise, over the same mutual-TLS
//! transport as Raft itself. Every proposal in tandem goes through [`Ops::run`], so a
//! follower's admin API, its lease keeper and its sticky batches all reach the log alike.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use openraft::ChangeMembers;
use serde::Deserialize;
use serde::Serialize;
use tokio::time::Instant;

use crate::raft::types::ClientWriteResponse;
use crate::raft::types::Node;
use crate::raft::NodeId;
use crate::raft::Raft;
use crate::raft::Response;
use crate::state::Command;
use crate::transport::wire::OpRequest;
use crate::transport::TandemNetwork;

/// One operation for the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClusterOp {
    /// Append a command to the replicated log.
    Write(Command),
    /// Add a node: as a learner until it has caught up, then as a voter.
    AddMember { id: NodeId, addr: String },
    /// Take a node out of the cluster (voter or learner).
    RemoveMember { id: NodeId },
}

impl ClusterOp {
    fn what(&self) -> String {
        match self {
            ClusterOp::Write(Command::ApplyConfig { version, .. }) => {
                format!("config version {version}")
            }
            ClusterOp::Write(Command::StickyBatch { pool, .. }) => {
                format!("sticky batch of {pool}")
            }
            ClusterOp::Write(Command::Lease(l)) => format!("lease change for {}", l.group()),
            ClusterOp::Write(Command::PurgeSticky { .. }) => {
                "purging expired sticky entries".into()
            }
            ClusterOp::Write(Command::Pin {
                group,
                node: Some(n),
            }) => {
                format!("pinning {group} to node {n}")
            }
            ClusterOp::Write(Command::Pin { group, node: None }) => format!("unpinning {group}"),
            ClusterOp::Write(Command::Acme(_)) => "ACME state change".into(),
            ClusterOp::AddMember { id, addr } => format!("adding node {id} at {addr}"),
            ClusterOp::RemoveMember { id } => format!("removing node {id}"),
        }
    }
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpReply {
    /// The command is committed and applied at this log index.
    Written { index: u64, response: Response },
    /// The membership change is committed; these are the voters now.
    Membership { voters: Vec<NodeId> },
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{what}: no leader answered within {waited:?}: the cluster has no majority reachable from this node (check `tandemctl cluster status`)")]
    NoLeader { what: String, waited: Duration },
    #[error("{what}: refused by the leader: {reason}")]
    Refused { what: String, reason: String },
    #[error("{what}: Raft stopped on this node: {reason}")]
    Fatal { what: String, reason: String },
}

enum Local {
    Done(OpReply),
    /// Not the leader; the leader if known (id, address).
    Forward(Option<(NodeId, String)>),
}

/// Runs cluster operations for this node (and for peers that forward to it).
pub struct Ops {
    raft: Raft,
    network: TandemNetwork,
    /// How long an operation may wait for a leader (elections included).
    timeout: Duration,
    /// A leader not heard from for this long is probably cut off from this node: try a
    /// relay first (the election timeout: heartbeats come several times within it).
    quiet: Duration,
}

impl Ops {
    pub fn new(raft: Raft, network: TandemNetwork, timeout: Duration, quiet: Duration) -> Self {
        Ops {
            raft,
            network,
            timeout,
            quiet,
        }
    }

    /// Run `op` here if this node leads, else at the leader. Retries while there is no
    /// known leader (an election) until the timeout. A request that was already forwarded
    /// is not forwarded again: the sender retries instead.
    pub async fn run(&self, op: ClusterOp, forwarded: bool) -> Result<OpReply, OpError> {
        self.run_within(op, forwarded, self.timeout).await
    }

    /// What the listener runs for a peer's request: a relayed request may still go to the
    /// leader but is never relayed again.
    pub async fn run_request(&self, request: OpRequest) -> Result<OpReply, OpError> {
        self.run_hops(
            request.op,
            request.forwarded,
            !request.relayed,
            self.timeout,
        )
        .await
    }

    /// [`Ops::run`] with its own bound (the lease keeper wants short ones).
    pub async fn run_within(
        &self,
        op: ClusterOp,
        forwarded: bool,
        timeout: Duration,
    ) -> Result<OpReply, OpError> {
        self.run_hops(op, forwarded, true, timeout).await
    }

    async fn run_hops(
        &self,
        op: ClusterOp,
        forwarded: bool,
        may_relay: bool,
        timeout: Duration,
    ) -> Result<OpReply, OpError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut last_refusal = None;
        loop {
            // A leader that lost its majority stays leader (openraft 0.9 has no check-quorum)
            // and holds a write until a majority answers again: bound it by the deadline.
            // Membership changes are left unbounded (adding a learner waits for it to catch
            // up, which the joiner's own, longer, timeout allows for).
            let local = match op {
                ClusterOp::Write(_) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, self.local(&op)).await {
                        Ok(local) => local,
                        Err(_) => {
                            return Err(OpError::NoLeader {
                                what: op.what(),
                                waited: started.elapsed(),
                            })
                        }
                    }
                }
                _ => self.local(&op).await,
            };
            match local? {
                Local::Done(reply) => return Ok(reply),
                Local::Forward(Some((leader, addr))) if !forwarded => {
                    // A leader this node has not heard from lately is likely behind a cut
                    // (the pair cut: it still leads through the witness). Waiting for its
                    // silence first would eat a lease renewal's whole budget.
                    let quiet = self
                        .network
                        .contacts()
                        .last(leader)
                        .is_none_or(|at| at.elapsed() > self.quiet);
                    if may_relay && quiet {
                        if let Some(reply) = self.relay(&op, leader, deadline).await {
                            return reply;
                        }
                    }
                    let mut left = deadline.saturating_duration_since(Instant::now());
                    if may_relay {
                        // Leave time for a relay: a leader behind a partition does not
                        // refuse the connection, it never answers.
                        left /= 3;
                    }
                    let request = OpRequest {
                        op: op.clone(),
                        forwarded: true,
                        relayed: false,
                    };
                    match self.network.call_op(leader, &addr, request, left).await {
                        Ok(Ok(reply)) => return Ok(reply),
                        // The leader's own refusal is final unless it stopped leading.
                        Ok(Err(reason)) if !reason.contains("not the leader") => {
                            return Err(OpError::Refused {
                                what: op.what(),
                                reason,
                            })
                        }
                        Ok(Err(reason)) => last_refusal = Some(reason),
                        // The leader did not answer (down, unreachable): no refusal of its
                        // own; if no leader answers until the deadline, that is NoLeader.
                        Err(reason) => {
                            tracing::debug!(leader, %addr, %reason, "cluster: leader unreachable; relaying through a peer");
                            // This node cannot reach the leader but a majority can (it is
                            // still the leader): another member passes the request on. Every
                            // command is safe to apply twice (compare-and-set, versions,
                            // idempotent merges), so a relay after a lost answer is harmless.
                            if may_relay {
                                if let Some(reply) = self.relay(&op, leader, deadline).await {
                                    return reply;
                                }
                            }
                        }
                    }
                }
                Local::Forward(leader) if forwarded => {
                    return Err(OpError::Refused {
                        what: op.what(),
                        reason: format!(
                            "not the leader (it is {})",
                            leader.map_or("unknown".into(), |(id, _)| format!("node {id}"))
                        ),
                    })
                }
                Local::Forward(_) => {
                    // No leader known here (this node is campaigning, cut off from the
                    // leader): a member that hears the leader may pass it on.
                    if may_relay {
                        if let Some(reply) = self.relay(&op, 0, deadline).await {
                            return reply;
                        }
                    }
                }
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                return Err(match last_refusal {
                    Some(reason) => OpError::Refused {
                        what: op.what(),
                        reason,
                    },
                    None => OpError::NoLeader {
                        what: op.what(),
                        waited: started.elapsed(),
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `op` to each other member (not the leader, not this node) until one answers,
    /// the most recently heard first.
    async fn relay(
        &self,
        op: &ClusterOp,
        leader: NodeId,
        deadline: Instant,
    ) -> Option<Result<OpReply, OpError>> {
        let metrics = self.raft.metrics().borrow().clone();
        let me = metrics.id;
        let mut peers: Vec<(NodeId, String)> = metrics
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != me && **id != leader)
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let contacts = self.network.contacts();
        peers.sort_by_key(|(id, _)| std::cmp::Reverse(contacts.last(*id)));
        for (id, addr) in peers {
            let left = deadline.saturating_duration_since(Instant::now()) / 2;
            if left.is_zero() {
                break;
            }
            let request = OpRequest {
                op: op.clone(),
                forwarded: false,
                relayed: true,
            };
            match self.network.call_op(id, &addr, request, left).await {
                Ok(Ok(reply)) => return Some(Ok(reply)),
                Ok(Err(reason)) => {
                    tracing::debug!(relay = id, %reason, "cluster: relay could not pass the request on")
                }
                Err(reason) => tracing::debug!(relay = id, %reason, "cluster: relay unreachable"),
            }
        }
        None
    }

    async fn local(&self, op: &ClusterOp) -> Result<Local, OpError> {
        let result = match op {
            ClusterOp::Write(command) => self
                .raft
                .client_write(command.clone())
                .await
                .map(|r| written(&r)),
            ClusterOp::AddMember { id, addr } => self.add_member(*id, addr).await,
            ClusterOp::RemoveMember { id } => self.remove_member(*id).await,
        };
        match result {
            Ok(reply) => Ok(Local::Done(reply)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Ok(Local::Forward(
                f.leader_id.zip(f.leader_node.map(|n: Node| n.addr)),
            )),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(OpError::Refused {
                    what: op.what(),
                    reason: e.to_string(),
                })
            }
            Err(RaftError::Fatal(e)) => Err(OpError::Fatal {
                what: op.what(),
                reason: e.to_string(),
            }),
        }
    }

    async fn add_member(&self, id: NodeId, addr: &str) -> Result<OpReply, WriteError> {
        tracing::info!(node = id, %addr, "cluster: adding a learner; it becomes a voter once it has caught up");
        self.raft.add_learner(id, Node::new(addr), true).await?;
        let changed = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await?;
        tracing::info!(node = id, "cluster: node is a voter");
        Ok(membership(&changed))
    }

    async fn remove_member(&self, id: NodeId) -> Result<OpReply, WriteError> {
        let metrics = self.raft.metrics().borrow().clone();
        let is_voter = metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id);
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        let changed = self.raft.change_membership(change, false).await?;
        tracing::info!(node = id, "cluster: node removed");
        Ok(membership(&changed))
    }
}

type WriteError = RaftError<NodeId, ClientWriteError<NodeId, Node>>;

fn written(r: &ClientWriteResponse) -> OpReply {
    OpReply::Written {
        index: r.log_id.index,
        response: r.data.clone(),
    }
}

fn membership(r: &ClientWriteResponse) -> OpReply {
    let voters = r
        .membership
        .as_ref()
        .map(|m| m.voter_ids().collect())
        .unwrap_or_default();
    OpReply::Membership { voters }
}

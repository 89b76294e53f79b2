//! The openraft type configuration for tandem, and short aliases for the generic openraft
//! types instantiated with it, so the rest of the crate (and the node, the transport and the
//! tests) never spell `openraft::Foo<TandemRaft>` or `<u64, BasicNode>` by hand. Keeping every
//! openraft generic behind these names is what keeps an openraft upgrade contained in `raft/`.

use std::io::Cursor;

use serde::Deserialize;
use serde::Serialize;

use crate::state::Command;
use crate::state::Outcome;

/// Raft node ids are the `NodeId` of the state machine (`u64`): the same number names a node
/// in lease commands and in the Raft membership.
pub type NodeId = crate::state::NodeId;

/// A member's address as openraft stores it in the membership (`BasicNode { addr }`). The
/// transport decides what the string means (`host:port` of the peer's Raft listener).
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// tandem's Raft type configuration: log entries carry a [`Command`], applying one
    /// yields a [`Response`], snapshots travel as an in-memory byte buffer (the replicated
    /// state is small: config, sticky tables, leases) and the runtime is tokio.
    pub TandemRaft:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TandemRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What applying one log entry produced.
///
/// openraft wants exactly one `R` per applied entry, including the entries it writes itself:
/// the blank entry a new leader appends to commit its term, and membership changes. Those carry
/// no [`Command`], so there is no [`Outcome`] to give; rather than inventing a fake outcome
/// (e.g. `StickyPurged { removed: 0 }`, which a caller could mistake for a real purge), the
/// state machine answers [`Response::Internal`] for them. Clients only ever propose `Normal`
/// entries, so a client write always gets [`Response::Applied`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A [`Command`] entry was applied to the cluster state with this outcome.
    Applied(Outcome),
    /// A blank or membership entry: openraft bookkeeping, nothing applied to the state.
    Internal,
}

impl Response {
    /// The command's outcome, `None` for openraft's own entries.
    pub fn outcome(&self) -> Option<&Outcome> {
        match self {
            Response::Applied(outcome) => Some(outcome),
            Response::Internal => None,
        }
    }

    /// Like [`Response::outcome`], by value.
    pub fn into_outcome(self) -> Option<Outcome> {
        match self {
            Response::Applied(outcome) => Some(outcome),
            Response::Internal => None,
        }
    }
}

/// A running Raft node.
pub type Raft = openraft::Raft<TandemRaft>;
/// One replicated log entry.
pub type Entry = openraft::Entry<TandemRaft>;
/// What a log entry carries (blank, command or membership).
pub type EntryPayload = openraft::EntryPayload<TandemRaft>;
/// A log position: (leader term and id, index).
pub type LogId = openraft::LogId<NodeId>;
/// A node's vote (term, candidate, committed).
pub type Vote = openraft::Vote<NodeId>;
/// A membership config (voter sets and member addresses).
pub type Membership = openraft::Membership<NodeId, Node>;
/// A membership config with the log id of the entry that carried it.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Metadata of a snapshot: last included log id, membership, id.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A snapshot handle: metadata plus its bytes.
pub type Snapshot = openraft::Snapshot<TandemRaft>;
/// Where the log stands: last purged and last present log ids.
pub type LogState = openraft::LogState<TandemRaft>;
/// The error every storage method returns; openraft shuts the node down on one.
pub type StorageError = openraft::StorageError<NodeId>;
/// Metrics a Raft node publishes (state, leader, last applied, membership...).
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
/// A successful client write: log id, [`Response`] and, for membership changes, the new config.
pub type ClientWriteResponse = openraft::raft::ClientWriteResponse<TandemRaft>;
/// Why a client write failed (not leader, forward to..., fatal).
pub type ClientWriteError =
    openraft::error::RaftError<NodeId, openraft::error::ClientWriteError<NodeId, Node>>;
/// Replication RPC: leader to follower log entries.
pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TandemRaft>;
/// Replication RPC answer.
pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
/// Election RPC.
pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
/// Election RPC answer.
pub type VoteResponse = openraft::raft::VoteResponse<NodeId>;
/// Snapshot transfer RPC (one chunk).
pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TandemRaft>;
/// Snapshot transfer RPC answer.
pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;

//! What goes into the Raft log, and what applying it answered.
//!
//! Every command carries all the inputs its effect depends on (times included, as the
//! proposer's clock readings), so applying it is a pure function of the state and the
//! command: every node that applies the same log reaches the same bytes.

use serde::{Deserialize, Serialize};

/// A Raft node id (openraft's `NodeId`).
pub type NodeId = u64;

/// One replicated change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The cluster-wide config as TOML text (the cluster part of a tandem config file:
    /// `version`, `[[listener]]`, `[[pool]]`, `[[vip_group]]`, no `[node]`).
    ///
    /// Replicated as text because the config model uses serde features postcard cannot
    /// decode (internally tagged enums). Applied only if it parses and validates, carries
    /// no `[node]` section, says `version = <version>` and `version` is greater than the
    /// applied one; otherwise refused with the reason (check-config's own message).
    ApplyConfig { version: u64, toml: String },
    /// New sticky-table entries for a pool, batched by a node every few tens of
    /// milliseconds (expiry carried in each entry). Applied in order: a later entry for the
    /// same key replaces an earlier one.
    StickyBatch {
        pool: String,
        entries: Vec<StickyRecord>,
    },
    /// Drop the entries of every pool that have expired at `now_ms` (the proposer's wall
    /// clock, the same base as `StickyRecord::expires_at_ms`).
    PurgeSticky { now_ms: u64 },
    /// A VIP lease change.
    Lease(LeaseCommand),
    /// Pin a vip_group to a node (`tandemctl vip move GROUP NODE`): every other node runs
    /// that group at VRRP priority 1 and the holder steps down, so the VIP moves there and
    /// stays; `None` unpins (VRRP priorities decide again). Added last: postcard encodes
    /// variants by index.
    Pin { group: String, node: Option<NodeId> },
    /// ACME: challenge answers, accounts and issued certificates (see [`super::acme`]).
    Acme(super::acme::AcmeCommand),
}

/// One sticky mapping as replicated.
///
/// `expires_at_ms` is wall-clock time (milliseconds since the UNIX epoch): the entry is
/// compared on every node, and a monotonic reading means nothing off the node that took it.
/// The entry answers while `now < expires_at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StickyRecord {
    /// Client IP address bytes or a header value.
    pub key: Vec<u8>,
    /// The backend's stable id.
    pub backend: String,
    pub expires_at_ms: u64,
}

/// VIP lease changes (one lease per vip_group). See DESIGN.md, "VIP fencing with Raft
/// leases"; the timing rules the proposers follow are in [`super::clock`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseCommand {
    /// Granted only if the group's lease is still exactly `seen` (compare-and-set on
    /// `(epoch, seq)`); starts a new epoch (`epoch + 1`, `seq` 0) held by `node`.
    Acquire {
        group: String,
        node: NodeId,
        seen: (u64, u64),
    },
    /// Succeeds only for the holder of that epoch; bumps `seq`.
    Renew {
        group: String,
        node: NodeId,
        epoch: u64,
    },
    /// Empties the lease (holder `None`, same epoch, `seq + 1`): planned handover,
    /// shutdown. Only by the holder of that epoch, after it dropped the VIP.
    Release {
        group: String,
        node: NodeId,
        epoch: u64,
    },
    /// Operator override for a disaster (`tandemctl vip force-hold`): takes the lease
    /// unconditionally with a new epoch. It bypasses the fence by design (the old holder
    /// may still be inside its hold window), so the caller logs it loudly.
    ForceHold { group: String, node: NodeId },
}

impl LeaseCommand {
    /// The vip_group the command is about.
    pub fn group(&self) -> &str {
        match self {
            LeaseCommand::Acquire { group, .. }
            | LeaseCommand::Renew { group, .. }
            | LeaseCommand::Release { group, .. }
            | LeaseCommand::ForceHold { group, .. } => group,
        }
    }

    /// The node the command is from (and for).
    pub fn node(&self) -> NodeId {
        match self {
            LeaseCommand::Acquire { node, .. }
            | LeaseCommand::Renew { node, .. }
            | LeaseCommand::Release { node, .. }
            | LeaseCommand::ForceHold { node, .. } => *node,
        }
    }
}

/// A VIP group's lease. `(epoch, seq)` changes on every granted lease command, so a
/// contender that saw a given pair knows nothing happened since.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// `None`: nobody may hold the VIP (never acquired, or released).
    pub holder: Option<NodeId>,
    /// Bumped by every Acquire and ForceHold.
    pub epoch: u64,
    /// Bumped by every Renew and Release within an epoch.
    pub seq: u64,
}

impl Lease {
    /// The compare-and-set token an Acquire must carry to replace this lease.
    pub fn version(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }
}

/// What applying a command did; returned to the proposer (openraft's response).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    ConfigApplied {
        version: u64,
    },
    ConfigRefused {
        reason: String,
    },
    /// `entries`: how many of the batch's entries were merged (entries for a backend the
    /// applied config does not list in that pool are skipped).
    StickyMerged {
        pool: String,
        entries: usize,
    },
    StickyPurged {
        removed: usize,
    },
    /// The lease after the change.
    LeaseGranted {
        group: String,
        lease: Lease,
    },
    /// Nothing changed; `current` is the lease as it stands.
    LeaseRefused {
        group: String,
        current: Lease,
    },
    /// The group's pin after the change.
    Pinned {
        group: String,
        node: Option<NodeId>,
    },
    AcmeApplied,
    AcmeRefused {
        reason: String,
    },
}

//! Where the ACME state goes: the cluster's replicated log (the Raft leader proposes, every
//! node applies) or, on a node without `[node.cluster]`, a local store ([`LocalStore`]).
//! The order and renewal logic in [`super::run`] and [`super::order`] is the same for both;
//! only writing a change and following the state differ.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tandem_cluster::raft::AppliedState;
use tandem_cluster::state::acme::{AcmeCommand, AcmeState};
use tandem_cluster::state::{Command, Outcome};
use tokio::sync::watch;

use super::local::LocalStore;
use crate::cluster::Cluster;
use crate::node::Node;

#[derive(Clone)]
pub enum StateStore {
    /// Proposals through Raft; only the leader orders.
    Cluster(Arc<Cluster>),
    /// Files under the node's data_dir; this node always orders. Challenge answers go
    /// straight to the node's HTTP listeners (there is no log to wait for).
    Local(Arc<LocalStore>, Weak<Node>),
}

/// The state as it changes, read by the loop.
pub enum Follow {
    Cluster(watch::Receiver<AppliedState>),
    Local(watch::Receiver<AcmeState>),
}

impl Follow {
    /// The state now, marking it seen.
    pub fn current(&mut self) -> AcmeState {
        match self {
            Follow::Cluster(rx) => rx.borrow_and_update().state.acme().clone(),
            Follow::Local(rx) => rx.borrow_and_update().clone(),
        }
    }

    /// Until the state changes; false when its source is gone.
    pub async fn changed(&mut self) -> bool {
        match self {
            Follow::Cluster(rx) => rx.changed().await.is_ok(),
            Follow::Local(rx) => rx.changed().await.is_ok(),
        }
    }
}

impl StateStore {
    pub fn follow(&self) -> Follow {
        match self {
            StateStore::Cluster(c) => Follow::Cluster(c.node.applied()),
            StateStore::Local(l, _) => Follow::Local(l.subscribe()),
        }
    }

    /// Whether orders run on this node now: the Raft leader's, or always for a single node.
    pub fn orders_here(&self) -> bool {
        match self {
            StateStore::Cluster(c) => c.node.metrics().current_leader == Some(c.node.id()),
            StateStore::Local(..) => true,
        }
    }

    /// Writes one change; an error says where it failed.
    pub async fn write(&self, command: AcmeCommand) -> Result<(), String> {
        let outcome = match self {
            StateStore::Cluster(c) => c
                .write(Command::Acme(command))
                .await
                .map_err(|e| format!("the cluster did not take it: {e}"))?,
            StateStore::Local(store, node) => {
                let outcome = store.apply(&command)?;
                if matches!(
                    command,
                    AcmeCommand::Challenge { .. } | AcmeCommand::ClearChallenges { .. }
                ) {
                    if let Some(node) = node.upgrade() {
                        let answers = store.challenges().into_iter().collect();
                        node.http().set_acme_challenges(answers);
                    }
                }
                outcome
            }
        };
        match outcome {
            Outcome::AcmeApplied => Ok(()),
            Outcome::AcmeRefused { reason } => Err(reason),
            other => Err(format!("unexpected outcome {other:?}")),
        }
    }

    /// How long after publishing a challenge answer every node that may be asked serves it.
    pub fn propagation(&self) -> Duration {
        match self {
            StateStore::Cluster(c) => (c.heartbeat * 3).max(Duration::from_millis(300)),
            StateStore::Local(..) => Duration::ZERO,
        }
    }
}

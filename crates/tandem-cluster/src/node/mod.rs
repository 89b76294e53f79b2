//! A cluster member at work: its Raft node on the redb store, the mutual-TLS listener its
//! peers call, bootstrap and membership (join, leave), and [`Ops`] through which every
//! proposal reaches the leader. The daemon owns one [`ClusterNode`]; the lease keeper and
//! the admin API work through it.
//!
//! Start-up: open the store, start Raft, listen. With `bootstrap` and a pristine store the
//! node initialises a one-voter cluster; a node with Raft state rejoins from it (peers find
//! it at the address in the membership); a pristine node without `bootstrap` waits until a
//! member adds it (`tandemctl cluster join`, which calls [`ClusterNode::join`] here).

// `StoreError` is large (it carries openraft's StorageError); it is returned once, at start.
#![allow(clippy::result_large_err)]

mod elector;

/// Answers "is a live leader with a majority heard now?" (see [`ClusterNode::liveness`]).
pub type LiveProbe = Arc<dyn Fn() -> bool + Send + Sync>;
mod ops;
mod status;

pub use elector::Elector;
pub use ops::{ClusterOp, OpError, OpReply, Ops};
pub use status::{ClusterStatus, LeaseStatus, MemberStatus, RpcCalls};

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::raft::open_store;
use crate::raft::types::Node;
use crate::raft::types::RaftMetrics;
use crate::raft::AppliedState;
use crate::raft::NodeId;
use crate::raft::Raft;
use crate::raft::Response;
use crate::raft::StoreError;
use crate::state::Command;
use crate::transport::wire::OpRequest;
use crate::transport::{
    serve_cluster, ClusterTls, Contacts, Handler, NetworkOptions, Rejections, TandemNetwork,
};

/// What a node needs to take part.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub raft_id: NodeId,
    /// The node's name: its certificate's name and the name part of `advertise`.
    pub name: String,
    pub listen: SocketAddr,
    /// `<name>:<port>`: what peers dial, stored in the membership.
    pub advertise: String,
    /// `ca.pem`, `<name>.pem`, `<name>.key` (from `tandemctl cluster init`).
    pub cert_dir: PathBuf,
    /// Where `raft.redb` lives.
    pub data_dir: PathBuf,
    pub bootstrap: bool,
    pub hosts: BTreeMap<String, IpAddr>,
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    /// Extra wait before this node campaigns for leadership (a witness waits longer, so a
    /// forwarding node usually leads). It does not change when it grants a pre-vote.
    pub campaign_delay: Duration,
    /// Bound on one admin-level operation (waiting for a leader included).
    pub op_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster certificates in {dir}: {source}")]
    Tls {
        dir: PathBuf,
        source: crate::transport::ClusterTlsError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen for cluster peers on {addr}: {source} (node.cluster.listen)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot receive cluster datagrams on {addr} (UDP, the cluster port): {source} (node.cluster.listen; free the UDP port too)")]
    ListenDatagrams {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("raft settings: {0}")]
    Config(String),
    #[error("raft did not start: {0}")]
    Raft(String),
}

/// A running cluster member.
pub struct ClusterNode {
    options: ClusterOptions,
    raft: Raft,
    ops: Arc<Ops>,
    network: TandemNetwork,
    contacts: Contacts,
    /// What the Raft listener refused (bad peers, bad frames, floods), by reason.
    rejections: Arc<Rejections>,
    applied: watch::Receiver<AppliedState>,
    local_addr: SocketAddr,
    elector: Arc<Elector>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl ClusterNode {
    pub async fn start(options: ClusterOptions) -> Result<ClusterNode, ClusterError> {
        let tls = ClusterTls::from_dir(&options.cert_dir, &options.name).map_err(|source| {
            ClusterError::Tls {
                dir: options.cert_dir.clone(),
                source,
            }
        })?;
        let network = TandemNetwork::new(
            tls.client.clone(),
            NetworkOptions {
                hosts: options.hosts.clone(),
                ..NetworkOptions::default()
            },
        );
        let data_dir = options.data_dir.clone();
        let (log, state_machine) = tokio::task::spawn_blocking(move || open_store(&data_dir))
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))??;
        let applied = state_machine.subscribe();
        let log_reader = log.clone();
        let heartbeat = options.heartbeat.as_millis() as u64;
        let election = options.election_timeout.as_millis() as u64;
        let config = openraft::Config {
            cluster_name: "tandem".into(),
            heartbeat_interval: heartbeat,
            // openraft draws its election timer from [min, max) (off here: the Elector
            // campaigns) and makes a voter refuse real votes for `max` after it last heard
            // a leader (its leader lease). The Elector grants pre-votes on the same clock,
            // so `max` is just above `min`: a leader is judged lost after one timeout.
            election_timeout_min: election,
            election_timeout_max: election + 1,
            install_snapshot_timeout: 5000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(2000),
            // Elections are called by the Elector, after a pre-vote.
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
        let raft = Raft::new(
            options.raft_id,
            Arc::new(config),
            network.clone(),
            log,
            state_machine,
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ClusterError::Listen {
                    addr: options.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().unwrap_or(options.listen);
        // Small RPCs also travel as sealed datagrams on the same port (transport::datagram).
        let datagrams =
            UdpSocket::bind(local_addr)
                .await
                .map_err(|source| ClusterError::ListenDatagrams {
                    addr: local_addr,
                    source,
                })?;
        let ops = Arc::new(Ops::new(
            raft.clone(),
            network.clone(),
            options.op_timeout,
            options.election_timeout,
        ));
        let contacts = network.contacts();
        let stop = CancellationToken::new();
        let elector = Arc::new(Elector::new(
            raft.clone(),
            log_reader,
            network.clone(),
            contacts.clone(),
            options.election_timeout,
            options.campaign_delay,
        ));
        tokio::spawn(elector.clone().run(stop.clone()));
        let rejections = Arc::new(Rejections::default());
        let handler = Handler {
            raft: raft.clone(),
            ops: Some(ops.clone()),
            contacts: contacts.clone(),
            elector: Some(elector.clone()),
            // A leader deaf for two thirds of an election timeout (at least two heartbeats,
            // each resent many times: no loss rate short of a cut keeps every answer from
            // it) is no leader to keep following.
            deaf_after: Some(options.election_timeout * 2 / 3),
            rejections: rejections.clone(),
        };
        let server = tokio::spawn(serve_cluster(
            listener,
            Some(datagrams),
            tls.server,
            handler,
            stop.clone(),
        ));
        let node = ClusterNode {
            options,
            raft,
            ops,
            network,
            contacts,
            rejections,
            applied,
            local_addr,
            elector,
            stop,
            server,
        };
        node.bootstrap_if_asked().await?;
        Ok(node)
    }

    async fn bootstrap_if_asked(&self) -> Result<(), ClusterError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let o = &self.options;
        if initialized {
            tracing::info!(
                node = o.raft_id,
                "cluster: rejoining with the Raft state on disk"
            );
        } else if o.bootstrap {
            let members = BTreeMap::from([(o.raft_id, Node::new(o.advertise.clone()))]);
            match self.raft.initialize(members).await {
                Ok(()) => tracing::info!(node = o.raft_id, advertise = %o.advertise,
                    "cluster: bootstrapped a new cluster with this node as its only voter"),
                Err(e) => {
                    tracing::info!(error = %e, "cluster: not bootstrapped (already initialised)")
                }
            }
        } else {
            tracing::info!(node = o.raft_id, advertise = %o.advertise,
                "cluster: not a member yet; add it from here with `tandemctl cluster join <member name>:<port>`");
        }
        Ok(())
    }

    pub fn id(&self) -> NodeId {
        self.options.raft_id
    }

    /// What the Raft listener refused so far, by reason (`tandem_cluster_rejected_total`).
    pub fn rejections(&self) -> &Rejections {
        &self.rejections
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn ops(&self) -> Arc<Ops> {
        self.ops.clone()
    }

    /// The cluster transport's bound address (useful with port 0 in tests).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Follow the applied replicated state.
    pub fn applied(&self) -> watch::Receiver<AppliedState> {
        self.applied.clone()
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// Whether a leader is alive as far as this node can tell *now*: it leads and a
    /// majority acknowledged it lately (or it is the only voter), or it accepted
    /// AppendEntries from a leader lately. Not the same as `metrics().current_leader`,
    /// which a restarted node restores from its stored vote before hearing anyone.
    pub fn has_live_leader(&self) -> bool {
        self.elector.leader_alive(self.options.election_timeout * 2)
    }

    /// "Could a lease be had here now?", for the lease keeper (which must not hold the
    /// node itself): a live leader heard within `within`, or contact with a majority of
    /// voters within `within` (an election after a leader crash still counts as
    /// reachable; a one-way cut or an isolated node does not).
    pub fn liveness(&self, within: Duration) -> LiveProbe {
        let elector = self.elector.clone();
        Arc::new(move || elector.leader_alive(within) || elector.majority_contact(within))
    }

    /// Whether this node is a voter in the membership it knows.
    pub fn is_voter(&self) -> bool {
        let m = self.metrics();
        let voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.id());
        voter
    }

    /// Propose one command; at the leader, wherever that is.
    pub async fn write(&self, command: Command) -> Result<Response, OpError> {
        match self.ops.run(ClusterOp::Write(command), false).await? {
            OpReply::Written { response, .. } => Ok(response),
            OpReply::Membership { .. } => unreachable!("a write answers Written"),
        }
    }

    /// Ask voter `peer` whether it would vote for this node now (a pre-vote; it changes
    /// nothing there). `Err` when it did not answer.
    pub async fn ask_pre_vote(&self, peer: NodeId) -> Result<bool, String> {
        self.elector.ask(peer).await
    }

    /// Ask the member at `seed` (`<name>:<port>`) to add this node: learner, then voter.
    pub async fn join(&self, seed: &str) -> Result<OpReply, OpError> {
        let op = ClusterOp::AddMember {
            id: self.id(),
            addr: self.options.advertise.clone(),
        };
        let request = OpRequest {
            op: op.clone(),
            forwarded: false,
            relayed: false,
        };
        // The seed forwards to its leader; catching up may take a snapshot transfer.
        match self
            .network
            .call_op(0, seed, request, self.options.op_timeout * 3)
            .await
        {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(reason)) => Err(OpError::Refused {
                what: format!("joining through {seed}"),
                reason,
            }),
            Err(reason) => Err(OpError::Refused {
                what: format!("joining through {seed}"),
                reason: format!("cannot reach it: {reason}"),
            }),
        }
    }

    /// Remove a member (it may be this node).
    pub async fn remove(&self, id: NodeId) -> Result<OpReply, OpError> {
        self.ops.run(ClusterOp::RemoveMember { id }, false).await
    }

    /// Members, leader, term, commit index, contacts, leases, sticky size.
    pub async fn status(&self) -> ClusterStatus {
        let committed = self
            .raft
            .with_raft_state(|st| st.committed.map(|c| c.index))
            .await
            .unwrap_or(None);
        let mut status = status::build(
            self.id(),
            &self.options.name,
            &self.metrics(),
            committed,
            &self.applied.borrow(),
            &self.contacts.snapshot(),
        );
        // openraft keeps naming the last leader it knew (restored from the stored vote
        // after a restart, kept while cut off): show one only while it is alive.
        if !self.has_live_leader() {
            status.leader = None;
        }
        status.rpc_calls = self.network.calls();
        status
    }

    /// Stops Raft and the listener, for owners that share the node (the store stays on
    /// disk). The listener task ends on its own once cancelled.
    pub async fn stop(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "cluster: raft shutdown");
        }
        self.stop.cancel();
    }

    /// Stops Raft and the listener (the store stays on disk for the next start).
    pub async fn shutdown(self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "cluster: raft shutdown");
        }
        self.stop.cancel();
        let _ = self.server.await;
    }
}

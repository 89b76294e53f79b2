//! The cluster transport: Raft RPCs between nodes over TCP with mutual TLS.
//!
//! * [`pki`]: the cluster CA and per-node certificates (`tandemctl cluster init`).
//! * [`ClusterTls`]: a node's server and client TLS configs from those files; only
//!   certificates of the cluster CA are accepted, in both directions.
//! * [`wire`]: frames (`u32` big-endian length + postcard payload, bounded by
//!   [`wire::MAX_FRAME`]) carrying openraft's own request and response types.
//! * [`TandemNetwork`]: openraft's `RaftNetworkFactory`; dials peers at their
//!   `BasicNode.addr` (`"<node name>:<port>"`), keeps connections, maps failures to
//!   openraft's error kinds.
//! * [`serve`]: the listener that hands peers' RPCs to the local `Raft`.
//!
//! Wiring a node (compiled, not run):
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//!
//! use tandem_cluster::raft::{open_store, Raft};
//! use tandem_cluster::transport::{serve, ClusterTls, NetworkOptions, TandemNetwork};
//! use tokio::net::TcpListener;
//! use tokio_util::sync::CancellationToken;
//!
//! async fn start(config: Arc<openraft::Config>) -> Result<Raft, Box<dyn std::error::Error>> {
//!     let tls = ClusterTls::from_dir(Path::new("/etc/tandem/cluster"), "node-a")?;
//!     let network = TandemNetwork::new(tls.client.clone(), NetworkOptions::default());
//!     let (log, state_machine) = open_store(Path::new("/var/lib/tandem"))?;
//!     let raft = Raft::new(1, config, network, log, state_machine).await?;
//!     let listener = TcpListener::bind("0.0.0.0:7300").await?;
//!     tokio::spawn(serve(listener, tls.server.clone(), raft.clone(), CancellationToken::new()));
//!     Ok(raft)
//! }
//! ```

mod client;
mod peer;
pub mod pki;
mod server;
mod tls;
pub mod wire;

pub use client::NetworkOptions;
pub use client::PeerClient;
pub use client::TandemNetwork;
pub use pki::init_cluster_pki;
pub use pki::init_cluster_pki_with;
pub use pki::ClusterPki;
pub use pki::NodeFiles;
pub use pki::PkiError;
pub use pki::PkiOptions;
pub use server::serve;
pub use server::serve_with;
pub use server::Handler;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::raft::NodeId;

/// When this node last heard from each peer (a reply to one of its calls, or an
/// AppendEntries / Vote request from it; for `tandemctl cluster status` and for choosing a
/// relay), and when it last accepted AppendEntries from a leader (for pre-vote).
#[derive(Clone, Debug, Default)]
pub struct Contacts {
    peers: Arc<Mutex<BTreeMap<NodeId, Instant>>>,
    leader: Arc<Mutex<Option<Instant>>>,
    progress: Arc<Mutex<LeaderProgress>>,
}

/// What a follower saw of the current leader's commit index (see
/// [`Contacts::leader_commits`]).
#[derive(Debug, Default)]
struct LeaderProgress {
    /// The leader's (term, node) these figures belong to.
    leader: Option<(u64, NodeId)>,
    /// The highest commit index it sent, and when it last rose.
    commit: Option<(u64, Instant)>,
    /// Judged stuck at this commit index: not live again until it commits past it.
    stuck_at: Option<u64>,
}

impl Contacts {
    pub fn touch(&self, node: NodeId) {
        let mut map = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(node, Instant::now());
    }

    /// Every peer heard from, with when.
    pub fn snapshot(&self) -> BTreeMap<NodeId, Instant> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// When `node` was last heard from.
    pub fn last(&self, node: NodeId) -> Option<Instant> {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .copied()
    }

    /// A leader's AppendEntries was accepted: this node follows a live leader.
    pub fn leader_heard(&self) {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Raft's check-quorum, seen from a follower (openraft 0.9 has no leader step-down on
    /// a lost quorum): is the leader that sent AppendEntries with `commit` still
    /// committing? Yes if its commit index rose within `window`, or it has committed
    /// everything this node holds (`last_log`). A leader that still sends but hears
    /// nobody (a one-way cut) appends entries it can never commit; once judged stuck it
    /// stays so until it commits past that point. Its followers then stop feeding its
    /// AppendEntries to openraft, whose leader lease would otherwise refuse every vote
    /// for as long as the deaf leader keeps sending.
    pub fn leader_commits(
        &self,
        leader: (u64, NodeId),
        commit: Option<u64>,
        last_log: Option<u64>,
        window: std::time::Duration,
    ) -> bool {
        let now = Instant::now();
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if p.leader != Some(leader) {
            *p = LeaderProgress {
                leader: Some(leader),
                ..LeaderProgress::default()
            };
        }
        let c = commit.unwrap_or(0);
        let rose = match p.commit {
            Some((seen, _)) if c <= seen => false,
            _ => {
                p.commit = Some((c, now));
                true
            }
        };
        if let Some(stuck) = p.stuck_at {
            if c <= stuck {
                return false;
            }
            p.stuck_at = None;
        }
        let recent = p
            .commit
            .is_some_and(|(_, at)| now.duration_since(at) <= window);
        let live = rose || recent || c >= last_log.unwrap_or(0);
        if !live {
            p.stuck_at = Some(c);
        }
        live
    }

    /// When this node last accepted AppendEntries from a leader, if ever.
    pub fn leader_last_heard(&self) -> Option<Instant> {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner())
    }
}
pub use tls::ClusterTls;
pub use tls::ClusterTlsError;
pub use tls::ALPN;

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

    /// When this node last accepted AppendEntries from a leader, if ever.
    pub fn leader_last_heard(&self) -> Option<Instant> {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner())
    }
}
pub use tls::ClusterTls;
pub use tls::ClusterTlsError;
pub use tls::ALPN;

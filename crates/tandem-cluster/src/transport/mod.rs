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
//! * [`datagram`]: small RPCs (heartbeats, lease renewals, votes) over UDP on the same
//!   port, sealed with a key exported from each mTLS connection, resent until answered.
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
pub mod datagram;
mod peer;
pub mod pki;
mod rejections;
mod server;
mod tls;
pub mod wire;

pub use client::NetworkOptions;
pub use client::PeerClient;
pub use client::TandemNetwork;
pub use datagram::server::Sessions;
pub use pki::init_cluster_pki;
pub use pki::init_cluster_pki_with;
pub use pki::ClusterPki;
pub use pki::NodeFiles;
pub use pki::PkiError;
pub use pki::PkiOptions;
pub use rejections::{Rejection, Rejections};
pub use server::serve;
pub use server::serve_cluster;
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
/// The cluster's TCP connections carry small, latency-bound messages (heartbeats, lease
/// renewals) on a LAN. Linux waits at least 200 ms before it retransmits a lost segment
/// (and as long before probing a lost tail), longer than a third of the lease's hold
/// window, so one lost packet could cost a renewal. Set per connection, where the kernel
/// allows it (Linux 6.15+, `TCP_RTO_MIN_US`): a 20 ms minimum retransmission timeout, and
/// linear rather than exponential backoff for these thin streams. Older kernels keep their
/// defaults (logged once); `ip route change ... rto_min 20ms` gives the same per route.
pub(crate) fn tune_tcp(tcp: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    const TCP_RTO_MIN_US: libc::c_int = 45;
    const RTO_MIN_US: libc::c_int = 20_000;
    let _ = tcp.set_nodelay(true);
    let fd = tcp.as_raw_fd();
    let set = |option: libc::c_int, value: libc::c_int| {
        // SAFETY: a valid socket fd, an int option value of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        (rc == 0)
            .then_some(())
            .ok_or_else(std::io::Error::last_os_error)
    };
    let _ = set(libc::TCP_THIN_LINEAR_TIMEOUTS, 1);
    if let Err(e) = set(TCP_RTO_MIN_US, RTO_MIN_US) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::info!(error = %e, "cluster transport: this kernel keeps its 200 ms minimum TCP retransmission timeout (TCP_RTO_MIN_US needs Linux 6.15); lease renewals ride out less packet loss")
        });
    }
}

pub use tls::ClusterTls;
pub use tls::ClusterTlsError;
pub use tls::ALPN;

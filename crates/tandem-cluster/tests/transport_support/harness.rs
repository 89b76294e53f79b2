//! Pieces the transport tests share: a PKI in a temp dir, a node's TLS, a Raft node on its
//! own redb store, and a running `serve` task that can be stopped.

// Each test binary uses part of this file.
#![allow(dead_code)]

use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::network::RPCOption;
use openraft::BasicNode;
use openraft::Config;
use openraft::RaftNetworkFactory;
use tandem_cluster::raft::open_store;
use tandem_cluster::raft::AppliedState;
use tandem_cluster::raft::NodeId;
use tandem_cluster::raft::Raft;
use tandem_cluster::raft::StoreError;
use tandem_cluster::transport::init_cluster_pki;
use tandem_cluster::transport::serve;
use tandem_cluster::transport::ClusterTls;
use tandem_cluster::transport::NetworkOptions;
use tandem_cluster::transport::PeerClient;
use tandem_cluster::transport::TandemNetwork;
use tandem_tls::rustls::ClientConfig;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::temp::TempDir;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A fresh cluster PKI for `names` in its own temp dir.
pub fn pki(tag: &str, names: &[&str]) -> TempDir {
    let dir = TempDir::new(tag);
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    init_cluster_pki(dir.path(), &names).expect("init cluster pki");
    dir
}

pub fn tls(dir: &Path, name: &str) -> ClusterTls {
    ClusterTls::from_dir(dir, name).expect("load the node's cluster tls")
}

/// A network whose node names all resolve to 127.0.0.1 (they are not in DNS).
pub fn network(client: Arc<ClientConfig>, names: &[&str]) -> TandemNetwork {
    let options = NetworkOptions {
        hosts: names.iter().map(|n| (n.to_string(), LOCALHOST)).collect(),
        ..NetworkOptions::default()
    };
    TandemNetwork::new(client, options)
}

/// A client of `network` for node `target` at `addr`.
pub async fn client(network: &TandemNetwork, target: NodeId, addr: &str) -> PeerClient {
    network
        .clone()
        .new_client(target, &BasicNode::new(addr))
        .await
}

pub fn rpc_option() -> RPCOption {
    RPCOption::new(Duration::from_secs(3))
}

/// Fast timers, and a small snapshot interval with no log kept behind a snapshot, so a node
/// that was down for a dozen entries can only catch up by snapshot.
pub fn raft_config() -> Arc<Config> {
    let config = Config {
        cluster_name: "tandem-transport-test".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        install_snapshot_timeout: 2000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(8),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

/// Start Raft node `id` on the store in `dir`. A just-shut-down node's tasks may still hold
/// the redb file for a moment, so "already open" is retried briefly.
pub async fn raft(
    id: NodeId,
    dir: &Path,
    network: TandemNetwork,
) -> (Raft, watch::Receiver<AppliedState>) {
    let mut tries = 0;
    let (log, sm) = loop {
        match open_store(dir) {
            Ok(store) => break store,
            Err(StoreError::Open { .. }) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("node {id}: {e}"),
        }
    };
    let applied = sm.subscribe();
    let raft = Raft::new(id, raft_config(), network, log, sm)
        .await
        .expect("raft starts");
    (raft, applied)
}

/// A running `serve` task.
pub struct Server {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    pub fn start(listener: TcpListener, tls: &ClusterTls, raft: Raft) -> Server {
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, tls.server.clone(), raft, stop.clone()));
        Server { addr, stop, task }
    }

    /// Stop serving; returns once the listener and every connection are closed.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns soon after stop")
            .expect("serve does not panic");
    }
}

/// Bind `port` on 127.0.0.1 (0: any), retrying briefly while a previous owner lets go.
pub async fn bind(port: u16) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind((LOCALHOST, port)).await {
            Ok(listener) => return listener,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("bind 127.0.0.1:{port}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("bind 127.0.0.1:{port}: {e}"),
        }
    }
}

/// A TLS connection to `addr` with an arbitrary client config, verifying the server as
/// `name`: for tests that speak the wire by hand.
pub async fn raw_tls(
    addr: SocketAddr,
    client: Arc<ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = tandem_tls::server_name(name).expect("valid name");
    TlsConnector::from(client).connect(name, tcp).await
}

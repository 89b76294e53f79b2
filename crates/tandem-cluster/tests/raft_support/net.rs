//! An in-process Raft network: RPCs are direct calls on the target's `Raft` handle, looked up
//! in a shared router. A node removed from the router is unreachable, which is how tests
//! "kill" it. Every request and every answer is round-tripped through postcard first, so the
//! cluster tests also prove the wire encoding the real (mTLS TCP) transport will use.

// `RPCError` is the error type `RaftNetwork` requires; its size is openraft's choice.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use openraft::error::InstallSnapshotError;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::RaftNetwork;
use openraft::RaftNetworkFactory;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tandem_cluster::raft::types::AppendEntriesRequest;
use tandem_cluster::raft::types::AppendEntriesResponse;
use tandem_cluster::raft::types::InstallSnapshotRequest;
use tandem_cluster::raft::types::InstallSnapshotResponse;
use tandem_cluster::raft::types::Node;
use tandem_cluster::raft::types::VoteRequest;
use tandem_cluster::raft::types::VoteResponse;
use tandem_cluster::raft::NodeId;
use tandem_cluster::raft::Raft;
use tandem_cluster::raft::TandemRaft;

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

/// Who is up, by node id. Cloned into every node's network factory.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<Mutex<BTreeMap<NodeId, Raft>>>,
}

impl Router {
    pub fn add(&self, id: NodeId, raft: Raft) {
        self.nodes.lock().unwrap().insert(id, raft);
    }

    /// Make `id` unreachable; returns its handle so the caller can shut it down.
    pub fn remove(&self, id: NodeId) -> Option<Raft> {
        self.nodes.lock().unwrap().remove(&id)
    }

    fn get(&self, id: NodeId) -> Option<Raft> {
        self.nodes.lock().unwrap().get(&id).cloned()
    }
}

impl RaftNetworkFactory<TandemRaft> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> Connection {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

pub struct Connection {
    router: Router,
    target: NodeId,
}

/// Encode and decode, as a transport would.
fn wire<T: Serialize + DeserializeOwned>(value: T) -> Result<T, NetworkError> {
    let bytes = postcard::to_stdvec(&value).map_err(|e| NetworkError::new(&e))?;
    postcard::from_bytes(&bytes).map_err(|e| NetworkError::new(&e))
}

impl Connection {
    fn peer<E: std::error::Error>(&self) -> RpcResult<Raft, E> {
        self.router.get(self.target).ok_or_else(|| {
            let down = std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("node {} is down", self.target),
            );
            RPCError::Unreachable(Unreachable::new(&down))
        })
    }

    /// Ship `result` back as the transport would, and type a remote failure as such.
    fn answer<T, E>(&self, result: Result<T, RaftError<NodeId, E>>) -> RpcResult<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: std::error::Error + Serialize + DeserializeOwned,
    {
        match wire(result).map_err(RPCError::Network)? {
            Ok(answer) => Ok(answer),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }
}

impl RaftNetwork<TandemRaft> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse> {
        let raft = self.peer()?;
        let rpc = wire(rpc).map_err(RPCError::Network)?;
        self.answer(raft.append_entries(rpc).await)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse, InstallSnapshotError> {
        let raft = self.peer()?;
        let rpc = wire(rpc).map_err(RPCError::Network)?;
        self.answer(raft.install_snapshot(rpc).await)
    }

    async fn vote(&mut self, rpc: VoteRequest, _option: RPCOption) -> RpcResult<VoteResponse> {
        let raft = self.peer()?;
        let rpc = wire(rpc).map_err(RPCError::Network)?;
        self.answer(raft.vote(rpc).await)
    }
}

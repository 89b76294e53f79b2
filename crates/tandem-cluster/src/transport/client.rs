//! The client half: [`TandemNetwork`], openraft's `RaftNetworkFactory`, and [`PeerClient`],
//! the `RaftNetwork` it hands out for one target node.
//!
//! Connections. openraft creates clients freely: one per replication stream (kept for a
//! leader's whole term), but also a fresh one per election round and per read-index check.
//! So connections belong to the peer, not to the client: a [`PeerClient`] keeps the one
//! connection it uses (reconnecting after an error) and, when openraft drops it, parks that
//! connection in the peer's small idle pool for the next client. A busy replication stream
//! and a vote therefore never queue behind each other, and an election does not pay a TLS
//! handshake per peer.
//!
//! Cancellation. openraft wraps every call in a timeout (for AppendEntries, the heartbeat
//! interval) and drops the call when it fires. A connection in the middle of an exchange is
//! then dropped with the call, never reused, so a late reply cannot be read as the answer to
//! the next request. Dialing runs in its own task, so a handshake cut off by such a timeout
//! still completes and its connection goes to the idle pool instead of being thrown away and
//! started again on every heartbeat.
//!
//! Errors, as the in-memory test network maps them: cannot connect (DNS, refused, timeout,
//! TLS refused) is `Unreachable` (openraft backs off); a failure on an established
//! connection or an undecodable reply is `NetworkError` (retried on the next tick); an error
//! returned by the remote `Raft` is `RemoteError`. An AppendEntries over the frame limit is
//! `PayloadTooLarge` with a hint of half the entries, so openraft resends in smaller batches.

// `RPCError` is the error type `RaftNetwork` requires; its size is openraft's choice.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::error::InstallSnapshotError;
use openraft::error::RPCError;
use openraft::error::RemoteError;
use openraft::network::RPCOption;
use openraft::RaftNetwork;
use openraft::RaftNetworkFactory;
use tokio::net::UdpSocket;
use tokio_rustls::TlsConnector;

use super::datagram;
use super::datagram::client::Miss;

use super::peer::Conn;
use super::peer::Dialer;
use super::peer::Failure;
use super::peer::Kind;
use super::peer::Peer;

use super::wire::encode_frame;
use super::wire::read_frame;
use super::wire::write_frame;
use super::wire::FrameError;
use super::wire::OpRequest;
use super::wire::PreVoteRequest;
use super::wire::Reply;
use super::wire::Request;
use super::wire::MAX_FRAME;
use super::Contacts;
use crate::node::OpReply;
use crate::raft::types::AppendEntriesRequest;
use crate::raft::types::AppendEntriesResponse;
use crate::raft::types::InstallSnapshotRequest;
use crate::raft::types::InstallSnapshotResponse;
use crate::raft::types::Node;
use crate::raft::types::VoteRequest;
use crate::raft::types::VoteResponse;
use crate::raft::NodeId;
use crate::raft::TandemRaft;
use tandem_tls::rustls::ClientConfig;

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, openraft::error::RaftError<NodeId, E>>>;

/// Tuning of the client side. The defaults suit a LAN cluster.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// Bound on name resolution + TCP connect + TLS handshake to one peer.
    pub connect_timeout: Duration,
    /// Largest request frame sent (see [`MAX_FRAME`]); the server enforces its own limit.
    pub max_frame: usize,
    /// Idle connections kept per peer for short-lived clients (votes, read-index checks).
    pub idle_per_peer: usize,
    /// Fixed addresses for node names, like `/etc/hosts` entries or curl's `--resolve`, for
    /// clusters whose node names are not in DNS. The name is still what TLS verifies.
    pub hosts: BTreeMap<String, IpAddr>,
    /// Send small requests as sealed datagrams once a peer has answered one (see
    /// [`super::datagram`]); TCP otherwise.
    pub datagrams: bool,
    /// How often an unanswered datagram request is sent again.
    pub retransmit: Duration,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            connect_timeout: Duration::from_secs(2),
            max_frame: MAX_FRAME,
            idle_per_peer: 4,
            hosts: BTreeMap::new(),
            datagrams: true,
            // A LAN round trip is well under a millisecond; this is a tenth of the
            // default lease renewal period, so a renewal survives several losses.
            retransmit: Duration::from_millis(15),
        }
    }
}

/// openraft's network factory for the mTLS transport. Peer addresses come from the
/// membership (`BasicNode.addr`, `"<node name>:<port>"`); the node name is also the TLS name
/// the peer's certificate must carry. Cheap to clone; clones share the connection pools.
#[derive(Clone)]
pub struct TandemNetwork {
    dialer: Arc<Dialer>,
    peers: Arc<Mutex<PeerMap>>,
    contacts: Contacts,
    calls: Arc<CallCounts>,
}

/// Answered calls by transport (see [`crate::node::RpcCalls`]).
#[derive(Debug, Default)]
struct CallCounts {
    datagram: AtomicU64,
    stream: AtomicU64,
}

/// Peers by node id and address.
type PeerMap = HashMap<(NodeId, String), Arc<Peer>>;

impl TandemNetwork {
    /// `client_tls` is [`ClusterTls::client`](super::ClusterTls).
    pub fn new(client_tls: Arc<ClientConfig>, options: NetworkOptions) -> Self {
        let hosts = options
            .hosts
            .iter()
            .map(|(name, ip)| (name.to_ascii_lowercase(), *ip))
            .collect();
        TandemNetwork {
            dialer: Arc::new(Dialer {
                connector: TlsConnector::from(client_tls),
                options,
                hosts,
            }),
            peers: Arc::default(),
            contacts: Contacts::default(),
            calls: Arc::default(),
        }
    }

    /// Answered calls so far, by transport.
    pub fn calls(&self) -> crate::node::RpcCalls {
        crate::node::RpcCalls {
            datagram: self.calls.datagram.load(Ordering::Relaxed),
            stream: self.calls.stream.load(Ordering::Relaxed),
        }
    }

    /// The contact book this network notes successful replies in (share it with the
    /// server's [`Handler`](super::Handler)).
    pub fn contacts(&self) -> Contacts {
        self.contacts.clone()
    }

    /// Send one cluster operation to the node at `addr` (`target` 0 when its id is not
    /// known, as for a join through a seed address) and wait up to `timeout` for its answer.
    /// The outer error is a transport failure; the inner one the remote node's refusal.
    pub async fn call_op(
        &self,
        target: NodeId,
        addr: &str,
        request: OpRequest,
        timeout: Duration,
    ) -> Result<Result<OpReply, String>, String> {
        let mut client = PeerClient {
            peer: self.peer(target, addr),
            conn: None,
            contacts: self.contacts.clone(),
            udp: None,
            calls: Arc::clone(&self.calls),
        };
        match client
            .call(&Request::Op(request), &RPCOption::new(timeout))
            .await
        {
            Ok(Reply::Op(result)) => Ok(result),
            Ok(other) => Err(client.unexpected(&other, "ClusterOp").to_string()),
            Err(failure) => Err(failure.to_string()),
        }
    }

    /// Ask the member `target` at `addr` for a pre-vote; any failure to answer counts as a
    /// refusal, so the caller only needs the answer.
    pub async fn call_pre_vote(
        &self,
        target: NodeId,
        addr: &str,
        request: PreVoteRequest,
        timeout: Duration,
    ) -> Result<bool, String> {
        let mut client = PeerClient {
            peer: self.peer(target, addr),
            conn: None,
            contacts: self.contacts.clone(),
            udp: None,
            calls: Arc::clone(&self.calls),
        };
        match client
            .call(&Request::PreVote(request), &RPCOption::new(timeout))
            .await
        {
            Ok(Reply::PreVote(granted)) => Ok(granted),
            Ok(other) => Err(client.unexpected(&other, "PreVote").to_string()),
            Err(failure) => Err(failure.to_string()),
        }
    }

    /// The shared state of one peer; a changed address is a different peer.
    fn peer(&self, target: NodeId, addr: &str) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let key = (target, addr.to_string());
        let peer = peers.entry(key).or_insert_with(|| {
            Arc::new(Peer {
                target,
                addr: addr.to_string(),
                dialer: Arc::clone(&self.dialer),
                idle: Mutex::default(),
                last_failure: Mutex::default(),
                last_success: Mutex::default(),
                session: Mutex::default(),
            })
        });
        Arc::clone(peer)
    }
}

impl RaftNetworkFactory<TandemRaft> for TandemNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            peer: self.peer(target, &node.addr),
            conn: None,
            contacts: self.contacts.clone(),
            udp: None,
            calls: Arc::clone(&self.calls),
        }
    }
}

/// The `RaftNetwork` for one target node. See the module docs for how it holds connections.
pub struct PeerClient {
    peer: Arc<Peer>,
    conn: Option<Conn>,
    contacts: Contacts,
    /// The socket and receive buffer of datagram calls, made on first use.
    udp: Option<(UdpSocket, SocketAddr, Vec<u8>)>,
    calls: Arc<CallCounts>,
}

impl Drop for PeerClient {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.peer.put_idle(conn);
        }
    }
}

/// Send one request frame and read its reply frame.
async fn exchange(conn: &mut Conn, frame: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    write_frame(conn, frame).await?;
    read_frame(conn, max).await?.ok_or(FrameError::Closed)
}

/// A TLS alert from the server right after the handshake: it refused our certificate.
fn refused_by_tls(e: &FrameError) -> bool {
    match e {
        FrameError::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<tandem_tls::rustls::Error>()),
        _ => false,
    }
}

impl PeerClient {
    /// One request and its reply, within openraft's `hard_ttl`.
    ///
    /// A reused connection may have been closed by the server while idle; if the exchange on
    /// it fails, the request is sent once more on a new connection. Sending a Raft RPC twice
    /// is safe: AppendEntries, Vote and snapshot chunks are idempotent at the receiver.
    async fn call(&mut self, request: &Request, option: &RPCOption) -> Result<Reply, Failure> {
        let max = self.peer.dialer.options.max_frame;
        let frame = encode_frame(request, max).map_err(|e| {
            let kind = match e {
                FrameError::TooLarge { .. } => Kind::TooLarge,
                _ => Kind::Network,
            };
            self.peer
                .failure(kind, format!("{} request: {e}", request.kind()))
        })?;
        let ttl = option.hard_ttl();
        let deadline = tokio::time::Instant::now() + ttl;
        if let Some(bytes) = self.call_datagram(request, &frame[4..], deadline).await? {
            self.calls.datagram.fetch_add(1, Ordering::Relaxed);
            return self.reply(&bytes);
        }
        let attempt = async {
            if let Some(mut conn) = self.conn.take().or_else(|| self.peer.take_idle()) {
                match exchange(&mut conn, &frame, max).await {
                    Ok(reply) => {
                        self.conn = Some(conn);
                        return Ok(reply);
                    }
                    Err(e) => tracing::debug!(peer = %self.peer.addr, error = %e,
                        "cluster transport: kept connection failed, reconnecting"),
                }
            }
            let mut conn = self.peer.connect().await?;
            match exchange(&mut conn, &frame, max).await {
                Ok(reply) => {
                    self.conn = Some(conn);
                    Ok(reply)
                }
                Err(e) if refused_by_tls(&e) => {
                    let reason = format!("refused our certificate: {e}");
                    self.peer.note(Instant::now(), Some(&reason));
                    Err(self.peer.failure(Kind::Unreachable, reason))
                }
                Err(e) => Err(self.peer.failure(Kind::Network, e.to_string())),
            }
        };
        let bytes = tokio::time::timeout_at(deadline, attempt)
            .await
            .map_err(|_| {
                self.peer
                    .failure(Kind::Network, format!("no answer within {ttl:?}"))
            })??;
        self.calls.stream.fetch_add(1, Ordering::Relaxed);
        self.reply(&bytes)
    }

    /// Try `request` (encoded as `payload`) as a datagram exchange: `Ok(None)` when it must
    /// go over TCP (no proven session, too large for a datagram, or the peer said so).
    async fn call_datagram(
        &mut self,
        request: &Request,
        payload: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let small = matches!(
            request,
            Request::AppendEntries(_) | Request::Vote(_) | Request::PreVote(_) | Request::Op(_)
        ) && payload.len() <= datagram::MAX_REQUEST;
        if !small {
            return Ok(None);
        }
        let Some(session) = self.peer.session() else {
            return Ok(None);
        };
        let retransmit = self.peer.dialer.options.retransmit;
        if !session.proven() {
            session.probe(retransmit);
            return Ok(None);
        }
        if self
            .udp
            .as_ref()
            .is_none_or(|(_, addr, _)| *addr != session.addr)
        {
            match session.socket().await {
                Ok(socket) => {
                    let buf = vec![0u8; datagram::MAX_REPLY + 64];
                    self.udp = Some((socket, session.addr, buf));
                }
                Err(e) => {
                    tracing::debug!(peer = %self.peer.addr, error = %e, "cluster transport: no datagram socket");
                    return Ok(None);
                }
            }
        }
        let Some((socket, _, buf)) = self.udp.as_mut() else {
            return Ok(None);
        };
        match session
            .exchange(socket, buf, payload, deadline, retransmit)
            .await
        {
            Ok(reply) => Ok(Some(reply)),
            Err(Miss::UseTcp(why)) => {
                tracing::debug!(peer = %self.peer.addr, why, "cluster transport: datagram call goes over TCP");
                Ok(None)
            }
            Err(Miss::Timeout) => Err(self.peer.failure(
                Kind::Network,
                format!("no datagram answer to {} in time", request.kind()),
            )),
        }
    }

    /// Decode a reply; a refusal or gibberish is a failure.
    fn reply(&mut self, bytes: &[u8]) -> Result<Reply, Failure> {
        let failure = match postcard::from_bytes::<Reply>(bytes) {
            Ok(Reply::Refused(why)) => self.peer.failure(Kind::Network, why),
            Ok(reply) => {
                if self.peer.target != 0 {
                    self.contacts.touch(self.peer.target);
                }
                return Ok(reply);
            }
            Err(e) => {
                let reason = format!("undecodable reply: {e}");
                self.peer.failure(Kind::Network, reason)
            }
        };
        // A peer that refuses our requests or answers gibberish is not one to keep talking
        // to on this connection (it closes it after a refusal anyway).
        self.conn = None;
        Err(failure)
    }

    fn unexpected(&mut self, reply: &Reply, asked: &str) -> Failure {
        self.conn = None;
        let reason = format!("answered a {asked} request with {reply:?}");
        self.peer.failure(Kind::Network, reason)
    }

    fn remote<E: std::error::Error>(
        &self,
        e: openraft::error::RaftError<NodeId, E>,
    ) -> RPCError<NodeId, Node, openraft::error::RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.peer.target, e))
    }
}

impl RaftNetwork<TandemRaft> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse> {
        let entries = rpc.entries.len();
        match self.call(&Request::AppendEntries(rpc), &option).await {
            Ok(Reply::AppendEntries(result)) => result.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.unexpected(&other, "AppendEntries").into_rpc(None)),
            Err(failure) => Err(failure.into_rpc(Some(entries))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse, InstallSnapshotError> {
        match self.call(&Request::InstallSnapshot(rpc), &option).await {
            Ok(Reply::InstallSnapshot(result)) => result.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.unexpected(&other, "InstallSnapshot").into_rpc(None)),
            Err(failure) => Err(failure.into_rpc(None)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest, option: RPCOption) -> RpcResult<VoteResponse> {
        match self.call(&Request::Vote(rpc), &option).await {
            Ok(Reply::Vote(result)) => result.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.unexpected(&other, "Vote").into_rpc(None)),
            Err(failure) => Err(failure.into_rpc(None)),
        }
    }
}

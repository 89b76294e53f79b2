//! The Raft listener: accepts peers over mutual TLS and hands their RPCs to the local
//! `Raft`. Laid out like mini-redis: an accept loop that spawns one task per connection, each
//! task a read-request / call-raft / write-reply loop.
//!
//! Bad input is refused, never fatal: a failed handshake, an oversized or undecodable frame
//! or a silent peer ends that one connection (with a log line naming the peer and the
//! reason) and the listener keeps serving everyone else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::net::UdpSocket;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::datagram::server::Sessions;
use super::datagram::{SessionKey, EXPORTER_LABEL};
use super::wire::encode_frame;
use super::wire::read_frame;
use super::wire::write_frame;
use super::wire::FrameError;
use super::wire::Reply;
use super::wire::Request;
use super::wire::MAX_FRAME;
use super::Contacts;
use super::{Rejection, Rejections};
use crate::node::Elector;
use crate::node::Ops;
use crate::raft::types::AppendEntriesResponse;
use crate::raft::Raft;
use tandem_tls::rustls::ServerConfig;

/// A peer has this long to complete the TLS handshake; a connection that never finishes one
/// (a port scanner, a stuck peer) must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection with no request for this long is closed. Peers keep their connections open
/// between RPCs (a leader sends heartbeats every few tens of ms); one this quiet was
/// abandoned, and its client reconnects if it ever needs it again.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// More connections than this at once are turned away: a cluster has a handful of peers,
/// each with a few connections, so this only bounds what a flood can cost.
const MAX_CONNECTIONS: usize = 256;

/// Serve Raft RPCs from peers on `listener` until `stop` is cancelled.
///
/// Every peer must present a certificate that `tls` accepts (see
/// [`ClusterTls`](super::ClusterTls)); a refused handshake is logged at warn with the peer
/// address and the reason. On `stop` the listener is closed and every connection is dropped
/// (in-flight calls included) before this returns, so a node that stopped serving is really
/// unreachable, as a crashed one would be.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    raft: Raft,
    stop: CancellationToken,
) {
    let handler = Handler {
        raft,
        ops: None,
        contacts: Contacts::default(),
        elector: None,
        deaf_after: None,
        rejections: Arc::default(),
    };
    serve_with(listener, tls, handler, stop).await
}

/// What the listener hands requests to: the local Raft, the cluster operations executor
/// (absent: `Op` requests are answered with an error), the contact book it notes leaders
/// and candidates in, the elector that answers pre-votes (absent: refused), and the
/// counts of what the listener refused.
#[derive(Clone)]
pub struct Handler {
    pub raft: Raft,
    pub ops: Option<Arc<Ops>>,
    pub contacts: Contacts,
    pub elector: Option<Arc<Elector>>,
    /// Refuse AppendEntries arriving as datagrams from a leader that has not heard this
    /// node's answers for this long (see [`super::datagram`]); `None`: never.
    pub deaf_after: Option<Duration>,
    pub rejections: Arc<Rejections>,
}

/// [`serve`] with cluster operations, over TCP only.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    handler: Handler,
    stop: CancellationToken,
) {
    serve_cluster(listener, None, tls, handler, stop).await
}

/// What a full node runs: [`serve_with`], and on `datagrams` (a UDP socket, normally on
/// the listener's own address and port) the small RPCs of peers sealed with the sessions
/// of their TLS connections (see [`super::datagram`]).
pub async fn serve_cluster(
    listener: TcpListener,
    datagrams: Option<UdpSocket>,
    tls: Arc<ServerConfig>,
    handler: Handler,
    stop: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let connections = TaskTracker::new();
    let sessions = datagrams.as_ref().map(|_| Sessions::default());
    if let (Some(socket), Some(sessions)) = (datagrams, &sessions) {
        let (sessions, handler, stop) = (sessions.clone(), handler.clone(), stop.clone());
        connections.spawn(super::datagram::server::serve(
            socket, sessions, handler, stop,
        ));
    }
    let addr = listener
        .local_addr()
        .map_or_else(|e| format!("? ({e})"), |a| a.to_string());
    tracing::info!(%addr, "cluster transport: listening");
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning on it.
                    tracing::warn!(error = %e, "cluster transport: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if connections.len() >= MAX_CONNECTIONS {
            let detail = format!("more than {MAX_CONNECTIONS} connections open");
            handler
                .rejections
                .refuse(Rejection::ConnectionLimit, peer, &detail);
            continue;
        }
        let (acceptor, handler, stop) = (acceptor.clone(), handler.clone(), stop.clone());
        let sessions = sessions.clone();
        connections.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(tcp, peer, acceptor, handler, sessions) => {}
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    tracing::info!(%addr, "cluster transport: stopped");
}

/// One peer connection, from handshake to close.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handler: Handler,
    sessions: Option<Sessions>,
) {
    super::tune_tcp(&tcp);
    let mut stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let detail = format!("TLS handshake failed: {e}");
            handler
                .rejections
                .refuse(Rejection::TlsHandshake, peer, &detail);
            return;
        }
        Err(_) => {
            let detail = format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
            handler
                .rejections
                .refuse(Rejection::HandshakeTimeout, peer, &detail);
            return;
        }
    };
    tracing::debug!(%peer, "cluster transport: peer connected");
    if let Some(sessions) = &sessions {
        let tls = &stream.get_ref().1;
        if let Some(key) =
            SessionKey::export(|m| tls.export_keying_material(m, EXPORTER_LABEL, None))
        {
            sessions.insert(key);
        }
    }
    loop {
        let frame =
            match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut stream, MAX_FRAME)).await {
                Err(_) => {
                    tracing::debug!(%peer, "cluster transport: idle connection closed");
                    return;
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => {
                    tracing::debug!(%peer, "cluster transport: peer closed the connection");
                    return;
                }
                Ok(Err(e @ FrameError::TooLarge { .. })) => {
                    let detail = format!("{e}; connection closed");
                    handler
                        .rejections
                        .refuse(Rejection::FrameTooLarge, peer, &detail);
                    close(stream).await;
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "cluster transport: connection lost");
                    return;
                }
            };
        let reply = match postcard::from_bytes::<Request>(&frame) {
            Ok(request) => dispatch(&handler, request).await,
            Err(e) => {
                let detail = format!("undecodable request ({e}); connection closed");
                handler
                    .rejections
                    .refuse(Rejection::Undecodable, peer, &detail);
                let refusal = Reply::Refused(format!("cannot decode the request: {e}"));
                if send(&mut stream, &refusal).await.is_ok() {
                    close(stream).await;
                }
                return;
            }
        };
        if let Err(e) = send(&mut stream, &reply).await {
            tracing::debug!(%peer, error = %e, "cluster transport: cannot send a reply");
            return;
        }
    }
}

/// Hand one RPC to the local Raft. Its error answers (not leader any more, shutting down...)
/// are replies like any other: the client reports them to openraft as remote errors.
pub(super) async fn dispatch(handler: &Handler, request: Request) -> Reply {
    let raft = &handler.raft;
    match request {
        Request::AppendEntries(rpc) => {
            if let Some(leader) = rpc.vote.leader_id().voted_for() {
                handler.contacts.touch(leader);
            }
            let reply = raft.append_entries(rpc).await;
            // Accepted (not turned down for a higher vote): a live leader leads this node.
            if matches!(&reply, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
                handler.contacts.leader_heard();
            }
            Reply::AppendEntries(reply)
        }
        Request::Vote(rpc) => {
            if let Some(candidate) = rpc.vote.leader_id().voted_for() {
                handler.contacts.touch(candidate);
            }
            Reply::Vote(raft.vote(rpc).await)
        }
        Request::InstallSnapshot(rpc) => Reply::InstallSnapshot(raft.install_snapshot(rpc).await),
        Request::Op(request) => Reply::Op(match &handler.ops {
            Some(ops) => ops.run_request(request).await.map_err(|e| e.to_string()),
            None => Err("this node does not take cluster operations".into()),
        }),
        Request::PreVote(request) => Reply::PreVote(match &handler.elector {
            Some(elector) => elector.grant(&request).await,
            None => false,
        }),
    }
}

/// End a connection the server gave up on with TLS close_notify, so the peer reads a clean
/// end after the refusal rather than a truncation error. Bounded: a peer that does not read
/// cannot hold the task.
async fn close(mut stream: TlsStream<TcpStream>) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

async fn send(stream: &mut TlsStream<TcpStream>, reply: &Reply) -> Result<(), FrameError> {
    let frame = encode_frame(reply, MAX_FRAME)?;
    write_frame(stream, &frame).await?;
    Ok(())
}

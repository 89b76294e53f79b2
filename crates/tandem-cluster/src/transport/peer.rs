//! Reaching one peer: resolving and dialing its address, the idle connections kept for it,
//! and the failure type calls report before it becomes one of openraft's errors.

// `RPCError` is the error type `RaftNetwork` requires; its size is openraft's choice.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use openraft::error::NetworkError;
use openraft::error::PayloadTooLarge;
use openraft::error::RPCError;
use openraft::error::Unreachable;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::client::NetworkOptions;
use super::datagram::client::ClientSession;
use super::datagram::{SessionKey, EXPORTER_LABEL};
use crate::raft::types::Node;
use crate::raft::NodeId;

/// An established connection to a peer.
pub(super) type Conn = TlsStream<TcpStream>;

/// How to reach peers: TLS, options and the fixed host table.
pub(super) struct Dialer {
    pub(super) connector: TlsConnector,
    pub(super) options: NetworkOptions,
    pub(super) hosts: HashMap<String, IpAddr>,
}

impl Dialer {
    async fn connect(&self, addr: &str) -> Result<Conn, String> {
        let (host, port) = split_host_port(addr)?;
        let name = tandem_tls::server_name(host).map_err(|e| e.to_string())?;
        let attempt = async {
            let addrs: Vec<SocketAddr> = match self.hosts.get(&host.to_ascii_lowercase()) {
                Some(ip) => vec![SocketAddr::new(*ip, port)],
                None => tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| format!("cannot resolve {host}: {e}"))?
                    .collect(),
            };
            let mut last = format!("{host} resolves to no address");
            for sock in addrs {
                match TcpStream::connect(sock).await {
                    Ok(tcp) => {
                        super::tune_tcp(&tcp);
                        return self
                            .connector
                            .connect(name.clone(), tcp)
                            .await
                            .map_err(|e| format!("TLS with {sock} failed: {e}"));
                    }
                    Err(e) => last = format!("cannot connect to {sock}: {e}"),
                }
            }
            Err(last)
        };
        let limit = self.options.connect_timeout;
        tokio::time::timeout(limit, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("no connection within {limit:?}")))
    }
}

/// `"host:port"` or `"[v6]:port"` into its parts.
fn split_host_port(addr: &str) -> Result<(&str, u16), String> {
    let bad = || format!("address {addr:?} is not host:port");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

/// One target node: its address, idle connections and the last reason it was unreachable
/// (so a peer that stays down is logged once at warn, not every backoff period).
pub(super) struct Peer {
    pub(super) target: NodeId,
    pub(super) addr: String,
    pub(super) dialer: Arc<Dialer>,
    pub(super) idle: Mutex<Vec<Conn>>,
    pub(super) last_failure: Mutex<Option<String>>,
    /// When the last successful dial started: a failure of a dial that started before it
    /// is old news (begun during a cut, timed out after the heal) and changes nothing.
    pub(super) last_success: Mutex<Option<Instant>>,
    /// The datagram session of one of our connections to it (see [`super::datagram`]).
    pub(super) session: Mutex<Option<Arc<ClientSession>>>,
}

impl Peer {
    /// The datagram session, if there is one.
    pub(super) fn session(&self) -> Option<Arc<ClientSession>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Take the datagram session of a new connection unless the one held already works,
    /// and probe it.
    fn offer_session(&self, conn: &Conn) {
        if !self.dialer.options.datagrams {
            return;
        }
        let (tcp, tls) = conn.get_ref();
        let Ok(addr) = tcp.peer_addr() else { return };
        let Some(key) = SessionKey::export(|m| tls.export_keying_material(m, EXPORTER_LABEL, None))
        else {
            return;
        };
        let mut held = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if held.as_ref().is_some_and(|s| s.proven() && s.addr == addr) {
            return;
        }
        let session = Arc::new(ClientSession::new(key, addr));
        session.probe(self.dialer.options.retransmit);
        *held = Some(session);
    }

    pub(super) fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    pub(super) fn put_idle(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.dialer.options.idle_per_peer {
            idle.push(conn);
        }
    }

    /// Record whether the peer could be reached by an attempt begun at `started`, logging
    /// only changes.
    pub(super) fn note(&self, started: Instant, failure: Option<&str>) {
        {
            let mut success = self.last_success.lock().unwrap_or_else(|e| e.into_inner());
            match failure {
                None => *success = Some(success.map_or(started, |s| s.max(started))),
                Some(reason) if success.is_some_and(|s| s > started) => {
                    tracing::debug!(node = self.target, peer = %self.addr, reason,
                        "cluster transport: an older attempt failed; the peer answered since");
                    return;
                }
                Some(_) => {}
            }
        }
        let mut last = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        match (failure, last.as_deref()) {
            (None, None) => {}
            (None, Some(_)) => {
                tracing::info!(node = self.target, peer = %self.addr, "cluster transport: peer reachable again");
            }
            (Some(reason), Some(before)) if reason == before => {
                tracing::debug!(node = self.target, peer = %self.addr, reason, "cluster transport: peer still unreachable");
            }
            (Some(reason), _) => {
                tracing::warn!(node = self.target, peer = %self.addr, reason, "cluster transport: cannot reach peer");
            }
        }
        *last = failure.map(str::to_string);
    }

    /// A new connection, dialed in its own task so that it survives the caller's timeout:
    /// if the caller is gone by the time it is ready, it goes to the idle pool.
    pub(super) async fn connect(self: &Arc<Self>) -> Result<Conn, Failure> {
        let (tx, rx) = oneshot::channel();
        let peer = Arc::clone(self);
        tokio::spawn(async move {
            let started = Instant::now();
            let result = peer.dialer.connect(&peer.addr).await;
            peer.note(started, result.as_ref().err().map(String::as_str));
            if let Ok(conn) = &result {
                peer.offer_session(conn);
            }
            if let Err(Ok(conn)) = tx.send(result) {
                peer.put_idle(conn);
            }
        });
        match rx.await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(reason)) => Err(self.failure(Kind::Unreachable, reason)),
            Err(_) => Err(self.failure(Kind::Unreachable, "dialing was cancelled".into())),
        }
    }

    pub(super) fn failure(&self, kind: Kind, reason: String) -> Failure {
        Failure {
            target: self.target,
            addr: self.addr.clone(),
            reason,
            kind,
        }
    }
}

/// Why a call failed, before it becomes one of openraft's error types.
#[derive(Debug, thiserror::Error)]
#[error("node {target} at {addr}: {reason}")]
pub(super) struct Failure {
    target: NodeId,
    addr: String,
    reason: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Unreachable,
    Network,
    TooLarge,
}

impl Failure {
    /// openraft's error for this failure; `entries` is the AppendEntries batch size.
    pub(super) fn into_rpc<E: std::error::Error>(
        self,
        entries: Option<usize>,
    ) -> RPCError<NodeId, Node, openraft::error::RaftError<NodeId, E>> {
        match (self.kind, entries) {
            (Kind::Unreachable, _) => RPCError::Unreachable(Unreachable::new(&self)),
            (Kind::TooLarge, Some(n)) if n > 1 => {
                let hint = (n / 2) as u64;
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint))
            }
            _ => RPCError::Network(NetworkError::new(&self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_host_port("node-a:7300"), Ok(("node-a", 7300)));
        assert_eq!(split_host_port("192.0.2.1:7300"), Ok(("192.0.2.1", 7300)));
        assert_eq!(
            split_host_port("[2001:db8::1]:7300"),
            Ok(("2001:db8::1", 7300))
        );
        for bad in ["node-a", ":7300", "node-a:http", "node-a:70000"] {
            let e = split_host_port(bad).unwrap_err();
            assert!(e.contains("is not host:port"), "{bad}: {e}");
        }
    }
}

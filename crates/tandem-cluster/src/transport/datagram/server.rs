//! The server half: the sessions of recent peer connections and the UDP loop that runs
//! sealed requests through the same dispatch as the TCP listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Header, Kind, Recent, Seen, SessionKey, MAX_REPLY};
use crate::transport::server::{dispatch, Handler};
use crate::transport::wire::{Reply, Request};

/// Sessions kept at once. A peer opens a few connections (one per replication stream and a
/// few idle ones), so a handful of peers fit many times over; the least recently used one
/// goes first, and its client learns so from an [`Kind::UnknownSession`] notice.
const MAX_SESSIONS: usize = 256;

pub(in crate::transport) struct ServerSession {
    key: SessionKey,
    /// Counter of the server's replies (their nonces), never reused.
    replies: AtomicU64,
    recent: Mutex<Recent>,
    last_used: Mutex<Instant>,
    /// A refusal for deafness was logged (and not yet its end).
    deaf_logged: AtomicBool,
}

/// The sessions of the connections peers made to this node, by session id.
#[derive(Clone, Default)]
pub struct Sessions {
    map: Arc<Mutex<HashMap<u64, Arc<ServerSession>>>>,
}

impl Sessions {
    /// Keep the session of a newly accepted peer connection.
    pub(in crate::transport) fn insert(&self, key: SessionKey) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| *s.last_used.lock().unwrap_or_else(|e| e.into_inner()))
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                map.remove(&id);
            }
        }
        let id = key.id;
        map.insert(
            id,
            Arc::new(ServerSession {
                key,
                replies: AtomicU64::new(1),
                recent: Mutex::default(),
                last_used: Mutex::new(Instant::now()),
                deaf_logged: AtomicBool::new(false),
            }),
        );
    }

    fn get(&self, id: u64) -> Option<Arc<ServerSession>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let session = map.get(&id).cloned()?;
        *session.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Some(session)
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Serve sealed requests on `socket` until `stop` is cancelled; every request's task is
/// dropped before this returns.
pub(in crate::transport) async fn serve(
    socket: UdpSocket,
    sessions: Sessions,
    handler: Handler,
    stop: CancellationToken,
) {
    let socket = Arc::new(socket);
    let tasks = TaskTracker::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, from) = tokio::select! {
            _ = stop.cancelled() => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                // ICMP errors for earlier replies surface here on some kernels: not ours.
                Err(e) => {
                    tracing::debug!(error = %e, "cluster transport: datagram receive error");
                    continue;
                }
            },
        };
        let datagram = &buf[..len];
        let Ok(header) = Header::parse(datagram) else {
            tracing::debug!(%from, len, "cluster transport: dropped a datagram that is not ours");
            continue;
        };
        if header.kind != Kind::Request {
            continue;
        }
        let Some(session) = sessions.get(header.session) else {
            let notice = Header::notice(Kind::UnknownSession, header.session, header.counter);
            let _ = socket.send_to(&notice, from).await;
            continue;
        };
        let payload = match session.key.open(datagram) {
            Ok((_, payload)) => payload,
            Err(e) => {
                tracing::debug!(%from, error = %e, "cluster transport: dropped a datagram that does not open");
                continue;
            }
        };
        // Every request starts with the client's ack; a shorter one is no request of ours.
        let Some((acked, payload)) = split_ack(payload) else {
            continue;
        };
        let seen = {
            let mut recent = session.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.ack(acked);
            recent.check(header.counter)
        };
        match seen {
            Seen::New => {}
            Seen::Running | Seen::Stale => continue,
            Seen::Answered(reply) => {
                let _ = socket.send_to(&reply, from).await;
                continue;
            }
        }
        let (socket, handler) = (Arc::clone(&socket), handler.clone());
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = answer(&socket, from, &session, header, payload, &handler) => {}
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// The request's ack and the rest (in place: no second copy of the request).
fn split_ack(mut payload: Vec<u8>) -> Option<(u64, Vec<u8>)> {
    let ack = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    payload.drain(..8);
    Some((ack, payload))
}

/// Whether this session's client has stopped hearing our answers (see the module docs).
fn cannot_hear_us(session: &ServerSession, handler: &Handler) -> bool {
    let Some(within) = handler.deaf_after else {
        return false;
    };
    let recent = session.recent.lock().unwrap_or_else(|e| e.into_inner());
    recent.deaf(Instant::now(), within)
}

/// Run one new request and send (and remember) its sealed reply.
async fn answer(
    socket: &UdpSocket,
    from: SocketAddr,
    session: &ServerSession,
    header: Header,
    payload: Vec<u8>,
    handler: &Handler,
) {
    let mut plain = header.counter.to_be_bytes().to_vec();
    // An empty request is a probe: the bare counter answers it.
    if !payload.is_empty() {
        let reply = match postcard::from_bytes::<Request>(&payload) {
            Ok(Request::AppendEntries(_)) if cannot_hear_us(session, handler) => {
                let why = "this member's answers have not reached you lately: it does not follow a leader that cannot hear it";
                if !session.deaf_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%from, "cluster transport: a leader does not hear this member's answers; refusing its AppendEntries until it does");
                }
                Reply::Refused(why.into())
            }
            Ok(request) => {
                if session.deaf_logged.swap(false, Ordering::Relaxed) {
                    tracing::info!(%from, "cluster transport: the leader hears this member again");
                }
                dispatch(handler, request).await
            }
            Err(e) => {
                tracing::warn!(%from, reason = %e, "cluster transport: refused an undecodable datagram request");
                Reply::Refused(format!("cannot decode the request: {e}"))
            }
        };
        plain = match postcard::to_extend(&reply, plain) {
            Ok(plain) => plain,
            Err(e) => {
                tracing::warn!(%from, error = %e, "cluster transport: cannot encode a reply");
                return;
            }
        };
    }
    let sealed: Arc<[u8]> = if plain.len() > MAX_REPLY {
        Arc::from(&Header::notice(Kind::TooLarge, header.session, header.counter)[..])
    } else {
        let counter = session.replies.fetch_add(1, Ordering::Relaxed);
        Arc::from(session.key.seal(Kind::Reply, counter, &plain))
    };
    session
        .recent
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .answered(header.counter, Arc::clone(&sealed), Instant::now());
    let _ = socket.send_to(&sealed, from).await;
}

//! Small Raft RPCs over UDP, sealed with a key both ends take from their mutual-TLS
//! connection.
//!
//! Why: lease renewals and heartbeats are tiny, latency-bound exchanges. Over TCP one lost
//! segment holds every later request on that connection until it is resent, a call that
//! times out takes its connection with it (a reply could otherwise be read as the answer to
//! the next call), and a new connection costs a handshake whose lost SYN waits a whole
//! second. At 30 % loss between the nodes that kept leases from being renewed for seconds.
//! A datagram exchange is independent of every other one and is simply sent again every
//! few tens of milliseconds until it is answered or its deadline passes, as VRRP itself is.
//!
//! Keys. Every cluster TLS connection, once both sides have checked each other's
//! certificate, exports 40 bytes of keying material (RFC 5705, label
//! [`EXPORTER_LABEL`]): a session id (8 bytes) and a ChaCha20-Poly1305 key (32). The server
//! keeps the sessions of its recent connections; a client keeps one per peer. Nothing is
//! accepted over UDP that was not sealed with a key only the two certified ends know.
//!
//! Datagram: `magic (1) | kind (1) | session id (8, BE) | counter (8, BE) | sealed payload`.
//! The nonce is the kind (4 bytes, BE) and the counter; requests count with the client's
//! counter, replies with the server's, so no nonce is ever used twice under one key with a
//! different text. A request's payload is the highest counter of this session the client
//! has had an answer to (8 bytes, its *ack*) and a postcard [`Request`](super::wire::Request)
//! (nothing more for a probe); a reply's is the request's counter (8 bytes) and a postcard
//! [`Reply`](super::wire::Reply). The header is authenticated as associated data.
//!
//! A leader that cannot hear. The acks tell a server whether its answers reach the client:
//! answers older than a bound that no ack covers mean the client is deaf to this node. A
//! follower then stops taking that leader's AppendEntries (answering with a refusal, which
//! the leader would see the moment it hears again), so openraft's leader lease on the
//! follower runs out and the members that can hear each other elect. Over TCP the same
//! leader's connections stalled and did this by accident; over datagrams its heartbeats
//! would keep arriving and keep everyone following it ([`Recent::deaf`]).
//!
//! At most once. The server runs each request counter once: a copy that arrives while it
//! runs is ignored, a later copy gets the same sealed reply again ([`Recent`]), and a
//! counter older than its window is dropped (so a replayed capture runs nothing).
//!
//! Two unauthenticated notices, which can only make a client fall back to TCP:
//! [`Kind::UnknownSession`] (the server restarted or evicted the session) and
//! [`Kind::TooLarge`] (the reply would not fit a datagram).

pub(super) mod client;
pub(super) mod server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::aead;

/// The label both ends export their session material under.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-tandem-cluster-datagram";
/// Exported bytes: session id (8) and key (32).
pub const EXPORTED_LEN: usize = 40;
/// Requests larger than this go over TCP: they would not fit a 1280-byte IPv6 minimum MTU
/// with headers and tag, and fragments multiply loss. Lease renewals, heartbeats, votes
/// and pre-votes are a few hundred bytes.
pub const MAX_REQUEST: usize = 1200;
/// Replies up to this size are sent as one (possibly fragmented) datagram; larger ones get
/// a [`Kind::TooLarge`] notice and the client asks again over TCP.
pub const MAX_REPLY: usize = 60_000;
/// How many recent request counters the server remembers per session.
pub const WINDOW: usize = 64;

const MAGIC: u8 = 0x74;
pub const HEADER_LEN: usize = 18;
const TAG_LEN: usize = 16;

/// What a datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request = 1,
    Reply = 2,
    UnknownSession = 3,
    TooLarge = 4,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Request,
            2 => Kind::Reply,
            3 => Kind::UnknownSession,
            4 => Kind::TooLarge,
            _ => return None,
        })
    }
}

/// A datagram's clear header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub session: u64,
    pub counter: u64,
}

impl Header {
    pub fn parse(datagram: &[u8]) -> Result<Header, DatagramError> {
        if datagram.len() < HEADER_LEN {
            return Err(DatagramError::Short(datagram.len()));
        }
        if datagram[0] != MAGIC {
            return Err(DatagramError::NotOurs);
        }
        let kind = Kind::from_byte(datagram[1]).ok_or(DatagramError::NotOurs)?;
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&datagram[at..at + 8]);
            u64::from_be_bytes(bytes)
        };
        Ok(Header {
            kind,
            session: word(2),
            counter: word(10),
        })
    }

    fn emit(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = MAGIC;
        out[1] = self.kind as u8;
        out[2..10].copy_from_slice(&self.session.to_be_bytes());
        out[10..18].copy_from_slice(&self.counter.to_be_bytes());
        out
    }

    /// An unauthenticated notice ([`Kind::UnknownSession`], [`Kind::TooLarge`]) about the
    /// request with this session and counter.
    pub fn notice(kind: Kind, session: u64, counter: u64) -> [u8; HEADER_LEN] {
        Header {
            kind,
            session,
            counter,
        }
        .emit()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    #[error("{0} bytes is shorter than a header")]
    Short(usize),
    #[error("not a tandem cluster datagram")]
    NotOurs,
    #[error("sealed for another session")]
    WrongSession,
    #[error("a notice carries nothing to open")]
    NotSealed,
    #[error("authentication failed")]
    Forged,
}

/// One session's id and key, as exported from a TLS connection.
pub struct SessionKey {
    pub id: u64,
    key: aead::LessSafeKey,
}

impl SessionKey {
    pub fn from_exported(material: &[u8; EXPORTED_LEN]) -> SessionKey {
        let mut id = [0u8; 8];
        id.copy_from_slice(&material[..8]);
        let key = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &material[8..])
            .expect("32 bytes is a ChaCha20-Poly1305 key");
        SessionKey {
            id: u64::from_be_bytes(id),
            key: aead::LessSafeKey::new(key),
        }
    }

    /// The session from a TLS connection's exporter (`export_keying_material` of either
    /// side's rustls connection); `None` if the connection cannot export (not TLS 1.3 or
    /// 1.2 with extended master secret: then the peer is reached over TCP only).
    pub fn export(
        export: impl FnOnce([u8; EXPORTED_LEN]) -> Result<[u8; EXPORTED_LEN], tandem_tls::rustls::Error>,
    ) -> Option<SessionKey> {
        match export([0u8; EXPORTED_LEN]) {
            Ok(material) => Some(SessionKey::from_exported(&material)),
            Err(e) => {
                tracing::debug!(error = %e, "cluster transport: no datagram session for this connection");
                None
            }
        }
    }

    fn nonce(kind: Kind, counter: u64) -> aead::Nonce {
        let mut nonce = [0u8; aead::NONCE_LEN];
        nonce[3] = kind as u8;
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        aead::Nonce::assume_unique_for_key(nonce)
    }

    /// A sealed datagram. The caller guarantees `counter` is never sealed twice with this
    /// `kind` and different text (a fresh counter per request or reply).
    pub fn seal(&self, kind: Kind, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        let header = Header {
            kind,
            session: self.id,
            counter,
        }
        .emit();
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(HEADER_LEN);
        self.key
            .seal_in_place_append_tag(
                SessionKey::nonce(kind, counter),
                aead::Aad::from(&header),
                &mut body,
            )
            .expect("ChaCha20-Poly1305 seals any datagram-sized text");
        out.extend_from_slice(&body);
        out
    }

    /// The header and the opened payload of a sealed datagram of this session.
    pub fn open(&self, datagram: &[u8]) -> Result<(Header, Vec<u8>), DatagramError> {
        let header = Header::parse(datagram)?;
        if header.session != self.id {
            return Err(DatagramError::WrongSession);
        }
        if !matches!(header.kind, Kind::Request | Kind::Reply) {
            return Err(DatagramError::NotSealed);
        }
        let mut body = datagram[HEADER_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                SessionKey::nonce(header.kind, header.counter),
                aead::Aad::from(&datagram[..HEADER_LEN]),
                &mut body,
            )
            .map_err(|_| DatagramError::Forged)?;
        let len = plain.len();
        body.truncate(len);
        Ok((header, body))
    }
}

/// What the server knows of a request counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Never seen: run it (now marked running).
    New,
    /// Running: this copy is ignored, the reply will come.
    Running,
    /// Answered: send this sealed reply again.
    Answered(Arc<[u8]>),
    /// Older than the window (or zero): a late copy or a replay, dropped.
    Stale,
}

/// A sealed reply and when it was first sent.
type Answer = (Arc<[u8]>, Instant);

/// The server's memory of one session's recent request counters (each runs at most once)
/// and of the client's acks.
#[derive(Debug, Default)]
pub struct Recent {
    /// Counters at or below this are stale.
    floor: u64,
    /// Running (None) or answered, with when.
    slots: BTreeMap<u64, Option<Answer>>,
    /// The highest ack the client sent.
    acked: u64,
}

impl Recent {
    pub fn check(&mut self, counter: u64) -> Seen {
        if counter <= self.floor {
            return Seen::Stale;
        }
        match self.slots.get(&counter) {
            Some(None) => Seen::Running,
            Some(Some((reply, _))) => Seen::Answered(Arc::clone(reply)),
            None => {
                self.slots.insert(counter, None);
                while self.slots.len() > WINDOW {
                    if let Some((oldest, _)) = self.slots.pop_first() {
                        self.floor = oldest;
                    }
                }
                Seen::New
            }
        }
    }

    /// The request with `counter` was answered with `reply` at `now` (kept for its copies).
    pub fn answered(&mut self, counter: u64, reply: Arc<[u8]>, now: Instant) {
        if let Some(slot) = self.slots.get_mut(&counter) {
            *slot = Some((reply, now));
        }
    }

    /// A request carried the client's ack.
    pub fn ack(&mut self, acked: u64) {
        self.acked = self.acked.max(acked);
    }

    /// The client has not heard this server for `within`: an answer sent before
    /// `now - within` is still above every ack it sent since.
    pub fn deaf(&self, now: Instant, within: Duration) -> bool {
        self.slots
            .range(self.acked + 1..)
            .any(|(_, slot)| matches!(slot, Some((_, at)) if now.duration_since(*at) > within))
    }
}

#[cfg(test)]
mod tests;

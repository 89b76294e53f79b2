//! The client half: a peer's session and one request's exchange, sent again every
//! `retransmit` until a reply opens or the call's deadline passes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::{Header, Kind, SessionKey, MAX_REPLY};

/// Calls in a row without any answer after which a session is no longer trusted to work
/// (a firewall dropping UDP, a peer without the datagram listener): calls go back to TCP
/// while probes try it again.
const GIVE_UP_AFTER: u32 = 8;

/// A client's session with one peer, from one of its TLS connections.
pub(in crate::transport) struct ClientSession {
    key: SessionKey,
    /// Where the peer's listener is (the address its TLS connection went to).
    pub(in crate::transport) addr: SocketAddr,
    /// The next request counter (nonces of this session's requests).
    next: AtomicU64,
    /// The highest counter answered: sent with every request (see the module docs).
    acked: AtomicU64,
    /// A reply came back over UDP: calls may use it.
    proven: AtomicBool,
    /// A probe is under way.
    probing: AtomicBool,
    silent_calls: AtomicU32,
}

/// Why an exchange did not produce a reply.
#[derive(Debug)]
pub(in crate::transport) enum Miss {
    /// Nothing opened before the deadline.
    Timeout,
    /// The peer said to use TCP (unknown session, reply too large) or refused the port.
    UseTcp(&'static str),
}

impl ClientSession {
    pub(in crate::transport) fn new(key: SessionKey, addr: SocketAddr) -> ClientSession {
        ClientSession {
            key,
            addr,
            next: AtomicU64::new(1),
            acked: AtomicU64::new(0),
            proven: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            silent_calls: AtomicU32::new(0),
        }
    }

    pub(in crate::transport) fn proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    /// A socket connected to the peer (so ICMP refusals come back as errors).
    pub(in crate::transport) async fn socket(&self) -> std::io::Result<UdpSocket> {
        let any: SocketAddr = match self.addr {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(any).await?;
        socket.connect(self.addr).await?;
        Ok(socket)
    }

    /// Send `payload` (a postcard request; empty for a probe) and return the reply's
    /// payload. `buf` receives datagrams (at least [`MAX_REPLY`] plus overhead).
    pub(in crate::transport) async fn exchange(
        &self,
        socket: &UdpSocket,
        buf: &mut [u8],
        payload: &[u8],
        deadline: Instant,
        retransmit: Duration,
    ) -> Result<Vec<u8>, Miss> {
        let counter = self.next.fetch_add(1, Ordering::Relaxed);
        let mut plain = Vec::with_capacity(8 + payload.len());
        plain.extend_from_slice(&self.acked.load(Ordering::Relaxed).to_be_bytes());
        plain.extend_from_slice(payload);
        let datagram = self.key.seal(Kind::Request, counter, &plain);
        loop {
            if let Err(e) = socket.send(&datagram).await {
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    return Err(self.refused());
                }
            }
            let resend = (Instant::now() + retransmit).min(deadline);
            loop {
                let received = tokio::select! {
                    _ = tokio::time::sleep_until(resend) => break,
                    received = socket.recv(buf) => received,
                };
                let len = match received {
                    Ok(len) => len,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(self.refused())
                    }
                    Err(_) => continue,
                };
                match self.accept(&buf[..len], counter) {
                    Some(Ok(reply)) => {
                        self.acked.fetch_max(counter, Ordering::Relaxed);
                        self.silent_calls.store(0, Ordering::Relaxed);
                        self.proven.store(true, Ordering::Relaxed);
                        return Ok(reply);
                    }
                    Some(Err(miss)) => return Err(miss),
                    None => continue,
                }
            }
            if Instant::now() >= deadline {
                if self.silent_calls.fetch_add(1, Ordering::Relaxed) + 1 >= GIVE_UP_AFTER {
                    self.proven.store(false, Ordering::Relaxed);
                }
                return Err(Miss::Timeout);
            }
        }
    }

    /// What a received datagram means for the request `counter`: its reply, a notice to
    /// use TCP, or nothing (someone else's, a late copy, a forgery).
    fn accept(&self, datagram: &[u8], counter: u64) -> Option<Result<Vec<u8>, Miss>> {
        let header = Header::parse(datagram).ok()?;
        if header.session != self.key.id {
            return None;
        }
        match header.kind {
            Kind::Reply => {
                let (_, plain) = self.key.open(datagram).ok()?;
                let echoed = plain.get(..8)?;
                (echoed == counter.to_be_bytes()).then(|| Ok(plain[8..].to_vec()))
            }
            Kind::UnknownSession if header.counter == counter => {
                self.proven.store(false, Ordering::Relaxed);
                Some(Err(Miss::UseTcp("the peer does not know this session")))
            }
            Kind::TooLarge if header.counter == counter => {
                Some(Err(Miss::UseTcp("the reply is too large for a datagram")))
            }
            _ => None,
        }
    }

    fn refused(&self) -> Miss {
        self.proven.store(false, Ordering::Relaxed);
        Miss::UseTcp("the peer refused datagrams")
    }

    /// Probe the session in the background (a few empty requests) unless a probe is
    /// already running; a reply marks it proven.
    pub(in crate::transport) fn probe(self: &Arc<Self>, retransmit: Duration) {
        if self.probing.swap(true, Ordering::Relaxed) {
            return;
        }
        let session = Arc::clone(self);
        tokio::spawn(async move {
            if let Ok(socket) = session.socket().await {
                let mut buf = vec![0u8; MAX_REPLY + 64];
                let deadline = Instant::now() + retransmit * 20;
                let _ = session
                    .exchange(&socket, &mut buf, &[], deadline, retransmit)
                    .await;
            }
            session.probing.store(false, Ordering::Relaxed);
        });
    }
}

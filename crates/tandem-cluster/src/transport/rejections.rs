//! What the Raft listener turned away, by reason: counted for the metrics
//! (`tandem_cluster_rejected_total{reason}`) and logged at most once a minute per reason at
//! warn (the others at debug), so a flood or a scanner cannot flood the log too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a connection or a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The TLS handshake failed: no certificate, or one not of the cluster CA, or not TLS.
    TlsHandshake,
    /// No TLS handshake within the handshake timeout.
    HandshakeTimeout,
    /// A frame announced more than the frame limit.
    FrameTooLarge,
    /// A frame that is not a request postcard can decode.
    Undecodable,
    /// More connections than the listener takes at once.
    ConnectionLimit,
}

impl Rejection {
    pub const ALL: [Rejection; 5] = [
        Rejection::TlsHandshake,
        Rejection::HandshakeTimeout,
        Rejection::FrameTooLarge,
        Rejection::Undecodable,
        Rejection::ConnectionLimit,
    ];

    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::TlsHandshake => "tls_handshake",
            Rejection::HandshakeTimeout => "handshake_timeout",
            Rejection::FrameTooLarge => "frame_too_large",
            Rejection::Undecodable => "undecodable",
            Rejection::ConnectionLimit => "connection_limit",
        }
    }

    fn index(self) -> usize {
        Rejection::ALL
            .iter()
            .position(|r| *r == self)
            .expect("in ALL")
    }
}

/// A warning per reason at most this often; the rest go to debug.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The counts of one listener, shared with whoever reports them.
#[derive(Debug)]
pub struct Rejections {
    origin: Instant,
    counts: [AtomicU64; 5],
    /// Milliseconds since `origin`, plus one, of each reason's last warning (0: never).
    warned_at: [AtomicU64; 5],
}

impl Default for Rejections {
    fn default() -> Self {
        Rejections {
            origin: Instant::now(),
            counts: Default::default(),
            warned_at: Default::default(),
        }
    }
}

impl Rejections {
    /// Counts one refusal and logs it (a warning at most once a minute per reason).
    pub fn refuse(&self, why: Rejection, peer: SocketAddr, detail: &dyn std::fmt::Display) {
        let i = why.index();
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let reason = why.reason();
        if self.warn_now(i) {
            tracing::warn!(%peer, reason, %detail,
                "cluster transport: refused a peer (warned at most once a minute per reason; see tandem_cluster_rejected_total)");
        } else {
            tracing::debug!(%peer, reason, %detail, "cluster transport: refused a peer");
        }
    }

    fn warn_now(&self, i: usize) -> bool {
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        let last = self.warned_at[i].load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        due && self.warned_at[i]
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Each reason with its count so far.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        Rejection::ALL
            .iter()
            .map(|r| (r.reason(), self.counts[r.index()].load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_counts_and_only_the_first_of_a_minute_warns() {
        let r = Rejections::default();
        let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
        assert!(r.warn_now(Rejection::Undecodable.index()));
        assert!(!r.warn_now(Rejection::Undecodable.index()));
        assert!(r.warn_now(Rejection::FrameTooLarge.index()), "per reason");
        r.refuse(Rejection::ConnectionLimit, peer, &"x");
        r.refuse(Rejection::ConnectionLimit, peer, &"x");
        let counts = r.counts();
        assert!(counts.contains(&("connection_limit", 2)), "{counts:?}");
        assert!(counts.contains(&("tls_handshake", 0)), "{counts:?}");
    }
}

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::machine::State;

/// Counters of one instance, for status and (later) metrics.
#[derive(Debug, Default)]
pub struct VrrpStats {
    pub adverts_sent: AtomicU64,
    pub adverts_received: AtomicU64,
    pub transitions: AtomicU64,
    pub became_master: AtomicU64,
    pub garp_bursts: AtomicU64,
    /// Dropped packets by reason ("bad_checksum", "bad_ttl", "vrrp_v2", "unknown_peer", ...).
    dropped: Mutex<BTreeMap<&'static str, u64>>,
}

impl VrrpStats {
    pub(crate) fn sent(&self) {
        self.adverts_sent.fetch_add(1, Relaxed);
    }
    pub(crate) fn received(&self) {
        self.adverts_received.fetch_add(1, Relaxed);
    }
    pub(crate) fn garp_burst(&self) {
        self.garp_bursts.fetch_add(1, Relaxed);
    }
    pub(crate) fn transition(&self, to: State) {
        self.transitions.fetch_add(1, Relaxed);
        if to == State::Master {
            self.became_master.fetch_add(1, Relaxed);
        }
    }
    pub(crate) fn dropped(&self, reason: &'static str) {
        *self
            .dropped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_insert(0) += 1;
    }
    /// Dropped packets by reason.
    pub fn drops(&self) -> BTreeMap<&'static str, u64> {
        self.dropped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

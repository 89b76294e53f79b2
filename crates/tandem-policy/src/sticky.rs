//! Sticky table for source-IP (or header) affinity.
//!
//! Every mutation is deterministic — ordered maps, eviction by
//! (expires_at, key), no clock reads — so every node applying the same
//! inserts in the same order holds the same table. A later issue
//! replicates it with Raft on exactly that property.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One mapping, as exported and replicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StickyEntry {
    /// IP address bytes or a header value.
    pub key: Vec<u8>,
    /// Backend id.
    pub backend: String,
    /// The entry answers while `now < expires_at`.
    pub expires_at: Duration,
}

/// Bounded map key → (backend id, expires_at).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StickyTable {
    capacity: usize,
    entries: BTreeMap<Vec<u8>, (String, Duration)>,
    /// (expires_at, key): eviction and purge order.
    by_expiry: BTreeSet<(Duration, Vec<u8>)>,
}

impl StickyTable {
    /// A table holding at most `capacity` entries (0 holds nothing).
    pub fn new(capacity: usize) -> Self {
        StickyTable {
            capacity,
            ..StickyTable::default()
        }
    }

    /// The backend for `key`, unless the entry has expired (expired entries
    /// may still be stored until purged or evicted, but never answer).
    pub fn get(&self, key: &[u8], now: Duration) -> Option<&str> {
        self.entries
            .get(key)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(backend, _)| backend.as_str())
    }

    /// Set `key` (a refresh replaces backend and expiry). A new key in a
    /// full table first evicts the entry with the smallest expires_at,
    /// ties broken by the smallest key; expired entries, having the
    /// smallest expiries, go first. The new entry itself is never the one
    /// evicted, so the client just assigned keeps its affinity.
    pub fn insert(&mut self, key: Vec<u8>, backend: String, expires_at: Duration) {
        self.insert_evicting(key, backend, expires_at);
    }

    /// [`insert`](Self::insert), returning the entry evicted to make room
    /// (if any), so that state kept beside the table can follow it.
    pub fn insert_evicting(
        &mut self,
        key: Vec<u8>,
        backend: String,
        expires_at: Duration,
    ) -> Option<StickyEntry> {
        if self.capacity == 0 {
            return None;
        }
        let mut evicted = None;
        if let Some((_, old_expiry)) = self.entries.get(&key) {
            self.by_expiry.remove(&(*old_expiry, key.clone()));
        } else if self.entries.len() >= self.capacity {
            if let Some((_, victim)) = self.by_expiry.pop_first() {
                evicted = self
                    .entries
                    .remove(&victim)
                    .map(|(backend, expires_at)| StickyEntry {
                        key: victim,
                        backend,
                        expires_at,
                    });
            }
        }
        self.by_expiry.insert((expires_at, key.clone()));
        self.entries.insert(key, (backend, expires_at));
        evicted
    }

    /// The stored backend and expiry of `key`, expired or not (unlike
    /// [`get`](Self::get), for comparing expiries).
    pub fn peek(&self, key: &[u8]) -> Option<(&str, Duration)> {
        self.entries
            .get(key)
            .map(|(backend, expires_at)| (backend.as_str(), *expires_at))
    }

    /// Drop `key`; returns its entry if it was stored.
    pub fn remove(&mut self, key: &[u8]) -> Option<StickyEntry> {
        let (key, (backend, expires_at)) = self.entries.remove_entry(key)?;
        self.by_expiry.remove(&(expires_at, key.clone()));
        Some(StickyEntry {
            key,
            backend,
            expires_at,
        })
    }

    /// Drop every entry pointing at `backend` (it left the pool); returns
    /// how many went.
    pub fn remove_backend(&mut self, backend: &str) -> usize {
        let before = self.entries.len();
        let by_expiry = &mut self.by_expiry;
        self.entries.retain(|key, (b, expires_at)| {
            let keep = b != backend;
            if !keep {
                by_expiry.remove(&(*expires_at, key.clone()));
            }
            keep
        });
        before - self.entries.len()
    }

    /// Drop entries expired at `now`; returns how many went.
    pub fn purge_expired(&mut self, now: Duration) -> usize {
        let mut purged = 0;
        while let Some((expires_at, _)) = self.by_expiry.first() {
            if *expires_at > now {
                break;
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.entries.remove(&key);
                purged += 1;
            }
        }
        purged
    }

    /// Stored entries, expired ones included until purged.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Every stored entry (expired ones included, so a snapshot reproduces
    /// the table exactly), sorted by key.
    pub fn entries(&self) -> Vec<StickyEntry> {
        self.entries
            .iter()
            .map(|(key, (backend, expires_at))| StickyEntry {
                key: key.clone(),
                backend: backend.clone(),
                expires_at: *expires_at,
            })
            .collect()
    }

    /// Insert `entries` in order, exactly as `insert` would (for
    /// replication and snapshots).
    pub fn apply(&mut self, entries: Vec<StickyEntry>) {
        for e in entries {
            self.insert(e.key, e.backend, e.expires_at);
        }
    }
}

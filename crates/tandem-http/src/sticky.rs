//! A pool's source-IP sticky table plus the journal the cluster layer replicates from.
//!
//! Every response refreshes its client's entry (`expires_at = now + ttl`), so journaling
//! every insert would flood the cluster. An insert is journaled only when the key is new,
//! when it points at another backend than the one last journaled, or when the expiry last
//! journaled is older than `expires_at - ttl/2`: a client refreshing on every request is
//! journaled about twice per ttl. Entries learnt from the cluster count as journaled (the
//! cluster knows them) and are never journaled again, so nothing echoes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tandem_policy::{StickyEntry, StickyTable};

use crate::runtime::lock;

/// One pool's source-IP affinity: table, journal, and what the cluster last heard.
pub struct SourceIpSticky {
    pub ttl: Duration,
    state: Mutex<State>,
}

struct State {
    table: StickyTable,
    /// Per stored key, the (backend, expires_at) last journaled or merged. Holds only
    /// keys of `table` (evictions remove them), so it is bounded like the table.
    journaled: HashMap<Vec<u8>, (String, Duration)>,
    /// Changes not taken yet: latest per key; when full, the earliest expiry (the oldest
    /// change) makes room.
    journal: StickyTable,
    journal_dropped: u64,
}

impl SourceIpSticky {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        SourceIpSticky {
            ttl,
            state: Mutex::new(State {
                table: StickyTable::new(max_entries),
                journaled: HashMap::new(),
                journal: StickyTable::new(max_entries),
                journal_dropped: 0,
            }),
        }
    }

    /// The backend `key` is pinned to at `now`, unless none or expired.
    pub fn get(&self, key: &[u8], now: Duration) -> Option<String> {
        lock(&self.state).table.get(key, now).map(str::to_string)
    }

    /// Pins (or refreshes) `key` to `backend` until `now + ttl`, journaling the change
    /// when the cluster should hear of it.
    pub fn record(&self, key: Vec<u8>, backend: &str, now: Duration) {
        let expires_at = now + self.ttl;
        let half = self.ttl / 2;
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let journal = match state.journaled.get(&key) {
            None => true,
            Some((b, journaled_at)) => {
                b != backend || *journaled_at < expires_at.saturating_sub(half)
            }
        };
        // The common case (a refresh nobody needs to hear of) clones nothing but the id.
        let journal_key = journal.then(|| key.clone());
        if let Some(evicted) = state
            .table
            .insert_evicting(key, backend.to_string(), expires_at)
        {
            state.journaled.remove(&evicted.key);
        }
        let Some(key) = journal_key else { return };
        if state.table.capacity() == 0 {
            return;
        }
        state
            .journaled
            .insert(key.clone(), (backend.to_string(), expires_at));
        if let Some(dropped) = state
            .journal
            .insert_evicting(key, backend.to_string(), expires_at)
        {
            state.journal_dropped += 1;
            tracing::debug!(dropped_backend = %dropped.backend, total_dropped = state.journal_dropped,
                "sticky journal full: oldest change dropped before replication");
        }
    }

    /// Inserts entries learnt from the cluster whose backend `known` accepts, that are
    /// still live at `now`, and whose key is absent here or expires earlier here. They are
    /// not journaled (and a pending local change for the key is superseded). Returns how
    /// many were inserted.
    pub fn merge(
        &self,
        entries: &[StickyEntry],
        now: Duration,
        known: impl Fn(&str) -> bool,
    ) -> usize {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let mut inserted = 0;
        for e in entries {
            if e.expires_at <= now || !known(&e.backend) {
                continue;
            }
            if let Some((_, local)) = state.table.peek(&e.key) {
                if local >= e.expires_at {
                    continue;
                }
            }
            if state.table.capacity() == 0 {
                break;
            }
            if let Some(evicted) =
                state
                    .table
                    .insert_evicting(e.key.clone(), e.backend.clone(), e.expires_at)
            {
                state.journaled.remove(&evicted.key);
            }
            state
                .journaled
                .insert(e.key.clone(), (e.backend.clone(), e.expires_at));
            state.journal.remove(&e.key);
            inserted += 1;
        }
        inserted
    }

    /// The journaled changes since the last call, sorted by key.
    pub fn take_changes(&self) -> Vec<StickyEntry> {
        let mut state = lock(&self.state);
        if state.journal.is_empty() {
            return Vec::new();
        }
        let capacity = state.journal.capacity();
        std::mem::replace(&mut state.journal, StickyTable::new(capacity)).entries()
    }

    /// Entries stored (expired ones included until evicted).
    pub fn len(&self) -> usize {
        lock(&self.state).table.len()
    }

    /// Changes dropped from a full journal since start.
    pub fn journal_dropped(&self) -> u64 {
        lock(&self.state).journal_dropped
    }

    #[cfg(test)]
    fn journaled_len(&self) -> usize {
        lock(&self.state).journaled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn entry(key: &[u8], backend: &str, expires: u64) -> StickyEntry {
        StickyEntry {
            key: key.to_vec(),
            backend: backend.into(),
            expires_at: secs(expires),
        }
    }

    #[test]
    fn refreshes_are_journaled_about_twice_per_ttl() {
        let s = SourceIpSticky::new(secs(100), 10);
        s.record(b"k".to_vec(), "a", secs(0));
        assert_eq!(s.take_changes(), [entry(b"k", "a", 100)]);
        assert!(s.take_changes().is_empty());
        // Refreshes while the journaled expiry (100) is within ttl/2 of the new one.
        for now in 1..=50 {
            s.record(b"k".to_vec(), "a", secs(now));
        }
        assert!(s.take_changes().is_empty());
        assert_eq!(s.get(b"k", secs(149)), Some("a".into()));
        // 100 < 151 - 50: the cluster's copy would expire too early, journal it.
        s.record(b"k".to_vec(), "a", secs(51));
        s.record(b"k".to_vec(), "a", secs(52));
        assert_eq!(s.take_changes(), [entry(b"k", "a", 151)]);
        // Re-pointed to another backend: journaled at once, latest wins.
        s.record(b"k".to_vec(), "b", secs(53));
        s.record(b"k".to_vec(), "c", secs(54));
        s.record(b"j".to_vec(), "a", secs(54));
        assert_eq!(
            s.take_changes(),
            [entry(b"j", "a", 154), entry(b"k", "c", 154)]
        );
    }

    #[test]
    fn journal_and_side_map_stay_bounded() {
        let s = SourceIpSticky::new(secs(100), 3);
        for i in 0..10u8 {
            s.record(vec![i], "a", secs(i.into()));
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.journaled_len(), 3);
        assert_eq!(s.journal_dropped(), 7);
        // The newest changes are kept.
        let keys: Vec<_> = s.take_changes().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, [vec![7], vec![8], vec![9]]);
        // An evicted key is new again when it comes back.
        s.record(vec![0], "a", secs(20));
        assert_eq!(s.take_changes(), [entry(&[0], "a", 120)]);

        let zero = SourceIpSticky::new(secs(100), 0);
        zero.record(vec![1], "a", secs(0));
        assert_eq!(zero.merge(&[entry(&[2], "a", 50)], secs(0), |_| true), 0);
        assert_eq!((zero.len(), zero.journaled_len()), (0, 0));
        assert!(zero.take_changes().is_empty());
    }

    #[test]
    fn merge_keeps_later_local_entries_and_does_not_echo() {
        let s = SourceIpSticky::new(secs(100), 10);
        s.record(b"local".to_vec(), "a", secs(10));
        let merged = s.merge(
            &[
                entry(b"local", "b", 90),  // expires before ours: kept ours
                entry(b"new", "b", 90),    // inserted
                entry(b"gone", "zzz", 90), // unknown backend
                entry(b"stale", "b", 5),   // already expired here
            ],
            secs(10),
            |b| b == "a" || b == "b",
        );
        assert_eq!(merged, 1);
        assert_eq!(s.get(b"local", secs(20)), Some("a".into()));
        assert_eq!(s.get(b"new", secs(20)), Some("b".into()));
        assert_eq!(
            (s.get(b"gone", secs(20)), s.get(b"stale", secs(0))),
            (None, None)
        );
        assert_eq!(s.take_changes(), [entry(b"local", "a", 110)]);
        // A refresh of a merged entry is not news for the cluster...
        s.record(b"new".to_vec(), "b", secs(30));
        assert!(s.take_changes().is_empty());
        // ...but a later cluster entry supersedes a pending local change.
        s.record(b"new".to_vec(), "a", secs(31));
        assert_eq!(s.merge(&[entry(b"new", "b", 200)], secs(31), |_| true), 1);
        assert!(s.take_changes().is_empty());
        assert_eq!(s.get(b"new", secs(150)), Some("b".into()));
        // Equal expiry: ours stays.
        assert_eq!(s.merge(&[entry(b"new", "a", 200)], secs(31), |_| true), 0);
    }
}

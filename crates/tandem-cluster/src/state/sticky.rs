//! Replicated sticky tables: one bounded [`StickyTable`] per pool, serialized as its
//! entries sorted by key.
//!
//! The table's whole behaviour (lookups, eviction by `(expires_at, key)`, purge) is a
//! function of its capacity and its set of entries, so writing those two down is a
//! complete snapshot: a table rebuilt from them evicts exactly as the original would.

use super::command::StickyRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;
use tandem_config::http::Sticky;
use tandem_config::ClusterConfig;
use tandem_policy::{StickyEntry, StickyTable};

/// Capacity of a pool's table when the applied config does not set one (no config yet, or
/// a pool without `sticky = { kind = "source_ip", max_entries = N }`). Matches the config's
/// own default for `max_entries`, so an unconfigured pool behaves as a default one would.
pub const DEFAULT_STICKY_CAPACITY: u32 = 100_000;

/// What the applied config says about one pool, kept so that merging a batch does not
/// re-parse the config text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PoolRules {
    pub(crate) capacity: u32,
    /// Backend ids: entries for anything else could never be served, so they are dropped.
    pub(crate) backends: BTreeSet<String>,
}

impl PoolRules {
    /// Rules of every pool of `config`, by pool name.
    pub(crate) fn from_config(config: &ClusterConfig) -> Vec<(String, PoolRules)> {
        config
            .pools
            .iter()
            .map(|pool| {
                let capacity = match pool.http.as_ref().and_then(|h| h.sticky.as_ref()) {
                    Some(Sticky::SourceIp { max_entries, .. }) => *max_entries,
                    _ => DEFAULT_STICKY_CAPACITY,
                };
                let backends = pool.backends.iter().map(|b| b.id.clone()).collect();
                (pool.name.clone(), PoolRules { capacity, backends })
            })
            .collect()
    }
}

/// One pool's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "TableRepr", try_from = "TableRepr")]
pub(crate) struct PoolTable(StickyTable);

/// The serialized form: capacity and entries sorted by key, without duplicates.
#[derive(Serialize, Deserialize)]
struct TableRepr {
    capacity: u32,
    entries: Vec<StickyRecord>,
}

impl PoolTable {
    pub(crate) fn new(capacity: u32) -> Self {
        PoolTable(StickyTable::new(capacity as usize))
    }

    pub(crate) fn insert(&mut self, record: &StickyRecord) {
        self.0.insert(
            record.key.clone(),
            record.backend.clone(),
            Duration::from_millis(record.expires_at_ms),
        );
    }

    /// Drops the entries that have expired at `now_ms`; returns how many went.
    pub(crate) fn purge(&mut self, now_ms: u64) -> usize {
        self.0.purge_expired(Duration::from_millis(now_ms))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entries sorted by key.
    pub(crate) fn records(&self) -> Vec<StickyRecord> {
        self.0.entries().into_iter().map(record_of).collect()
    }

    /// This table under new rules: entries for backends that left the pool go, and when
    /// the capacity shrank the entries with the smallest `(expires_at, key)` go first (the
    /// table's own eviction order, so every node drops the same ones).
    pub(crate) fn under(&self, rules: &PoolRules) -> PoolTable {
        let mut kept: Vec<StickyEntry> = self
            .0
            .entries()
            .into_iter()
            .filter(|e| rules.backends.contains(&e.backend))
            .collect();
        // Inserting in ascending eviction order into a full table always evicts the
        // smallest entry present, never the new one: what remains is the largest
        // `capacity` entries, exactly what evicting smallest-first leaves.
        kept.sort_by(|a, b| (a.expires_at, &a.key).cmp(&(b.expires_at, &b.key)));
        let mut table = StickyTable::new(rules.capacity as usize);
        table.apply(kept);
        PoolTable(table)
    }
}

fn record_of(e: StickyEntry) -> StickyRecord {
    StickyRecord {
        key: e.key,
        backend: e.backend,
        // Entries only ever come from whole milliseconds, so this is exact.
        expires_at_ms: u64::try_from(e.expires_at.as_millis()).unwrap_or(u64::MAX),
    }
}

impl From<PoolTable> for TableRepr {
    fn from(table: PoolTable) -> Self {
        TableRepr {
            capacity: u32::try_from(table.0.capacity()).unwrap_or(u32::MAX),
            entries: table.records(),
        }
    }
}

impl TryFrom<TableRepr> for PoolTable {
    type Error = String;

    /// Refuses anything `PoolTable` could not have written: a table over capacity, or
    /// entries out of order or repeated (which insertion would silently merge or evict,
    /// giving a different table than the one snapshotted).
    fn try_from(repr: TableRepr) -> Result<Self, String> {
        if repr.entries.len() > repr.capacity as usize {
            return Err(format!(
                "a sticky table holds {} entries, over its capacity {}",
                repr.entries.len(),
                repr.capacity
            ));
        }
        if repr.entries.windows(2).any(|w| w[0].key >= w[1].key) {
            return Err("sticky entries are not sorted by key without repeats".into());
        }
        let mut table = PoolTable::new(repr.capacity);
        for record in &repr.entries {
            table.insert(record);
        }
        Ok(table)
    }
}

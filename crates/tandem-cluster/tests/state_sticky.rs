//! Replicated sticky tables: batches merge, tables stay bounded with the same eviction
//! on every node, purges use the time carried in the command, snapshots round-trip.

mod state_common;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tandem_cluster::state::{
    ClusterState, Command, Lease, Outcome, StickyRecord, DEFAULT_STICKY_CAPACITY,
};

fn rec(key: &str, backend: &str, expires_at_ms: u64) -> StickyRecord {
    StickyRecord {
        key: key.as_bytes().to_vec(),
        backend: backend.into(),
        expires_at_ms,
    }
}

fn batch(state: &mut ClusterState, pool: &str, entries: Vec<StickyRecord>) -> Outcome {
    state.apply(&Command::StickyBatch {
        pool: pool.into(),
        entries,
    })
}

fn keys(state: &ClusterState, pool: &str) -> Vec<String> {
    state
        .sticky(pool)
        .into_iter()
        .map(|r| String::from_utf8(r.key).unwrap())
        .collect()
}

fn configured(max_entries: u32, backends: &[&str]) -> ClusterState {
    let mut state = ClusterState::default();
    let toml = state_common::cluster(1, max_entries, backends);
    assert_eq!(
        state.apply(&Command::ApplyConfig { version: 1, toml }),
        Outcome::ConfigApplied { version: 1 }
    );
    state
}

#[test]
fn batches_merge_in_order() {
    let mut state = ClusterState::default();
    assert_eq!(state.sticky_capacity("app"), DEFAULT_STICKY_CAPACITY);
    let out = batch(
        &mut state,
        "app",
        vec![rec("10.0.0.2", "a1", 100), rec("10.0.0.1", "a2", 100)],
    );
    assert_eq!(
        out,
        Outcome::StickyMerged {
            pool: "app".into(),
            entries: 2
        }
    );
    // A later entry for the same key replaces the earlier one, even within one batch.
    batch(
        &mut state,
        "app",
        vec![rec("10.0.0.2", "a2", 150), rec("10.0.0.2", "a1", 200)],
    );
    batch(&mut state, "db", vec![rec("k", "d1", 50)]);
    assert_eq!(
        state.sticky("app"),
        vec![rec("10.0.0.1", "a2", 100), rec("10.0.0.2", "a1", 200)]
    );
    assert_eq!(state.sticky_len(), 3);
    assert_eq!(state.sticky("nowhere"), vec![]);
}

#[test]
fn tables_are_bounded_with_deterministic_eviction() {
    let mut state = configured(3, &["a1", "a2"]);
    batch(
        &mut state,
        "app",
        vec![
            rec("c", "a1", 300),
            rec("b", "a1", 100),
            rec("a", "a1", 100),
        ],
    );
    // Full: a new key evicts the smallest (expires_at, key), here "a" (ties broken by key).
    batch(&mut state, "app", vec![rec("d", "a2", 50)]);
    assert_eq!(keys(&state, "app"), ["b", "c", "d"]);
    // The new entry is never the one evicted, even when it expires first.
    batch(&mut state, "app", vec![rec("e", "a2", 10)]);
    assert_eq!(keys(&state, "app"), ["b", "c", "e"]);
    // Refreshing a key that is present evicts nothing.
    batch(&mut state, "app", vec![rec("b", "a2", 400)]);
    assert_eq!(keys(&state, "app"), ["b", "c", "e"]);
    assert_eq!(state.sticky_len(), 3);
}

#[test]
fn the_config_decides_pools_backends_and_capacity() {
    let mut state = configured(3, &["a1", "a2"]);
    // Unknown pools and backends are skipped once a config is applied.
    assert_eq!(
        batch(&mut state, "gone", vec![rec("x", "a1", 10)]),
        Outcome::StickyMerged {
            pool: "gone".into(),
            entries: 0
        }
    );
    let out = batch(
        &mut state,
        "app",
        vec![
            rec("x", "a1", 10),
            rec("y", "zz", 10),
            rec("z", "a2", 30),
            rec("w", "a2", 20),
        ],
    );
    assert_eq!(
        out,
        Outcome::StickyMerged {
            pool: "app".into(),
            entries: 3
        }
    );
    assert_eq!(keys(&state, "app"), ["w", "x", "z"]);

    // a1 leaves and the table shrinks to 1: a1's entry goes, then the smallest expiry.
    let toml = state_common::cluster(2, 1, &["a2", "a3"]);
    state.apply(&Command::ApplyConfig { version: 2, toml });
    assert_eq!(state.sticky_capacity("app"), 1);
    assert_eq!(state.sticky("app"), vec![rec("z", "a2", 30)]);
    assert_eq!(keys(&state, "gone"), Vec::<String>::new());
}

#[test]
fn purge_uses_the_time_in_the_command() {
    let mut state = ClusterState::default();
    batch(
        &mut state,
        "app",
        vec![
            rec("a", "a1", 100),
            rec("b", "a1", 200),
            rec("c", "a1", 300),
        ],
    );
    batch(&mut state, "db", vec![rec("k", "d1", 150)]);
    // Expired at now_ms means expires_at_ms <= now_ms (an entry answers while now < expiry).
    assert_eq!(
        state.apply(&Command::PurgeSticky { now_ms: 99 }),
        Outcome::StickyPurged { removed: 0 }
    );
    assert_eq!(
        state.apply(&Command::PurgeSticky { now_ms: 200 }),
        Outcome::StickyPurged { removed: 3 }
    );
    assert_eq!(keys(&state, "app"), ["c"]);
    assert_eq!(state.sticky("db"), vec![]);
    state.apply(&Command::PurgeSticky { now_ms: 1_000 });
    assert_eq!(state.sticky_len(), 0);
    // Empty tables leave no trace: the state is as if nothing had been merged.
    assert_eq!(state, ClusterState::default());
}

#[test]
fn snapshots_round_trip() {
    let mut state = configured(3, &["a1", "a2"]);
    batch(
        &mut state,
        "app",
        vec![
            rec("c", "a1", 300),
            rec("b", "a2", 100),
            rec("a", "a1", 100),
        ],
    );
    let bytes = state.to_snapshot();
    let mut restored = ClusterState::from_snapshot(&bytes).unwrap();
    assert_eq!(restored, state);
    assert_eq!(restored.to_snapshot(), bytes);
    // The restored table evicts exactly as the original does.
    for s in [&mut state, &mut restored] {
        batch(s, "app", vec![rec("d", "a2", 200)]);
    }
    assert_eq!(restored.to_snapshot(), state.to_snapshot());
    assert_eq!(
        keys(&restored, "app"),
        ["b", "c", "d"],
        "(100, \"a\") was evicted"
    );
}

#[test]
fn damaged_snapshots_are_refused() {
    let mut state = ClusterState::default();
    batch(&mut state, "app", vec![rec("a", "a1", 100)]);
    let bytes = state.to_snapshot();
    assert!(ClusterState::from_snapshot(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(ClusterState::from_snapshot(&longer).is_err());
    assert!(ClusterState::from_snapshot(b"\x07garbage").is_err());
}

/// The snapshot layout, mirrored, to write tables `ClusterState` would never write.
#[derive(Serialize)]
struct Mirror {
    config: Option<(u64, String)>,
    pools: BTreeMap<String, (u32, BTreeSet<String>)>,
    sticky: BTreeMap<String, (u32, Vec<StickyRecord>)>,
    leases: BTreeMap<String, Lease>,
    pins: BTreeMap<String, u64>,
}

fn mirror(capacity: u32, entries: Vec<StickyRecord>) -> Vec<u8> {
    postcard::to_stdvec(&Mirror {
        config: None,
        pools: BTreeMap::new(),
        sticky: BTreeMap::from([("app".to_string(), (capacity, entries))]),
        leases: BTreeMap::new(),
        pins: BTreeMap::new(),
    })
    .unwrap()
}

#[test]
fn snapshots_with_impossible_tables_are_refused() {
    let good = mirror(2, vec![rec("a", "a1", 1), rec("b", "a1", 1)]);
    let state = ClusterState::from_snapshot(&good).expect("the mirror matches the layout");
    assert_eq!(keys(&state, "app"), ["a", "b"]);
    assert!(
        ClusterState::from_snapshot(&mirror(1, vec![rec("a", "a1", 1), rec("b", "a1", 1)]))
            .is_err()
    );
    assert!(
        ClusterState::from_snapshot(&mirror(2, vec![rec("b", "a1", 1), rec("a", "a1", 1)]))
            .is_err()
    );
    assert!(
        ClusterState::from_snapshot(&mirror(2, vec![rec("a", "a1", 1), rec("a", "a2", 1)]))
            .is_err()
    );
}

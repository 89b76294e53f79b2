//! Sticky table: expiry, removal, and deterministic eviction.

use std::time::Duration;

use proptest::prelude::*;
use tandem_policy::{StickyEntry, StickyTable};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn put(t: &mut StickyTable, key: &str, backend: &str, expires: u64) {
    t.insert(key.as_bytes().to_vec(), backend.into(), secs(expires));
}

#[test]
fn expired_entries_never_answer() {
    let mut t = StickyTable::new(10);
    put(&mut t, "10.0.0.1", "b1", 100);
    assert_eq!(t.get(b"10.0.0.1", secs(99)), Some("b1"));
    assert_eq!(t.get(b"10.0.0.1", secs(100)), None);
    assert_eq!(t.get(b"other", secs(0)), None);
    // Stored until purged.
    assert_eq!(t.len(), 1);
    put(&mut t, "k2", "b2", 200);
    assert_eq!(t.purge_expired(secs(150)), 1);
    assert_eq!(t.len(), 1);
    // A refresh replaces backend and expiry.
    put(&mut t, "k2", "b3", 300);
    assert_eq!(t.get(b"k2", secs(250)), Some("b3"));
    assert_eq!(t.len(), 1);
    assert_eq!(t.purge_expired(secs(250)), 0);
}

#[test]
fn full_table_evicts_smallest_expiry_then_smallest_key() {
    let mut t = StickyTable::new(3);
    put(&mut t, "c", "b", 50);
    put(&mut t, "a", "b", 50);
    put(&mut t, "z", "b", 10);
    put(&mut t, "n", "b", 5);
    let keys = |t: &StickyTable| t.entries().into_iter().map(|e| e.key).collect::<Vec<_>>();
    // z, expiring first, made room for n (the new entry is never the victim).
    assert_eq!(keys(&t), [b"a", b"c", b"n"]);
    put(&mut t, "m", "b", 60);
    assert_eq!(keys(&t), [b"a", b"c", b"m"]);
    // a and c tie at 50: the smaller key goes.
    put(&mut t, "o", "b", 1);
    assert_eq!(keys(&t), [b"c", b"m", b"o"]);
    // Refreshing a present key evicts nothing.
    put(&mut t, "c", "b2", 70);
    assert_eq!(t.len(), 3);
    assert!(StickyTable::new(0).entries().is_empty());
    let mut zero = StickyTable::new(0);
    put(&mut zero, "a", "b", 1);
    assert!(zero.is_empty());
}

#[test]
fn remove_backend_and_replicate() {
    let mut t = StickyTable::new(10);
    put(&mut t, "a", "b1", 10);
    put(&mut t, "b", "b2", 20);
    put(&mut t, "c", "b1", 30);
    assert_eq!(t.remove_backend("b1"), 2);
    assert_eq!(t.remove_backend("b1"), 0);
    assert_eq!(
        t.entries(),
        [StickyEntry {
            key: b"b".to_vec(),
            backend: "b2".into(),
            expires_at: secs(20)
        }]
    );
    // The removed entries no longer take part in eviction.
    assert_eq!(t.purge_expired(secs(100)), 1);
    assert!(t.is_empty());

    let mut leader = StickyTable::new(4);
    for (i, k) in ["q", "w", "e", "r", "t", "y"].iter().enumerate() {
        put(&mut leader, k, "b", 100 - i as u64);
    }
    let mut follower = StickyTable::new(4);
    follower.apply(leader.entries());
    assert_eq!(follower, leader);
}

#[test]
fn insert_evicting_peek_and_remove() {
    let mut t = StickyTable::new(2);
    assert_eq!(
        t.insert_evicting(b"a".to_vec(), "b1".into(), secs(20)),
        None
    );
    assert_eq!(
        t.insert_evicting(b"b".to_vec(), "b2".into(), secs(10)),
        None
    );
    // A refresh of a stored key evicts nothing, even in a full table.
    assert_eq!(
        t.insert_evicting(b"a".to_vec(), "b3".into(), secs(30)),
        None
    );
    // A new key evicts the smallest expiry and says which.
    assert_eq!(
        t.insert_evicting(b"c".to_vec(), "b1".into(), secs(40)),
        Some(StickyEntry {
            key: b"b".to_vec(),
            backend: "b2".into(),
            expires_at: secs(10)
        })
    );
    assert_eq!(t.peek(b"b"), None);
    // peek sees expired entries, get does not.
    assert_eq!(t.peek(b"a"), Some(("b3", secs(30))));
    assert_eq!(t.get(b"a", secs(31)), None);
    assert_eq!(
        t.remove(b"a"),
        Some(StickyEntry {
            key: b"a".to_vec(),
            backend: "b3".into(),
            expires_at: secs(30)
        })
    );
    assert_eq!(t.remove(b"a"), None);
    assert_eq!(t.len(), 1);
    // The removed key no longer takes part in eviction or purging.
    put(&mut t, "d", "b1", 5);
    assert_eq!(t.len(), 2);
    assert_eq!(t.purge_expired(secs(35)), 1);
    assert_eq!(t.peek(b"c"), Some(("b1", secs(40))));
    let mut zero = StickyTable::new(0);
    assert_eq!(
        zero.insert_evicting(b"a".to_vec(), "b".into(), secs(1)),
        None
    );
    assert_eq!(zero.remove(b"a"), None);
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, u8, u8),
    RemoveBackend(u8),
    Remove(u8),
    Purge(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, 0u8..4, 0u8..40).prop_map(|(k, b, e)| Op::Insert(k, b, e)),
        1 => (0u8..4).prop_map(Op::RemoveBackend),
        1 => (0u8..24).prop_map(Op::Remove),
        1 => (0u8..40).prop_map(Op::Purge),
    ]
}

fn run(capacity: usize, ops: &[Op]) -> StickyTable {
    let mut t = StickyTable::new(capacity);
    for op in ops {
        match *op {
            Op::Insert(k, b, e) => t.insert(vec![k], format!("b{b}"), secs(e.into())),
            Op::RemoveBackend(b) => {
                t.remove_backend(&format!("b{b}"));
            }
            Op::Remove(k) => {
                t.remove(&[k]);
            }
            Op::Purge(now) => {
                t.purge_expired(secs(now.into()));
            }
        }
        assert!(t.len() <= capacity);
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn same_operations_same_table(capacity in 0usize..8, ops in proptest::collection::vec(op(), 0..60)) {
        let a = run(capacity, &ops);
        let b = run(capacity, &ops);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.entries(), b.entries());
        prop_assert!(a.len() <= capacity);
        // A snapshot applied to an empty table reproduces it.
        let mut copy = StickyTable::new(capacity);
        copy.apply(a.entries());
        prop_assert_eq!(copy, a);
    }

    #[test]
    fn get_agrees_with_entries(capacity in 1usize..8, ops in proptest::collection::vec(op(), 0..60), now in 0u64..40) {
        let t = run(capacity, &ops);
        let now = secs(now);
        for e in t.entries() {
            let expect = (e.expires_at > now).then_some(e.backend.as_str());
            prop_assert_eq!(t.get(&e.key, now), expect);
        }
    }
}

//! Maglev minimal disruption, property-tested at the default table size (65537): with a
//! small table the rebuild itself moves a few percent of keys and the 5% bound is too tight.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use tandem_balance::{AdminState, Algorithm, BackendSpec, PickContext, Pool, PoolSettings};

const KEYS: u32 = 3000;

fn hash_settings(size: usize) -> PoolSettings {
    PoolSettings {
        maglev_table_size: size,
        ..settings(Algorithm::SourceIpHash)
    }
}

fn named(n: usize, salt: u32) -> Vec<BackendSpec> {
    (0..n)
        .map(|i| spec(&format!("10.{salt}.0.{i}:8080"), 1))
        .collect()
}

/// Backend id chosen for each key.
fn owners(p: &mut Pool, salt: u32) -> Vec<String> {
    (0..KEYS)
        .map(|k| {
            let key = [k.to_le_bytes(), salt.to_le_bytes()].concat();
            let i = p
                .pick(
                    &PickContext {
                        key: Some(&key),
                        exclude: &[],
                    },
                    T0,
                )
                .unwrap();
            p.backends()[i].id().to_string()
        })
        .collect()
}

/// Asserts removing `removed` moved at most 1/n + 5% of all keys and kept
/// at least 95% of the keys that were not on it.
fn check_disruption(before: &[String], after: &[String], removed: &str, n: usize) {
    let moved = before.iter().zip(after).filter(|(b, a)| b != a).count();
    let moved_share = moved as f64 / KEYS as f64;
    assert!(
        moved_share <= 1.0 / n as f64 + 0.05,
        "moved {moved_share:.3} with n={n}"
    );
    let others: Vec<_> = before
        .iter()
        .zip(after)
        .filter(|(b, _)| *b != removed)
        .collect();
    let stayed = others.iter().filter(|(b, a)| b == a).count();
    let stayed_share = stayed as f64 / others.len() as f64;
    assert!(stayed_share >= 0.95, "stayed {stayed_share:.3} with n={n}");
    assert!(after.iter().all(|a| a != removed));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn removing_a_backend_by_reload_is_minimally_disruptive(
        n in 3usize..=10,
        salt in any::<u32>(),
        victim in any::<Index>(),
    ) {
        let specs = named(n, salt);
        let mut p = Pool::new(hash_settings(65537), specs.clone());
        let before = owners(&mut p, salt);
        let removed = victim.index(n);
        let mut fewer = specs.clone();
        let gone = fewer.remove(removed);
        p.reconfigure(hash_settings(65537), fewer);
        let after = owners(&mut p, salt);
        check_disruption(&before, &after, &gone.id, n);
    }

    #[test]
    fn disabling_a_backend_is_minimally_disruptive_and_reversible(
        n in 3usize..=10,
        salt in any::<u32>(),
        victim in any::<Index>(),
    ) {
        let mut p = Pool::new(hash_settings(65537), named(n, salt));
        let before = owners(&mut p, salt);
        let removed = victim.index(n);
        p.set_admin(removed, AdminState::Disabled);
        let after = owners(&mut p, salt);
        let gone = p.backends()[removed].id().to_string();
        check_disruption(&before, &after, &gone, n);
        // Re-enabling restores the original mapping exactly.
        p.set_admin(removed, AdminState::Enabled);
        prop_assert_eq!(owners(&mut p, salt), before);
    }
}

#[test]
fn removal_with_the_default_table_size() {
    let n = 5;
    let specs = named(n, 7);
    let mut p = Pool::new(hash_settings(65537), specs.clone());
    let before = owners(&mut p, 7);
    let mut fewer = specs;
    let gone = fewer.remove(2);
    p.reconfigure(hash_settings(65537), fewer);
    check_disruption(&before, &owners(&mut p, 7), &gone.id, n);
}

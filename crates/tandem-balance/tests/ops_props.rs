//! Random operation sequences: the pool never panics, never returns an
//! ineligible backend, and always finds one when one is eligible.

mod common;

use common::*;
use proptest::prelude::*;
use tandem_balance::{
    AdminState, BackendSpec, Duration, Health, PassiveEjection, PickContext, Pool, PoolSettings,
};

#[derive(Clone, Debug)]
enum Op {
    Pick {
        key: Option<u8>,
        exclude: Vec<usize>,
        open: bool,
    },
    Close(usize),
    Health(usize, bool),
    Admin(usize, u8),
    Weight(usize, u32),
    Fail(usize),
    Success(usize),
    Latency(usize, u32),
    Advance(u64),
    Reconfigure(Vec<BackendSpec>, usize, usize),
}

fn admin(n: u8) -> AdminState {
    [
        AdminState::Enabled,
        AdminState::Draining,
        AdminState::Disabled,
    ][n as usize % 3]
}

fn backend_spec() -> impl Strategy<Value = BackendSpec> {
    (
        0u8..8,
        prop_oneof![Just(0u32), 1u32..5, Just(u32::MAX)],
        0u32..4,
        0u8..4,
    )
        .prop_map(|(id, weight, max_connections, a)| BackendSpec {
            id: format!("b{id}"),
            weight,
            max_connections,
            // Mostly enabled.
            admin: admin(a.saturating_sub(1)),
        })
}

fn op() -> impl Strategy<Value = Op> {
    // Indices up to 9 so some are out of range.
    let idx = 0usize..10;
    prop_oneof![
        6 => (proptest::option::of(any::<u8>()), proptest::collection::vec(idx.clone(), 0..3), any::<bool>())
            .prop_map(|(key, exclude, open)| Op::Pick { key, exclude, open }),
        2 => idx.clone().prop_map(Op::Close),
        2 => (idx.clone(), any::<bool>()).prop_map(|(i, up)| Op::Health(i, up)),
        1 => (idx.clone(), any::<u8>()).prop_map(|(i, a)| Op::Admin(i, a)),
        1 => (idx.clone(), prop_oneof![Just(0u32), 1u32..10, Just(u32::MAX)]).prop_map(|(i, w)| Op::Weight(i, w)),
        2 => idx.clone().prop_map(Op::Fail),
        1 => idx.clone().prop_map(Op::Success),
        1 => (idx.clone(), any::<u32>()).prop_map(|(i, l)| Op::Latency(i, l)),
        2 => (0u64..5_000).prop_map(Op::Advance),
        1 => (proptest::collection::vec(backend_spec(), 0..7), 0usize..9, 0usize..4)
            .prop_map(|(s, alg, size)| Op::Reconfigure(s, alg, size)),
    ]
}

fn pool_settings(alg: usize, size: usize) -> PoolSettings {
    PoolSettings {
        algorithm: ALL_ALGORITHMS[alg % ALL_ALGORITHMS.len()],
        maglev_table_size: [101, 100, 1, 7][size % 4],
        panic_threshold: [0.0, 0.5, 0.6, 1.0][(alg + size) % 4],
        slow_start: Duration::from_secs(3),
        passive: Some(PassiveEjection {
            consecutive_failures: 2,
            eject_for: Duration::from_secs(2),
            max_eject_for: Duration::from_secs(20),
            max_ejected_share: [1.0, 0.5, 0.34, 0.0][(alg / 4 + size) % 4],
        }),
        seed: alg as u64,
    }
}

/// Eligible for a new pick at `now` (the rules from the crate docs).
fn eligible(p: &Pool, i: usize, exclude: &[usize], now: Duration, panic: bool) -> bool {
    let b = &p.backends()[i];
    let ejected = b.ejected_until().is_some_and(|u| u > now);
    b.admin() == AdminState::Enabled
        && b.weight() > 0
        && (b.max_connections() == 0 || b.active() < b.max_connections())
        && !exclude.contains(&i)
        && (panic || (b.health() == Health::Up && !ejected))
}

fn run(initial: Vec<BackendSpec>, alg: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut p = Pool::new(pool_settings(alg, 0), initial);
    let mut now = T0;
    for op in ops {
        match op {
            Op::Pick { key, exclude, open } => {
                let key = key.map(|k| [k]);
                let ctx = PickContext {
                    key: key.as_ref().map(|k| &k[..]),
                    exclude: &exclude,
                };
                let got = p.pick(&ctx, now);
                // After pick, healthy_share/in_panic reflect `now`.
                let panic = p.in_panic();
                let any = (0..p.backends().len()).any(|i| eligible(&p, i, &exclude, now, panic));
                match got {
                    Some(i) => {
                        prop_assert!(i < p.backends().len());
                        prop_assert!(
                            eligible(&p, i, &exclude, now, panic),
                            "picked {} panic={}",
                            i,
                            panic
                        );
                        if open {
                            p.on_open(i);
                        }
                    }
                    None => prop_assert!(!any, "nothing picked but something eligible"),
                }
            }
            Op::Close(i) => p.on_close(i),
            Op::Health(i, up) => {
                p.set_health(i, if up { Health::Up } else { Health::Down }, now);
            }
            Op::Admin(i, a) => p.set_admin(i, admin(a)),
            Op::Weight(i, w) => p.set_weight(i, w),
            Op::Fail(i) => {
                let was_enabled = p
                    .backends()
                    .get(i)
                    .is_some_and(|b| b.admin() == AdminState::Enabled);
                if p.record_failure(i, now) && was_enabled {
                    // Right after the ejection of an enabled backend the share limit holds
                    // (ejecting a draining or disabled one is not limited, by design).
                    let enabled = p
                        .backends()
                        .iter()
                        .filter(|b| b.admin() == AdminState::Enabled);
                    let total = enabled.clone().count();
                    let ejected = enabled
                        .filter(|b| b.ejected_until().is_some_and(|u| u > now))
                        .count();
                    let share = p
                        .settings()
                        .passive
                        .as_ref()
                        .map_or(1.0, |x| x.max_ejected_share);
                    prop_assert!(ejected as f64 <= share * total as f64 + 1e-9);
                    prop_assert!(p.backends()[i].ejections() >= 1);
                }
            }
            Op::Success(i) => p.record_success(i),
            Op::Latency(i, l) => p.observe_latency(i, Duration::from_micros(u64::from(l))),
            Op::Advance(ms) => now += Duration::from_millis(ms),
            Op::Reconfigure(specs, alg, size) => p.reconfigure(pool_settings(alg, size), specs),
        }
        let share = p.healthy_share();
        prop_assert!((0.0..=1.0).contains(&share));
        for b in p.backends() {
            prop_assert!(b.effective_weight(now) <= b.weight());
            prop_assert!(b.weight() == 0 || b.effective_weight(now) >= 1);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_picks_eligible(
        initial in proptest::collection::vec(backend_spec(), 0..7),
        alg in 0usize..9,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(initial, alg, ops)?;
    }
}

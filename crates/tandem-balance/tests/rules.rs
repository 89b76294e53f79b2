//! Eligibility rules, panic mode, passive ejection, slow start, reload.

mod common;

use common::*;
use tandem_balance::{
    AdminState, Algorithm, BackendSpec, Duration, Health, PassiveEjection, PickContext, Pool,
    PoolSettings,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Picks for `n` requests, each with its own key, opened and closed.
fn picks(p: &mut Pool, n: u32, now: Duration) -> Vec<usize> {
    (0..n)
        .filter_map(|k| {
            let key = k.to_le_bytes();
            let i = p.pick(
                &PickContext {
                    key: Some(&key),
                    exclude: &[],
                },
                now,
            )?;
            p.on_open(i);
            p.on_close(i);
            Some(i)
        })
        .collect()
}

#[test]
fn draining_and_disabled_get_nothing_new() {
    for alg in ALL_ALGORITHMS {
        let mut p = pool(alg, &[1, 1, 1]);
        p.set_admin(1, AdminState::Draining);
        p.set_admin(2, AdminState::Disabled);
        let got = picks(&mut p, 300, T0);
        assert_eq!(got.len(), 300, "{alg:?}");
        assert!(got.iter().all(|&i| i == 0), "{alg:?}");
        // Draining backends still count their connections down.
        p.on_close(1);
        p.set_admin(0, AdminState::Disabled);
        assert_eq!(p.pick(&PickContext::default(), T0), None, "{alg:?}");
        assert_eq!(p.healthy_share(), 1.0);
    }
}

#[test]
fn zero_weight_gets_nothing() {
    for alg in ALL_ALGORITHMS {
        let mut p = pool(alg, &[1, 0, 1]);
        assert!(picks(&mut p, 200, T0).iter().all(|&i| i != 1), "{alg:?}");
        p.set_weight(1, 2);
        p.set_weight(0, 0);
        p.set_weight(2, 0);
        assert!(picks(&mut p, 50, T0).iter().all(|&i| i == 1), "{alg:?}");
    }
}

#[test]
fn max_connections_is_honoured() {
    for alg in ALL_ALGORITHMS {
        let mut specs = specs(&[1, 1]);
        specs[0].max_connections = 2;
        specs[1].max_connections = 3;
        let mut p = Pool::new(settings(alg), specs);
        let mut opened = vec![];
        for k in 0..5u32 {
            let key = k.to_le_bytes();
            let i = p
                .pick(
                    &PickContext {
                        key: Some(&key),
                        exclude: &[],
                    },
                    T0,
                )
                .unwrap();
            p.on_open(i);
            opened.push(i);
        }
        assert_eq!(
            (p.backends()[0].active(), p.backends()[1].active()),
            (2, 3),
            "{alg:?}"
        );
        assert_eq!(p.pick(&PickContext::default(), T0), None, "{alg:?}");
        p.on_close(0);
        assert_eq!(p.pick(&PickContext::default(), T0), Some(0), "{alg:?}");
    }
}

#[test]
fn exclude_is_honoured_including_hash_algorithms() {
    for alg in ALL_ALGORITHMS {
        let mut p = pool(alg, &[1, 1, 1]);
        let key = b"client-42";
        let first = p
            .pick(
                &PickContext {
                    key: Some(key),
                    exclude: &[],
                },
                T0,
            )
            .unwrap();
        let ctx = PickContext {
            key: Some(key),
            exclude: &[first],
        };
        for _ in 0..50 {
            let second = p.pick(&ctx, T0).unwrap();
            assert_ne!(second, first, "{alg:?}");
            let third = p.pick(
                &PickContext {
                    key: Some(key),
                    exclude: &[first, second],
                },
                T0,
            );
            assert_eq!(third, Some(3 - first - second), "{alg:?}");
        }
        assert_eq!(
            p.pick(
                &PickContext {
                    key: Some(key),
                    exclude: &[0, 1, 2]
                },
                T0
            ),
            None
        );
    }
}

#[test]
fn panic_threshold_spreads_over_all_enabled_backends() {
    let run = |threshold: f64| {
        let s = PoolSettings {
            panic_threshold: threshold,
            ..settings(Algorithm::RoundRobin)
        };
        let mut p = Pool::new(s, specs(&[1, 1, 1, 1]));
        p.set_health(0, Health::Down, T0);
        p.set_health(1, Health::Down, T0);
        assert_eq!(p.healthy_share(), 0.5);
        let mut c = [0usize; 4];
        for i in picks(&mut p, 400, T0) {
            c[i] += 1;
        }
        (p.in_panic(), c)
    };
    // 2 of 4 healthy = 0.5 < 0.6: panic, down backends get traffic too.
    assert_eq!(run(0.6), (true, [100, 100, 100, 100]));
    // 0.5 ≥ 0.4: normal, only the healthy ones.
    assert_eq!(run(0.4), (false, [0, 0, 200, 200]));
}

#[test]
fn panic_mode_still_honours_limits_exclude_and_admin() {
    let mut specs = specs(&[1, 1, 1, 1]);
    specs[0].max_connections = 1;
    specs[3].admin = AdminState::Draining;
    let s = PoolSettings {
        panic_threshold: 1.0,
        ..settings(Algorithm::RoundRobin)
    };
    let mut p = Pool::new(s, specs);
    p.set_health(0, Health::Down, T0);
    p.on_open(0);
    assert!(p.in_panic());
    let ctx = PickContext {
        key: None,
        exclude: &[1],
    };
    for _ in 0..20 {
        assert_eq!(p.pick(&ctx, T0), Some(2));
    }
}

#[test]
fn passive_ejection_and_return() {
    let s = PoolSettings {
        passive: Some(PassiveEjection {
            consecutive_failures: 3,
            eject_for: secs(10),
            max_eject_for: secs(100),
            max_ejected_share: 1.0,
        }),
        panic_threshold: 0.0,
        ..settings(Algorithm::RoundRobin)
    };
    let mut p = Pool::new(s, specs(&[1, 1]));
    assert!(!p.record_failure(0, T0));
    assert!(!p.record_failure(0, T0));
    p.record_success(0);
    assert_eq!(p.backends()[0].consecutive_failures(), 0);
    assert!(!p.record_failure(0, T0));
    assert!(!p.record_failure(0, T0));
    assert!(p.record_failure(0, T0));
    assert_eq!(p.backends()[0].ejected_until(), Some(T0 + secs(10)));
    assert_eq!(p.backends()[0].consecutive_failures(), 0);
    // Late failures from in-flight requests do not extend the ejection.
    assert!(!p.record_failure(0, T0 + secs(1)));
    assert_eq!(p.backends()[0].ejected_until(), Some(T0 + secs(10)));
    assert_eq!(p.healthy_share(), 0.5);
    assert!(picks(&mut p, 20, T0 + secs(9)).iter().all(|&i| i == 1));
    // Back after eject_for.
    let later = picks(&mut p, 20, T0 + secs(10));
    assert_eq!(later.iter().filter(|&&i| i == 0).count(), 10);
    assert_eq!(p.backends()[0].ejected_until(), None);
    assert_eq!(p.healthy_share(), 1.0);
}

#[test]
fn no_passive_config_never_ejects() {
    let mut p = pool(Algorithm::RoundRobin, &[1, 1]);
    for _ in 0..100 {
        assert!(!p.record_failure(0, T0));
    }
    assert_eq!(p.backends()[0].ejected_until(), None);
    assert_eq!(p.backends()[0].consecutive_failures(), 100);
}

#[test]
fn slow_start_ramps_effective_weight_after_recovery() {
    let s = PoolSettings {
        slow_start: secs(10),
        ..settings(Algorithm::WeightedRoundRobin)
    };
    let mut p = Pool::new(s, specs(&[100, 100]));
    assert_eq!(p.backends()[0].effective_weight(T0), 100);
    assert!(p.set_health(0, Health::Down, T0));
    assert!(!p.set_health(0, Health::Down, T0));
    let up = T0 + secs(60);
    assert!(p.set_health(0, Health::Up, up));
    let b = &p.backends()[0];
    assert_eq!(b.effective_weight(up), 10);
    assert_eq!(b.effective_weight(up + secs(5)), 55);
    assert_eq!(b.effective_weight(up + secs(10)), 100);
    // WRR uses it: at the start of the ramp backend 0 gets 10 of every 110.
    let c = picks(&mut p, 1100, up);
    assert_eq!(c.iter().filter(|&&i| i == 0).count(), 100);
    // After the ramp, equal shares.
    let c = picks(&mut p, 200, up + secs(10));
    assert_eq!(c.iter().filter(|&&i| i == 0).count(), 100);
}

#[test]
fn reconfigure_keeps_state_of_surviving_ids() {
    let s = PoolSettings {
        passive: Some(PassiveEjection {
            consecutive_failures: 1,
            eject_for: secs(30),
            max_eject_for: secs(300),
            max_ejected_share: 1.0,
        }),
        ..settings(Algorithm::LeastConnections)
    };
    let mut p = Pool::new(s.clone(), specs(&[1, 1, 1]));
    p.set_health(0, Health::Down, T0);
    p.on_open(1);
    p.on_open(1);
    p.observe_latency(1, Duration::from_millis(7));
    assert!(p.record_failure(1, T0));
    p.set_health(2, Health::Down, T0);

    let new = vec![
        spec("b2", 4),
        BackendSpec {
            max_connections: 9,
            ..spec("b1", 3)
        },
        spec("new", 1),
    ];
    p.reconfigure(
        PoolSettings {
            algorithm: Algorithm::RoundRobin,
            ..s
        },
        new,
    );
    assert_eq!(p.settings().algorithm, Algorithm::RoundRobin);
    assert_eq!(p.index_of("b0"), None);
    let b1 = &p.backends()[p.index_of("b1").unwrap()];
    assert_eq!(
        (
            b1.active(),
            b1.total_picks(),
            b1.weight(),
            b1.max_connections()
        ),
        (2, 2, 3, 9)
    );
    assert_eq!(b1.ewma_latency(), Some(Duration::from_millis(7)));
    assert_eq!(b1.ejected_until(), Some(T0 + secs(30)));
    let b2 = &p.backends()[p.index_of("b2").unwrap()];
    assert_eq!((b2.health(), b2.weight()), (Health::Down, 4));
    let n = &p.backends()[p.index_of("new").unwrap()];
    assert_eq!(
        (n.health(), n.active(), n.ewma_latency()),
        (Health::Up, 0, None)
    );
    // b2 is down and b1 still ejected: 1 of 3 healthy is below 0.5, so the
    // pool panics and all three share the traffic, by weight (4, 3, 1: round robin
    // honours different weights).
    assert!(p.in_panic());
    let mut c = [0usize; 3];
    for i in picks(&mut p, 32, T0) {
        c[i] += 1;
    }
    assert_eq!(c, [16, 12, 4]);
}

#[test]
fn maglev_table_size_is_corrected_to_a_prime() {
    let with = |size: usize, n: usize| {
        let s = PoolSettings {
            maglev_table_size: size,
            ..settings(Algorithm::SourceIpHash)
        };
        Pool::new(s, specs(&vec![1; n]))
            .settings()
            .maglev_table_size
    };
    assert_eq!(with(65537, 3), 65537);
    assert_eq!(with(1000, 3), 1009);
    assert_eq!(with(0, 3), 3);
    assert_eq!(with(5, 12), 13);
    // Still picks with a tiny table.
    let s = PoolSettings {
        maglev_table_size: 1,
        ..settings(Algorithm::SourceIpHash)
    };
    let mut p = Pool::new(s, specs(&[1, 1, 1]));
    assert_eq!(picks(&mut p, 30, T0).len(), 30);
}

#[test]
fn empty_pool_and_bad_indices_never_panic() {
    for alg in ALL_ALGORITHMS {
        let mut p = pool(alg, &[]);
        assert_eq!(
            p.pick(
                &PickContext {
                    key: Some(b"k"),
                    exclude: &[7]
                },
                T0
            ),
            None
        );
        assert_eq!(p.healthy_share(), 1.0);
        assert!(!p.in_panic());
        p.on_open(3);
        p.on_close(3);
        p.observe_latency(3, Duration::MAX);
        assert!(!p.record_failure(3, T0));
        p.record_success(3);
        assert!(!p.set_health(3, Health::Down, T0));
        p.set_admin(3, AdminState::Disabled);
        p.set_weight(3, 9);
        let mut one = pool(alg, &[1]);
        one.on_close(0);
        assert_eq!(one.backends()[0].active(), 0);
        for _ in 0..3 {
            one.on_open(0);
        }
        assert_eq!(one.backends()[0].total_picks(), 3);
    }
}

#[test]
fn extreme_times_and_weights_never_panic() {
    let s = PoolSettings {
        slow_start: Duration::MAX,
        passive: Some(PassiveEjection {
            consecutive_failures: 0,
            eject_for: Duration::MAX,
            max_eject_for: Duration::MAX,
            max_ejected_share: 1.0,
        }),
        ..settings(Algorithm::WeightedRoundRobin)
    };
    let mut p = Pool::new(s, specs(&[u32::MAX, u32::MAX, 1]));
    p.set_health(0, Health::Down, Duration::MAX);
    p.set_health(0, Health::Up, Duration::MAX);
    assert!(p.record_failure(1, Duration::MAX));
    assert_eq!(p.backends()[1].ejected_until(), Some(Duration::MAX));
    assert!(p.pick(&PickContext::default(), Duration::MAX).is_some());
    assert!(p.pick(&PickContext::default(), Duration::ZERO).is_some());
}

#[test]
fn pool_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Pool>();
}

//! Envoy-style outlier detection: growing ejections, cap, decay, and the
//! max ejected share.

mod common;

use common::*;
use tandem_balance::{
    AdminState, Algorithm, Duration, PassiveEjection, PickContext, Pool, PoolSettings,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `n` backends; eject after `failures` in a row for 10 s growing to 35 s.
fn pool_with(n: usize, failures: u32, share: f64) -> Pool {
    let s = PoolSettings {
        passive: Some(PassiveEjection {
            consecutive_failures: failures,
            eject_for: secs(10),
            max_eject_for: secs(35),
            max_ejected_share: share,
        }),
        panic_threshold: 0.0,
        ..settings(Algorithm::RoundRobin)
    };
    Pool::new(s, specs(&vec![1; n]))
}

fn until(p: &Pool, i: usize) -> Option<Duration> {
    p.backends()[i].ejected_until()
}

#[test]
fn each_ejection_lasts_longer_up_to_the_cap() {
    let mut p = pool_with(2, 1, 1.0);
    let mut now = T0;
    for (k, expect) in [10, 20, 30, 35, 35].into_iter().enumerate() {
        assert!(p.record_failure(0, now), "ejection {}", k + 1);
        assert_eq!(until(&p, 0), Some(now + secs(expect)));
        assert_eq!(p.backends()[0].ejections(), k as u32 + 1);
        // Failures while out neither extend nor count.
        assert!(!p.record_failure(0, now + secs(1)));
        assert_eq!(until(&p, 0), Some(now + secs(expect)));
        // Fails again the moment it is back.
        now += secs(expect);
    }
}

#[test]
fn count_decays_after_a_quiet_cap_period() {
    let mut p = pool_with(2, 2, 1.0);
    let eject = |p: &mut Pool, now: Duration| {
        assert!(!p.record_failure(0, now));
        p.record_failure(0, now)
    };
    assert!(eject(&mut p, T0));
    let end = T0 + secs(10);
    assert!(eject(&mut p, end));
    let end = end + secs(20);
    assert_eq!(p.backends()[0].ejections(), 2);

    // A lone failure 30 s after the ejection ended restarts the quiet
    // period, so 34 s later the count is still there.
    assert!(!p.record_failure(0, end + secs(30)));
    p.record_success(0);
    let now = end + secs(64);
    assert!(eject(&mut p, now));
    assert_eq!(p.backends()[0].ejections(), 3);
    assert_eq!(until(&p, 0), Some(now + secs(30)));

    // Quiet for exactly the cap after the end: back to a first ejection.
    let end = now + secs(30);
    assert!(eject(&mut p, end + secs(35)));
    assert_eq!(p.backends()[0].ejections(), 1);
    assert_eq!(until(&p, 0), Some(end + secs(45)));
}

#[test]
fn pick_applies_decay_for_status_output() {
    let mut p = pool_with(2, 1, 1.0);
    assert!(p.record_failure(0, T0));
    p.pick(&PickContext::default(), T0 + secs(10));
    assert_eq!(p.backends()[0].ejections(), 1);
    p.pick(&PickContext::default(), T0 + secs(44));
    assert_eq!(p.backends()[0].ejections(), 1);
    p.pick(&PickContext::default(), T0 + secs(45));
    assert_eq!(p.backends()[0].ejections(), 0);
    // A clock that goes backwards does not count as quiet.
    assert!(p.record_failure(1, T0 + secs(100)));
    p.pick(&PickContext::default(), T0);
    assert_eq!(p.backends()[1].ejections(), 1);
}

#[test]
fn max_share_limits_simultaneous_ejections() {
    // 0.5 of 4: two may be out at once.
    let mut p = pool_with(4, 1, 0.5);
    assert!(p.record_failure(0, T0));
    assert!(p.record_failure(1, T0 + secs(1)));
    assert!(!p.record_failure(2, T0 + secs(2)));
    assert_eq!(until(&p, 2), None);
    // The run is kept, so the next failure after 0 returns ejects 2.
    assert_eq!(p.backends()[2].consecutive_failures(), 1);
    assert!(!p.record_failure(2, T0 + secs(9)));
    assert!(p.record_failure(2, T0 + secs(10)));
    assert_eq!(p.backends()[2].consecutive_failures(), 0);
    assert_eq!(p.backends()[2].ejections(), 1);
}

#[test]
fn share_below_one_backend_never_ejects() {
    // 0.2 × 4 = 0.8 rounds down to 0.
    let mut p = pool_with(4, 1, 0.2);
    for i in 0..4 {
        assert!(!p.record_failure(i, T0));
    }
    // 0.25 × 4 = 1: exactly one.
    let mut p = pool_with(4, 1, 0.25);
    assert!(p.record_failure(3, T0));
    assert!(!p.record_failure(0, T0));
    // 1.0 lets every backend go (panic mode is the safety net then).
    let mut p = pool_with(3, 1, 1.0);
    assert!((0..3).all(|i| p.record_failure(i, T0)));
}

#[test]
fn only_enabled_backends_count_towards_the_share() {
    let mut p = pool_with(3, 1, 0.5);
    // Draining: takes no new traffic, so ejecting it costs no capacity.
    p.set_admin(2, AdminState::Draining);
    assert!(p.record_failure(2, T0));
    // 0.5 of the 2 enabled: one of them may still go.
    assert!(p.record_failure(0, T0));
    assert!(!p.record_failure(1, T0));
}

#[test]
fn reconfigure_keeps_the_ejection_count() {
    let mut p = pool_with(2, 1, 1.0);
    assert!(p.record_failure(0, T0));
    let s = p.settings().clone();
    p.reconfigure(s, specs(&[1, 1, 1]));
    assert_eq!(p.backends()[0].ejections(), 1);
    assert!(p.record_failure(0, T0 + secs(10)));
    assert_eq!(until(&p, 0), Some(T0 + secs(30)));
}

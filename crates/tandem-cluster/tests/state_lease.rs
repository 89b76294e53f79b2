//! The lease rules as the state machine applies them, and the clock rules the proposing
//! nodes follow, checked one by one.

use proptest::prelude::*;
use std::time::Duration;
use tandem_cluster::state::{
    ClusterState, Command, ContenderClock, HolderClock, KernelBackstop, Lease, LeaseCommand,
    LeaseTiming, Outcome,
};
use tandem_vrrp::machine::Permit;

const G: &str = "front";

fn acquire(node: u64, seen: (u64, u64)) -> Command {
    Command::Lease(LeaseCommand::Acquire {
        group: G.into(),
        node,
        seen,
    })
}
fn renew(node: u64, epoch: u64) -> Command {
    Command::Lease(LeaseCommand::Renew {
        group: G.into(),
        node,
        epoch,
    })
}
fn release(node: u64, epoch: u64) -> Command {
    Command::Lease(LeaseCommand::Release {
        group: G.into(),
        node,
        epoch,
    })
}
fn force(node: u64) -> Command {
    Command::Lease(LeaseCommand::ForceHold {
        group: G.into(),
        node,
    })
}
fn lease(holder: Option<u64>, epoch: u64, seq: u64) -> Lease {
    Lease { holder, epoch, seq }
}
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// (what happened before, the command, granted or refused, the lease afterwards)
#[test]
fn lease_rules() {
    let held = vec![acquire(1, (0, 0)), renew(1, 1)]; // node 1 holds (1, 1)
    let released = vec![acquire(1, (0, 0)), release(1, 1)]; // empty at (1, 1)
    let cases: Vec<(&str, Vec<Command>, Command, bool, Lease)> = vec![
        (
            "acquire on empty",
            vec![],
            acquire(1, (0, 0)),
            true,
            lease(Some(1), 1, 0),
        ),
        (
            "acquire with a stale seen",
            vec![],
            acquire(1, (0, 1)),
            false,
            Lease::default(),
        ),
        (
            "CAS loses to a renewal",
            held.clone(),
            acquire(2, (1, 0)),
            false,
            lease(Some(1), 1, 1),
        ),
        (
            "CAS after waiting out the holder",
            held.clone(),
            acquire(2, (1, 1)),
            true,
            lease(Some(2), 2, 0),
        ),
        (
            "renew by the holder",
            held.clone(),
            renew(1, 1),
            true,
            lease(Some(1), 1, 2),
        ),
        (
            "renew by another node",
            held.clone(),
            renew(2, 1),
            false,
            lease(Some(1), 1, 1),
        ),
        (
            "renew of an old epoch",
            vec![acquire(1, (0, 0)), force(1)],
            renew(1, 1),
            false,
            lease(Some(1), 2, 0),
        ),
        (
            "renew of an empty lease",
            vec![],
            renew(1, 0),
            false,
            Lease::default(),
        ),
        (
            "release by the holder",
            held.clone(),
            release(1, 1),
            true,
            lease(None, 1, 2),
        ),
        (
            "release by another node",
            held.clone(),
            release(2, 1),
            false,
            lease(Some(1), 1, 1),
        ),
        (
            "release of an old epoch",
            held.clone(),
            release(1, 0),
            false,
            lease(Some(1), 1, 1),
        ),
        (
            "renew after release",
            released.clone(),
            renew(1, 1),
            false,
            lease(None, 1, 1),
        ),
        (
            "acquire right after release",
            released.clone(),
            acquire(2, (1, 1)),
            true,
            lease(Some(2), 2, 0),
        ),
        (
            "force-hold on empty",
            vec![],
            force(3),
            true,
            lease(Some(3), 1, 0),
        ),
        (
            "force-hold over a holder",
            held.clone(),
            force(3),
            true,
            lease(Some(3), 2, 0),
        ),
        (
            "force-hold by the holder",
            held,
            force(1),
            true,
            lease(Some(1), 2, 0),
        ),
    ];
    for (name, before, command, granted, expected) in cases {
        let mut state = ClusterState::default();
        for c in &before {
            assert!(
                matches!(state.apply(c), Outcome::LeaseGranted { .. }),
                "{name}: setup {c:?}"
            );
        }
        let prior = state.lease(G);
        let outcome = state.apply(&command);
        let want = if granted {
            Outcome::LeaseGranted {
                group: G.into(),
                lease: expected,
            }
        } else {
            assert_eq!(prior, expected, "{name}: a refusal changes nothing");
            Outcome::LeaseRefused {
                group: G.into(),
                current: expected,
            }
        };
        assert_eq!(outcome, want, "{name}");
        assert_eq!(state.lease(G), expected, "{name}");
    }
}

#[test]
fn groups_are_independent_and_refusals_leave_no_trace() {
    let mut state = ClusterState::default();
    state.apply(&acquire(1, (0, 0)));
    let other = Command::Lease(LeaseCommand::Renew {
        group: "back".into(),
        node: 1,
        epoch: 1,
    });
    assert!(matches!(state.apply(&other), Outcome::LeaseRefused { .. }));
    assert_eq!(state.leases().keys().collect::<Vec<_>>(), vec![G]);
    assert_eq!(state.lease("back"), Lease::default());
}

#[test]
fn timing_rules_for_the_nftables_fence() {
    let default = LeaseTiming::default();
    assert_eq!(default.backstop, KernelBackstop::Nftables);
    assert_eq!(default.validate(), Ok(()));
    assert_eq!(default.hold_window(), ms(350));
    assert_eq!(default.contender_wait(), ms(555));
    // Sub-second windows are fine here; renewals must still come twice per window.
    let err = LeaseTiming {
        renew_every: ms(250),
        ..default
    }
    .validate()
    .unwrap_err();
    assert!(err.contains("renew_every"), "{err}");
    // A kernel fence slower than the margins allow is refused.
    let err = LeaseTiming {
        kernel_late: ms(300),
        ..default
    }
    .validate()
    .unwrap_err();
    assert!(err.contains("unsafe"), "{err}");
    // The same short lease is refused with the whole-second backstop.
    let err = LeaseTiming {
        backstop: KernelBackstop::AddressLifetime,
        ..default
    }
    .validate()
    .unwrap_err();
    assert!(err.contains("at least 1s"), "{err}");
}

#[test]
fn timing_rules() {
    let default = LeaseTiming::address_lifetime();
    assert_eq!(default.validate(), Ok(()));
    assert_eq!(default.hold_window(), ms(1200));
    assert_eq!(default.contender_wait(), ms(2320));
    let brief = LeaseTiming {
        lease: ms(1500),
        safety_margin: ms(200),
        slack: ms(200),
        ..default
    };
    let err = brief.validate().unwrap_err();
    assert!(err.contains("unsafe"), "{err}");
    let measured = LeaseTiming {
        kernel_late: ms(350),
        ..brief
    };
    assert_eq!(measured.validate(), Ok(()));
    for (bad, word) in [
        (
            LeaseTiming {
                safety_margin: ms(2000),
                ..default
            },
            "safety_margin",
        ),
        (
            LeaseTiming {
                safety_margin: ms(1100),
                ..default
            },
            "at least 1s",
        ),
        (
            LeaseTiming {
                renew_every: ms(600),
                ..default
            },
            "renew_every",
        ),
        (
            LeaseTiming {
                renew_every: Duration::ZERO,
                ..default
            },
            "renew_every",
        ),
        (
            LeaseTiming {
                drift: 0.2,
                ..default
            },
            "drift",
        ),
        (
            LeaseTiming {
                drift: f64::NAN,
                ..default
            },
            "drift",
        ),
    ] {
        let err = bad.validate().unwrap_err();
        assert!(err.contains(word), "{bad:?}: {err}");
    }
}

#[test]
fn holder_clock() {
    let mut h = HolderClock::new(LeaseTiming::address_lifetime());
    assert_eq!(h.valid_until(), None);
    assert!(!h.may_hold(ms(0)) && !h.should_renew(ms(5000)));

    h.confirmed(ms(10_000));
    assert_eq!(h.valid_until(), Some(ms(11_200)));
    assert!(h.may_hold(ms(11_199)) && !h.may_hold(ms(11_200)));
    assert!(!h.should_renew(ms(10_299)) && h.should_renew(ms(10_300)));

    // Out of order: an older confirmation does not shorten the window.
    h.confirmed(ms(10_600));
    h.confirmed(ms(10_300));
    assert_eq!(h.valid_until(), Some(ms(11_800)));
    // Renewals lost past the window: keep trying.
    assert!(!h.may_hold(ms(13_000)) && h.should_renew(ms(13_000)));

    h.reset();
    assert_eq!(h.valid_until(), None);
    assert!(!h.should_renew(ms(20_000)));
    // After a reset a late confirmation is still honoured (safe: see clock.rs).
    h.confirmed(ms(10_600));
    assert_eq!(h.valid_until(), Some(ms(11_800)));
}

/// A renewal in flight when the holder releases must not bring the hold back, since
/// contenders take the lease at once after a Release.
#[test]
fn release_ignores_confirmations_of_earlier_sends() {
    let mut h = HolderClock::new(LeaseTiming::address_lifetime());
    h.confirmed(ms(1_000));
    h.release(ms(1_400));
    assert!(!h.may_hold(ms(1_400)));
    h.confirmed(ms(1_300)); // sent before the release, confirmed after
    h.confirmed(ms(1_400));
    assert_eq!(h.valid_until(), None);
    assert!(!h.may_hold(ms(1_500)));
    h.confirmed(ms(5_000)); // a later acquire counts again
    assert_eq!(h.valid_until(), Some(ms(6_200)));
}

#[test]
fn contender_clock() {
    let timing = LeaseTiming::address_lifetime();
    let wait = timing.contender_wait();
    let mut c = ContenderClock::new(timing);
    assert_eq!(c.may_acquire(ms(100_000)), None, "nothing observed yet");

    // Never held: at once.
    c.observed(Lease::default(), ms(0));
    assert_eq!(c.may_acquire(ms(0)), Some((0, 0)));

    let held = lease(Some(1), 1, 0);
    c.observed(held, ms(1_000));
    assert_eq!(c.may_acquire(ms(1_000) + wait - ms(1)), None);
    // Seeing the same lease again does not restart the wait.
    c.observed(held, ms(2_000));
    assert_eq!(c.may_acquire(ms(1_000) + wait), Some((1, 0)));

    // A renewal restarts it.
    let renewed = lease(Some(1), 1, 1);
    c.observed(renewed, ms(3_000));
    assert_eq!(c.may_acquire(ms(3_000) + wait - ms(1)), None);
    assert_eq!(c.may_acquire(ms(3_000) + wait), Some((1, 1)));

    // A release: at once.
    c.observed(lease(None, 1, 2), ms(4_000));
    assert_eq!(c.may_acquire(ms(4_000)), Some((1, 2)));
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// The address lifetime the speaker installs for the hold window (the speaker's rule,
    /// `Permit::hold`, without a kernel fence) is whole seconds, never ends after
    /// valid_until, and is installed exactly when at least 1 s of the hold is left.
    #[test]
    fn kernel_lifetime_never_outlives_the_hold(sent in 0u64..1_000_000_000, after in 0u64..5_000_000) {
        let mut h = HolderClock::new(LeaseTiming::address_lifetime());
        h.confirmed(Duration::from_micros(sent));
        let now = Duration::from_micros(sent + after);
        let until = h.valid_until().unwrap();
        let origin = tokio::time::Instant::now();
        let hold = Permit::Until(origin + until).hold(origin + now, Duration::from_secs(3), false);
        let left = until.saturating_sub(now);
        prop_assert_eq!(hold.is_some(), left >= Duration::from_secs(1));
        if let Some((lifetime, end)) = hold {
            prop_assert_eq!(lifetime.subsec_nanos(), 0);
            prop_assert!(now + lifetime <= until);
            prop_assert!(left - lifetime < Duration::from_secs(1));
            prop_assert_eq!(end, Some(origin + until));
        }
    }
}

/// A node that is no longer a member (removed while still running) cannot take, renew or
/// force a lease; it may still release. Pins to it are dropped at the membership change.
#[test]
fn non_members_cannot_hold_leases_and_lose_their_pins() {
    let members = |node: u64| node == 1 || node == 2;
    let mut state = ClusterState::default();
    assert!(matches!(
        state.apply_as_members(&acquire(1, (0, 0)), members),
        Outcome::LeaseGranted { .. }
    ));
    // Node 1 is removed: its renewal is refused and the lease stays as it was, so the
    // others wait it out as after a crash.
    let removed = |node: u64| node == 2;
    assert!(matches!(
        state.apply_as_members(&renew(1, 1), removed),
        Outcome::LeaseRefused { .. }
    ));
    assert_eq!(state.lease(G), lease(Some(1), 1, 0));
    assert!(matches!(
        state.apply_as_members(&force(1), removed),
        Outcome::LeaseRefused { .. }
    ));
    assert!(matches!(
        state.apply_as_members(&acquire(3, (1, 0)), removed),
        Outcome::LeaseRefused { .. }
    ));
    // Releasing is always safe, so it is allowed.
    assert!(matches!(
        state.apply_as_members(&release(1, 1), removed),
        Outcome::LeaseGranted { .. }
    ));
    assert_eq!(state.lease(G), lease(None, 1, 1));

    state.apply(&Command::Pin {
        group: G.into(),
        node: Some(1),
    });
    state.apply(&Command::Pin {
        group: "back".into(),
        node: Some(2),
    });
    state.drop_pins_to_non_members(removed);
    assert_eq!(state.pin(G), None);
    assert_eq!(state.pin("back"), Some(2));
}

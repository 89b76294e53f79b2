//! THE safety property of VIP fencing, and its liveness counterpart, on a virtual clock:
//! 2–3 nodes, clocks drifting up to ±1% each, random commit delays, lost proposals, lost
//! or late outcomes, frozen nodes, one-way cuts, planned handovers, crashes. Every node
//! runs the real `LeaseMachine` (see state_sim).

mod state_sim;

use proptest::prelude::*;
use state_sim::{run, Params};
use std::time::Duration;
use tandem_cluster::state::LeaseTiming;

/// The address-lifetime profile shortened for kernels measured at most 350 ms late
/// (`LeaseTiming::address_lifetime`'s doc); the default is the nftables profile.
fn fast() -> LeaseTiming {
    LeaseTiming {
        lease: Duration::from_millis(1500),
        safety_margin: Duration::from_millis(200),
        slack: Duration::from_millis(200),
        kernel_late: Duration::from_millis(350),
        ..LeaseTiming::address_lifetime()
    }
}

fn drifts(ppm: &[i32], n: usize) -> Vec<f64> {
    ppm[..n].iter().map(|&p| f64::from(p) / 1e6).collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// At every instant at most one node may hold the VIP (by `may_hold` on its own
    /// clock) and at most one node can still have the address (its kernel lifetime,
    /// taken as late as the kernel may be, included).
    #[test]
    fn at_most_one_holder(
        seed in any::<u64>(),
        n in 2usize..=3,
        ppm in prop::collection::vec(-10_000i32..=10_000, 3),
        fast_profile in any::<bool>(),
        loss in prop::sample::select(vec![0.0, 0.1, 0.3]),
        response_loss in prop::sample::select(vec![0.0, 0.05, 0.2]),
        commit_max_ms in 1u64..=150,
        lag_ms in 0u64..=50,
        response_ms in 0u64..=500,
        pauses in 0u32..=4,
        cuts in 0u32..=3,
        release_chance in prop::sample::select(vec![0.0, 0.003, 0.05]),
    ) {
        let timing = if fast_profile { fast() } else { LeaseTiming::default() };
        prop_assert!(timing.validate().is_ok());
        let report = run(Params {
            duration: Duration::from_secs(20),
            commit_delay_us: (200, commit_max_ms * 1000),
            apply_lag_us: lag_ms * 1000,
            response_delay_us: response_ms * 1000,
            loss,
            response_loss,
            pauses_per_node: pauses,
            max_pause_us: 4_000_000,
            release_chance,
            cuts_per_node: cuts,
            max_cut_us: 3_000_000,
            ..Params::calm(timing, drifts(&ppm, n), seed)
        });
        prop_assert!(report.violations.is_empty(), "{:?}", report.violations);
        prop_assert!(!report.acquisitions.is_empty(), "nobody ever acquired the lease");
    }

    /// After the holder crashes, another node acquires within
    /// `lease × (1 + drift) + slack` plus one renew period, and the kernel backstop keeps
    /// the handover clean.
    #[test]
    fn failover_within_bound(
        seed in any::<u64>(),
        n in 2usize..=3,
        ppm in prop::collection::vec(-10_000i32..=10_000, 3),
        fast_profile in any::<bool>(),
        crash_ms in 1_000u64..6_000,
    ) {
        let timing = if fast_profile { fast() } else { LeaseTiming::default() };
        let report = run(Params {
            duration: Duration::from_millis(crash_ms + 6_000),
            crash_holder_at: Some(Duration::from_millis(crash_ms)),
            ..Params::calm(timing, drifts(&ppm, n), seed)
        });
        prop_assert!(report.violations.is_empty(), "{:?}", report.violations);
        prop_assert!(report.installs > 0, "the VIP was never installed");
        let (crashed_at, holder) = report.crashed.expect("someone held the lease at the crash");
        // The last renewal commits (≤ 50 ms) and is applied (30 ms) after the crash at the
        // latest; the contender then waits out its clock (drift included), notices at its
        // next tick (10 ms) and its Acquire commits (≤ 50 ms).
        let bound = (timing.contender_wait().mul_f64(1.011) + Duration::from_millis(150))
            .as_micros() as u64;
        let next = report
            .acquisitions
            .iter()
            .find(|&&(t, node)| t > crashed_at && node != holder)
            .map(|&(t, _)| t - crashed_at);
        prop_assert!(next.is_some(), "nobody took over after the crash");
        let took = next.unwrap_or_default();
        prop_assert!(took <= bound, "took over after {took} µs, bound {bound} µs");
        // And not early: the holder's last renewal was sent at most one renew period
        // (plus a tick) before the crash, and the wait runs from after it committed.
        let earliest = timing.contender_wait().mul_f64(0.99) - timing.renew_every;
        prop_assert!(took + 20_000 >= earliest.as_micros() as u64, "took over after {took} µs");
    }
}

/// A long randomized run for people (`TANDEM_SIM_RUNS=5000`; 400 in CI, about three million events): every fault at
/// once, each run 30 s of virtual time with its seed printed, the event count summed.
/// Besides safety it asserts liveness: with faults that end, some node holds the VIP for
/// over a third of every run, and for most of the time over all runs.
#[test]
fn randomized_faults_keep_one_holder() {
    let runs: u64 = std::env::var("TANDEM_SIM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let base: u64 = std::env::var("TANDEM_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!(
        "randomized lease simulation: {runs} runs from seed {base} (TANDEM_SIM_SEED to repeat)"
    );
    let mut events = 0;
    let (mut lowest, mut lowest_seed, mut total) = (1.0f64, base, 0.0);
    for i in 0..runs {
        let seed = base.wrapping_add(i);
        let mut rng = seed;
        let mut pick = |n: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        let n = 2 + pick(2) as usize;
        let ppm: Vec<i32> = (0..3).map(|_| pick(20_001) as i32 - 10_000).collect();
        let duration = Duration::from_secs(30);
        let report = run(Params {
            duration,
            commit_delay_us: (200, 1_000 + pick(100) * 1_000),
            apply_lag_us: pick(50) * 1_000,
            response_delay_us: pick(300) * 1_000,
            loss: [0.0, 0.1, 0.3][pick(3) as usize],
            response_loss: [0.0, 0.05, 0.2][pick(3) as usize],
            pauses_per_node: pick(3) as u32,
            max_pause_us: 2_000_000,
            cuts_per_node: pick(3) as u32,
            max_cut_us: 2_000_000,
            release_chance: [0.0, 0.003][pick(2) as usize],
            ..Params::calm(LeaseTiming::default(), drifts(&ppm, n), seed)
        });
        events += report.events;
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );
        let held = report.held_us as f64 / duration.as_micros() as f64;
        total += held;
        if held < lowest {
            (lowest, lowest_seed) = (held, seed);
        }
        assert!(
            held > 0.35,
            "seed {seed}: the VIP was held {:.0}% of the run",
            held * 100.0
        );
    }
    // Renewals pipelined (a lost one costs a renew period, not a wait) hold the VIP about
    // 83.5 % of these runs on average, 38 % in the worst of 3000 (the 500 ms default lease
    // and the release of a lease nobody answers; 89 % and 50 % with 600 ms and without
    // that rule); one at a time with 600 ms held it about 70 %, 30 % at worst. Answers
    // here come up to 300 ms late, far later than on a LAN.
    let average = total / runs as f64;
    assert!(
        average > 0.8,
        "the VIP was held {:.1}% of the time on average (from seed {base})",
        average * 100.0
    );
    println!(
        "{events} events simulated, no overlap; VIP held {:.1}% of the time on average, \
         {:.1}% at worst (seed {lowest_seed})",
        total * 100.0 / runs as f64,
        lowest * 100.0
    );
}

/// The checker has teeth: timing that assumes perfect clocks (drift 0, no margin, no
/// slack: the contender waits exactly the hold window) lets a contender with a fast clock
/// take the lease while a crashed holder with a slow clock still believes it holds.
#[test]
fn ignoring_drift_is_caught() {
    let timing = LeaseTiming {
        lease: Duration::from_secs(2),
        safety_margin: Duration::ZERO,
        drift: 0.0,
        slack: Duration::ZERO,
        kernel_late: Duration::ZERO,
        ..LeaseTiming::address_lifetime()
    };
    assert!(
        timing.validate().is_ok(),
        "valid for clocks that do not drift"
    );
    let report = run(Params {
        commit_delay_us: (500, 1_000),
        apply_lag_us: 0,
        response_delay_us: 0,
        crash_holder_at: Some(Duration::from_secs(3)),
        stagger_start: true,
        ..Params::calm(timing, vec![-0.01, 0.01], 7)
    });
    assert_eq!(report.crashed.map(|(_, node)| node), Some(0));
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("may_hold [0, 1]")),
        "{:?}",
        report.violations
    );
}

/// The kernel's lateness must be covered too: without slack or margin, a crashed holder's
/// address outlives its lease while the next holder installs its own.
#[test]
fn uncovered_kernel_lateness_is_caught() {
    assert_addresses_overlap(LeaseTiming {
        lease: Duration::from_millis(1500),
        safety_margin: Duration::ZERO,
        slack: Duration::ZERO,
        ..LeaseTiming::address_lifetime()
    });
}

/// The same for the nftables fence: a fence that may end 400 ms after the hold window,
/// with no margin or slack to cover it, overlaps the next holder.
#[test]
fn uncovered_nftables_lateness_is_caught() {
    assert_addresses_overlap(LeaseTiming {
        safety_margin: Duration::ZERO,
        slack: Duration::ZERO,
        kernel_late: Duration::from_millis(400),
        ..LeaseTiming::default()
    });
}

/// `timing` is refused by `validate`, and rightly: after a crash of the holder the
/// simulation sees two nodes with the address.
fn assert_addresses_overlap(timing: LeaseTiming) {
    assert!(timing.validate().is_err());
    let report = run(Params {
        crash_holder_at: Some(Duration::from_secs(3)),
        stagger_start: true,
        ..Params::calm(timing, vec![0.0, 0.0], 11)
    });
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("present [0, 1]")),
        "{:?}",
        report.violations
    );
}

//! Each algorithm's distribution through the public `Pool` API.

mod common;

use common::*;
use tandem_balance::{Algorithm, Duration, PickContext};

#[test]
fn round_robin_with_equal_weights_is_exactly_equal() {
    let mut p = pool(Algorithm::RoundRobin, &[5, 5, 5]);
    assert_eq!(counts(&mut p, 3000, true), vec![1000, 1000, 1000]);
    let seq: Vec<_> = (0..6)
        .map(|_| p.pick(&PickContext::default(), T0).unwrap())
        .collect();
    assert_eq!(seq, vec![0, 1, 2, 0, 1, 2]);
}

/// HAProxy's and nginx's round robin honour weights; so does tandem's: with different
/// weights it is the smooth weighted variant (same sequence as weighted_round_robin).
#[test]
fn round_robin_honours_different_weights() {
    let mut p = pool(Algorithm::RoundRobin, &[1, 5, 9]);
    assert_eq!(counts(&mut p, 1500, true), vec![100, 500, 900]);
    let mut rr = pool(Algorithm::RoundRobin, &[5, 1, 1]);
    let mut wrr = pool(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
    for _ in 0..70 {
        let ctx = PickContext::default();
        assert_eq!(rr.pick(&ctx, T0), wrr.pick(&ctx, T0));
    }
}

/// least_connections with different weights balances active connections per unit of
/// weight, like weighted_least_connections.
#[test]
fn least_connections_honours_different_weights() {
    let mut p = pool(Algorithm::LeastConnections, &[3, 1]);
    assert_eq!(counts(&mut p, 400, false), vec![300, 100]);
    let mut p = pool(Algorithm::LeastConnections, &[3, 1]);
    assert_eq!(counts(&mut p, 400, true), vec![300, 100]);
}

#[test]
fn smooth_wrr_exact_ratio_and_interleaving() {
    let mut p = pool(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
    let seq: Vec<_> = (0..7)
        .map(|_| p.pick(&PickContext::default(), T0).unwrap())
        .collect();
    // nginx's example: a a b a c a a.
    assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
    let mut p = pool(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
    assert_eq!(counts(&mut p, 700, true), vec![500, 100, 100]);
}

#[test]
fn weighted_random_within_five_percent() {
    let mut p = pool(Algorithm::Random, &[1, 2, 3, 4]);
    let c = counts(&mut p, 100_000, true);
    for (i, &n) in c.iter().enumerate() {
        let expected = 100_000.0 * (i + 1) as f64 / 10.0;
        assert_near(n, expected, 0.05, &format!("backend {i}"));
    }
}

#[test]
fn least_connections_picks_least_loaded_and_rotates_ties() {
    let mut p = pool(Algorithm::LeastConnections, &[1, 1, 1]);
    for _ in 0..3 {
        p.on_open(0);
    }
    p.on_open(1);
    // Backend 2 is the only idle one.
    assert_eq!(p.pick(&PickContext::default(), T0), Some(2));
    p.on_open(2);
    // 1 and 2 now tie at one connection: they alternate, never backend 0.
    let seq: Vec<_> = (0..4)
        .map(|_| p.pick(&PickContext::default(), T0).unwrap())
        .collect();
    assert_eq!(seq, vec![1, 2, 1, 2]);
    // Short requests on an idle pool spread evenly instead of piling on 0.
    let mut idle = pool(Algorithm::LeastConnections, &[1, 1, 1]);
    assert_eq!(counts(&mut idle, 300, true), vec![100, 100, 100]);
    // Long requests level the load.
    let mut long = pool(Algorithm::LeastConnections, &[1, 1, 1]);
    assert_eq!(counts(&mut long, 301, false), vec![101, 100, 100]);
}

#[test]
fn weighted_least_connections_respects_weights() {
    // Long-lived connections: active counts settle at the 3:1 weight ratio.
    let mut p = pool(Algorithm::WeightedLeastConnections, &[3, 1]);
    assert_eq!(counts(&mut p, 400, false), vec![300, 100]);
    // Short requests (everything ties at zero): still 3:1, via smooth WRR.
    let mut p = pool(Algorithm::WeightedLeastConnections, &[3, 1]);
    assert_eq!(counts(&mut p, 400, true), vec![300, 100]);
    // With load: 2/1 vs 3/3 — backend 1 is less loaded relative to weight.
    let mut p = pool(Algorithm::WeightedLeastConnections, &[1, 3]);
    p.on_open(0);
    p.on_open(0);
    for _ in 0..3 {
        p.on_open(1);
    }
    assert_eq!(p.pick(&PickContext::default(), T0), Some(1));
}

#[test]
fn least_response_time_prefers_the_faster_backend() {
    let mut p = pool(Algorithm::LeastResponseTime, &[1, 1, 1]);
    p.observe_latency(0, Duration::from_millis(10));
    p.observe_latency(1, Duration::from_millis(50));
    // Unobserved backend 2 goes first.
    assert_eq!(p.pick(&PickContext::default(), T0), Some(2));
    p.observe_latency(2, Duration::from_millis(100));
    // Short requests: all go to the fastest.
    assert_eq!(counts(&mut p, 100, true), vec![100, 0, 0]);
    // Queued requests: 10ms·(a+1) vs 50ms·(b+1) vs 100ms·(c+1) — shares
    // roughly 10:2:1 (exact result from the deterministic rotation).
    let c = counts(&mut p, 130, false);
    assert!(c[0] > 4 * c[1] && c[1] > c[2] && c[2] > 0, "{c:?}");
}

#[test]
fn p2c_never_picks_the_most_loaded_when_loads_differ_strongly() {
    let mut p = pool(Algorithm::PowerOfTwoChoices, &[1, 1, 1]);
    for (i, load) in [(0, 100), (1, 10), (2, 0)] {
        for _ in 0..load {
            p.on_open(i);
        }
    }
    let mut c = [0usize; 3];
    for _ in 0..10_000 {
        c[p.pick(&PickContext::default(), T0).unwrap()] += 1;
    }
    assert_eq!(c[0], 0, "{c:?}");
    // Backend 2 wins both pairs it appears in: 2/3 of picks (±5%).
    assert_near(c[2], 10_000.0 * 2.0 / 3.0, 0.05, "idle backend");
    // Long-lived picks from an idle start stay balanced within ±10%.
    let mut p = pool(Algorithm::PowerOfTwoChoices, &[1, 1, 1]);
    for n in counts(&mut p, 3000, false) {
        assert_near(n, 1000.0, 0.10, "p2c balance");
    }
}

#[test]
fn source_ip_hash_is_sticky_and_spreads_keys() {
    let mut p = pool(Algorithm::SourceIpHash, &[1, 1, 1]);
    let ip = [192, 168, 1, 7];
    let ctx = PickContext {
        key: Some(&ip),
        exclude: &[],
    };
    let first = p.pick(&ctx, T0).unwrap();
    for _ in 0..100 {
        assert_eq!(p.pick(&ctx, T0), Some(first));
    }
    let mut c = [0usize; 3];
    for k in 0..30_000u32 {
        let ip = [10, (k >> 16) as u8, (k >> 8) as u8, k as u8];
        let ctx = PickContext {
            key: Some(&ip),
            exclude: &[],
        };
        c[p.pick(&ctx, T0).unwrap()] += 1;
    }
    for n in c {
        assert_near(n, 10_000.0, 0.10, "source-ip share");
    }
}

#[test]
fn key_hash_is_sticky_weighted_and_rotates_without_key() {
    let mut p = pool(Algorithm::KeyHash, &[2, 1, 1]);
    let mut c = [0usize; 3];
    for k in 0..20_000u32 {
        let key = format!("session-{k}");
        let ctx = PickContext {
            key: Some(key.as_bytes()),
            exclude: &[],
        };
        let i = p.pick(&ctx, T0).unwrap();
        assert_eq!(p.pick(&ctx, T0), Some(i));
        c[i] += 1;
    }
    assert_near(c[0], 10_000.0, 0.10, "weight 2 share");
    assert_near(c[1], 5_000.0, 0.10, "weight 1 share");
    // Without a key, hash algorithms fall back to round robin.
    assert_eq!(counts(&mut p, 300, true), vec![100, 100, 100]);
}

#[test]
fn hash_is_stable_across_pools_and_reloads() {
    // Two nodes with the same backends agree on every key.
    let mut a = pool(Algorithm::SourceIpHash, &[1, 1, 1, 1]);
    let mut b = pool(Algorithm::SourceIpHash, &[1, 1, 1, 1]);
    let before: Vec<_> = (0..2000u32)
        .map(|k| {
            let key = k.to_be_bytes();
            let ctx = PickContext {
                key: Some(&key),
                exclude: &[],
            };
            let i = a.pick(&ctx, T0);
            assert_eq!(i, b.pick(&ctx, T0));
            i
        })
        .collect();
    // A reload with the same backends keeps every key where it was.
    a.reconfigure(settings(Algorithm::SourceIpHash), specs(&[1, 1, 1, 1]));
    for (k, &was) in before.iter().enumerate() {
        let key = (k as u32).to_be_bytes();
        let ctx = PickContext {
            key: Some(&key),
            exclude: &[],
        };
        assert_eq!(a.pick(&ctx, T0), was);
    }
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use tandem_balance::{
    AdminState, Algorithm, BackendSpec, Duration, PickContext, Pool, PoolSettings,
};

pub const T0: Duration = Duration::from_secs(1000);

pub fn spec(id: &str, weight: u32) -> BackendSpec {
    BackendSpec {
        id: id.to_string(),
        weight,
        max_connections: 0,
        admin: AdminState::Enabled,
    }
}

pub fn specs(weights: &[u32]) -> Vec<BackendSpec> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| spec(&format!("b{i}"), w))
        .collect()
}

pub fn settings(algorithm: Algorithm) -> PoolSettings {
    PoolSettings {
        algorithm,
        ..PoolSettings::default()
    }
}

pub fn pool(algorithm: Algorithm, weights: &[u32]) -> Pool {
    Pool::new(settings(algorithm), specs(weights))
}

/// `n` picks with no key; each pick is opened and, if `close`, closed again
/// (short requests). Returns per-backend pick counts.
pub fn counts(pool: &mut Pool, n: usize, close: bool) -> Vec<usize> {
    let mut counts = vec![0; pool.backends().len()];
    for _ in 0..n {
        let i = pool.pick(&PickContext::default(), T0).expect("a backend");
        counts[i] += 1;
        pool.on_open(i);
        if close {
            pool.on_close(i);
        }
    }
    counts
}

pub const ALL_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RoundRobin,
    Algorithm::WeightedRoundRobin,
    Algorithm::LeastConnections,
    Algorithm::WeightedLeastConnections,
    Algorithm::LeastResponseTime,
    Algorithm::PowerOfTwoChoices,
    Algorithm::SourceIpHash,
    Algorithm::KeyHash,
    Algorithm::Random,
];

/// Asserts `actual` is within `tolerance` (a fraction) of `expected`.
pub fn assert_near(actual: usize, expected: f64, tolerance: f64, what: &str) {
    let err = (actual as f64 - expected).abs() / expected;
    assert!(
        err <= tolerance,
        "{what}: {actual} vs expected {expected} (error {err:.3} > {tolerance})"
    );
}

//! Pool configuration: which algorithm, and the knobs around it.

use std::time::Duration;

/// How a pool chooses among its eligible backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Plain rotation over eligible backends; ignores weights.
    RoundRobin,
    /// Smooth weighted round robin (nginx's algorithm): proportional and
    /// interleaved, so a heavy backend does not get bursts.
    WeightedRoundRobin,
    /// Fewest active connections; ties rotate so idle pools still spread.
    LeastConnections,
    /// Minimum active/weight; ties broken by smooth weighted round robin.
    WeightedLeastConnections,
    /// Minimum EWMA latency × (active+1) / weight; unobserved backends first.
    LeastResponseTime,
    /// Two distinct random eligible backends, take the less loaded
    /// (active/weight). Near least-connections quality without herding.
    PowerOfTwoChoices,
    /// Maglev lookup on the hash of `PickContext::key` (the client IP bytes).
    SourceIpHash,
    /// Maglev lookup on the hash of `PickContext::key` (a header, cookie or
    /// URI value).
    KeyHash,
    /// Weighted random.
    Random,
}

impl Algorithm {
    /// Whether the algorithm consumes `PickContext::key`.
    pub fn uses_key(self) -> bool {
        matches!(self, Algorithm::SourceIpHash | Algorithm::KeyHash)
    }
}

/// Passive (outlier) ejection: take a backend out after consecutive
/// failures observed on real traffic, without waiting for health checks.
#[derive(Clone, Debug)]
pub struct PassiveEjection {
    /// Failures in a row that trigger an ejection (0 is treated as 1).
    pub consecutive_failures: u32,
    /// How long an ejected backend stays out.
    pub eject_for: Duration,
}

/// Settings of one pool. Validation with messages belongs to the config
/// crate; the pool only corrects values it cannot work with (see
/// `maglev_table_size`).
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub algorithm: Algorithm,
    /// Maglev lookup table size. Must be prime and ≥ the number of
    /// backends; otherwise the pool uses the next prime ≥ max(size,
    /// backends, 2) (capped at 16 777 259) and reports that in
    /// `Pool::settings()`. Default 65537.
    pub maglev_table_size: usize,
    /// Below this share of healthy enabled backends the pool panics and
    /// balances over all enabled backends (Envoy's panic threshold).
    /// 0.0..=1.0, default 0.5. 0.0 disables panic mode.
    pub panic_threshold: f64,
    /// Ramp-up period after a backend comes back Up; ZERO disables it.
    pub slow_start: Duration,
    pub passive: Option<PassiveEjection>,
    /// PRNG seed for the randomised algorithms (random, p2c).
    pub seed: u64,
}

/// Fixed default seed ("tandem" in ASCII), so runs are reproducible. The proxy seeds
/// each pool from its name instead, so pools do not move in lockstep.
pub const DEFAULT_SEED: u64 = 0x0074_616e_6465_6d00;

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            algorithm: Algorithm::RoundRobin,
            maglev_table_size: 65537,
            panic_threshold: 0.5,
            slow_start: Duration::ZERO,
            passive: None,
            seed: DEFAULT_SEED,
        }
    }
}

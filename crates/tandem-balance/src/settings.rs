//! Pool configuration: which algorithm, and the knobs around it.

use std::time::Duration;

/// How a pool chooses among its eligible backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Rotation over eligible backends; smooth weighted when their weights differ.
    RoundRobin,
    /// Smooth weighted round robin (nginx's algorithm): proportional and
    /// interleaved, so a heavy backend does not get bursts.
    WeightedRoundRobin,
    /// Fewest active connections; ties rotate so idle pools still spread. Weighted
    /// (active/weight) when the eligible backends' weights differ.
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
///
/// Follows Envoy's outlier detection:
///
/// * **Growing backoff.** The k-th ejection of the same backend lasts
///   `min(eject_for × k, max(max_eject_for, eject_for))`, so a backend that
///   keeps failing right after it returns is kept out longer each time
///   instead of flapping in and out at a fixed rate.
/// * **Decay.** The count k returns to 0 once the backend has gone
///   `max(max_eject_for, eject_for)` without being ejected and without a
///   single recorded failure (measured from the later of the end of its last
///   ejection and its last failure). Decay is evaluated when a failure is
///   recorded and on every `pick`, so `Backend::ejections` is current as of
///   the latest of those.
/// * **Max ejected share.** An Enabled backend is only ejected if afterwards
///   at most `floor(max_ejected_share × enabled)` Enabled backends are
///   ejected (a 1e-9 tolerance absorbs float error, so 0.3 × 10 allows 3).
///   Rounding down means a share below 1/N never ejects anything: with 5
///   backends, 0.1 keeps them all in, 0.2 allows one. Ejecting a backend
///   that is not Enabled costs no capacity, so it is not limited. A refused
///   ejection keeps the failure run, so the next failure tries again (by
///   then another ejection may have expired).
#[derive(Clone, Debug)]
pub struct PassiveEjection {
    /// Failures in a row that trigger an ejection (0 is treated as 1).
    pub consecutive_failures: u32,
    /// Length of the first ejection, and the step it grows by (ZERO never
    /// ejects).
    pub eject_for: Duration,
    /// Cap on the length of one ejection, and the quiet period after which
    /// the ejection count decays to 0. A value below `eject_for` (ZERO
    /// included) counts as `eject_for`, so a forgotten cap cannot silently
    /// disable ejection. Envoy's default is 10 × the base time.
    pub max_eject_for: Duration,
    /// 0.0..=1.0: the largest share of Enabled backends that may be ejected
    /// at once (rounded down, see above). NaN counts as 0.0; values outside
    /// the range are clamped.
    pub max_ejected_share: f64,
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

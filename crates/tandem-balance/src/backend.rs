//! One backend: its configuration and the state the pool keeps about it.

use std::time::Duration;

use crate::hash::{salted_hash, stable_hash};

/// Operator intent for a backend, independent of its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminState {
    Enabled,
    /// Finishes existing connections but gets no new picks.
    Draining,
    /// Gets nothing new.
    Disabled,
}

/// Result of active health checking (rise/fall already applied by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
}

/// A backend as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    pub id: String,
    pub weight: u32,
    /// 0 = unlimited.
    pub max_connections: u32,
    pub admin: AdminState,
}

/// Read-only view of one backend's state, for status output and tests.
#[derive(Clone, Debug)]
pub struct Backend {
    pub(crate) id: String,
    pub(crate) weight: u32,
    pub(crate) max_connections: u32,
    pub(crate) admin: AdminState,
    pub(crate) health: Health,
    pub(crate) active: u32,
    /// EWMA of observed latency in nanoseconds.
    pub(crate) ewma_nanos: Option<u64>,
    pub(crate) ejected_until: Option<Duration>,
    pub(crate) consecutive_failures: u32,
    /// Passive ejections counted towards the growing backoff (decays to 0).
    pub(crate) ejections: u32,
    /// End of the latest ejection or time of the latest failure, whichever
    /// is later: the start of the quiet period that makes `ejections` decay.
    pub(crate) last_trouble: Option<Duration>,
    /// When the backend last went Down -> Up (start of slow start).
    pub(crate) up_since: Option<Duration>,
    /// Copy of the pool's slow-start period, so this view can answer
    /// `effective_weight` on its own.
    pub(crate) slow_start: Duration,
    pub(crate) total_picks: u64,
    /// Maglev offset and skip hashes of the id, computed once.
    pub(crate) maglev_hashes: (u64, u64),
}

/// EWMA smoothing: new = ALPHA·sample + (1-ALPHA)·old with ALPHA = 3/10.
/// 0.3 follows a latency shift within a handful of requests while one slow
/// outlier moves the average by less than a third.
const EWMA_ALPHA_NUM: u128 = 3;
const EWMA_ALPHA_DEN: u128 = 10;

impl Backend {
    pub(crate) fn new(spec: BackendSpec, slow_start: Duration) -> Self {
        let maglev_hashes = (
            stable_hash(spec.id.as_bytes()),
            salted_hash(b"maglev-skip", spec.id.as_bytes()),
        );
        Backend {
            id: spec.id,
            weight: spec.weight,
            max_connections: spec.max_connections,
            admin: spec.admin,
            health: Health::Up,
            active: 0,
            ewma_nanos: None,
            ejected_until: None,
            consecutive_failures: 0,
            ejections: 0,
            last_trouble: None,
            up_since: None,
            slow_start,
            total_picks: 0,
            maglev_hashes,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Configured weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Weight used by weighted algorithms at `now`: during slow start it
    /// ramps linearly from max(1, weight/10) to `weight`, so a backend that
    /// just recovered (cold caches, JIT, pools) is not flooded at once.
    /// Always ≥ 1 when `weight > 0`.
    pub fn effective_weight(&self, now: Duration) -> u32 {
        let (Some(since), false) = (self.up_since, self.slow_start.is_zero()) else {
            return self.weight;
        };
        let elapsed = now.saturating_sub(since);
        if elapsed >= self.slow_start || self.weight == 0 {
            return self.weight;
        }
        let base = (self.weight / 10).max(1);
        let span = u128::from(self.weight - base);
        let ramp = span * elapsed.as_nanos() / self.slow_start.as_nanos();
        // ramp < span because elapsed < slow_start, so this fits in u32.
        base.saturating_add(u32::try_from(ramp).unwrap_or(u32::MAX))
    }

    pub fn health(&self) -> Health {
        self.health
    }

    pub fn admin(&self) -> AdminState {
        self.admin
    }

    /// Connections/requests currently open (on_open minus on_close).
    pub fn active(&self) -> u32 {
        self.active
    }

    /// 0 = unlimited.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    pub fn ewma_latency(&self) -> Option<Duration> {
        self.ewma_nanos.map(Duration::from_nanos)
    }

    /// End of the current (or last) passive ejection. The backend is
    /// ejected while this is later than "now".
    pub fn ejected_until(&self) -> Option<Duration> {
        self.ejected_until
    }

    /// Failures in a row since the last success or ejection.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Passive ejections that count towards the growing backoff: the next
    /// one lasts `eject_for × (ejections + 1)`, capped. Returns to 0 after a
    /// quiet period (see `PassiveEjection`), as of the latest `pick` or
    /// `record_failure`.
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// Number of `on_open` calls over the backend's lifetime.
    pub fn total_picks(&self) -> u64 {
        self.total_picks
    }

    pub(crate) fn is_ejected(&self, now: Duration) -> bool {
        self.ejected_until.is_some_and(|until| until > now)
    }

    /// Up and not ejected: what counts towards the healthy share.
    pub(crate) fn is_healthy(&self, now: Duration) -> bool {
        self.health == Health::Up && !self.is_ejected(now)
    }

    /// Below its connection limit.
    pub(crate) fn has_capacity(&self) -> bool {
        self.max_connections == 0 || self.active < self.max_connections
    }

    pub(crate) fn observe_latency(&mut self, latency: Duration) {
        let sample = latency.as_nanos().min(u128::from(u64::MAX));
        let next = match self.ewma_nanos {
            None => sample,
            Some(old) => {
                (EWMA_ALPHA_NUM * sample + (EWMA_ALPHA_DEN - EWMA_ALPHA_NUM) * u128::from(old))
                    / EWMA_ALPHA_DEN
            }
        };
        self.ewma_nanos = Some(u64::try_from(next).unwrap_or(u64::MAX));
    }

    /// Apply a new spec for the same id, keeping runtime state.
    pub(crate) fn update_spec(&mut self, spec: BackendSpec, slow_start: Duration) {
        self.weight = spec.weight;
        self.max_connections = spec.max_connections;
        self.admin = spec.admin;
        self.slow_start = slow_start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(weight: u32, slow_start: Duration) -> Backend {
        let spec = BackendSpec {
            id: "a".into(),
            weight,
            max_connections: 0,
            admin: AdminState::Enabled,
        };
        Backend::new(spec, slow_start)
    }

    #[test]
    fn ewma_uses_alpha_three_tenths() {
        let mut b = backend(1, Duration::ZERO);
        assert_eq!(b.ewma_latency(), None);
        b.observe_latency(Duration::from_millis(100));
        assert_eq!(b.ewma_latency(), Some(Duration::from_millis(100)));
        b.observe_latency(Duration::from_millis(200));
        assert_eq!(b.ewma_latency(), Some(Duration::from_millis(130)));
        b.observe_latency(Duration::MAX);
        assert!(b.ewma_latency().is_some());
    }

    #[test]
    fn slow_start_ramp() {
        let mut b = backend(100, Duration::from_secs(10));
        // Not in slow start until a Down -> Up transition.
        assert_eq!(b.effective_weight(Duration::ZERO), 100);
        b.up_since = Some(Duration::from_secs(5));
        assert_eq!(b.effective_weight(Duration::from_secs(5)), 10);
        assert_eq!(b.effective_weight(Duration::from_secs(10)), 55);
        assert_eq!(b.effective_weight(Duration::from_secs(14)), 91);
        assert_eq!(b.effective_weight(Duration::from_secs(15)), 100);
        assert_eq!(b.effective_weight(Duration::from_secs(1000)), 100);
        // A clock that goes backwards counts as "just started".
        assert_eq!(b.effective_weight(Duration::ZERO), 10);
    }

    #[test]
    fn slow_start_small_and_zero_weights() {
        let mut b = backend(3, Duration::from_secs(10));
        b.up_since = Some(Duration::ZERO);
        assert_eq!(b.effective_weight(Duration::ZERO), 1);
        assert_eq!(b.effective_weight(Duration::from_secs(5)), 2);
        let mut z = backend(0, Duration::from_secs(10));
        z.up_since = Some(Duration::ZERO);
        assert_eq!(z.effective_weight(Duration::from_secs(1)), 0);
        let mut big = backend(u32::MAX, Duration::MAX);
        big.up_since = Some(Duration::ZERO);
        assert!(big.effective_weight(Duration::from_secs(1)) >= u32::MAX / 10);
    }
}

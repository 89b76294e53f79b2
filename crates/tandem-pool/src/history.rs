//! The latest health changes of each backend of a pool, for status output: operators ask
//! "why is it down, and since when?", and the log line may be long gone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;
use tandem_balance::Health;

/// Health changes kept per backend.
pub const HEALTH_HISTORY: usize = 10;

/// One health change of a backend, as the health checker reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthEvent {
    /// Wall-clock time (shown to operators as unix time).
    pub at: SystemTime,
    pub health: Health,
    pub reason: String,
}

/// A bounded ring of [`HealthEvent`]s per backend id. Its own lock, apart from the pool's
/// state, so the pick path never waits on it.
#[derive(Default)]
pub(crate) struct HealthHistory(Mutex<HashMap<String, VecDeque<HealthEvent>>>);

impl HealthHistory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, VecDeque<HealthEvent>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a change now, dropping the oldest beyond [`HEALTH_HISTORY`].
    pub(crate) fn record(&self, backend_id: &str, health: Health, reason: &str) {
        let mut all = self.lock();
        let ring = all.entry(backend_id.to_string()).or_default();
        if ring.len() == HEALTH_HISTORY {
            ring.pop_front();
        }
        ring.push_back(HealthEvent {
            at: SystemTime::now(),
            health,
            reason: reason.to_string(),
        });
    }

    /// Oldest first.
    pub(crate) fn get(&self, backend_id: &str) -> Vec<HealthEvent> {
        self.lock()
            .get(backend_id)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the backends for which `keep` is false (removed by a reconfigure).
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|id, _| keep(id));
    }
}

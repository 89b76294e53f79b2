//! A balanced pool shared by every connection task of the listeners that use it.
//!
//! The pure `tandem_balance::Pool` sits behind a mutex held only for a pick or an update
//! (no await while locked). Backend addresses live beside it so a reload swaps both at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tandem_balance::{AdminState, BackendSpec, Health, PickContext, Pool, PoolSettings};
use tandem_config::{Algorithm as CfgAlgorithm, BackendState, Pool as PoolConfig};

use crate::backend_metrics::BackendMetrics;
use crate::clock::Clock;
use crate::history::{HealthEvent, HealthHistory};

struct State {
    balance: Pool,
    addresses: Vec<SocketAddr>,
    /// The DNS name each backend was resolved from (None: written as an IP).
    names: Vec<Option<String>>,
    /// Bumped on reconfigure, so a lease taken before knows its index may have moved.
    generation: u64,
    /// Counters per backend id; a reconfigure keeps those of surviving backends.
    metrics: HashMap<String, Arc<BackendMetrics>>,
}

impl State {
    fn metrics_of(&mut self, id: &str) -> Arc<BackendMetrics> {
        if let Some(m) = self.metrics.get(id) {
            return m.clone();
        }
        let m = Arc::new(BackendMetrics::default());
        self.metrics.insert(id.to_string(), m.clone());
        m
    }
}

pub struct SharedPool {
    name: String,
    clock: Clock,
    state: Mutex<State>,
    config: Mutex<PoolConfig>,
    /// The latest health changes per backend id.
    history: HealthHistory,
}

/// A backend chosen for one connection or flow; counts as active until dropped.
pub struct BackendLease {
    pool: Arc<SharedPool>,
    index: usize,
    generation: u64,
    id: String,
    address: SocketAddr,
    metrics: Arc<BackendMetrics>,
}

impl BackendLease {
    pub fn address(&self) -> SocketAddr {
        self.address
    }
    pub fn backend_id(&self) -> &str {
        &self.id
    }
    pub fn index(&self) -> usize {
        self.index
    }
    /// The backend's counters: record responses and errors of this exchange here.
    pub fn metrics(&self) -> &BackendMetrics {
        &self.metrics
    }

    /// The backend accepted the connection: resets its passive failure count.
    pub fn succeeded(&self) {
        self.pool
            .with_backend(self, |state, idx| state.balance.record_success(idx));
    }

    /// Feeds the backend's observed response time to least-response-time balancing.
    pub fn observe_latency(&self, latency: Duration) {
        self.pool.with_backend(self, |state, idx| {
            state.balance.observe_latency(idx, latency)
        });
    }

    /// The backend could not be reached; may eject it (logged once).
    pub fn failed(&self, why: &str) {
        let now = self.pool.clock.now();
        let ejected = self
            .pool
            .with_backend(self, |state, idx| state.balance.record_failure(idx, now))
            .unwrap_or(false);
        if ejected {
            self.metrics.ejected();
            tracing::warn!(pool = %self.pool.name, backend = %self.id, address = %self.address,
                reason = %why, "backend ejected after consecutive connect failures");
        }
    }
}

impl Drop for BackendLease {
    fn drop(&mut self) {
        let pool = self.pool.clone();
        pool.with_backend(self, |state, idx| state.balance.on_close(idx));
    }
}

impl SharedPool {
    pub fn new(config: &PoolConfig, clock: Clock) -> Arc<Self> {
        let (settings, specs, addresses, names) = translate(config);
        Arc::new(SharedPool {
            name: config.name.clone(),
            config: Mutex::new(config.clone()),
            history: HealthHistory::default(),
            clock,
            state: Mutex::new(State {
                balance: Pool::new(settings, specs),
                addresses,
                names,
                generation: 0,
                metrics: HashMap::new(),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in pure code; keep serving anyway.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Picks a backend for a new connection. `key` feeds hash algorithms (client IP bytes);
    /// `exclude` lists indices already tried for this client.
    pub fn acquire(
        self: &Arc<Self>,
        key: Option<&[u8]>,
        exclude: &[usize],
    ) -> Option<BackendLease> {
        let now = self.clock.now();
        let mut state = self.lock();
        let ctx = PickContext { key, exclude };
        let index = state.balance.pick(&ctx, now)?;
        state.balance.on_open(index);
        let id = state.balance.backends()[index].id().to_string();
        let lease = BackendLease {
            pool: self.clone(),
            index,
            generation: state.generation,
            metrics: state.metrics_of(&id),
            id,
            address: state.addresses[index],
        };
        Some(lease)
    }

    /// Like [`acquire`](Self::acquire), but first tries the backend `preferred` (named by a
    /// persistence cookie or sticky table) when it can take traffic: up, enabled, not
    /// ejected, under its connection limit, not excluded.
    pub fn acquire_preferred(
        self: &Arc<Self>,
        preferred: Option<&str>,
        key: Option<&[u8]>,
        exclude: &[usize],
    ) -> Option<BackendLease> {
        if let Some(id) = preferred {
            let now = self.clock.now();
            let mut state = self.lock();
            if let Some(index) = state.balance.index_of(id) {
                let b = &state.balance.backends()[index];
                let available = b.health() == Health::Up
                    && b.admin() == AdminState::Enabled
                    && b.ejected_until().is_none_or(|until| until <= now)
                    && b.weight() > 0
                    && (b.max_connections() == 0 || b.active() < b.max_connections())
                    && !exclude.contains(&index);
                if available {
                    state.balance.on_open(index);
                    return Some(BackendLease {
                        pool: self.clone(),
                        index,
                        generation: state.generation,
                        metrics: state.metrics_of(id),
                        id: id.to_string(),
                        address: state.addresses[index],
                    });
                }
            }
        }
        self.acquire(key, exclude)
    }

    /// The id of the first backend for which `matches` holds (e.g. a cookie value's owner).
    pub fn find_backend(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        let state = self.lock();
        state
            .balance
            .backends()
            .iter()
            .find(|b| matches(b.id()))
            .map(|b| b.id().to_string())
    }

    /// Runs `f` on the lease's backend, finding it again by id if the pool was reconfigured.
    fn with_backend<R>(
        &self,
        lease: &BackendLease,
        f: impl FnOnce(&mut State, usize) -> R,
    ) -> Option<R> {
        let mut state = self.lock();
        let idx = if state.generation == lease.generation {
            lease.index
        } else {
            state.balance.index_of(&lease.id)?
        };
        Some(f(&mut state, idx))
    }

    /// Applies a new pool definition; surviving backends keep their state. Returns whether
    /// anything changed (an identical definition is left alone).
    pub fn reconfigure(&self, config: &PoolConfig) -> bool {
        let mut current = self.config.lock().unwrap_or_else(|p| p.into_inner());
        if *current == *config {
            return false;
        }
        *current = config.clone();
        drop(current);
        let (settings, specs, addresses, names) = translate(config);
        let mut state = self.lock();
        state.balance.reconfigure(settings, specs);
        state.addresses = addresses;
        state.names = names;
        state.generation += 1;
        state
            .metrics
            .retain(|id, _| config.backends.iter().any(|b| &b.id == id));
        drop(state);
        self.history
            .retain(|id| config.backends.iter().any(|b| b.id == id));
        true
    }

    /// The definition the pool runs now.
    pub fn config(&self) -> PoolConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_admin(&self, backend_id: &str, admin: AdminState) -> bool {
        let mut state = self.lock();
        match state.balance.index_of(backend_id) {
            Some(idx) => {
                state.balance.set_admin(idx, admin);
                true
            }
            None => false,
        }
    }

    pub fn set_weight(&self, backend_id: &str, weight: u32) -> bool {
        let mut state = self.lock();
        match state.balance.index_of(backend_id) {
            Some(idx) => {
                state.balance.set_weight(idx, weight);
                true
            }
            None => false,
        }
    }

    /// The latest health changes of a backend (at most [`HEALTH_HISTORY`]), oldest first.
    ///
    /// [`HEALTH_HISTORY`]: crate::HEALTH_HISTORY
    pub fn health_history(&self, backend_id: &str) -> Vec<HealthEvent> {
        self.history.get(backend_id)
    }

    /// (id, address, health, admin, active connections) of every backend, for status output.
    pub fn snapshot(&self) -> Vec<BackendStatus> {
        let now = self.clock.now();
        let state = self.lock();
        state
            .balance
            .backends()
            .iter()
            .zip(&state.addresses)
            .zip(&state.names)
            .map(|((b, addr), name)| BackendStatus {
                id: b.id().to_string(),
                address: *addr,
                dns_name: name.clone(),
                health: b.health(),
                admin: b.admin(),
                active: b.active(),
                weight: b.weight(),
                max_connections: b.max_connections(),
                total_picks: b.total_picks(),
                ejected: b.ejected_until().is_some_and(|until| until > now),
                latency: b.ewma_latency(),
            })
            .collect()
    }

    /// The counters of every backend, in pool order (for metrics).
    pub fn backend_metrics(&self) -> Vec<(String, Arc<BackendMetrics>)> {
        let mut state = self.lock();
        let ids: Vec<String> = state
            .balance
            .backends()
            .iter()
            .map(|b| b.id().to_string())
            .collect();
        ids.into_iter()
            .map(|id| {
                let m = state.metrics_of(&id);
                (id, m)
            })
            .collect()
    }

    /// The (backend id, address) pairs to health-check.
    pub fn targets(&self) -> Vec<(String, SocketAddr)> {
        let state = self.lock();
        state
            .balance
            .backends()
            .iter()
            .zip(&state.addresses)
            .map(|(b, a)| (b.id().to_string(), *a))
            .collect()
    }

    pub fn in_panic(&self) -> bool {
        self.lock().balance.in_panic()
    }

    /// Share of enabled backends that are up (1.0 when none is enabled).
    pub fn healthy_share(&self) -> f64 {
        self.lock().balance.healthy_share()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendStatus {
    pub id: String,
    pub address: SocketAddr,
    /// The DNS name this backend was resolved from (None: written as an IP).
    pub dns_name: Option<String>,
    pub health: Health,
    pub admin: AdminState,
    pub active: u32,
    pub weight: u32,
    /// 0 = unlimited.
    pub max_connections: u32,
    pub total_picks: u64,
    /// Passively ejected right now (connect failures or 5xx from real traffic).
    pub ejected: bool,
    /// Smoothed (EWMA) observed latency, once there is a sample.
    pub latency: Option<Duration>,
}

impl tandem_health::HealthSink for SharedPool {
    fn health_changed(&self, backend_id: &str, health: Health, reason: &str) {
        let now = self.clock.now();
        let mut state = self.lock();
        let Some(idx) = state.balance.index_of(backend_id) else {
            return;
        };
        state.balance.set_health(idx, health, now);
        if state.balance.in_panic() {
            tracing::warn!(pool = %self.name, healthy_share = state.balance.healthy_share(),
                "pool in panic mode: too few healthy backends, balancing over all of them");
        }
        drop(state);
        self.history.record(backend_id, health, reason);
    }
}

type Translated = (
    PoolSettings,
    Vec<BackendSpec>,
    Vec<SocketAddr>,
    Vec<Option<String>>,
);

/// The pure pool's view of a config. Backends still written as DNS names are left out:
/// the daemon replaces them by their resolved addresses before a pool sees them.
fn translate(config: &PoolConfig) -> Translated {
    use tandem_balance::Algorithm as A;
    let algorithm = match config.algorithm {
        CfgAlgorithm::RoundRobin => A::RoundRobin,
        CfgAlgorithm::WeightedRoundRobin => A::WeightedRoundRobin,
        CfgAlgorithm::LeastConnections => A::LeastConnections,
        CfgAlgorithm::WeightedLeastConnections => A::WeightedLeastConnections,
        CfgAlgorithm::LeastResponseTime => A::LeastResponseTime,
        CfgAlgorithm::PowerOfTwoChoices => A::PowerOfTwoChoices,
        CfgAlgorithm::SourceIpHash => A::SourceIpHash,
        CfgAlgorithm::Random => A::Random,
        CfgAlgorithm::Hash => A::KeyHash,
    };
    let passive = match &config.http {
        // HTTP pools: outlier detection from responses (5xx, timeouts) and connect
        // failures, with growing ejections, never more than a share of the pool.
        Some(http) => (http.outlier.consecutive_5xx > 0).then(|| tandem_balance::PassiveEjection {
            consecutive_failures: http.outlier.consecutive_5xx,
            eject_for: http.outlier.base_ejection.get(),
            max_eject_for: http.outlier.max_ejection.get(),
            max_ejected_share: http.outlier.max_ejected_share,
        }),
        // L4 pools: consecutive connect failures; repeated ejections grow up to 10 times
        // the base; no share cap here (the panic threshold protects the pool).
        None => {
            (config.passive.consecutive_failures > 0).then(|| tandem_balance::PassiveEjection {
                consecutive_failures: config.passive.consecutive_failures,
                eject_for: config.passive.eject_for.get(),
                max_eject_for: config.passive.eject_for.get() * 10,
                max_ejected_share: 1.0,
            })
        }
    };
    let settings = PoolSettings {
        algorithm,
        maglev_table_size: config.maglev_table_size as usize,
        panic_threshold: config.panic_threshold,
        slow_start: config.slow_start.get(),
        passive,
        seed: tandem_balance::stable_hash(config.name.as_bytes()),
    };
    let resolved: Vec<(&tandem_config::Backend, SocketAddr)> = config
        .backends
        .iter()
        .filter_map(|b| Some((b, b.address.ip()?)))
        .collect();
    let specs = resolved
        .iter()
        .map(|(b, _)| BackendSpec {
            id: b.id.clone(),
            weight: b.weight,
            max_connections: b.max_connections,
            admin: match b.state {
                BackendState::Enabled => AdminState::Enabled,
                BackendState::Drain => AdminState::Draining,
                BackendState::Disabled => AdminState::Disabled,
            },
        })
        .collect();
    let addresses = resolved.iter().map(|(_, a)| *a).collect();
    let names = resolved
        .iter()
        .map(|(b, _)| b.resolved_from.clone())
        .collect();
    (settings, specs, addresses, names)
}

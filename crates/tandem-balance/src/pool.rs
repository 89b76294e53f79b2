//! A pool: the backends of one upstream, their runtime state, and the
//! selector that picks among them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::algorithms::{self, Selector};
use crate::backend::{AdminState, Backend, BackendSpec, Health};
use crate::candidates::{self, Candidate, Candidates};
use crate::context::PickContext;
use crate::hash::stable_hash;
use crate::prime::table_size;
use crate::rng::Rng;
use crate::settings::PoolSettings;

/// Backends plus selection state. Pure: the caller passes time in as `now`
/// (time since an arbitrary origin) and reports connection lifecycle,
/// latency, failures and health; the pool never reads a clock or does I/O.
///
/// Indices returned by `pick` refer to `backends()` and stay valid until the
/// next `reconfigure`.
#[derive(Debug)]
pub struct Pool {
    settings: PoolSettings,
    backends: Vec<Backend>,
    selector: Box<dyn Selector>,
    rng: Rng,
    /// Reused candidate buffer, so a pick does not allocate.
    scratch: Vec<Candidate>,
    /// The latest `now` passed in; `healthy_share` has no time argument and
    /// judges ejections against this.
    last_now: Duration,
}

/// Correct the settings the pool cannot work with: the Maglev table size
/// becomes a prime ≥ max(size, backends, 2).
fn normalize(mut settings: PoolSettings, backends: usize) -> PoolSettings {
    settings.maglev_table_size = table_size(settings.maglev_table_size, backends);
    settings
}

impl Pool {
    /// A pool whose backends all start Up, idle and unejected.
    pub fn new(settings: PoolSettings, backends: Vec<BackendSpec>) -> Pool {
        let settings = normalize(settings, backends.len());
        let backends: Vec<Backend> = backends
            .into_iter()
            .map(|spec| Backend::new(spec, settings.slow_start))
            .collect();
        Pool {
            selector: algorithms::build(&settings),
            rng: Rng::new(settings.seed),
            scratch: Vec::with_capacity(backends.len()),
            backends,
            settings,
            last_now: Duration::ZERO,
        }
    }

    /// The settings in use (with `maglev_table_size` as corrected by `new`).
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Index of the first backend with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.id == id)
    }

    /// Choose a backend for a new connection/request. Does NOT increment
    /// active; the caller calls `on_open`. `None` when nothing is eligible.
    pub fn pick(&mut self, ctx: &PickContext<'_>, now: Duration) -> Option<usize> {
        self.last_now = now;
        for b in &mut self.backends {
            if b.ejected_until.is_some_and(|until| until <= now) {
                b.ejected_until = None;
            }
            if let Some(passive) = &self.settings.passive {
                b.decay_ejections(passive, now);
            }
        }
        let panic = self.in_panic();
        candidates::collect(&self.backends, ctx, now, panic, &mut self.scratch);
        let key = ctx
            .key
            .filter(|_| self.settings.algorithm.uses_key())
            .map(stable_hash);
        let view = Candidates {
            items: &self.scratch,
            key,
        };
        let chosen = self.selector.select(&view, &mut self.rng)?;
        // Selectors only return available candidates; never trust that blindly.
        debug_assert!(view.is_available(chosen), "selector returned {chosen}");
        view.is_available(chosen).then_some(chosen)
    }

    /// A connection/request to `idx` started: active += 1, total_picks += 1.
    pub fn on_open(&mut self, idx: usize) {
        if let Some(b) = self.backends.get_mut(idx) {
            b.active = b.active.saturating_add(1);
            b.total_picks = b.total_picks.saturating_add(1);
        }
    }

    /// A connection/request to `idx` finished: active -= 1 (saturating).
    pub fn on_close(&mut self, idx: usize) {
        if let Some(b) = self.backends.get_mut(idx) {
            b.active = b.active.saturating_sub(1);
        }
    }

    /// Feed a latency sample into the backend's EWMA (alpha = 0.3: recent
    /// enough to follow a slowdown within a few requests, smooth enough
    /// that one outlier moves it by less than a third).
    pub fn observe_latency(&mut self, idx: usize, latency: Duration) {
        if let Some(b) = self.backends.get_mut(idx) {
            b.observe_latency(latency);
        }
    }

    /// Count a failed request/connection. With passive ejection configured,
    /// returns true when this failure ejected the backend (for its growing,
    /// capped ejection time; the consecutive count then resets). Failures
    /// while already ejected (from requests that started before) are
    /// ignored, so they cannot extend the ejection. A zero `eject_for` never
    /// ejects, and neither does a failure the max ejected share refuses (the
    /// run is kept, so the next failure tries again). See `PassiveEjection`.
    pub fn record_failure(&mut self, idx: usize, now: Duration) -> bool {
        self.last_now = now;
        let Some(b) = self.backends.get_mut(idx) else {
            return false;
        };
        if b.is_ejected(now) {
            return false;
        }
        b.consecutive_failures = b.consecutive_failures.saturating_add(1);
        let Some(passive) = &self.settings.passive else {
            return false;
        };
        // Decay first: the quiet period is judged up to this failure.
        b.decay_ejections(passive, now);
        b.note_failure(now);
        if passive.eject_for.is_zero() || b.consecutive_failures < passive.threshold() {
            return false;
        }
        if b.admin == AdminState::Enabled {
            let enabled = self
                .backends
                .iter()
                .filter(|b| b.admin == AdminState::Enabled);
            let total = enabled.clone().count();
            let ejected = enabled.filter(|b| b.is_ejected(now)).count();
            if ejected + 1 > passive.max_ejected(total) {
                return false;
            }
        }
        self.backends[idx].eject(passive, now);
        true
    }

    /// A success breaks the run of consecutive failures.
    pub fn record_success(&mut self, idx: usize) {
        if let Some(b) = self.backends.get_mut(idx) {
            b.consecutive_failures = 0;
        }
    }

    /// Active health result after rise/fall (computed by the caller).
    /// Returns true if the state changed. Going Down -> Up starts slow start
    /// at `now`.
    pub fn set_health(&mut self, idx: usize, health: Health, now: Duration) -> bool {
        self.last_now = now;
        let Some(b) = self.backends.get_mut(idx) else {
            return false;
        };
        if b.health == health {
            return false;
        }
        b.health = health;
        b.up_since = (health == Health::Up).then_some(now);
        true
    }

    pub fn set_admin(&mut self, idx: usize, admin: AdminState) {
        if let Some(b) = self.backends.get_mut(idx) {
            b.admin = admin;
        }
    }

    pub fn set_weight(&mut self, idx: usize, weight: u32) {
        if let Some(b) = self.backends.get_mut(idx) {
            b.weight = weight;
        }
    }

    /// Replace settings and backend list (config reload). Backends whose id
    /// survives keep their health, active count, EWMA, ejection (and
    /// ejection count), failure count, slow-start progress and pick count;
    /// new ones start Up. The selector restarts (Maglev tables are a pure function of the ids, so
    /// hash affinity survives); the PRNG is reseeded only if the seed changed.
    pub fn reconfigure(&mut self, settings: PoolSettings, backends: Vec<BackendSpec>) {
        let settings = normalize(settings, backends.len());
        let mut old: BTreeMap<String, Backend> = BTreeMap::new();
        for b in self.backends.drain(..) {
            // With duplicate ids the first one's state is the one kept.
            old.entry(b.id.clone()).or_insert(b);
        }
        self.backends = backends
            .into_iter()
            .map(|spec| match old.remove(&spec.id) {
                Some(mut b) => {
                    b.update_spec(spec, settings.slow_start);
                    b
                }
                None => Backend::new(spec, settings.slow_start),
            })
            .collect();
        if settings.seed != self.settings.seed {
            self.rng = Rng::new(settings.seed);
        }
        self.selector = algorithms::build(&settings);
        self.settings = settings;
    }

    /// Share of enabled (non-draining, non-disabled) backends that are up
    /// and not ejected (as of the latest `now` passed in); 1.0 if none are
    /// enabled.
    pub fn healthy_share(&self) -> f64 {
        let enabled = self
            .backends
            .iter()
            .filter(|b| b.admin == AdminState::Enabled);
        let total = enabled.clone().count();
        if total == 0 {
            return 1.0;
        }
        let healthy = enabled.filter(|b| b.is_healthy(self.last_now)).count();
        healthy as f64 / total as f64
    }

    /// Healthy share below the panic threshold: picks then spread over all
    /// enabled backends rather than overload the few healthy ones.
    pub fn in_panic(&self) -> bool {
        self.healthy_share() < self.settings.panic_threshold
    }
}

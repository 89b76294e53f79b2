//! Backends written as DNS names (`host:port`, or an SRV name): resolved here, so the
//! pools only ever hold IP addresses.
//!
//! The node keeps the config as written; before the planes get it, [`Dns::expand`] turns
//! each named backend into one backend per resolved address, with the id
//! `<backend id>@<address>` (stable while the address stays, so its state, counters and
//! health survive re-resolution). A background loop ([`run`]) asks each name again on its
//! TTL ([`schedule`] decides when and what a failure means) and re-applies the config when
//! addresses come or go: new ones join like an added backend, gone ones leave like a
//! removed one (their open connections finish).

pub mod lookup;
pub mod schedule;

use hickory_resolver::TokioResolver;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;
use tandem_config::{Backend, BackendAddress, ClusterConfig};
use tokio_util::sync::CancellationToken;

use schedule::{Event, NameState, Timing};

pub struct Dns {
    resolver: TokioResolver,
    timing: Timing,
    start_unresolved: bool,
    names: Mutex<HashMap<BackendAddress, NameState>>,
    /// Wakes the loop when names were added (its next deadline may be sooner).
    wake: tokio::sync::Notify,
}

/// Every backend address of `cluster` that is a name, with where it is written.
fn named_backends(cluster: &ClusterConfig) -> Vec<(String, &Backend)> {
    let mut out = Vec::new();
    for (i, pool) in cluster.pools.iter().enumerate() {
        for (j, b) in pool.backends.iter().enumerate() {
            if b.address.dns_name().is_some() {
                out.push((
                    format!(
                        "pool[{i}].backend[{j}] (pool {:?}, backend {:?})",
                        pool.name, b.id
                    ),
                    b,
                ));
            }
        }
    }
    out
}

impl Dns {
    pub fn new(settings: &tandem_config::dns::NodeDns) -> anyhow::Result<Dns> {
        Ok(Dns {
            resolver: lookup::resolver(settings)?,
            timing: Timing::from_config(settings),
            start_unresolved: settings.start_unresolved,
            names: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<BackendAddress, NameState>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts tracking the names `cluster` uses that are new (asked by the loop at once).
    pub fn track(&self, cluster: &ClusterConfig) {
        let now = Instant::now();
        let mut names = self.lock();
        for (_, b) in named_backends(cluster) {
            names
                .entry(b.address.clone())
                .or_insert_with(|| NameState::new(now));
        }
        drop(names);
        self.wake.notify_one();
    }

    /// Resolves the names `cluster` uses that are not known yet, before it is applied. A
    /// name that does not resolve refuses the change (naming the backend and the
    /// resolver's answer), unless `node.dns.start_unresolved` lets it in empty.
    pub async fn resolve_new(&self, cluster: &ClusterConfig) -> Result<(), String> {
        let known: Vec<BackendAddress> = self.lock().keys().cloned().collect();
        let mut problems = Vec::new();
        for (at, b) in named_backends(cluster) {
            if known.contains(&b.address) || self.lock().contains_key(&b.address) {
                continue;
            }
            let now = Instant::now();
            let answer = lookup::lookup(&self.resolver, &b.address).await;
            let mut state = NameState::new(now);
            match state.on_answer(now, answer, &self.timing) {
                Event::Failing(why) if !self.start_unresolved => {
                    problems.push(format!(
                        "{at}: address {} does not resolve: {why} (fix the name or the DNS \
                         server, or set node.dns.start_unresolved = true to start without it)",
                        b.address
                    ));
                    continue;
                }
                Event::Failing(why) => tracing::warn!(name = %b.address, reason = %why,
                    "backend name does not resolve; its backends stay out until it does"),
                _ => tracing::info!(name = %b.address, addresses = ?addresses(&state),
                    "backend name resolved"),
            }
            self.lock().insert(b.address.clone(), state);
        }
        self.wake.notify_one();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Forgets names `cluster` no longer uses.
    pub fn retain_used(&self, cluster: &ClusterConfig) {
        let used: Vec<BackendAddress> = named_backends(cluster)
            .into_iter()
            .map(|(_, b)| b.address.clone())
            .collect();
        self.lock().retain(|name, _| used.contains(name));
    }

    /// `cluster` with every named backend replaced by its resolved addresses.
    pub fn expand(&self, cluster: &ClusterConfig) -> ClusterConfig {
        let names = self.lock();
        let mut out = cluster.clone();
        for pool in &mut out.pools {
            pool.backends = std::mem::take(&mut pool.backends)
                .into_iter()
                .flat_map(|b| {
                    if b.address.dns_name().is_none() {
                        return vec![b];
                    }
                    let Some(state) = names.get(&b.address) else {
                        return Vec::new();
                    };
                    let srv = matches!(b.address, BackendAddress::Srv { .. });
                    state
                        .endpoints()
                        .iter()
                        .map(|e| Backend {
                            id: format!("{}@{}", b.id, e.address),
                            address: BackendAddress::Ip(e.address),
                            // SRV weights, unless the operator set 0 (out of rotation).
                            weight: if srv && b.weight > 0 {
                                e.weight
                            } else {
                                b.weight
                            },
                            max_connections: b.max_connections,
                            state: b.state,
                            resolved_from: Some(b.address.to_string()),
                        })
                        .collect()
                })
                .collect();
        }
        out
    }

    /// When the next name not being asked already is due (None: none).
    fn next_due(&self, asking: &HashSet<BackendAddress>) -> Option<Instant> {
        self.lock()
            .iter()
            .filter(|(n, _)| !asking.contains(*n))
            .map(|(_, s)| s.next_at())
            .min()
    }

    /// The names due at `now` that are not being asked already.
    fn due(&self, now: Instant, asking: &HashSet<BackendAddress>) -> Vec<BackendAddress> {
        self.lock()
            .iter()
            .filter(|(n, s)| s.is_due(now) && !asking.contains(*n))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Takes one lookup's answer (logging what changed); true when the name's addresses
    /// changed.
    fn take_answer(&self, name: &BackendAddress, answer: schedule::Answer) -> bool {
        let now = Instant::now();
        let mut names = self.lock();
        // Removed by a config change while we asked: nothing to do.
        let Some(state) = names.get_mut(name) else {
            return false;
        };
        let before = state.endpoints().to_vec();
        let event = state.on_answer(now, answer, &self.timing);
        let after = addresses(state);
        let keep = humantime(self.timing.keep_stale);
        match event {
            Event::Unchanged | Event::StillFailing => {}
            Event::Changed => {
                tracing::info!(%name, addresses = ?after, "backend name resolves to new addresses")
            }
            Event::Recovered => {
                tracing::info!(%name, addresses = ?after, "backend name resolves again")
            }
            Event::Failing(why) if before.is_empty() => {
                tracing::warn!(%name, reason = %why, "backend name does not resolve; retrying")
            }
            Event::Failing(why) => tracing::warn!(%name, reason = %why, keep_stale = %keep,
                addresses = ?after, "backend name no longer resolves; keeping its last addresses for keep_stale"),
            Event::GaveUp => tracing::warn!(%name, keep_stale = %keep,
                "backend name has not resolved for keep_stale; its backends leave the pool"),
        }
        before != state.endpoints()
    }
}

fn addresses(state: &NameState) -> Vec<String> {
    state
        .endpoints()
        .iter()
        .map(|e| e.address.to_string())
        .collect()
}

fn humantime(d: std::time::Duration) -> String {
    tandem_config::format_duration(d)
}

/// The loop: asks each name when it is due (each lookup on its own, so a name whose
/// server times out holds up no other), and has the node re-apply its config when a
/// name's addresses changed. Ends with `stop` or the node.
pub async fn run(dns: Arc<Dns>, node: Weak<crate::Node>, stop: CancellationToken) {
    let mut lookups = tokio::task::JoinSet::new();
    let mut asking: HashSet<BackendAddress> = HashSet::new();
    loop {
        for name in dns.due(Instant::now(), &asking) {
            asking.insert(name.clone());
            let resolver = dns.resolver.clone();
            lookups.spawn(async move {
                let answer = lookup::lookup(&resolver, &name).await;
                (name, answer)
            });
        }
        let due = dns
            .next_due(&asking)
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = dns.wake.notified() => {}
            _ = tokio::time::sleep_until(due.into()) => {}
            Some(joined) = lookups.join_next(), if !lookups.is_empty() => {
                let Ok((name, answer)) = joined else {
                    // A lookup task panicked: forget what was in flight, ask again.
                    asking.clear();
                    lookups.abort_all();
                    continue;
                };
                asking.remove(&name);
                if dns.take_answer(&name, answer) {
                    let Some(node) = node.upgrade() else { return };
                    node.refresh_names().await;
                }
            }
        }
    }
}

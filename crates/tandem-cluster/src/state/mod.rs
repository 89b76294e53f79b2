//! The replicated state machine: the cluster config, the sticky-session tables and the VIP
//! leases, plus the lease clock rules that proposing nodes follow ([`clock`]).
//!
//! Pure and deterministic. Applying a command reads no clock, draws no random number and
//! iterates only ordered maps, so every node that applies the same log holds the same
//! state, down to the bytes of its snapshot. Time enters only as values carried in
//! commands (the proposer's clock readings); the clock rules run on the proposing nodes,
//! never in `apply`.

pub mod acme;
mod clock;
mod command;
mod config;
mod lease;
mod sticky;

pub use clock::{ContenderClock, HolderClock, KernelBackstop, LeaseTiming};
pub use command::{Command, Lease, LeaseCommand, NodeId, Outcome, StickyRecord};
pub use sticky::DEFAULT_STICKY_CAPACITY;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use sticky::{PoolRules, PoolTable};

/// A snapshot that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the snapshot cannot be decoded as tandem cluster state: {0}")]
    Decode(#[from] postcard::Error),
    #[error("the snapshot has {0} bytes after the state; it was cut or mixed with something else")]
    TrailingBytes(usize),
}

/// The whole replicated state. Snapshots are its postcard bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The applied config: its version and TOML text (no `[node]` section).
    config: Option<(u64, String)>,
    /// Per pool, what the applied config says (sticky capacity, backend ids). Derived from
    /// `config` but stored, so that restoring a snapshot does not depend on re-parsing it.
    pools: BTreeMap<String, PoolRules>,
    /// Sticky tables by pool; a pool with no entries has no table.
    sticky: BTreeMap<String, PoolTable>,
    /// Leases by vip_group; a group never granted anything has no entry.
    leases: BTreeMap<String, Lease>,
    /// vip_groups pinned to a node by an operator.
    pins: BTreeMap<String, NodeId>,
    /// ACME challenge answers, accounts and certificates. Last: a snapshot written before
    /// it existed ends here (see [`ClusterState::from_snapshot`]).
    acme: acme::AcmeState,
}

/// The state as snapshotted before ACME was added: restored with no ACME part.
#[derive(Deserialize)]
struct StateBeforeAcme {
    config: Option<(u64, String)>,
    pools: BTreeMap<String, PoolRules>,
    sticky: BTreeMap<String, PoolTable>,
    leases: BTreeMap<String, Lease>,
    pins: BTreeMap<String, NodeId>,
}

impl ClusterState {
    /// Applies one committed command. Never fails: a command that cannot take effect is
    /// refused in the outcome and leaves the state as it was.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        match command {
            Command::ApplyConfig { version, toml } => self.apply_config(*version, toml),
            Command::StickyBatch { pool, entries } => self.merge_sticky(pool, entries),
            Command::PurgeSticky { now_ms } => self.purge_sticky(*now_ms),
            Command::Lease(command) => lease::apply(&mut self.leases, command),
            Command::Acme(command) => self.acme.apply(command),
            Command::Pin { group, node } => {
                match node {
                    Some(node) => self.pins.insert(group.clone(), *node),
                    None => self.pins.remove(group),
                };
                Outcome::Pinned {
                    group: group.clone(),
                    node: *node,
                }
            }
        }
    }

    /// [`ClusterState::apply`] in a cluster whose members are those for which `is_member`
    /// holds: a node that is not a member (removed, but still running) may not take,
    /// renew or force a lease, so it loses its VIP when its hold window ends and the
    /// others wait the lease out as after a crash. Releasing stays allowed: it is always
    /// safe, and lets a removed node hand over at once as it stops.
    pub fn apply_as_members(
        &mut self,
        command: &Command,
        is_member: impl Fn(NodeId) -> bool,
    ) -> Outcome {
        if let Command::Lease(lease) = command {
            let releasing = matches!(lease, LeaseCommand::Release { .. });
            if !releasing && !is_member(lease.node()) {
                return Outcome::LeaseRefused {
                    group: lease.group().to_string(),
                    current: self.lease(lease.group()),
                };
            }
        }
        self.apply(command)
    }

    /// After a membership change: pins to nodes that are no longer members are dropped
    /// (VRRP priorities decide again), so a pin cannot leave a group with nobody to hold it.
    pub fn drop_pins_to_non_members(&mut self, is_member: impl Fn(NodeId) -> bool) {
        self.pins.retain(|_, node| is_member(*node));
    }

    /// The node a vip_group is pinned to, if any.
    pub fn pin(&self, group: &str) -> Option<NodeId> {
        self.pins.get(group).copied()
    }

    pub fn pins(&self) -> &BTreeMap<String, NodeId> {
        &self.pins
    }

    /// The applied config's version and TOML text.
    pub fn config(&self) -> Option<(u64, &str)> {
        self.config
            .as_ref()
            .map(|(version, text)| (*version, text.as_str()))
    }

    /// ACME challenge answers, accounts and certificates.
    pub fn acme(&self) -> &acme::AcmeState {
        &self.acme
    }

    /// The group's lease (the empty default if it was never granted).
    pub fn lease(&self, group: &str) -> Lease {
        self.leases.get(group).copied().unwrap_or_default()
    }

    pub fn leases(&self) -> &BTreeMap<String, Lease> {
        &self.leases
    }

    /// The pool's sticky entries sorted by key, expired ones included until purged (they
    /// never answer a lookup: callers compare `expires_at_ms` with their own clock).
    pub fn sticky(&self, pool: &str) -> Vec<StickyRecord> {
        self.sticky
            .get(pool)
            .map(PoolTable::records)
            .unwrap_or_default()
    }

    /// Sticky entries over all pools.
    pub fn sticky_len(&self) -> usize {
        self.sticky.values().map(PoolTable::len).sum()
    }

    /// How many entries the pool's table keeps: the config's `max_entries` for a
    /// `source_ip` sticky pool, else [`DEFAULT_STICKY_CAPACITY`].
    pub fn sticky_capacity(&self, pool: &str) -> u32 {
        self.pools
            .get(pool)
            .map_or(DEFAULT_STICKY_CAPACITY, |rules| rules.capacity)
    }

    /// The state as postcard bytes; equal states give equal bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        // Every field is a plain struct, map, sequence or integer: postcard cannot fail on
        // them (it fails only on unsized sequences and unsupported types).
        postcard::to_stdvec(self).expect("cluster state always serializes")
    }

    /// Restores a state written by [`ClusterState::to_snapshot`]. Sticky tables are
    /// checked as they load (sorted, within capacity), so a damaged snapshot is refused
    /// rather than silently rebuilt into a different table.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, StateError> {
        let (state, rest) = match postcard::take_from_bytes::<ClusterState>(bytes) {
            Ok(decoded) => decoded,
            // A snapshot from before ACME ends where the ACME part would start.
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                let (old, rest) = postcard::take_from_bytes::<StateBeforeAcme>(bytes)?;
                let state = ClusterState {
                    config: old.config,
                    pools: old.pools,
                    sticky: old.sticky,
                    leases: old.leases,
                    pins: old.pins,
                    acme: acme::AcmeState::default(),
                };
                (state, rest)
            }
            Err(e) => return Err(e.into()),
        };
        if !rest.is_empty() {
            return Err(StateError::TrailingBytes(rest.len()));
        }
        Ok(state)
    }

    fn apply_config(&mut self, version: u64, toml: &str) -> Outcome {
        let current = self.config.as_ref().map(|(v, _)| *v);
        let cluster = match config::check(current, version, toml) {
            Ok(cluster) => cluster,
            Err(reason) => return Outcome::ConfigRefused { reason },
        };
        // Pool names are unique in a valid config, so nothing is lost collecting by name.
        self.pools = PoolRules::from_config(&cluster).into_iter().collect();
        // Tables follow the new config: pools that went lose their table, backends that
        // left lose their entries, and a smaller max_entries evicts deterministically.
        let tables = std::mem::take(&mut self.sticky);
        for (pool, table) in tables {
            if let Some(rules) = self.pools.get(&pool) {
                let table = table.under(rules);
                if !table.is_empty() {
                    self.sticky.insert(pool, table);
                }
            }
        }
        self.config = Some((version, toml.to_string()));
        Outcome::ConfigApplied { version }
    }

    /// Merges a batch. Before any config is applied every pool is accepted (a cluster
    /// being bootstrapped still keeps its stickiness, bounded by the default capacity);
    /// after, only pools and backends the config lists: a batch racing a config change
    /// must not bring back entries the change just dropped.
    fn merge_sticky(&mut self, pool: &str, entries: &[StickyRecord]) -> Outcome {
        let rules = self.pools.get(pool);
        if self.config.is_some() && rules.is_none() {
            return Outcome::StickyMerged {
                pool: pool.to_string(),
                entries: 0,
            };
        }
        let capacity = rules.map_or(DEFAULT_STICKY_CAPACITY, |r| r.capacity);
        let table = self
            .sticky
            .entry(pool.to_string())
            .or_insert_with(|| PoolTable::new(capacity));
        let mut merged = 0;
        for record in entries {
            if rules.is_none_or(|r| r.backends.contains(&record.backend)) {
                table.insert(record);
                merged += 1;
            }
        }
        if table.is_empty() {
            self.sticky.remove(pool);
        }
        Outcome::StickyMerged {
            pool: pool.to_string(),
            entries: merged,
        }
    }

    fn purge_sticky(&mut self, now_ms: u64) -> Outcome {
        let removed = self
            .sticky
            .values_mut()
            .map(|table| table.purge(now_ms))
            .sum();
        self.sticky.retain(|_, table| !table.is_empty());
        Outcome::StickyPurged { removed }
    }
}

//! The per-pick snapshot handed to selectors.
//!
//! Eligibility has two layers. *Routable* backends (admin Enabled, weight >
//! 0, and — outside panic mode — Up and not ejected) form the set that
//! changes rarely; Maglev builds its table over it. *Available* is routable
//! plus the per-request constraints (not excluded, below max_connections),
//! which change on every pick; selectors may only return available ones.

use std::time::Duration;

use crate::backend::{AdminState, Backend};
use crate::context::PickContext;

/// Selector's copy of one routable backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Index into the pool's backend list.
    pub index: usize,
    /// Effective (slow-start) weight, ≥ 1.
    pub weight: u32,
    /// Configured weight (hash tables use it so slow start does not reshuffle keys).
    pub static_weight: u32,
    pub active: u32,
    pub ewma_nanos: Option<u64>,
    pub available: bool,
    pub maglev_hashes: (u64, u64),
}

/// Routable candidates in ascending index order, plus the hashed key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidates<'a> {
    pub items: &'a [Candidate],
    pub key: Option<u64>,
}

impl<'a> Candidates<'a> {
    pub(crate) fn available(&self) -> impl Iterator<Item = &'a Candidate> + Clone {
        self.items.iter().filter(|c| c.available)
    }

    pub(crate) fn is_available(&self, index: usize) -> bool {
        self.items
            .binary_search_by_key(&index, |c| c.index)
            .is_ok_and(|pos| self.items[pos].available)
    }
}

/// Fill `out` with the routable backends at `now` (in index order).
pub(crate) fn collect(
    backends: &[Backend],
    ctx: &PickContext<'_>,
    now: Duration,
    panic: bool,
    out: &mut Vec<Candidate>,
) {
    out.clear();
    for (index, b) in backends.iter().enumerate() {
        if b.admin != AdminState::Enabled || b.weight == 0 {
            continue;
        }
        if !panic && !b.is_healthy(now) {
            continue;
        }
        out.push(Candidate {
            index,
            weight: b.effective_weight(now).max(1),
            static_weight: b.weight,
            active: b.active,
            ewma_nanos: b.ewma_nanos,
            available: b.has_capacity() && !ctx.exclude.contains(&index),
            maglev_hashes: b.maglev_hashes,
        });
    }
}

/// Test helper: available candidates with the given (weight, active) pairs.
#[cfg(test)]
pub(crate) fn fixture(specs: &[(u32, u32)]) -> Vec<Candidate> {
    specs
        .iter()
        .enumerate()
        .map(|(index, &(weight, active))| Candidate {
            index,
            weight,
            static_weight: weight,
            active,
            ewma_nanos: None,
            available: true,
            maglev_hashes: (
                crate::hash::stable_hash(&index.to_le_bytes()),
                crate::hash::salted_hash(b"maglev-skip", &index.to_le_bytes()),
            ),
        })
        .collect()
}

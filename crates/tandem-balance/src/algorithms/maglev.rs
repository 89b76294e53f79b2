//! Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4).
//!
//! Every backend derives a permutation of the M table slots from two stable
//! hashes of its id (offset, skip; M prime so the permutation covers every
//! slot). Backends take turns claiming their next unclaimed preferred slot
//! until the table is full. Lookups are one array index, load is balanced
//! to within one slot, and removing a backend mostly moves only its own keys.
//!
//! Weights: a backend with weight w claims a slot in turn n only while
//! count·w_max ≤ w·n (Envoy's weighted Maglev, in integers), so table shares
//! follow configured weights. Slow start is deliberately not applied: a
//! ramping weight would reshuffle keys on every step.

use super::round_robin::Rotor;
use super::Selector;
use crate::candidates::{Candidate, Candidates};
use crate::rng::Rng;

const EMPTY: u32 = u32::MAX;

#[derive(Debug)]
pub(crate) struct Maglev {
    /// Prime table size M (validated by the pool).
    size: usize,
    /// Slot -> backend index; empty when there were no routable backends.
    table: Vec<u32>,
    /// The routable set the table was built for: (index, weight, offset
    /// hash). The table is rebuilt only when this changes.
    built_for: Vec<(usize, u32, u64)>,
    /// Used when the request has no key.
    fallback: Rotor,
    /// Number of table builds, so tests can check the cache.
    builds: u64,
}

impl Maglev {
    pub(crate) fn new(size: usize) -> Self {
        Maglev {
            size: size.max(2),
            table: Vec::new(),
            built_for: Vec::new(),
            fallback: Rotor::default(),
            builds: 0,
        }
    }

    fn signature(c: &Candidate) -> (usize, u32, u64) {
        (c.index, c.static_weight, c.maglev_hashes.0)
    }

    fn refresh(&mut self, items: &[Candidate]) {
        let same = self.built_for.len() == items.len()
            && self
                .built_for
                .iter()
                .zip(items)
                .all(|(s, c)| *s == Self::signature(c));
        if same && self.builds > 0 {
            return;
        }
        self.built_for = items.iter().map(Self::signature).collect();
        self.table = populate(self.size, items);
        self.builds += 1;
    }
}

/// Per-backend population state.
struct Turn {
    index: u32,
    next: u64,
    skip: u64,
    weight: u64,
    count: u64,
}

/// Build the lookup table (the paper's Populate, with weighted turns).
fn populate(size: usize, items: &[Candidate]) -> Vec<u32> {
    let m = size as u64;
    let mut turns: Vec<Turn> = items
        .iter()
        .filter_map(|c| {
            let index = u32::try_from(c.index).ok().filter(|&i| i != EMPTY)?;
            Some(Turn {
                index,
                next: c.maglev_hashes.0 % m,
                skip: c.maglev_hashes.1 % (m - 1) + 1,
                weight: u64::from(c.static_weight.max(1)),
                count: 0,
            })
        })
        .collect();
    let Some(max_weight) = turns.iter().map(|t| t.weight).max() else {
        return Vec::new();
    };
    let mut table = vec![EMPTY; size];
    let mut filled = 0usize;
    let mut round: u128 = 0;
    loop {
        round += 1;
        for t in &mut turns {
            if u128::from(t.count) * u128::from(max_weight) > u128::from(t.weight) * round {
                continue;
            }
            // M is prime and 1 ≤ skip < M, so this visits every slot and
            // finds a free one while the table is not full.
            loop {
                let slot = t.next as usize;
                t.next = (t.next + t.skip) % m;
                if table[slot] == EMPTY {
                    table[slot] = t.index;
                    break;
                }
            }
            t.count += 1;
            filled += 1;
            if filled == size {
                return table;
            }
        }
    }
}

impl Selector for Maglev {
    fn select(&mut self, view: &Candidates<'_>, _rng: &mut Rng) -> Option<usize> {
        let Some(key) = view.key else {
            return self.fallback.pick(view.available());
        };
        view.available().next()?;
        self.refresh(view.items);
        if self.table.is_empty() {
            return None;
        }
        // The key's own slot, else walk on deterministically so a retry
        // (or a full backend) sends the key to the same second choice.
        let start = (key % self.table.len() as u64) as usize;
        let (head, tail) = self.table.split_at(start);
        tail.iter()
            .chain(head)
            .map(|&i| i as usize)
            .find(|&i| view.is_available(i))
            // Only reachable if an available backend owns no slot at all.
            .or_else(|| self.fallback.pick(view.available()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::fixture;

    fn shares(table: &[u32], n: usize) -> Vec<usize> {
        (0..n)
            .map(|i| table.iter().filter(|&&t| t as usize == i).count())
            .collect()
    }

    #[test]
    fn equal_weights_balance_within_one_slot() {
        let items = fixture(&[(1, 0); 7]);
        let table = populate(5003, &items);
        assert!(table.iter().all(|&t| t != EMPTY));
        let s = shares(&table, 7);
        let (lo, hi) = (s.iter().min().unwrap(), s.iter().max().unwrap());
        assert!(hi - lo <= 1, "{s:?}");
    }

    #[test]
    fn weighted_shares_follow_weights() {
        let items = fixture(&[(3, 0), (1, 0)]);
        let s = shares(&populate(5003, &items), 2);
        // 3:1 of 5003 = 3752 / 1251; allow ±1%.
        assert!(s[0].abs_diff(3752) <= 50, "{s:?}");
    }

    #[test]
    fn tiny_tables_fill() {
        let items = fixture(&[(1, 0), (5, 0), (2, 0)]);
        for size in [2, 3, 5, 7] {
            let table = populate(size, &items);
            assert_eq!(table.len(), size);
            assert!(table.iter().all(|&t| (t as usize) < 3));
        }
        assert!(populate(7, &[]).is_empty());
    }

    #[test]
    fn table_is_cached_until_the_set_changes() {
        let mut items = fixture(&[(1, 0), (1, 0), (1, 0)]);
        let mut m = Maglev::new(101);
        let mut rng = Rng::new(0);
        for key in 0..50u64 {
            let view = Candidates {
                items: &items,
                key: Some(key),
            };
            m.select(&view, &mut rng).unwrap();
        }
        assert_eq!(m.builds, 1);
        // Per-request availability does not rebuild...
        items[0].available = false;
        items[1].active = 9;
        let view = Candidates {
            items: &items,
            key: Some(1),
        };
        assert_ne!(m.select(&view, &mut rng), Some(0));
        assert_eq!(m.builds, 1);
        // ...a change of the routable set does.
        items.pop();
        let view = Candidates {
            items: &items,
            key: Some(1),
        };
        m.select(&view, &mut rng).unwrap();
        assert_eq!(m.builds, 2);
    }

    #[test]
    fn unavailable_owner_falls_back_deterministically() {
        let mut items = fixture(&[(1, 0), (1, 0), (1, 0), (1, 0)]);
        let mut m = Maglev::new(101);
        let mut rng = Rng::new(0);
        let view = Candidates {
            items: &items,
            key: Some(12345),
        };
        let owner = m.select(&view, &mut rng).unwrap();
        items[owner].available = false;
        let view = Candidates {
            items: &items,
            key: Some(12345),
        };
        let second = m.select(&view, &mut rng).unwrap();
        assert_ne!(second, owner);
        for _ in 0..10 {
            assert_eq!(m.select(&view, &mut rng), Some(second));
        }
        for c in &mut items {
            c.available = false;
        }
        let view = Candidates {
            items: &items,
            key: Some(12345),
        };
        assert_eq!(m.select(&view, &mut rng), None);
    }

    #[test]
    fn no_key_rotates() {
        let items = fixture(&[(1, 0), (1, 0)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut m = Maglev::new(101);
        let mut rng = Rng::new(0);
        let picks: Vec<_> = (0..4).map(|_| m.select(&view, &mut rng).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
        assert_eq!(m.builds, 0);
    }
}

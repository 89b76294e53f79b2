//! Round robin (weighted when weights differ), plus the rotating cursor other
//! algorithms use to break ties fairly.

use super::weighted::SmoothWeighted;
use super::Selector;
use crate::candidates::{Candidate, Candidates};
use crate::rng::Rng;

/// Rotates over backend *indices*: the next pick is the first candidate at
/// or after the cursor, wrapping. Keyed by index rather than position in the
/// candidate list so that a backend leaving or rejoining does not make the
/// rotation skip or repeat the others.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rotor {
    cursor: usize,
}

impl Rotor {
    /// Pick among `candidates` (any order) and advance past the chosen one.
    pub(crate) fn pick<'a>(
        &mut self,
        candidates: impl Iterator<Item = &'a Candidate>,
    ) -> Option<usize> {
        // Distance from the cursor going forwards, wrapping at usize::MAX:
        // indices ≥ cursor rank first, in order, then those before it.
        let chosen = candidates
            .map(|c| c.index)
            .min_by_key(|&i| i.wrapping_sub(self.cursor))?;
        self.cursor = chosen.wrapping_add(1);
        Some(chosen)
    }
}

/// Round robin over available candidates. When their weights differ it is smooth
/// weighted round robin, as HAProxy's and nginx's round robin are: an operator who sets
/// `weight` (or `tandemctl backend weight`) expects it to count. Equal weights keep the
/// plain rotation (a backend leaving or rejoining does not disturb the others' order).
#[derive(Clone, Debug, Default)]
pub(crate) struct RoundRobin {
    rotor: Rotor,
    weighted: SmoothWeighted,
}

impl Selector for RoundRobin {
    fn select(&mut self, view: &Candidates<'_>, _rng: &mut Rng) -> Option<usize> {
        if weights_differ(view) {
            self.weighted.pick(view.available())
        } else {
            self.rotor.pick(view.available())
        }
    }
}

/// Whether the available candidates' effective weights (slow start included) differ.
pub(crate) fn weights_differ(view: &Candidates<'_>) -> bool {
    let mut weights = view.available().map(|c| c.weight);
    let Some(first) = weights.next() else {
        return false;
    };
    weights.any(|w| w != first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::fixture;

    #[test]
    fn rotates_and_skips_unavailable() {
        let mut items = fixture(&[(1, 0), (1, 0), (1, 0)]);
        let mut rr = RoundRobin::default();
        let mut rng = Rng::new(1);
        let mut picks = Vec::new();
        for _ in 0..6 {
            let view = Candidates {
                items: &items,
                key: None,
            };
            picks.push(rr.select(&view, &mut rng).unwrap());
        }
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        items[1].available = false;
        let view = Candidates {
            items: &items,
            key: None,
        };
        let picks: Vec<_> = (0..4)
            .map(|_| rr.select(&view, &mut rng).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        assert_eq!(
            rr.select(
                &Candidates {
                    items: &[],
                    key: None
                },
                &mut rng
            ),
            None
        );
    }

    #[test]
    fn different_weights_make_it_smooth_weighted() {
        let items = fixture(&[(5, 0), (1, 0), (1, 0)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut rr = RoundRobin::default();
        let mut rng = Rng::new(1);
        let picks: Vec<_> = (0..7)
            .map(|_| rr.select(&view, &mut rng).unwrap())
            .collect();
        // nginx's example: a a b a c a a.
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn cursor_wraps_at_usize_max() {
        let mut rotor = Rotor { cursor: usize::MAX };
        let items = fixture(&[(1, 0), (1, 0)]);
        assert_eq!(rotor.pick(items.iter()), Some(0));
        assert_eq!(rotor.pick(items.iter()), Some(1));
        assert_eq!(rotor.pick(items.iter()), Some(0));
    }
}

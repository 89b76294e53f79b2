//! Power of two choices: sample two distinct backends, keep the less
//! loaded. Gets most of least-connections' benefit while avoiding the herd
//! effect of many balancers all choosing the same "least loaded" backend.

use std::cmp::Ordering;

use super::{load_cmp, Selector};
use crate::candidates::Candidates;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug)]
pub(crate) struct PowerOfTwoChoices;

impl Selector for PowerOfTwoChoices {
    fn select(&mut self, view: &Candidates<'_>, rng: &mut Rng) -> Option<usize> {
        let n = view.available().count() as u64;
        if n <= 1 {
            return view.available().next().map(|c| c.index);
        }
        let first = rng.below(n);
        let mut second = rng.below(n - 1);
        if second >= first {
            second += 1;
        }
        let nth = |i: u64| view.available().nth(i as usize);
        let (a, b) = (nth(first)?, nth(second)?);
        // On equal load keep the first draw, which is itself uniform.
        Some(if load_cmp(b, a) == Ordering::Less {
            b.index
        } else {
            a.index
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::fixture;

    #[test]
    fn never_picks_the_most_loaded() {
        let items = fixture(&[(1, 100), (1, 10), (1, 0)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut rng = Rng::new(5);
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            counts[PowerOfTwoChoices.select(&view, &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[0], 0);
        // The idle one wins both pairs it is in: ~2/3 of picks (±5%).
        assert!((1850..=2150).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn single_and_empty() {
        let items = fixture(&[(1, 7)]);
        let mut rng = Rng::new(5);
        let view = Candidates {
            items: &items,
            key: None,
        };
        assert_eq!(PowerOfTwoChoices.select(&view, &mut rng), Some(0));
        let view = Candidates {
            items: &[],
            key: None,
        };
        assert_eq!(PowerOfTwoChoices.select(&view, &mut rng), None);
    }
}

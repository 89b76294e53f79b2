//! Weighted random: stateless, so many independent balancers sharing the
//! same backends do not synchronise the way round robin cursors can.

use super::Selector;
use crate::candidates::Candidates;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug)]
pub(crate) struct WeightedRandom;

impl Selector for WeightedRandom {
    fn select(&mut self, view: &Candidates<'_>, rng: &mut Rng) -> Option<usize> {
        let total: u64 = view.available().map(|c| u64::from(c.weight)).sum();
        let mut point = rng.below(total);
        for c in view.available() {
            let w = u64::from(c.weight);
            if point < w {
                return Some(c.index);
            }
            point -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::fixture;

    #[test]
    fn follows_weights() {
        let items = fixture(&[(1, 0), (3, 0)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut rng = Rng::new(99);
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[WeightedRandom.select(&view, &mut rng).unwrap()] += 1;
        }
        // Expected 10 000 / 30 000; allow ±5%.
        assert!((9_500..=10_500).contains(&counts[0]), "{counts:?}");
        assert_eq!(
            WeightedRandom.select(
                &Candidates {
                    items: &[],
                    key: None
                },
                &mut rng
            ),
            None
        );
    }
}

//! Smooth weighted round robin (nginx's `ngx_http_upstream_get_peer`).
//!
//! Each pick adds every candidate's weight to its running `current`, takes
//! the largest, and subtracts the total from the winner. Over any window of
//! Σweights picks each backend gets exactly its weight, and heavy backends
//! are interleaved with light ones instead of receiving bursts.

use super::Selector;
use crate::candidates::{Candidate, Candidates};
use crate::rng::Rng;

#[derive(Clone, Debug, Default)]
pub(crate) struct SmoothWeighted {
    /// Running `current_weight` per backend index.
    current: Vec<i64>,
}

impl SmoothWeighted {
    /// One smooth-WRR step over `candidates` (uses their effective weight).
    pub(crate) fn pick<'a>(
        &mut self,
        candidates: impl Iterator<Item = &'a Candidate>,
    ) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for c in candidates {
            if self.current.len() <= c.index {
                self.current.resize(c.index + 1, 0);
            }
            let w = i64::from(c.weight);
            let cur = self.current[c.index].saturating_add(w);
            self.current[c.index] = cur;
            total = total.saturating_add(w);
            // Strictly greater: ties go to the lowest index, as in nginx.
            if best.is_none_or(|(_, b)| cur > b) {
                best = Some((c.index, cur));
            }
        }
        let (index, cur) = best?;
        self.current[index] = cur.saturating_sub(total);
        Some(index)
    }
}

impl Selector for SmoothWeighted {
    fn select(&mut self, view: &Candidates<'_>, _rng: &mut Rng) -> Option<usize> {
        self.pick(view.available())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::fixture;

    fn run(weights: &[u32], n: usize) -> Vec<usize> {
        let specs: Vec<_> = weights.iter().map(|&w| (w, 0)).collect();
        let items = fixture(&specs);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut s = SmoothWeighted::default();
        let mut rng = Rng::new(0);
        (0..n).map(|_| s.select(&view, &mut rng).unwrap()).collect()
    }

    #[test]
    fn nginx_example_sequence() {
        // nginx's documented example: weights a=5, b=1, c=1.
        assert_eq!(run(&[5, 1, 1], 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn exact_proportions_per_cycle() {
        let picks = run(&[3, 2, 1], 600);
        let count = |i| picks.iter().filter(|&&p| p == i).count();
        assert_eq!((count(0), count(1), count(2)), (300, 200, 100));
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let picks = run(&[u32::MAX, u32::MAX, 1], 10);
        assert_eq!(picks.len(), 10);
    }
}

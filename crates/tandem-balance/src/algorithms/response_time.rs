//! Least response time: minimum EWMA latency × (active + 1) / weight.
//!
//! Multiplying by (active + 1) makes a fast backend stop attracting traffic
//! once it queues; backends never observed go first so that every backend
//! gets a latency estimate instead of being starved by an early winner.

use std::cmp::Ordering;

use super::round_robin::Rotor;
use super::Selector;
use crate::candidates::{Candidate, Candidates};
use crate::rng::Rng;

#[derive(Clone, Debug, Default)]
pub(crate) struct LeastResponseTime {
    rotor: Rotor,
}

/// ewma_a·(active_a+1)·w_b vs ewma_b·(active_b+1)·w_a; fits in u128.
fn score_cmp(a: &Candidate, b: &Candidate) -> Ordering {
    let score = |x: &Candidate, other_weight: u32| {
        u128::from(x.ewma_nanos.unwrap_or(0))
            * (u128::from(x.active) + 1)
            * u128::from(other_weight)
    };
    score(a, b.weight).cmp(&score(b, a.weight))
}

impl Selector for LeastResponseTime {
    fn select(&mut self, view: &Candidates<'_>, _rng: &mut Rng) -> Option<usize> {
        let unobserved = view.available().filter(|c| c.ewma_nanos.is_none());
        if let Some(min) = unobserved.clone().map(|c| c.active).min() {
            // Least loaded of the unobserved, so a slow first request does
            // not pile everything onto the same new backend.
            return self.rotor.pick(unobserved.filter(|c| c.active == min));
        }
        let best = view.available().min_by(|a, b| score_cmp(a, b))?;
        self.rotor.pick(
            view.available()
                .filter(|c| score_cmp(c, best) == Ordering::Equal),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::fixture;

    #[test]
    fn unobserved_first_then_fastest() {
        let mut items = fixture(&[(1, 0), (1, 0)]);
        items[0].ewma_nanos = Some(1_000);
        let mut lrt = LeastResponseTime::default();
        let mut rng = Rng::new(0);
        let view = Candidates {
            items: &items,
            key: None,
        };
        assert_eq!(lrt.select(&view, &mut rng), Some(1));
        items[1].ewma_nanos = Some(5_000);
        let view = Candidates {
            items: &items,
            key: None,
        };
        assert_eq!(lrt.select(&view, &mut rng), Some(0));
        // 1000·(5+1) > 5000·(0+1): the fast one is now queued too deep.
        items[0].active = 5;
        let view = Candidates {
            items: &items,
            key: None,
        };
        assert_eq!(lrt.select(&view, &mut rng), Some(1));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut items = fixture(&[(u32::MAX, u32::MAX), (1, u32::MAX)]);
        items[0].ewma_nanos = Some(u64::MAX);
        items[1].ewma_nanos = Some(u64::MAX);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut rng = Rng::new(0);
        assert_eq!(
            LeastResponseTime::default().select(&view, &mut rng),
            Some(0)
        );
    }
}

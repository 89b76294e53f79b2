//! Least connections, plain and weighted. Plain least connections is the weighted
//! one whenever the candidates' weights differ, as HAProxy's `leastconn` is.
//!
//! Both first find the minimum load and then break ties with a rotating
//! choice: when a pool is idle every backend ties at zero, and always
//! taking the first would send all short requests to one backend.

use std::cmp::Ordering;

use super::round_robin::{weights_differ, Rotor};
use super::weighted::SmoothWeighted;
use super::{load_cmp, Selector};
use crate::candidates::Candidates;
use crate::rng::Rng;

/// Fewest active connections; ties rotate. With different weights: fewest active per
/// unit of weight ([`WeightedLeastConnections`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct LeastConnections {
    rotor: Rotor,
    weighted: WeightedLeastConnections,
}

impl Selector for LeastConnections {
    fn select(&mut self, view: &Candidates<'_>, rng: &mut Rng) -> Option<usize> {
        if weights_differ(view) {
            return self.weighted.select(view, rng);
        }
        let min = view.available().map(|c| c.active).min()?;
        self.rotor
            .pick(view.available().filter(|c| c.active == min))
    }
}

/// Minimum active/weight (compared by cross-multiplication). Ties are
/// broken by smooth weighted round robin, as nginx does, so weights still
/// count when requests are too short for connection counts to differ.
#[derive(Clone, Debug, Default)]
pub(crate) struct WeightedLeastConnections {
    tie_break: SmoothWeighted,
}

impl Selector for WeightedLeastConnections {
    fn select(&mut self, view: &Candidates<'_>, _rng: &mut Rng) -> Option<usize> {
        let best = view.available().min_by(|a, b| load_cmp(a, b))?;
        self.tie_break.pick(
            view.available()
                .filter(|c| load_cmp(c, best) == Ordering::Equal),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::fixture;

    #[test]
    fn least_connections_prefers_idle_and_rotates_ties() {
        let items = fixture(&[(1, 2), (1, 0), (1, 5), (1, 0)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut lc = LeastConnections::default();
        let mut rng = Rng::new(0);
        let picks: Vec<_> = (0..4)
            .map(|_| lc.select(&view, &mut rng).unwrap())
            .collect();
        assert_eq!(picks, vec![1, 3, 1, 3]);
    }

    #[test]
    fn least_connections_with_different_weights_uses_the_ratio() {
        // 1 active of weight 1 against 3 active of weight 4: 3/4 is the lighter load.
        let items = fixture(&[(1, 1), (4, 3)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut lc = LeastConnections::default();
        let mut rng = Rng::new(0);
        assert_eq!(lc.select(&view, &mut rng), Some(1));
        // Idle, 3:1 weights: ties follow the weights.
        let items = fixture(&[(3, 0), (1, 0)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let picks: Vec<_> = (0..400)
            .map(|_| lc.select(&view, &mut rng).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 300);
    }

    #[test]
    fn weighted_least_connections_uses_ratio() {
        // active/weight: 1/1 for backend 0, 3/4 for backend 1.
        let items = fixture(&[(1, 1), (4, 3)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut wlc = WeightedLeastConnections::default();
        let mut rng = Rng::new(0);
        assert_eq!(wlc.select(&view, &mut rng), Some(1));
    }

    #[test]
    fn weighted_ties_follow_weights() {
        let items = fixture(&[(3, 0), (1, 0)]);
        let view = Candidates {
            items: &items,
            key: None,
        };
        let mut wlc = WeightedLeastConnections::default();
        let mut rng = Rng::new(0);
        let picks: Vec<_> = (0..400)
            .map(|_| wlc.select(&view, &mut rng).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 300);
    }
}

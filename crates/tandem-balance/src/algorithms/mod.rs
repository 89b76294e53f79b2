//! Selection algorithms, each behind the one small [`Selector`] trait.
//!
//! The pool owns the backend data and decides eligibility; a selector only
//! chooses among the candidates it is shown and keeps whatever private
//! state its algorithm needs (a cursor, smooth-WRR counters, a Maglev
//! table). That keeps each algorithm a few dozen lines and testable alone.

mod least_conn;
mod maglev;
mod p2c;
mod random;
mod response_time;
mod round_robin;
mod weighted;

use std::fmt::Debug;

use crate::candidates::Candidates;
use crate::rng::Rng;
use crate::settings::{Algorithm, PoolSettings};

/// Chooses one available candidate, returning its backend index.
pub(crate) trait Selector: Debug + Send + Sync {
    /// Must return `None` or the index of a candidate with `available == true`.
    fn select(&mut self, view: &Candidates<'_>, rng: &mut Rng) -> Option<usize>;
}

/// The selector for `settings.algorithm` (whose Maglev table size the pool
/// has already validated).
pub(crate) fn build(settings: &PoolSettings) -> Box<dyn Selector> {
    match settings.algorithm {
        Algorithm::RoundRobin => Box::new(round_robin::RoundRobin::default()),
        Algorithm::WeightedRoundRobin => Box::new(weighted::SmoothWeighted::default()),
        Algorithm::LeastConnections => Box::new(least_conn::LeastConnections::default()),
        Algorithm::WeightedLeastConnections => {
            Box::new(least_conn::WeightedLeastConnections::default())
        }
        Algorithm::LeastResponseTime => Box::new(response_time::LeastResponseTime::default()),
        Algorithm::PowerOfTwoChoices => Box::new(p2c::PowerOfTwoChoices),
        Algorithm::SourceIpHash | Algorithm::KeyHash => {
            Box::new(maglev::Maglev::new(settings.maglev_table_size))
        }
        Algorithm::Random => Box::new(random::WeightedRandom),
    }
}

/// `a.active / a.weight` compared with `b.active / b.weight` without
/// division (weights are ≥ 1; the products fit in u64).
fn load_cmp(
    a: &crate::candidates::Candidate,
    b: &crate::candidates::Candidate,
) -> std::cmp::Ordering {
    let lhs = u64::from(a.active) * u64::from(b.weight);
    let rhs = u64::from(b.active) * u64::from(a.weight);
    lhs.cmp(&rhs)
}

//! The simulation's inputs, outputs, and each node's view of the world.

use std::time::Duration;
use tandem_cluster::lease_machine::LeaseMachine;
use tandem_cluster::state::{ClusterState, LeaseTiming, NodeId};
use tandem_vrrp::machine::{Hold, Permit};
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct Params {
    pub timing: LeaseTiming,
    /// One per node, each within ±0.01 for the promise.
    pub drifts: Vec<f64>,
    pub seed: u64,
    pub duration: Duration,
    pub commit_delay_us: (u64, u64),
    pub apply_lag_us: u64,
    pub response_delay_us: u64,
    /// Chance that a proposal never commits.
    pub loss: f64,
    /// Chance that a committed proposal's outcome never reaches its proposer.
    pub response_loss: f64,
    pub pauses_per_node: u32,
    pub max_pause_us: u64,
    /// Chance per holder tick of a planned handover (Release).
    pub release_chance: f64,
    /// Crash whichever node holds the lease at this time.
    pub crash_holder_at: Option<Duration>,
    /// Node j starts ticking at j × 100 ms (so node 0 takes the lease first).
    pub stagger_start: bool,
    /// One-way cuts per node: for a random span, either nothing the node proposes
    /// reaches the log (cut outbound), or nothing of the log reaches it (cut inbound:
    /// applies and answers wait for the heal, as Raft catches a follower up).
    pub cuts_per_node: u32,
    pub max_cut_us: u64,
}

impl Params {
    pub fn calm(timing: LeaseTiming, drifts: Vec<f64>, seed: u64) -> Self {
        Params {
            timing,
            drifts,
            seed,
            duration: Duration::from_secs(10),
            commit_delay_us: (1_000, 50_000),
            apply_lag_us: 30_000,
            response_delay_us: 20_000,
            loss: 0.0,
            response_loss: 0.0,
            pauses_per_node: 0,
            max_pause_us: 0,
            release_chance: 0.0,
            crash_holder_at: None,
            stagger_start: false,
            cuts_per_node: 0,
            max_cut_us: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<String>,
    /// Granted Acquires: (commit time in µs, node).
    pub acquisitions: Vec<(u64, NodeId)>,
    pub crashed: Option<(u64, NodeId)>,
    /// Kernel fences opened or address lifetimes installed (at least 1 s each).
    pub installs: usize,
    /// Events handled, and the share of true time some node held the VIP.
    pub events: u64,
    pub held_us: u64,
}

pub(super) struct Node {
    pub(super) drift: f64,
    pub(super) offset_ns: u64,
    pub(super) state: ClusterState,
    pub(super) applied: usize,
    /// The code that runs in tandemd, driven here on a virtual clock.
    pub(super) machine: LeaseMachine,
    /// Proposals awaiting an answer, as indexes in `Sim::ops` (renewals are pipelined).
    pub(super) pending: Vec<usize>,
    pub(super) paused_until: u64,
    /// One-way cuts: until then, proposals are lost (out) or the log waits (in).
    pub(super) cut_out_until: u64,
    pub(super) cut_in_until: u64,
    pub(super) crashed: bool,
    pub(super) has_addr: bool,
    /// Latest true time the kernel may still have the address.
    pub(super) kernel_end: u64,
    /// The speaker's hold machine (the code tandemd's VRRP speaker drives).
    pub(super) hold: Hold,
    /// The last permit handed to `hold` (the speaker sees changes only, via a watch).
    pub(super) permit_seen: Permit,
    pub(super) last_delivery: u64,
    /// After a planned handover: VRRP does not want the group until then.
    pub(super) quiet_until: u64,
}

impl Node {
    pub(super) fn local(&self, t: u64) -> Duration {
        Duration::from_nanos(self.offset_ns + (t as f64 * 1000.0 * (1.0 + self.drift)) as u64)
    }
    /// A span of this node's clock, in true microseconds (rounded up).
    pub(super) fn true_span(&self, d: Duration) -> u64 {
        (d.as_nanos() as f64 / (1.0 + self.drift) / 1000.0).ceil() as u64
    }
    /// This node's clock reading at true time `t`, as the instant the speaker would see
    /// (`origin` stands for local time zero).
    pub(super) fn instant(&self, origin: Instant, t: u64) -> Instant {
        origin + self.local(t)
    }
    pub(super) fn present(&self, t: u64) -> bool {
        self.has_addr && t < self.kernel_end
    }
    /// Stops waiting for proposal `op`; false if it was not awaited.
    pub(super) fn forget(&mut self, op: usize) -> bool {
        let before = self.pending.len();
        self.pending.retain(|&p| p != op);
        self.pending.len() != before
    }
    pub(super) fn drop_addr(&mut self, t: u64) {
        if self.has_addr {
            self.has_addr = false;
            self.kernel_end = self.kernel_end.min(t);
        }
    }
}

/// splitmix64: the simulation's own deterministic randomness.
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

//! A virtual-clock simulation of nodes contending for one VIP lease through a
//! linearizable log, used by the safety and liveness tests.
//!
//! True time is integer microseconds. Each node reads its own clock,
//! `offset + true × (1 + drift)`, and follows the rules of `HolderClock` and
//! `ContenderClock`. Proposals commit after a random delay or never (lost); every node
//! applies the log in order after its own lag; the proposer hears the outcome after a
//! further delay, possibly after it applied later entries, possibly never. Nodes pause
//! (a frozen daemon: no ticks, no applies) or crash (forever). Each node's VIP is modelled
//! the worst way: installed with `kernel_lifetime` on every confirmation, removed by the
//! daemon only at its next tick, and by the kernel only `kernel_late` after the lifetime.
//!
//! After every event the checker asserts that at most one node `may_hold` and at most one
//! node may still have the address. Nothing turns either on between events (both only
//! expire as time passes), so checking at events checks every instant.

mod model;

pub use model::{Params, Report};

use model::{Node, Rng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;
use tandem_cluster::state::{
    ClusterState, Command, ContenderClock, HolderClock, KernelBackstop, LeaseCommand, NodeId,
    Outcome,
};

pub const GROUP: &str = "vip";
const TICK: Duration = Duration::from_millis(10);
const TIMEOUT_US: u64 = 400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick(usize),
    Commit(usize),
    Deliver(usize, usize),
    Response(usize),
    Timeout(usize, usize),
    Pause(usize, u64),
    Crash,
}

struct Op {
    node: usize,
    command: Command,
    sent: Duration,
    outcome: Option<Outcome>,
}

pub struct Sim {
    p: Params,
    rng: Rng,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    nodes: Vec<Node>,
    ops: Vec<Op>,
    log: Vec<usize>,
    leader: ClusterState,
    report: Report,
}

pub fn run(p: Params) -> Report {
    let mut rng = Rng(p.seed);
    let nodes = (0..p.drifts.len())
        .map(|j| Node {
            drift: p.drifts[j],
            offset_ns: rng.range(0, 1_000_000_000_000),
            state: ClusterState::default(),
            applied: 0,
            holder: HolderClock::new(p.timing),
            contender: ContenderClock::new(p.timing),
            pending: None,
            paused_until: 0,
            crashed: false,
            has_addr: false,
            kernel_end: 0,
            last_delivery: 0,
            quiet_until: 0,
        })
        .collect();
    let sim = Sim {
        p,
        rng,
        seq: 0,
        queue: BinaryHeap::new(),
        nodes,
        ops: Vec::new(),
        log: Vec::new(),
        leader: ClusterState::default(),
        report: Report::default(),
    };
    sim.run()
}

impl Sim {
    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn run(mut self) -> Report {
        let end = self.p.duration.as_micros() as u64;
        for j in 0..self.nodes.len() {
            let lease = self.nodes[j].state.lease(GROUP);
            let now = self.nodes[j].local(0);
            self.nodes[j].contender.observed(lease, now);
            let start = if self.p.stagger_start {
                j as u64 * 100_000
            } else {
                0
            };
            let first = start + self.rng.range(0, 10_000);
            self.at(first, Ev::Tick(j));
            for _ in 0..self.p.pauses_per_node {
                let (when, len) = (
                    self.rng.range(0, end),
                    self.rng.range(1, self.p.max_pause_us),
                );
                self.at(when, Ev::Pause(j, len));
            }
        }
        if let Some(crash) = self.p.crash_holder_at {
            self.at(crash.as_micros() as u64, Ev::Crash);
        }
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            if t > end {
                break;
            }
            self.handle(t, ev);
            self.check(t);
        }
        self.report
    }

    /// Postpones `ev` to the end of node `j`'s pause; true if it did.
    fn frozen(&mut self, j: usize, t: u64, ev: Ev) -> bool {
        if t < self.nodes[j].paused_until {
            let until = self.nodes[j].paused_until;
            self.at(until, ev);
            return true;
        }
        false
    }

    fn handle(&mut self, t: u64, ev: Ev) {
        match ev {
            Ev::Tick(j) if !self.nodes[j].crashed && !self.frozen(j, t, ev) => self.tick(j, t),
            Ev::Commit(op) => self.commit(op, t),
            Ev::Deliver(j, idx) if !self.nodes[j].crashed && !self.frozen(j, t, ev) => {
                self.deliver(j, idx, t)
            }
            Ev::Response(op) => {
                let j = self.ops[op].node;
                if !self.nodes[j].crashed && !self.frozen(j, t, ev) {
                    self.response(op, t);
                }
            }
            Ev::Timeout(j, op) if self.nodes[j].pending == Some(op) => self.nodes[j].pending = None,
            Ev::Pause(j, len) => {
                let n = &mut self.nodes[j];
                n.paused_until = n.paused_until.max(t + len);
            }
            Ev::Crash => {
                if let Some(h) = self.leader.lease(GROUP).holder {
                    self.nodes[h as usize].crashed = true;
                    self.report.crashed = Some((t, h));
                }
            }
            _ => {}
        }
    }

    fn tick(&mut self, j: usize, t: u64) {
        let release = self.rng.chance(self.p.release_chance);
        let n = &mut self.nodes[j];
        let now = n.local(t);
        if n.has_addr && !n.holder.may_hold(now) {
            n.drop_addr(t);
        }
        let view = n.state.lease(GROUP);
        let me = j as NodeId;
        let mine = view.holder == Some(me);
        let release_to = |epoch| LeaseCommand::Release {
            group: GROUP.into(),
            node: me,
            epoch,
        };
        let command = if n.pending.is_some() {
            None
        } else if mine && t < n.quiet_until {
            // A Release that was lost: retry it.
            Some(release_to(view.epoch))
        } else if mine && release && n.holder.may_hold(now) {
            // Planned handover: drop the VIP first, then release.
            n.holder.release(now);
            n.drop_addr(t);
            n.quiet_until = t + 2_000_000;
            Some(release_to(view.epoch))
        } else if mine {
            (n.holder.should_renew(now) || n.holder.valid_until().is_none()).then(|| {
                LeaseCommand::Renew {
                    group: GROUP.into(),
                    node: me,
                    epoch: view.epoch,
                }
            })
        } else if t >= n.quiet_until {
            let acquire = |seen| LeaseCommand::Acquire {
                group: GROUP.into(),
                node: me,
                seen,
            };
            n.contender.may_acquire(now).map(acquire)
        } else {
            None
        };
        let next = t + n.true_span(TICK);
        if let Some(command) = command {
            self.propose(j, Command::Lease(command), t);
        }
        self.at(next, Ev::Tick(j));
    }

    fn propose(&mut self, j: usize, command: Command, t: u64) {
        let op = self.ops.len();
        let sent = self.nodes[j].local(t);
        self.ops.push(Op {
            node: j,
            command,
            sent,
            outcome: None,
        });
        self.nodes[j].pending = Some(op);
        if !self.rng.chance(self.p.loss) {
            let (lo, hi) = self.p.commit_delay_us;
            let delay = self.rng.range(lo, hi);
            self.at(t + delay, Ev::Commit(op));
        }
        self.at(t + TIMEOUT_US, Ev::Timeout(j, op));
    }

    fn commit(&mut self, op: usize, t: u64) {
        let outcome = self.leader.apply(&self.ops[op].command);
        let proposer = self.ops[op].node;
        if let (Command::Lease(LeaseCommand::Acquire { node, .. }), Outcome::LeaseGranted { .. }) =
            (&self.ops[op].command, &outcome)
        {
            self.report.acquisitions.push((t, *node));
        }
        self.ops[op].outcome = Some(outcome);
        self.log.push(op);
        let idx = self.log.len() - 1;
        for k in 0..self.nodes.len() {
            let at = self.nodes[k]
                .last_delivery
                .max(t + self.rng.range(0, self.p.apply_lag_us));
            self.nodes[k].last_delivery = at;
            self.at(at, Ev::Deliver(k, idx));
            if k == proposer && !self.rng.chance(self.p.response_loss) {
                let extra = self.rng.range(0, self.p.response_delay_us);
                self.at(at + extra, Ev::Response(op));
            }
        }
    }

    fn deliver(&mut self, j: usize, idx: usize, t: u64) {
        while self.nodes[j].applied <= idx {
            let op = self.log[self.nodes[j].applied];
            let n = &mut self.nodes[j];
            let outcome = n.state.apply(&self.ops[op].command);
            n.applied += 1;
            if Some(&outcome) != self.ops[op].outcome.as_ref() {
                self.report
                    .violations
                    .push(format!("node {j} diverged at entry {op}"));
            }
        }
        let n = &mut self.nodes[j];
        let (lease, now) = (n.state.lease(GROUP), n.local(t));
        n.contender.observed(lease, now);
        let lost = lease.holder != Some(j as NodeId);
        if self.p.reset_on_observe && lost && (n.has_addr || n.holder.valid_until().is_some()) {
            n.holder.reset();
            n.drop_addr(t);
        }
    }

    fn response(&mut self, op: usize, t: u64) {
        let kernel_late = self.p.timing.kernel_late;
        let Op {
            node: j,
            command,
            sent,
            outcome,
        } = &self.ops[op];
        let n = &mut self.nodes[*j];
        if n.pending == Some(op) {
            n.pending = None;
        }
        let now = n.local(t);
        match (command, outcome) {
            (
                Command::Lease(LeaseCommand::Acquire { .. } | LeaseCommand::Renew { .. }),
                Some(Outcome::LeaseGranted { .. }),
            ) => {
                n.holder.confirmed(*sent);
                if self.p.timing.backstop == KernelBackstop::Nftables {
                    // The fence element is refreshed to end at valid_until, and may end
                    // up to kernel_late after it (the time one `nft` run takes).
                    let left = n
                        .holder
                        .valid_until()
                        .map_or(Duration::ZERO, |u| u.saturating_sub(now));
                    if !left.is_zero() {
                        n.has_addr = true;
                        n.kernel_end = t + n.true_span(left + kernel_late);
                        self.report.installs += 1;
                    }
                    return;
                }
                let lifetime = n.holder.kernel_lifetime(now);
                if n.holder
                    .valid_until()
                    .is_some_and(|until| !lifetime.is_zero() && now + lifetime > until)
                {
                    self.report
                        .violations
                        .push(format!("kernel lifetime past valid_until at {t}"));
                }
                if lifetime >= Duration::from_secs(1) {
                    n.has_addr = true;
                    n.kernel_end = t + n.true_span(lifetime + kernel_late);
                    self.report.installs += 1;
                }
            }
            (_, Some(Outcome::LeaseRefused { current, .. }))
                if current.holder != Some(*j as NodeId) =>
            {
                n.holder.reset();
                n.drop_addr(t);
            }
            _ => {}
        }
    }

    fn check(&mut self, t: u64) {
        let holding: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| self.nodes[j].holder.may_hold(self.nodes[j].local(t)))
            .collect();
        let present: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| self.nodes[j].present(t))
            .collect();
        if (holding.len() > 1 || present.len() > 1) && self.report.violations.len() < 5 {
            self.report.violations.push(format!(
                "at {t} µs: may_hold {holding:?}, address possibly present {present:?}"
            ));
        }
    }
}

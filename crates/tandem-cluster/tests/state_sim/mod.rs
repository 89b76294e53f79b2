//! A virtual-clock simulation of nodes contending for one VIP lease through a
//! linearizable log, used by the safety and liveness tests. Each node runs the real
//! [`LeaseMachine`] (the code tandemd's lease keeper drives), fed on this clock.
//!
//! True time is integer microseconds. Each node reads its own clock,
//! `offset + true × (1 + drift)`. Proposals commit after a random delay or never (lost);
//! every node applies the log in order after its own lag; the proposer hears the outcome
//! after a further delay, possibly after it applied later entries, possibly never, and
//! gives up after the proposal's wait. Nodes pause (a frozen daemon: no ticks, no
//! applies), crash (forever), or lose one direction of their link for a while. VRRP is
//! modelled as wanting the group on every node that is able (the worst case for
//! contention), except for a while after a planned handover. Each node's VIP follows the
//! speaker's real hold machine ([`Hold`]) fed with the machine's permit; its steps are
//! modelled the worst way: the kernel fence (or the address lifetime it installs) ends
//! only `kernel_late` after it should, and the daemon notices a permit that ran out only
//! at its next tick.
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
use tandem_cluster::lease_machine::{LeaseMachine, Proposal};
use tandem_cluster::state::{ClusterState, Command, KernelBackstop, LeaseCommand, NodeId, Outcome};
use tandem_vrrp::machine::{Hold, HoldStep, Permit};
use tokio::time::Instant;

pub const GROUP: &str = "vip";
const TICK: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick(usize),
    Commit(usize),
    Deliver(usize, usize),
    Response(usize),
    Timeout(usize),
    Pause(usize, u64),
    /// Node, outbound (else inbound), length.
    Cut(usize, bool, u64),
    Crash,
}

struct Op {
    node: usize,
    proposal: Proposal,
    /// Log index once committed (1-based, as Raft's).
    index: u64,
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
    /// Time of the last check, and whether exactly one node held then.
    last_check: (u64, bool),
    /// Local time zero of every node, as an instant (the speaker's clock is instants).
    origin: Instant,
}

pub fn run(p: Params) -> Report {
    let mut rng = Rng(p.seed);
    let nodes = (0..p.drifts.len())
        .map(|j| Node {
            drift: p.drifts[j],
            offset_ns: rng.range(0, 1_000_000_000_000),
            state: ClusterState::default(),
            applied: 0,
            machine: LeaseMachine::new(GROUP, j as NodeId, p.timing),
            pending: Vec::new(),
            paused_until: 0,
            cut_out_until: 0,
            cut_in_until: 0,
            crashed: false,
            has_addr: false,
            kernel_end: 0,
            hold: Hold::new(
                Duration::from_secs(3),
                p.timing.backstop == KernelBackstop::Nftables,
                Permit::Denied,
            ),
            permit_seen: Permit::Denied,
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
        last_check: (0, false),
        origin: Instant::now(),
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
            self.nodes[j].machine.on_applied(lease, None, 0, now);
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
            for _ in 0..self.p.cuts_per_node {
                let (when, len) = (self.rng.range(0, end), self.rng.range(1, self.p.max_cut_us));
                let outbound = self.rng.chance(0.5);
                self.at(when, Ev::Cut(j, outbound, len));
            }
        }
        if let Some(crash) = self.p.crash_holder_at {
            self.at(crash.as_micros() as u64, Ev::Crash);
        }
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            if t > end {
                break;
            }
            self.report.events += 1;
            self.handle(t, ev);
            self.check(t);
        }
        self.report
    }

    /// Postpones `ev` to the end of node `j`'s pause (or of its inbound cut, for what
    /// arrives from the log); true if it did.
    fn deferred(&mut self, j: usize, t: u64, ev: Ev, inbound: bool) -> bool {
        let n = &self.nodes[j];
        let until = if inbound {
            n.paused_until.max(n.cut_in_until)
        } else {
            n.paused_until
        };
        if t < until {
            self.at(until, ev);
            return true;
        }
        false
    }

    fn handle(&mut self, t: u64, ev: Ev) {
        match ev {
            Ev::Tick(j) if !self.nodes[j].crashed && !self.deferred(j, t, ev, false) => {
                self.tick(j, t)
            }
            Ev::Commit(op) => self.commit(op, t),
            Ev::Deliver(j, idx) if !self.nodes[j].crashed && !self.deferred(j, t, ev, true) => {
                self.deliver(j, idx, t)
            }
            Ev::Response(op) => {
                let j = self.ops[op].node;
                if !self.nodes[j].crashed && !self.deferred(j, t, ev, true) {
                    self.response(op, t);
                }
            }
            Ev::Timeout(op) => {
                let j = self.ops[op].node;
                if !self.nodes[j].crashed
                    && !self.deferred(j, t, ev, false)
                    && self.nodes[j].forget(op)
                {
                    let id = self.ops[op].proposal.id;
                    self.nodes[j]
                        .machine
                        .on_failure(id, "no answer within the wait");
                    self.drive(j, t);
                }
            }
            Ev::Pause(j, len) => {
                let n = &mut self.nodes[j];
                n.paused_until = n.paused_until.max(t + len);
            }
            Ev::Cut(j, outbound, len) => {
                let n = &mut self.nodes[j];
                let until = if outbound {
                    &mut n.cut_out_until
                } else {
                    &mut n.cut_in_until
                };
                *until = (*until).max(t + len);
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
        let now = self.nodes[j].instant(self.origin, t);
        let step = self.nodes[j].hold.on_deadline(now);
        self.carry_out(j, t, step);
        let n = &mut self.nodes[j];
        if release && n.machine.may_hold(n.local(t)) {
            // Planned handover: VRRP gives the group up for a while.
            n.quiet_until = t + 2_000_000;
        }
        let next = t + n.true_span(TICK);
        self.drive(j, t);
        self.at(next, Ev::Tick(j));
    }

    /// Runs node `j`'s machine after an input, then does what it says: fence the VIP to
    /// the permit, send its proposal.
    fn drive(&mut self, j: usize, t: u64) {
        let n = &mut self.nodes[j];
        let now = n.local(t);
        n.machine.set_live(t >= n.cut_in_until);
        let wants = t >= n.quiet_until && n.machine.able();
        n.machine.set_wants(wants);
        n.machine.tick(now);
        let proposal = n.machine.poll_proposal();
        self.fence(j, t, wants);
        if let Some(proposal) = proposal {
            self.propose(j, proposal, t);
        }
    }

    /// What the speaker does: VRRP wants the group when the lease machine does (it is
    /// the worst case), the permit goes to the hold machine when it changes, and the
    /// hold machine's steps open or close the VIP.
    fn fence(&mut self, j: usize, t: u64, wants: bool) {
        let n = &mut self.nodes[j];
        let now = n.instant(self.origin, t);
        let permit = match n.machine.permit() {
            Some(until) => Permit::Until(self.origin + until),
            None => Permit::Denied,
        };
        let mut steps = vec![n.hold.set_wants(wants, now)];
        if permit != n.permit_seen {
            n.permit_seen = permit;
            steps.push(n.hold.on_permit(permit, now));
        }
        for step in steps {
            self.carry_out(j, t, step);
        }
    }

    /// The speaker's side effects, worst case: whatever the kernel is told ends
    /// `kernel_late` late.
    fn carry_out(&mut self, j: usize, t: u64, step: HoldStep) {
        let kernel_late = self.p.timing.kernel_late;
        let origin = self.origin;
        let n = &mut self.nodes[j];
        let now = n.instant(origin, t);
        let (lifetime, fence_until) = match step {
            HoldStep::Nothing | HoldStep::Refresh { .. } => return,
            HoldStep::Drop(_) => return n.drop_addr(t),
            HoldStep::Take {
                lifetime,
                fence_until,
            }
            | HoldStep::Extend {
                lifetime,
                fence_until,
            } => (lifetime, fence_until),
        };
        let end = match self.p.timing.backstop {
            // The nftables element ends the hold; the lifetime is only cleanup.
            KernelBackstop::Nftables => fence_until.map_or(lifetime, |u| u - now),
            KernelBackstop::AddressLifetime => lifetime,
        };
        n.has_addr = true;
        n.kernel_end = t + n.true_span(end + kernel_late);
        self.report.installs += 1;
    }

    fn propose(&mut self, j: usize, proposal: Proposal, t: u64) {
        let op = self.ops.len();
        let wait = self.nodes[j].true_span(proposal.wait);
        self.ops.push(Op {
            node: j,
            proposal,
            index: 0,
            outcome: None,
        });
        self.nodes[j].pending.push(op);
        let cut = t < self.nodes[j].cut_out_until;
        if !cut && !self.rng.chance(self.p.loss) {
            let (lo, hi) = self.p.commit_delay_us;
            let delay = self.rng.range(lo, hi);
            self.at(t + delay, Ev::Commit(op));
        }
        self.at(t + wait, Ev::Timeout(op));
    }

    fn commit(&mut self, op: usize, t: u64) {
        let command = Command::Lease(self.ops[op].proposal.command.clone());
        let outcome = self.leader.apply(&command);
        let proposer = self.ops[op].node;
        if let (LeaseCommand::Acquire { node, .. }, Outcome::LeaseGranted { .. }) =
            (&self.ops[op].proposal.command, &outcome)
        {
            self.report.acquisitions.push((t, *node));
        }
        self.ops[op].outcome = Some(outcome);
        self.log.push(op);
        self.ops[op].index = self.log.len() as u64;
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
            let command = Command::Lease(self.ops[op].proposal.command.clone());
            let n = &mut self.nodes[j];
            let outcome = n.state.apply(&command);
            n.applied += 1;
            if Some(&outcome) != self.ops[op].outcome.as_ref() {
                self.report
                    .violations
                    .push(format!("node {j} diverged at entry {op}"));
            }
        }
        let n = &mut self.nodes[j];
        let (lease, now) = (n.state.lease(GROUP), n.local(t));
        n.machine.on_applied(lease, None, n.applied as u64, now);
        self.drive(j, t);
    }

    fn response(&mut self, op: usize, t: u64) {
        let j = self.ops[op].node;
        if !self.nodes[j].forget(op) {
            // Given up on (the wait ran out): tandemd drops such answers unread.
            return;
        }
        let (id, index) = (self.ops[op].proposal.id, self.ops[op].index);
        let outcome = self.ops[op].outcome.clone().expect("answered after commit");
        let n = &mut self.nodes[j];
        let now = n.local(t);
        n.machine.on_outcome(id, index, &outcome, now);
        self.drive(j, t);
    }

    fn check(&mut self, t: u64) {
        let holding: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| self.nodes[j].machine.may_hold(self.nodes[j].local(t)))
            .collect();
        let present: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| self.nodes[j].present(t))
            .collect();
        if (holding.len() > 1 || present.len() > 1) && self.report.violations.len() < 5 {
            self.report.violations.push(format!(
                "at {t} µs: may_hold {holding:?}, address possibly present {present:?}"
            ));
        }
        let (since, held) = self.last_check;
        if held {
            self.report.held_us += t - since;
        }
        self.last_check = (t, holding.len() == 1);
    }
}

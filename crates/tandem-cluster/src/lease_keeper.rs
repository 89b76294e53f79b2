//! The lease keeper: one tokio task per VIP group that drives a
//! [`LeaseMachine`](crate::lease_machine::LeaseMachine) (where every lease decision lives)
//! with this node's monotonic clock, sends its proposals through [`Ops`], and tells the
//! VRRP speaker until when it may hold the VIP.
//!
//! The speaker says whether VRRP *wants* the group (it is master); the keeper answers with
//! `until`: `Some(t)` while this node holds a confirmed lease (the end of its hold window),
//! `None` otherwise. The speaker fences the VIP in the kernel until `t` and removes it at
//! `t` at the latest, so a node whose keeper stalls still lets go.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use crate::lease_machine::GroupView;
use crate::lease_machine::{LeaseMachine, Proposal};
use crate::node::{ClusterOp, LiveProbe, OpError, OpReply, Ops};
use crate::raft::{AppliedState, NodeId, Response};
use crate::state::{Command, LeaseTiming};

/// One group's link to its VRRP speaker.
pub struct GroupLink {
    /// `Some(t)`: may hold until `t`; `None`: may not hold.
    pub until: watch::Receiver<Option<Instant>>,
    /// Set by the speaker: whether VRRP wants to be master of the group.
    pub wants: watch::Sender<bool>,
    /// The group is pinned to another node (`tandemctl vip move`).
    pub demoted: watch::Receiver<bool>,
    /// The group is pinned to this node: take over as soon as the old master leaves.
    pub designated: watch::Receiver<bool>,
    /// Another node's lease lapsed (see `LeaseMachine::lapsed`).
    pub lapsed: watch::Receiver<bool>,
    /// Operator override (`tandemctl vip force-hold`): hold without a lease.
    pub forced: watch::Receiver<bool>,
    /// `false` while this node can neither keep nor get a lease: it holds none and hears
    /// no live leader with a majority. VRRP then stops contending (Fault), so that a node
    /// that can hold the VIP takes it; a one-way cut no longer leaves it held by nobody.
    pub able: watch::Receiver<bool>,
}

enum Control {
    Release(oneshot::Sender<()>),
    Force(bool, oneshot::Sender<Result<String, String>>),
}

/// The keeper of every VIP group of this node.
pub struct LeaseKeeper {
    me: NodeId,
    timing: LeaseTiming,
    ops: Arc<Ops>,
    live: LiveProbe,
    applied: watch::Receiver<AppliedState>,
    groups: Mutex<BTreeMap<String, mpsc::Sender<Control>>>,
    views: Arc<Mutex<BTreeMap<String, GroupView>>>,
}

impl LeaseKeeper {
    pub fn new(
        me: NodeId,
        timing: LeaseTiming,
        ops: Arc<Ops>,
        live: LiveProbe,
        applied: watch::Receiver<AppliedState>,
    ) -> Arc<LeaseKeeper> {
        Arc::new(LeaseKeeper {
            me,
            timing,
            ops,
            live,
            applied,
            groups: Mutex::default(),
            views: Arc::default(),
        })
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// Start keeping `group` (once per group) and return the speaker's link.
    pub fn attach(&self, group: &str) -> GroupLink {
        let (until_tx, until) = watch::channel(None);
        let (wants, wants_rx) = watch::channel(false);
        let (demoted_tx, demoted) = watch::channel(false);
        let (designated_tx, designated) = watch::channel(false);
        let (lapsed_tx, lapsed) = watch::channel(false);
        let (forced_tx, forced) = watch::channel(false);
        let (able_tx, able) = watch::channel(true);
        let (control_tx, control) = mpsc::channel(8);
        lock(&self.groups).insert(group.to_string(), control_tx);
        let task = GroupTask {
            machine: LeaseMachine::new(group, self.me, self.timing),
            ops: self.ops.clone(),
            live: self.live.clone(),
            able: able_tx,
            applied: self.applied.clone(),
            wants: wants_rx,
            until: until_tx,
            demoted: demoted_tx,
            designated: designated_tx,
            lapsed: lapsed_tx,
            forced: forced_tx,
            control,
            views: self.views.clone(),
            origin: Instant::now(),
            inflight: JoinSet::new(),
        };
        tokio::spawn(task.run());
        GroupLink {
            until,
            wants,
            demoted,
            designated,
            lapsed,
            forced,
            able,
        }
    }

    /// Planned shutdown: drop every hold and release the leases, waiting up to `timeout`.
    pub async fn release_all(&self, timeout: Duration) {
        let senders: Vec<_> = lock(&self.groups).values().cloned().collect();
        let mut waits = Vec::new();
        for tx in senders {
            let (done, wait) = oneshot::channel();
            if tx.send(Control::Release(done)).await.is_ok() {
                waits.push(wait);
            }
        }
        let _ = tokio::time::timeout(timeout, async {
            for wait in waits {
                let _ = wait.await;
            }
        })
        .await;
    }

    /// Turn the operator override on or off for `group`.
    pub async fn force_hold(&self, group: &str, on: bool) -> Result<String, String> {
        let tx = lock(&self.groups)
            .get(group)
            .cloned()
            .ok_or_else(|| format!("vip_group {group:?} has no VRRP instance on this node"))?;
        let (done, wait) = oneshot::channel();
        tx.send(Control::Force(on, done))
            .await
            .map_err(|_| "the lease keeper stopped".to_string())?;
        wait.await
            .map_err(|_| "the lease keeper stopped".to_string())?
    }

    pub fn views(&self) -> Vec<GroupView> {
        lock(&self.views).values().cloned().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A proposal's id and its answer.
type Answered = (u64, Result<OpReply, OpError>);

/// The I/O around one group's [`LeaseMachine`]: the applied state, the speaker's wants,
/// the liveness probe and operator controls go in; proposals go to [`Ops`]; the permit,
/// `able`, `demoted` and `forced` go out on watch channels, the view to status.
struct GroupTask {
    machine: LeaseMachine,
    ops: Arc<Ops>,
    live: LiveProbe,
    able: watch::Sender<bool>,
    applied: watch::Receiver<AppliedState>,
    wants: watch::Receiver<bool>,
    until: watch::Sender<Option<Instant>>,
    demoted: watch::Sender<bool>,
    designated: watch::Sender<bool>,
    lapsed: watch::Sender<bool>,
    forced: watch::Sender<bool>,
    control: mpsc::Receiver<Control>,
    views: Arc<Mutex<BTreeMap<String, GroupView>>>,
    origin: Instant,
    /// The machine keeps at most one proposal in flight.
    inflight: JoinSet<Answered>,
}

/// Ticks at least this often (the liveness probe has no event of its own).
const TICK: Duration = Duration::from_millis(50);

impl GroupTask {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn run(mut self) {
        let mut releases: Vec<oneshot::Sender<()>> = Vec::new();
        let mut wants_open = true;
        self.observe_applied();
        loop {
            self.step();
            if self.machine.released() {
                for done in releases.drain(..) {
                    let _ = done.send(());
                }
            }
            // Wake at the machine's next deadline (a renewal, the end of a contender's
            // wait), or after one tick at the latest.
            let next = self
                .machine
                .next_deadline()
                .map_or(TICK, |d| d.saturating_sub(self.now()).min(TICK));
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                changed = self.applied.changed() => match changed {
                    Ok(()) => self.observe_applied(),
                    Err(_) => {
                        // Raft stopped: nothing can be renewed any more.
                        let now = self.now();
                        self.machine.on_cluster_stopped(now);
                        self.publish();
                        return;
                    }
                },
                changed = self.wants.changed(), if wants_open => if changed.is_err() {
                    wants_open = false;
                },
                Some(done) = self.inflight.join_next() => match done {
                    Ok((id, answer)) => self.on_answer(id, answer),
                    Err(e) => tracing::warn!(group = %self.machine.group(), error = %e, "lease proposal task failed"),
                },
                control = self.control.recv() => match control {
                    Some(Control::Release(done)) => {
                        self.machine.close();
                        releases.push(done);
                    }
                    Some(Control::Force(on, done)) => {
                        let now = self.now();
                        let said = self.machine.set_forced(on, now);
                        self.forced.send_replace(on);
                        let _ = done.send(Ok(said));
                    }
                    None => {}
                },
            }
        }
    }

    fn observe_applied(&mut self) {
        let now = self.now();
        let applied = self.applied.borrow_and_update();
        let group = self.machine.group().to_string();
        let index = applied.last_applied.map_or(0, |l| l.index);
        let (lease, pin) = (applied.state.lease(&group), applied.state.pin(&group));
        drop(applied);
        self.machine.on_applied(lease, pin, index, now);
    }

    /// Feeds the machine what changed, runs its rules, and carries out what it says.
    fn step(&mut self) {
        let now = self.now();
        self.machine.set_wants(*self.wants.borrow());
        self.machine.set_live((self.live)());
        self.machine.tick(now);
        if let Some(proposal) = self.machine.poll_proposal() {
            self.send(proposal);
        }
        self.publish();
        let demoted = self.machine.demoted();
        self.demoted
            .send_if_modified(|d| std::mem::replace(d, demoted) != demoted);
        let designated = self.machine.designated();
        self.designated
            .send_if_modified(|d| std::mem::replace(d, designated) != designated);
        let lapsed = self.machine.lapsed();
        self.lapsed
            .send_if_modified(|l| std::mem::replace(l, lapsed) != lapsed);
        let able = self.machine.able();
        self.able
            .send_if_modified(|a| std::mem::replace(a, able) != able);
        let view = self.machine.view(now);
        lock(&self.views).insert(view.group.clone(), view);
    }

    fn send(&mut self, proposal: Proposal) {
        let ops = self.ops.clone();
        self.inflight.spawn(async move {
            let op = ClusterOp::Write(Command::Lease(proposal.command));
            (proposal.id, ops.run_within(op, false, proposal.wait).await)
        });
    }

    fn on_answer(&mut self, id: u64, answer: Result<OpReply, OpError>) {
        let now = self.now();
        match answer {
            Ok(OpReply::Written {
                response: Response::Applied(outcome),
                index,
            }) => self.machine.on_outcome(id, index, &outcome, now),
            Ok(other) => {
                tracing::warn!(group = %self.machine.group(), ?other, "unexpected answer to a lease proposal");
                self.machine.on_failure(id, "unexpected answer");
            }
            Err(e) => self.machine.on_failure(id, &e.to_string()),
        }
        self.publish();
    }

    fn publish(&self) {
        let until = self.machine.permit().map(|u| self.origin + u);
        self.until.send_if_modified(|current| {
            let changed = *current != until;
            *current = until;
            changed
        });
    }
}

//! The lease keeper: one task per VIP group that follows the clock rules of
//! [`crate::state::clock`] with this node's monotonic clock, proposes Acquire / Renew /
//! Release through [`Ops`], and tells the VRRP speaker until when it may hold the VIP.
//!
//! The speaker says whether VRRP *wants* the group (it is master); the keeper answers with
//! `until`: `Some(t)` while this node holds a confirmed lease (the end of its hold window),
//! `None` otherwise. The speaker installs the addresses with a kernel lifetime that ends by
//! `t` and removes them at `t` at the latest, so a node whose keeper stalls still lets go.
//!
//! Rules the task follows each tick (50 ms) and after every applied change:
//! - Holding and VRRP no longer wants it (a higher-priority node took over, a pin moved
//!   the group, shutdown): drop the hold first, then propose Release. Contenders may
//!   acquire at once after a Release, so planned moves wait for no lease term.
//! - Holding: renew every `renew_every`; a refused renewal or a lease applied with another
//!   holder or epoch ends the hold at once.
//! - The state says this node holds the lease but the hold is not confirmed here (an
//!   Acquire whose answer was lost, or a restart): renew it if VRRP wants the group
//!   (only this node can renew that epoch, so this is as safe as any renewal), else
//!   release it so that nobody has to wait for it to time out.
//! - Not holding and VRRP wants the group: Acquire once the contender rule allows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::node::{ClusterOp, LiveProbe, OpError, OpReply, Ops};
use crate::raft::{AppliedState, NodeId, Response};
use crate::state::{
    Command, ContenderClock, HolderClock, Lease, LeaseCommand, LeaseTiming, Outcome,
};

/// One group's link to its VRRP speaker.
pub struct GroupLink {
    /// `Some(t)`: may hold until `t`; `None`: may not hold.
    pub until: watch::Receiver<Option<Instant>>,
    /// Set by the speaker: whether VRRP wants to be master of the group.
    pub wants: watch::Sender<bool>,
    /// The group is pinned to another node (`tandemctl vip move`).
    pub demoted: watch::Receiver<bool>,
    /// Operator override (`tandemctl vip force-hold`): hold without a lease.
    pub forced: watch::Receiver<bool>,
    /// `false` while this node can neither keep nor get a lease: it holds none and hears
    /// no live leader with a majority. VRRP then stops contending (Fault), so that a node
    /// that can hold the VIP takes it; a one-way cut no longer leaves it held by nobody.
    pub able: watch::Receiver<bool>,
}

/// What the keeper knows of one group, for status and metrics.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GroupView {
    pub group: String,
    pub wants: bool,
    /// Holds a confirmed lease now.
    pub holding: bool,
    /// Time left in the hold window (0 when not holding).
    pub hold_left_ms: u64,
    pub epoch: Option<u64>,
    pub demoted: bool,
    pub forced: bool,
    /// See [`GroupLink::able`].
    pub able: bool,
    pub lease: Lease,
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
        let (forced_tx, forced) = watch::channel(false);
        let (able_tx, able) = watch::channel(true);
        let (control_tx, control) = mpsc::channel(8);
        lock(&self.groups).insert(group.to_string(), control_tx);
        let task = GroupTask {
            group: group.to_string(),
            me: self.me,
            timing: self.timing,
            ops: self.ops.clone(),
            live: self.live.clone(),
            able: able_tx,
            applied: self.applied.clone(),
            wants: wants_rx,
            until: until_tx,
            demoted: demoted_tx,
            forced: forced_tx,
            control,
            views: self.views.clone(),
            holder: HolderClock::new(self.timing),
            contender: ContenderClock::new(self.timing),
            epoch: None,
            answered_at: 0,
            origin: Instant::now(),
            inflight: JoinSet::new(),
            closing: false,
            force_pending: false,
        };
        tokio::spawn(task.run());
        GroupLink {
            until,
            wants,
            demoted,
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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Acquire,
    Renew,
    Release,
    Force,
}

type Proposal = (Kind, Duration, Result<OpReply, OpError>);

struct GroupTask {
    group: String,
    me: NodeId,
    timing: LeaseTiming,
    ops: Arc<Ops>,
    live: LiveProbe,
    able: watch::Sender<bool>,
    applied: watch::Receiver<AppliedState>,
    wants: watch::Receiver<bool>,
    until: watch::Sender<Option<Instant>>,
    demoted: watch::Sender<bool>,
    forced: watch::Sender<bool>,
    control: mpsc::Receiver<Control>,
    views: Arc<Mutex<BTreeMap<String, GroupView>>>,
    holder: HolderClock,
    contender: ContenderClock,
    /// The epoch of the lease this node holds in the replicated state (confirmed or not).
    epoch: Option<u64>,
    /// The log index of the last lease answer this node acted on. A local applied state
    /// older than it (this node applies the log a moment after the leader answered) is
    /// not evidence that the lease was lost.
    answered_at: u64,
    origin: Instant,
    /// At most one proposal in flight.
    inflight: JoinSet<Proposal>,
    /// Shutting down: never acquire again.
    closing: bool,
    /// force-hold was turned on while a proposal was in flight: propose ForceHold next.
    force_pending: bool,
}

impl GroupTask {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut releases: Vec<oneshot::Sender<()>> = Vec::new();
        let mut wants_open = true;
        loop {
            self.step();
            if self.epoch.is_none() && self.inflight.is_empty() {
                for done in releases.drain(..) {
                    let _ = done.send(());
                }
            }
            tokio::select! {
                _ = tick.tick() => {}
                changed = self.applied.changed() => if changed.is_err() {
                    // Raft stopped: nothing can be renewed any more.
                    self.lose("the cluster node stopped");
                    self.publish();
                    return;
                },
                changed = self.wants.changed(), if wants_open => if changed.is_err() {
                    wants_open = false;
                },
                Some(done) = self.inflight.join_next() => match done {
                    Ok(proposal) => self.on_result(proposal),
                    Err(e) => tracing::warn!(group = %self.group, error = %e, "lease proposal task failed"),
                },
                control = self.control.recv() => match control {
                    Some(Control::Release(done)) => {
                        self.closing = true;
                        releases.push(done);
                    }
                    Some(Control::Force(on, done)) => {
                        let _ = done.send(self.force(on));
                    }
                    None => {}
                },
            }
        }
    }

    /// One pass of the rules (see the module docs).
    fn step(&mut self) {
        let now = self.now();
        let applied = self.applied.borrow().clone();
        let lease = applied.state.lease(&self.group);
        self.contender.observed(lease, now);
        let pinned_elsewhere = applied
            .state
            .pin(&self.group)
            .is_some_and(|node| node != self.me);
        self.demoted
            .send_if_modified(|d| std::mem::replace(d, pinned_elsewhere) != pinned_elsewhere);

        let applied_index = applied.last_applied.map_or(0, |l| l.index);
        let stale = applied_index < self.answered_at;
        if let Some(epoch) = self.epoch.filter(|_| !stale) {
            if lease.holder != Some(self.me) || lease.epoch != epoch {
                let who = lease
                    .holder
                    .map_or("nobody".into(), |n| format!("node {n}"));
                self.lose(&format!(
                    "the lease is now held by {who} (epoch {})",
                    lease.epoch
                ));
            }
        }
        if self.epoch.is_none()
            && !stale
            && lease.holder == Some(self.me)
            && self.inflight.is_empty()
        {
            // Ours in the state, not confirmed here: renewed or released below.
            self.epoch = Some(lease.epoch);
        }
        let wants = *self.wants.borrow() && !self.closing;
        if self.inflight.is_empty()
            && std::mem::take(&mut self.force_pending)
            && *self.forced.borrow()
        {
            self.propose_force();
        }
        if self.inflight.is_empty() {
            match self.epoch {
                Some(epoch) if !wants => {
                    if self.holder.valid_until().is_some() {
                        tracing::info!(group = %self.group, epoch, "releasing the VIP lease (VRRP gave up the group)");
                    }
                    self.holder.release(now);
                    self.propose(
                        Kind::Release,
                        LeaseCommand::Release {
                            group: self.group.clone(),
                            node: self.me,
                            epoch,
                        },
                    );
                }
                Some(epoch)
                    if self.holder.valid_until().is_none() || self.holder.should_renew(now) =>
                {
                    self.propose(
                        Kind::Renew,
                        LeaseCommand::Renew {
                            group: self.group.clone(),
                            node: self.me,
                            epoch,
                        },
                    );
                }
                None if wants => {
                    if let Some(seen) = self.contender.may_acquire(now) {
                        self.propose(
                            Kind::Acquire,
                            LeaseCommand::Acquire {
                                group: self.group.clone(),
                                node: self.me,
                                seen,
                            },
                        );
                    }
                }
                _ => {}
            }
        }
        self.publish();
        let able = self.update_able(now);
        let view = GroupView {
            group: self.group.clone(),
            wants,
            holding: self.holder.may_hold(now),
            hold_left_ms: self
                .holder
                .valid_until()
                .map_or(0, |u| u.saturating_sub(now).as_millis() as u64),
            epoch: self.epoch,
            demoted: pinned_elsewhere,
            forced: *self.forced.borrow(),
            able,
            lease,
        };
        lock(&self.views).insert(self.group.clone(), view);
    }

    /// Able to hold: holding now, or a live leader with a majority is heard (so an
    /// Acquire or Renew can commit). Logged on change only.
    fn update_able(&mut self, now: Duration) -> bool {
        let able = self.holder.may_hold(now) || *self.forced.borrow() || (self.live)();
        let changed = self
            .able
            .send_if_modified(|a| std::mem::replace(a, able) != able);
        if changed && !able {
            tracing::warn!(group = %self.group,
                "no VIP lease can be had here: this node hears no live Raft leader with a majority \
                 (cut off, or the cluster lost its majority); VRRP stops contending so that a node \
                 that can hold the VIP takes it");
        } else if changed {
            tracing::info!(group = %self.group, "a live Raft leader is heard again: VRRP contends for the VIP again");
        }
        able
    }

    fn propose(&mut self, kind: Kind, command: LeaseCommand) {
        let ops = self.ops.clone();
        let sent = self.now();
        // A renewal answered after the hold window is worth nothing; bound the wait by it.
        let bound = match kind {
            Kind::Release | Kind::Force => Duration::from_secs(2),
            Kind::Acquire | Kind::Renew => self.timing.hold_window(),
        };
        self.inflight.spawn(async move {
            let result = ops
                .run_within(ClusterOp::Write(Command::Lease(command)), false, bound)
                .await;
            (kind, sent, result)
        });
    }

    fn on_result(&mut self, (kind, sent, result): Proposal) {
        let outcome = match result {
            Ok(OpReply::Written {
                response: Response::Applied(outcome),
                index,
            }) => {
                self.answered_at = self.answered_at.max(index);
                outcome
            }
            Ok(other) => {
                tracing::warn!(group = %self.group, ?other, "unexpected answer to a lease proposal");
                return;
            }
            Err(e) => {
                tracing::debug!(group = %self.group, ?kind, error = %e, "lease proposal failed; retrying");
                return;
            }
        };
        match (kind, outcome) {
            (Kind::Acquire | Kind::Force | Kind::Renew, Outcome::LeaseGranted { lease, .. })
                if lease.holder == Some(self.me) =>
            {
                if kind != Kind::Renew || self.holder.valid_until().is_none() {
                    tracing::info!(group = %self.group, epoch = lease.epoch, ?kind, "VIP lease held");
                }
                self.epoch = Some(lease.epoch);
                self.holder.confirmed(sent);
            }
            (Kind::Renew, Outcome::LeaseRefused { current, .. }) => {
                let who = current
                    .holder
                    .map_or("nobody".into(), |n| format!("node {n}"));
                self.lose(&format!("renewal refused; the lease is held by {who}"));
            }
            (Kind::Release, Outcome::LeaseGranted { .. } | Outcome::LeaseRefused { .. }) => {
                self.epoch = None;
            }
            (_, outcome) => {
                tracing::debug!(group = %self.group, ?kind, ?outcome, "lease proposal not granted");
            }
        }
        self.publish();
    }

    fn lose(&mut self, why: &str) {
        if self.holder.may_hold(self.now()) {
            tracing::warn!(group = %self.group, reason = why, "VIP lease lost: the VIP is removed");
        } else if self.holder.valid_until().is_some() {
            // The hold window ended earlier and the VIP went with it (logged then).
            tracing::info!(group = %self.group, reason = why, "VIP lease is gone (its hold window had already ended)");
        }
        self.holder.reset();
        self.epoch = None;
    }

    fn force(&mut self, on: bool) -> Result<String, String> {
        self.forced.send_replace(on);
        if on {
            tracing::warn!(group = %self.group,
                "OPERATOR OVERRIDE: force-hold on. This node holds the VIP whenever VRRP is master, \
                 WITHOUT a lease: split-brain protection is off for this group until \
                 `tandemctl vip force-hold --off`");
            if self.inflight.is_empty() {
                self.propose_force();
            } else {
                self.force_pending = true;
            }
            Ok(format!("force-hold on for {}: the VIP is held without a lease; a ForceHold was proposed to the cluster too (it commits only if a majority is reachable)", self.group))
        } else {
            tracing::warn!(group = %self.group, "operator override off: the VIP is held only under a lease again");
            Ok(format!("force-hold off for {}", self.group))
        }
    }

    fn propose_force(&mut self) {
        self.propose(
            Kind::Force,
            LeaseCommand::ForceHold {
                group: self.group.clone(),
                node: self.me,
            },
        );
    }

    fn publish(&self) {
        let until = match self.epoch {
            Some(_) => self.holder.valid_until().map(|u| self.origin + u),
            None => None,
        };
        self.until.send_if_modified(|current| {
            let changed = *current != until;
            *current = until;
            changed
        });
    }
}

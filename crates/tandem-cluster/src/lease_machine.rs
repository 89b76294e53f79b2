//! One VIP group's lease decisions as a machine with no I/O and no clock of its own
//! (quinn-proto's style): the caller feeds it what happened, with the local monotonic time
//! as a `Duration` since any origin, and polls what to do.
//!
//! Inputs: the applied lease and pin ([`LeaseMachine::on_applied`]), whether VRRP wants the
//! group ([`LeaseMachine::set_wants`]), whether a live Raft leader with a majority is heard
//! ([`LeaseMachine::set_live`]), the answers to its proposals
//! ([`LeaseMachine::on_outcome`], [`LeaseMachine::on_failure`]), the operator's force-hold
//! and a planned shutdown. After any of them, [`LeaseMachine::tick`] applies the rules.
//!
//! Outputs: proposals ([`LeaseMachine::poll_proposal`]; Acquires and Renews are
//! pipelined, a Release or ForceHold goes alone), one hold
//! permit ([`LeaseMachine::permit`]: the end of the hold window, or `None`), whether this
//! node can hold at all ([`LeaseMachine::able`]), and when to tick next
//! ([`LeaseMachine::next_deadline`]).
//!
//! The rules, each tick:
//! - Holding and VRRP no longer wants it (a higher-priority node took over, a pin moved
//!   the group, shutdown): drop the hold first, then propose Release. Contenders may
//!   acquire at once after a Release, so planned moves wait for no lease term.
//! - Holding: renew every `renew_every`, without waiting for the previous renewal's answer
//!   (up to one hold window of them in flight): a lost renewal costs one renew period, not a
//!   whole wait. A refused renewal or a lease applied with another holder or epoch ends the
//!   hold at once.
//! - The state says this node holds the lease but the hold is not confirmed here (an
//!   Acquire whose answer was lost, or a restart): renew it if VRRP wants the group
//!   (only this node can renew that epoch, so this is as safe as any renewal), else
//!   release it so that nobody has to wait for it to time out.
//! - Not holding and VRRP wants the group: Acquire once the contender rule allows, and
//!   again every `renew_every` while none is answered (the first may have gone to a leader
//!   that is gone).
//!
//! The timing rules themselves live in [`crate::state::clock`]; the keeper
//! ([`crate::lease_keeper`]) drives this machine with tokio, and the safety simulation
//! (tests/state_sim) drives the same machine on a virtual clock.

use std::time::Duration;

use crate::state::{
    ContenderClock, HolderClock, Lease, LeaseCommand, LeaseTiming, NodeId, Outcome,
};

/// What a proposal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalKind {
    Acquire,
    Renew,
    Release,
    Force,
}

/// A lease command to propose to the cluster. Answer it with [`LeaseMachine::on_outcome`]
/// or [`LeaseMachine::on_failure`] quoting `id`; give up waiting after `wait`.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub id: u64,
    pub kind: ProposalKind,
    pub command: LeaseCommand,
    /// A renewal answered after the hold window is worth nothing, so the wait for an
    /// Acquire or Renew is bounded by it; Release and ForceHold get 2 s.
    pub wait: Duration,
}

/// What the machine knows of one group, for status and metrics.
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
    /// See [`LeaseMachine::able`].
    pub able: bool,
    pub lease: Lease,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: u64,
    kind: ProposalKind,
    /// Local send time: a granted Acquire or Renew holds from here.
    sent: Duration,
}

#[derive(Clone, Copy, Debug, Default)]
struct Applied {
    lease: Lease,
    pin: Option<NodeId>,
    index: u64,
}

/// The lease machine of one VIP group on one node (see the module docs).
#[derive(Debug)]
pub struct LeaseMachine {
    group: String,
    me: NodeId,
    timing: LeaseTiming,
    holder: HolderClock,
    contender: ContenderClock,
    applied: Applied,
    /// The epoch of the lease this node holds in the replicated state (confirmed or not).
    epoch: Option<u64>,
    /// The log index of the last lease answer acted on. A local applied state older than
    /// it (this node applies the log a moment after the leader answered) is not evidence
    /// that the lease was lost.
    answered_at: u64,
    /// Proposals awaiting their answer: Acquires and Renews, one per `renew_every` and a
    /// hold window's worth at most, or one Release or ForceHold alone.
    inflight: Vec<InFlight>,
    /// Local send time of the latest Acquire or Renew, answered or not.
    last_sent: Option<Duration>,
    outbox: Option<Proposal>,
    next_id: u64,
    wants: bool,
    live: bool,
    able: bool,
    forced: bool,
    /// force-hold was turned on while a proposal was in flight: propose ForceHold next.
    force_pending: bool,
    /// Shutting down: never acquire again.
    closing: bool,
    /// Another node holds the lease and has not renewed it for a whole contender wait.
    lapsed: bool,
    /// This node's hold ran out unconfirmed and it released the lease: the applied index
    /// then. Until an answer comes or the log moves past it, it cannot hold (see `able`).
    stalled_at: Option<u64>,
    /// Local time of the last answer to any proposal.
    last_answer: Option<Duration>,
}

impl LeaseMachine {
    pub fn new(group: &str, me: NodeId, timing: LeaseTiming) -> Self {
        LeaseMachine {
            group: group.to_string(),
            me,
            timing,
            holder: HolderClock::new(timing),
            contender: ContenderClock::new(timing),
            applied: Applied::default(),
            epoch: None,
            answered_at: 0,
            inflight: Vec::new(),
            last_sent: None,
            outbox: None,
            next_id: 0,
            wants: false,
            live: true,
            able: true,
            forced: false,
            force_pending: false,
            closing: false,
            lapsed: false,
            stalled_at: None,
            last_answer: None,
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The group's lease and pin as applied here at log index `index`, observed at `now`.
    pub fn on_applied(&mut self, lease: Lease, pin: Option<NodeId>, index: u64, now: Duration) {
        self.applied = Applied { lease, pin, index };
        self.contender.observed(lease, now);
    }

    /// Whether VRRP wants to be master of the group.
    pub fn set_wants(&mut self, wants: bool) {
        self.wants = wants;
    }

    /// Whether a live Raft leader with a majority is heard (so a proposal can commit).
    pub fn set_live(&mut self, live: bool) {
        self.live = live;
    }

    /// The cluster node stopped: nothing can be renewed any more.
    pub fn on_cluster_stopped(&mut self, now: Duration) {
        self.lose("the cluster node stopped", now);
    }

    /// Planned shutdown: release the lease and never acquire again.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Operator override on or off; returns what to tell the operator.
    pub fn set_forced(&mut self, on: bool, now: Duration) -> String {
        self.forced = on;
        if !on {
            tracing::warn!(group = %self.group, "operator override off: the VIP is held only under a lease again");
            return format!("force-hold off for {}", self.group);
        }
        tracing::warn!(group = %self.group,
            "OPERATOR OVERRIDE: force-hold on. This node holds the VIP whenever VRRP is master, \
             WITHOUT a lease: split-brain protection is off for this group until \
             `tandemctl vip force-hold --off`");
        if self.inflight.is_empty() {
            self.propose_force(now);
        } else {
            self.force_pending = true;
        }
        format!("force-hold on for {}: the VIP is held without a lease; a ForceHold was proposed to the cluster too (it commits only if a majority is reachable)", self.group)
    }

    /// The committed answer to proposal `id`, applied at log index `index`. Answers to a
    /// proposal the machine no longer waits for are ignored.
    pub fn on_outcome(&mut self, id: u64, index: u64, outcome: &Outcome, now: Duration) {
        let Some(InFlight { kind, sent, .. }) = self.take_inflight(id) else {
            return;
        };
        self.answered_at = self.answered_at.max(index);
        // An answer: this node hears the cluster again.
        self.stalled_at = None;
        self.last_answer = Some(now);
        match (kind, outcome) {
            (
                ProposalKind::Acquire | ProposalKind::Force | ProposalKind::Renew,
                Outcome::LeaseGranted { lease, .. },
            ) if lease.holder == Some(self.me)
                // A renewal answered after the hold was lost or released confirms nothing.
                && (kind != ProposalKind::Renew || self.epoch == Some(lease.epoch)) =>
            {
                if kind != ProposalKind::Renew || self.holder.valid_until().is_none() {
                    tracing::info!(group = %self.group, epoch = lease.epoch, ?kind, "VIP lease held");
                }
                self.epoch = Some(lease.epoch);
                self.holder.confirmed(sent);
            }
            (ProposalKind::Renew, Outcome::LeaseRefused { current, .. }) => {
                let who = current
                    .holder
                    .map_or("nobody".into(), |n| format!("node {n}"));
                self.lose(&format!("renewal refused; the lease is held by {who}"), now);
            }
            (
                ProposalKind::Release,
                Outcome::LeaseGranted { .. } | Outcome::LeaseRefused { .. },
            ) => {
                self.epoch = None;
            }
            (_, outcome) => {
                tracing::debug!(group = %self.group, ?kind, ?outcome, "lease proposal not granted");
            }
        }
    }

    /// Proposal `id` failed or its wait ran out: it may still commit, which the applied
    /// state will show.
    pub fn on_failure(&mut self, id: u64, why: &str) {
        if let Some(f) = self.take_inflight(id) {
            tracing::debug!(group = %self.group, kind = ?f.kind, error = why, "lease proposal failed; retrying");
        }
    }

    /// One pass of the rules (see the module docs).
    pub fn tick(&mut self, now: Duration) {
        let lease = self.applied.lease;
        self.lapsed = lease.holder.is_some_and(|h| h != self.me)
            && self.contender.acquire_at().is_some_and(|t| now >= t);
        let stale = self.applied.index < self.answered_at;
        if let Some(epoch) = self.epoch.filter(|_| !stale) {
            if lease.holder != Some(self.me) || lease.epoch != epoch {
                let who = lease
                    .holder
                    .map_or("nobody".into(), |n| format!("node {n}"));
                self.lose(
                    &format!("the lease is now held by {who} (epoch {})", lease.epoch),
                    now,
                );
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
        let wants = self.wants && !self.closing;
        if self.inflight.is_empty() && std::mem::take(&mut self.force_pending) && self.forced {
            self.propose_force(now);
        }
        if self.stalled_at.is_some_and(|at| self.applied.index > at) {
            self.stalled_at = None;
        }
        // The hold ran out unconfirmed, the kernel fence has closed even if this daemon did
        // nothing, and no answer at all came for as long: this node does not hear the
        // cluster. One that can send but not hear would otherwise keep renewing a lease it
        // cannot use (its renewals commit), and every contender would wait for it. (Late
        // answers are not this: they keep coming, and confirm renewals when they do.)
        let deaf_for = self.timing.hold_window() + self.timing.kernel_late;
        let stalled = self
            .holder
            .valid_until()
            .is_some_and(|until| now >= until + self.timing.kernel_late)
            && self
                .last_answer
                .is_none_or(|at| now.saturating_sub(at) >= deaf_for);
        if !self.alone_in_flight() {
            let group = self.group.clone();
            let node = self.me;
            match self.epoch {
                Some(epoch) if stalled => {
                    tracing::warn!(group = %self.group, epoch,
                        "VIP lease renewals went unanswered for the whole hold window: releasing \
                         the lease and stepping aside (VRRP Fault) until the cluster answers again");
                    self.stalled_at = Some(self.applied.index);
                    self.holder.release(now);
                    let release = LeaseCommand::Release { group, node, epoch };
                    self.propose(ProposalKind::Release, release, now);
                }
                Some(epoch) if !wants => {
                    // Renewals still in flight cannot bring the hold back: `release`
                    // ignores confirmations of anything sent before it.
                    if self.holder.valid_until().is_some() {
                        tracing::info!(group = %self.group, epoch, "releasing the VIP lease (VRRP gave up the group)");
                    }
                    self.holder.release(now);
                    let release = LeaseCommand::Release { group, node, epoch };
                    self.propose(ProposalKind::Release, release, now);
                }
                Some(epoch) if self.next_renewal().is_some_and(|at| now >= at) => {
                    let renew = LeaseCommand::Renew { group, node, epoch };
                    self.last_sent = Some(now);
                    self.propose(ProposalKind::Renew, renew, now);
                }
                None if wants && self.next_acquire().is_some_and(|at| now >= at) => {
                    // Pipelined like renewals: an Acquire sent to a leader that just died
                    // or went deaf waits for no answer before the next goes to whoever
                    // leads now. At most one can be granted: each names the lease version
                    // it saw, and a grant changes it.
                    if let Some(seen) = self.contender.may_acquire(now) {
                        let acquire = LeaseCommand::Acquire { group, node, seen };
                        self.last_sent = Some(now);
                        self.propose(ProposalKind::Acquire, acquire, now);
                    }
                }
                _ => {}
            }
        }
        self.update_able(now);
    }

    /// The proposal to send, if any (one per tick at most).
    pub fn poll_proposal(&mut self) -> Option<Proposal> {
        self.outbox.take()
    }

    /// `Some(t)`: this node holds a lease and may hold the VIP until `t` (local clock).
    pub fn permit(&self) -> Option<Duration> {
        self.epoch.and(self.holder.valid_until())
    }

    /// Whether the permit covers `now`.
    pub fn may_hold(&self, now: Duration) -> bool {
        self.permit().is_some_and(|until| now < until)
    }

    /// `false` while this node can neither keep nor get a lease: it holds none, is not
    /// forced, and hears no live leader with a majority. VRRP then stops contending
    /// (Fault), so that a node that can hold the VIP takes it; a one-way cut no longer
    /// leaves it held by nobody.
    pub fn able(&self) -> bool {
        self.able
    }

    /// Another node holds the lease but has not renewed it for a whole contender wait, so
    /// it cannot hold the VIP any more (as of the last tick). VRRP uses it to take over
    /// after one silent advert interval instead of a full Master_Down_Interval.
    pub fn lapsed(&self) -> bool {
        self.lapsed
    }

    /// The group is pinned to this node (`tandemctl vip move` here): VRRP takes over as
    /// soon as the old master leaves, without waiting for Skew_Time.
    pub fn designated(&self) -> bool {
        self.applied.pin == Some(self.me)
    }

    /// The group is pinned to another node (`tandemctl vip move`).
    pub fn demoted(&self) -> bool {
        self.applied.pin.is_some_and(|node| node != self.me)
    }

    pub fn forced(&self) -> bool {
        self.forced
    }

    /// Nothing held in the state and nothing in flight (a shutdown may finish).
    pub fn released(&self) -> bool {
        self.epoch.is_none() && self.inflight.is_empty()
    }

    /// When the rules next change their answer with no input: the next renewal, the end
    /// of the contender's wait, or the end of the hold window. `None`: only an input can.
    pub fn next_deadline(&self) -> Option<Duration> {
        let due = if self.alone_in_flight() {
            None
        } else if self.epoch.is_some() {
            self.next_renewal()
        } else if self.wants && !self.closing {
            self.next_acquire()
        } else {
            None
        };
        // Not wanting the group, still tick when another holder's lease lapses (once).
        let foreign = self.applied.lease.holder.is_some_and(|h| h != self.me);
        let lapse = (foreign && !self.lapsed)
            .then(|| self.contender.acquire_at())
            .flatten();
        // When an unconfirmed hold counts as stalled (see `tick`).
        let stall = self
            .holder
            .valid_until()
            .map(|until| until + self.timing.kernel_late);
        [due, self.permit(), lapse, stall]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn view(&self, now: Duration) -> GroupView {
        GroupView {
            group: self.group.clone(),
            wants: self.wants && !self.closing,
            holding: self.holder.may_hold(now),
            hold_left_ms: self
                .holder
                .valid_until()
                .map_or(0, |u| u.saturating_sub(now).as_millis() as u64),
            epoch: self.epoch,
            demoted: self.demoted(),
            forced: self.forced,
            able: self.able,
            lease: self.applied.lease,
        }
    }

    /// Logged on change only: why the VIP cannot be held here, once.
    fn update_able(&mut self, now: Duration) {
        let able =
            self.holder.may_hold(now) || self.forced || (self.live && self.stalled_at.is_none());
        if able == self.able {
            return;
        }
        self.able = able;
        if able {
            tracing::info!(group = %self.group, "a live Raft leader is heard again: VRRP contends for the VIP again");
        } else if self.stalled_at.is_some() {
            // Said when the lease was released (tick).
        } else {
            tracing::warn!(group = %self.group,
                "no VIP lease can be had here: this node hears no live Raft leader with a majority \
                 (cut off, or the cluster lost its majority); VRRP stops contending so that a node \
                 that can hold the VIP takes it");
        }
    }

    fn propose(&mut self, kind: ProposalKind, command: LeaseCommand, now: Duration) {
        let wait = match kind {
            ProposalKind::Release | ProposalKind::Force => Duration::from_secs(2),
            ProposalKind::Acquire | ProposalKind::Renew => self.timing.hold_window(),
        };
        self.next_id += 1;
        let id = self.next_id;
        self.inflight.push(InFlight {
            id,
            kind,
            sent: now,
        });
        self.outbox = Some(Proposal {
            id,
            kind,
            command,
            wait,
        });
    }

    fn propose_force(&mut self, now: Duration) {
        let force = LeaseCommand::ForceHold {
            group: self.group.clone(),
            node: self.me,
        };
        self.propose(ProposalKind::Force, force, now);
    }

    fn lose(&mut self, why: &str, now: Duration) {
        if self.holder.may_hold(now) {
            tracing::warn!(group = %self.group, reason = why, "VIP lease lost: the VIP is removed");
        } else if self.holder.valid_until().is_some() {
            // The hold window ended earlier and the VIP went with it (logged then).
            tracing::info!(group = %self.group, reason = why, "VIP lease is gone (its hold window had already ended)");
        }
        self.holder.reset();
        self.epoch = None;
        self.last_sent = None;
    }

    fn take_inflight(&mut self, id: u64) -> Option<InFlight> {
        let at = self.inflight.iter().position(|f| f.id == id)?;
        Some(self.inflight.swap_remove(at))
    }

    /// A Release or ForceHold is in flight: nothing else goes out until it is answered.
    fn alone_in_flight(&self) -> bool {
        self.inflight
            .iter()
            .any(|f| matches!(f.kind, ProposalKind::Release | ProposalKind::Force))
    }

    /// Whether a hold window's worth of proposals is in flight already.
    fn pipeline_full(&self) -> bool {
        let most = (self.timing.hold_window().as_micros()
            / self.timing.renew_every.as_micros().max(1))
        .max(1) as usize;
        self.inflight.len() >= most
    }

    /// When the next Acquire may go (not holding, VRRP wants the group): once the
    /// contender rule allows, and `renew_every` after the last one sent while any is
    /// unanswered.
    fn next_acquire(&self) -> Option<Duration> {
        if self.pipeline_full() {
            return None;
        }
        let allowed = self.contender.acquire_at()?;
        let paced = self
            .last_sent
            .filter(|_| !self.inflight.is_empty())
            .map(|s| s + self.timing.renew_every);
        Some(paced.map_or(allowed, |p| p.max(allowed)))
    }

    /// When the next renewal is due (the node holds an epoch): `renew_every` after the
    /// last confirmed one and after the last one sent, at once if none is confirmed yet
    /// and none sent; `None` while a hold window's worth of proposals is in flight.
    fn next_renewal(&self) -> Option<Duration> {
        if self.pipeline_full() {
            return None;
        }
        let after_sent = self.last_sent.map(|s| s + self.timing.renew_every);
        match (self.holder.next_renewal(), after_sent) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => Some(a.or(b).unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests;

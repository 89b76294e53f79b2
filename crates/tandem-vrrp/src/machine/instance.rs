//! [`Instance`]: the per-VRID state and the RFC 5798 section 6.4 event handling.

use std::net::IpAddr;
use std::time::Duration;

use super::config::{cs_to_duration, InstanceConfig, OWNER_PRIORITY};
use super::{Action, Advert, Reason, State};

/// What the Backup's Master_Down_Timer stands for, so its expiry gets the right [`Reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DownCause {
    /// No (accepted) advert for Master_Down_Interval.
    Silence,
    /// The master sent priority 0; the timer was set to Skew_Time.
    MasterLeft,
    /// We are ignoring this lower-priority master's adverts so we can preempt it.
    Preempting { src: IpAddr, priority: u8 },
    /// The master's lease lapsed; the timer was shortened to one silent interval.
    LeaseLapsed,
}

/// One VRRP instance (one VRID on one interface). See the [module docs](super).
#[derive(Clone, Debug)]
pub struct Instance {
    config: InstanceConfig,
    state: State,
    /// Sum of tracker weights, as last given to `set_priority_adjustment`.
    adjustment: i32,
    effective_priority: u8,
    interface_up: bool,
    /// The fence says this node cannot hold the addresses (no lease reachable): the
    /// instance sits in Fault, silent, so that a node that can hold them becomes Master.
    fenced_out: bool,
    /// Ours when Master or just started; the master's (learned from its adverts) as Backup.
    master_adver_interval: Duration,
    /// Adver_Timer as Master, Master_Down_Timer as Backup; None otherwise.
    deadline: Option<Duration>,
    down_cause: DownCause,
    current_master: Option<IpAddr>,
    /// A Backup does not preempt a working lower-priority Master before this time.
    preempt_after: Duration,
    /// When a peer's advert last arrived (any state), for heal detection as Master.
    last_peer_advert: Option<Duration>,
    /// When we last became Master; silence is measured from here at the latest.
    master_since: Duration,
    /// An operator moved the group here: no Skew_Time when the master leaves.
    designated: bool,
    /// The fence says the current lease holder's lease lapsed (see `set_lease_lapsed`).
    lease_lapsed: bool,
}

impl Instance {
    /// A new instance in Initialize. Out-of-range config values are clamped (see
    /// [`InstanceConfig::validate`] to report them instead); `config()` returns the clamped one.
    pub fn new(config: InstanceConfig) -> Instance {
        let config = config.normalized();
        Instance {
            effective_priority: config.priority,
            master_adver_interval: config.advert_interval,
            config,
            state: State::Initialize,
            adjustment: 0,
            interface_up: true,
            fenced_out: false,
            deadline: None,
            down_cause: DownCause::Silence,
            current_master: None,
            preempt_after: Duration::ZERO,
            last_peer_advert: None,
            master_since: Duration::ZERO,
            designated: false,
            lease_lapsed: false,
        }
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn base_priority(&self) -> u8 {
        self.config.priority
    }

    /// Base priority plus tracker adjustment, clamped to 1..=254; the owner's 255 stays 255.
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }

    /// The tracker adjustment last set.
    pub fn priority_adjustment(&self) -> i32 {
        self.adjustment
    }

    /// The link state last reported (initially up).
    pub fn interface_up(&self) -> bool {
        self.interface_up
    }

    /// The interval the current master advertises (RFC 5798 6.4.2); ours as Master.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// ((256 - priority) * Master_Adver_Interval) / 256, with our effective priority.
    pub fn skew_time(&self) -> Duration {
        let weight = 256 - u32::from(self.effective_priority);
        self.master_adver_interval * weight / 256
    }

    /// 3 * Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval * 3 + self.skew_time()
    }

    /// The last seen master's address (ours when Master); None when unknown or not running.
    pub fn current_master(&self) -> Option<IpAddr> {
        self.current_master
    }

    /// The absolute time `on_timer` should next be called; None in Initialize and Fault.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.state {
            State::Master | State::Backup => self.deadline,
            State::Initialize | State::Fault => None,
        }
    }

    /// Startup event (RFC 5798 6.3.1 / 6.4.1). Does nothing unless in Initialize.
    pub fn startup(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state != State::Initialize {
            return out;
        }
        self.last_peer_advert = None;
        if !self.interface_up {
            self.enter_fault(Reason::InterfaceDown, &mut out);
        } else if self.fenced_out {
            self.enter_fault(Reason::NoLease, &mut out);
        } else if self.config.is_owner() {
            self.come_up(now, Reason::OwnerStartup, &mut out);
        } else {
            self.come_up(now, Reason::Startup, &mut out);
        }
        out
    }

    /// Shutdown event: as Master, advertise priority 0 and release; then Initialize.
    pub fn shutdown(&mut self, _now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Initialize {
            return out;
        }
        if self.state == State::Master {
            out.push(Action::SendAdvert { priority: 0 });
            out.push(Action::ReleaseAddresses);
        }
        self.deadline = None;
        self.current_master = None;
        self.transition(State::Initialize, Reason::Shutdown, &mut out);
        out
    }

    /// Operator-requested step-down: as Master, advertise priority 0 (RFC 5798: backups take
    /// over after Skew_Time), release the addresses and become Backup with a fresh
    /// Master_Down_Timer. Does nothing in any other state. To keep the instance from taking
    /// the group back, lower its priority too (the shell applies an adjustment of -255).
    pub fn step_down(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state != State::Master {
            return out;
        }
        out.push(Action::SendAdvert { priority: 0 });
        out.push(Action::ReleaseAddresses);
        self.current_master = None;
        self.master_adver_interval = self.config.advert_interval;
        self.enter_backup(now, Reason::SteppedDown, &mut out);
        out
    }

    /// A received, validated advert for our VRID (RFC 5798 6.4.2 / 6.4.3).
    pub fn on_advert(&mut self, advert: Advert, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if advert.src == self.config.primary_ip {
            // Our own multicast looped back.
            return out;
        }
        let healed = self.state == State::Master && {
            let quiet_since = self
                .last_peer_advert
                .unwrap_or(Duration::ZERO)
                .max(self.master_since);
            now.saturating_sub(quiet_since) > self.master_down_interval()
        };
        if matches!(self.state, State::Master | State::Backup) {
            self.last_peer_advert = Some(now);
        }
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => self.backup_advert(advert, now),
            State::Master => self.master_advert(advert, healed, now, &mut out),
        }
        out
    }

    /// Timer expiry; calling before `poll_timeout()` does nothing.
    pub fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(deadline) = self.poll_timeout() else {
            return out;
        };
        if now < deadline {
            return out;
        }
        match self.state {
            State::Master => {
                out.push(Action::SendAdvert {
                    priority: self.effective_priority,
                });
                // Keep the cadence when called a little late; never burst when called very late.
                let next = deadline + self.config.advert_interval;
                self.deadline = Some(if next > now {
                    next
                } else {
                    now + self.config.advert_interval
                });
            }
            State::Backup => {
                let reason = match self.down_cause {
                    DownCause::Silence => Reason::MasterDown,
                    DownCause::MasterLeft => Reason::MasterLeft,
                    DownCause::LeaseLapsed => Reason::MasterLeaseLapsed,
                    DownCause::Preempting { src, priority } => {
                        Reason::PreemptingLowerPriority { src, priority }
                    }
                };
                self.enter_master(now, reason, &mut out);
            }
            State::Initialize | State::Fault => {}
        }
        out
    }

    /// Interface link state. Down → Fault (releasing the addresses if Master); up → Backup
    /// with a fresh Master_Down_Timer, or Master at once for the owner. Repeats do nothing.
    pub fn set_interface_up(&mut self, up: bool, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if up == self.interface_up {
            return out;
        }
        self.interface_up = up;
        match (up, self.state) {
            // Not started: only remembered, `startup` looks at it.
            (_, State::Initialize) => {}
            (false, State::Master) => {
                // No priority-0 advert: the link is down, it could not be sent.
                out.push(Action::ReleaseAddresses);
                self.enter_fault(Reason::InterfaceDown, &mut out);
            }
            (false, State::Backup) => self.enter_fault(Reason::InterfaceDown, &mut out),
            (true, State::Fault) if !self.fenced_out => {
                self.come_up(now, Reason::InterfaceUp, &mut out)
            }
            (true, State::Fault) => {}
            // Unreachable while `interface_up` tracks the state, but harmless.
            (false, State::Fault) | (true, State::Master | State::Backup) => {}
        }
        out
    }

    /// Whether the fence can let this node hold the addresses at all (under Raft fencing:
    /// a live leader with a majority is heard). Out: as Master, advertise priority 0 (the
    /// peers take over after Skew_Time) and release; as Backup, stop contending. The
    /// instance then sits in Fault and sends nothing, so that even a peer with
    /// `preempt = false` takes over (a lower-priority advert would hold it back). In
    /// again: Backup with a fresh Master_Down_Timer (if the interface is up). Repeats do
    /// nothing.
    pub fn set_fenced_out(&mut self, out_of_fence: bool, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if out_of_fence == self.fenced_out {
            return out;
        }
        self.fenced_out = out_of_fence;
        match (out_of_fence, self.state) {
            (_, State::Initialize) => {}
            (true, State::Master) => {
                out.push(Action::SendAdvert { priority: 0 });
                out.push(Action::ReleaseAddresses);
                self.enter_fault(Reason::NoLease, &mut out);
            }
            (true, State::Backup) => self.enter_fault(Reason::NoLease, &mut out),
            (false, State::Fault) if self.interface_up => {
                self.come_up(now, Reason::LeaseReachable, &mut out)
            }
            (false, State::Fault) | (true, State::Fault) | (false, _) => {}
        }
        out
    }

    /// Whether an operator moved the group to this node (`tandemctl vip move`). A designated
    /// Backup takes over as soon as the master leaves (its priority-0 advert) instead of
    /// after Skew_Time: Skew_Time exists so that the best of several backups wins, and
    /// here the operator already chose (the others are demoted). Set while the master's
    /// priority-0 advert is already counting down, it takes over at the next timer poll.
    pub fn set_designated(&mut self, designated: bool, now: Duration) -> Vec<Action> {
        self.designated = designated;
        if designated && self.state == State::Backup && self.down_cause == DownCause::MasterLeft {
            self.deadline = Some(now);
        }
        Vec::new()
    }

    pub fn designated(&self) -> bool {
        self.designated
    }

    /// Whether the fence has seen the holder's lease lapse: no renewal applied for a whole
    /// contender wait, so the old master cannot hold the addresses any more. A Backup then
    /// does not wait the full Master_Down_Interval (3 intervals + Skew_Time): it takes over
    /// once the master has also been silent for one interval. The lease, not VRRP, keeps
    /// the VIP to one holder, so an early takeover is safe (a master whose lease lapsed is
    /// fenced out and falls silent when its permit ends); a master that still advertises
    /// resets the timer with each advert, so it is not chased away while it is heard.
    /// A lapse is judged on the lease's own clock, which lets a crash fail over faster than
    /// VRRP alone would.
    pub fn set_lease_lapsed(&mut self, lapsed: bool, now: Duration) -> Vec<Action> {
        self.lease_lapsed = lapsed;
        if lapsed && self.state == State::Backup && self.down_cause == DownCause::Silence {
            let silent_since = self.last_peer_advert.unwrap_or(Duration::ZERO);
            let quick = (silent_since + self.master_adver_interval).max(now);
            if self.deadline.is_some_and(|d| quick < d) {
                self.deadline = Some(quick);
                self.down_cause = DownCause::LeaseLapsed;
            }
        }
        Vec::new()
    }

    pub fn fenced_out(&self) -> bool {
        self.fenced_out
    }

    /// Sets the sum of tracker weights. Changes the effective priority only: as Master an
    /// advert with the new priority goes out at once (so peers react without waiting an
    /// interval); as Backup it only decides whether the next lower-priority advert is ignored.
    pub fn set_priority_adjustment(&mut self, delta: i32, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        self.adjustment = delta;
        let new = effective(self.config.priority, delta);
        if new == self.effective_priority {
            return out;
        }
        self.effective_priority = new;
        match self.state {
            State::Master => {
                out.push(Action::SendAdvert { priority: new });
                self.deadline = Some(now + self.config.advert_interval);
            }
            State::Backup => {
                // We no longer outrank the master we were waiting to preempt.
                if let DownCause::Preempting { priority, .. } = self.down_cause {
                    if priority >= new {
                        self.down_cause = DownCause::Silence;
                    }
                }
            }
            State::Initialize | State::Fault => {}
        }
        out
    }

    fn backup_advert(&mut self, advert: Advert, now: Duration) {
        if advert.priority == 0 {
            // RFC 6.4.2: the master is leaving; take over after Skew_Time only (at once
            // when the operator moved the group here, or when its lease already lapsed:
            // Skew_Time lets the best backup win, and the lease picks the one holder).
            let skew = if self.designated || self.lease_lapsed {
                Duration::ZERO
            } else {
                self.skew_time()
            };
            self.deadline = Some(now + skew);
            self.down_cause = DownCause::MasterLeft;
            if self.current_master == Some(advert.src) {
                self.current_master = None;
            }
            return;
        }
        self.current_master = Some(advert.src);
        let preempt = self.config.preempt || self.config.is_owner();
        let delayed = !self.config.is_owner() && now < self.preempt_after;
        if !preempt || delayed || advert.priority >= self.effective_priority {
            self.master_adver_interval = cs_to_duration(advert.max_advert_int_cs);
            self.deadline = Some(now + self.master_down_interval());
            self.down_cause = DownCause::Silence;
        } else if self.down_cause != DownCause::MasterLeft {
            // Lower priority and we may preempt: let the Master_Down_Timer run out. (If the
            // master already left, the short Skew_Time timer and its reason stand.)
            self.down_cause = DownCause::Preempting {
                src: advert.src,
                priority: advert.priority,
            };
        }
    }

    fn master_advert(
        &mut self,
        advert: Advert,
        healed: bool,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let ours = self.effective_priority;
        let wins = advert.priority > ours
            || (advert.priority == ours && advert.src > self.config.primary_ip);
        if advert.priority != 0 && wins {
            // RFC 6.4.3: yield.
            let reason = if advert.priority > ours {
                Reason::Preempted {
                    by: advert.src,
                    priority: advert.priority,
                }
            } else {
                Reason::HigherPriorityMaster {
                    src: advert.src,
                    priority: advert.priority,
                }
            };
            // A farewell advert first (beyond the RFC): after a partition heals, the winner
            // may never hear us otherwise (we yield at its first advert), so it would not
            // know that our gratuitous ARP moved clients. Our lower-priority advert makes it
            // re-announce at once. keepalived skips this and black-holes those clients.
            out.push(Action::SendAdvert { priority: ours });
            out.push(Action::ReleaseAddresses);
            self.master_adver_interval = cs_to_duration(advert.max_advert_int_cs);
            self.current_master = Some(advert.src);
            self.enter_backup(now, reason, out);
            return;
        }
        // Priority 0 (a peer leaving: RFC says advertise at once) or a loser (beyond the
        // RFC: advertise at once so it yields now, and re-announce to undo its ARP).
        out.push(Action::SendAdvert { priority: ours });
        self.deadline = Some(now + self.config.advert_interval);
        if advert.priority != 0 || healed {
            out.push(Action::Reannounce);
        }
    }

    /// Startup / interface up: Master at once for the owner, else Backup (RFC 6.4.1).
    fn come_up(&mut self, now: Duration, reason: Reason, out: &mut Vec<Action>) {
        self.master_adver_interval = self.config.advert_interval;
        self.preempt_after = now + self.config.preempt_delay;
        self.current_master = None;
        if self.config.is_owner() {
            self.enter_master(now, reason, out);
        } else {
            self.enter_backup(now, reason, out);
        }
    }

    fn enter_master(&mut self, now: Duration, reason: Reason, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.effective_priority,
        });
        out.push(Action::TakeAddresses);
        self.master_adver_interval = self.config.advert_interval;
        self.deadline = Some(now + self.config.advert_interval);
        self.current_master = Some(self.config.primary_ip);
        self.master_since = now;
        self.transition(State::Master, reason, out);
    }

    /// Callers push ReleaseAddresses first when leaving Master and set the learned interval.
    fn enter_backup(&mut self, now: Duration, reason: Reason, out: &mut Vec<Action>) {
        self.down_cause = DownCause::Silence;
        self.deadline = Some(now + self.master_down_interval());
        self.transition(State::Backup, reason, out);
    }

    fn enter_fault(&mut self, reason: Reason, out: &mut Vec<Action>) {
        self.deadline = None;
        self.current_master = None;
        self.transition(State::Fault, reason, out);
    }

    fn transition(&mut self, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        debug_assert_ne!(from, to, "a transition must change the state");
        self.state = to;
        out.push(Action::Transition { from, to, reason });
    }
}

/// Base plus adjustment, clamped to 1..=254; only the owner may advertise 255.
fn effective(base: u8, delta: i32) -> u8 {
    if base == OWNER_PRIORITY {
        return OWNER_PRIORITY;
    }
    (i64::from(base) + i64::from(delta)).clamp(1, 254) as u8
}

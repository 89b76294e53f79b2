//! One VRRP instance at work: feeds received adverts, timers, tracker, link and fence
//! changes to the pure state machine and carries out what it asks (send, take and release
//! addresses, announce, run hooks).
//!
//! Holding the addresses takes two things: VRRP wants to be master (from
//! Action::TakeAddresses until Action::ReleaseAddresses) and the fence permits it
//! ([`Permit`]). That decision is the pure [`Hold`] machine; the speaker feeds it and
//! carries out its [`HoldStep`]s (fence, netlink, gratuitous ARP).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::family::{AdvertSockets, Outgoing, Received};
use super::fence::{FenceEvent, FenceSide};
use super::garp::GarpSender;
use super::hooks::{HookEvent, HookRunner};
use super::kernel_fence::KernelFence;
use super::netlink::{LinkInfo, Netlink};
use super::stats::VrrpStats;
use super::{tracker, FenceLink, InstanceSpec, InstanceStatus, Permit, SpeakerError};
use crate::machine::{
    Action, Advert as MachineAdvert, DropReason, Hold, HoldStep, Instance, InstanceConfig, State,
};

/// After a failed address install, how long the priority stays lowered before VRRP may
/// try again (long enough not to flap the VIP every few adverts).
const INSTALL_RETRY: Duration = Duration::from_secs(30);

/// Everything the loop needs, resolved at start.
pub(super) struct Speaker {
    spec: InstanceSpec,
    machine: Instance,
    netlink: Netlink,
    link: LinkInfo,
    source: IpAddr,
    sockets: AdvertSockets,
    garp: GarpSender,
    hooks: HookRunner,
    fence: FenceSide,
    /// The nftables fence of the VIPs (Raft fencing), refreshed with every permit.
    kernel: Option<Arc<KernelFence>>,
    stats: Arc<VrrpStats>,
    status: watch::Sender<InstanceStatus>,
    origin: Instant,
    /// Whether the addresses are held: VRRP's wish and the fence's permit.
    hold: Hold,
    /// Tracker adjustment and operator demotion, combined into the machine's adjustment.
    tracker_delta: i32,
    demoted: bool,
    /// The addresses could not be installed (no CAP_NET_ADMIN, interface gone...): the
    /// priority stays lowered until this instant so that a peer serves the VIP, then
    /// VRRP may try again.
    install_fault: Option<Instant>,
    /// Set by a failed install: step down at the next turn of the loop.
    fault_pending: bool,
    /// Until when the kernel fence lets the addresses through (last refresh).
    fence_until: Option<Instant>,
    /// Next gratuitous ARP burst while holding (the repeat burst, then periodic refresh).
    next_garp: Option<Instant>,
    warned: HashSet<(IpAddr, &'static str)>,
}

impl Speaker {
    pub(super) async fn prepare(
        spec: InstanceSpec,
        netlink: Netlink,
        hooks: HookRunner,
        fence: FenceLink,
        stats: Arc<VrrpStats>,
        status: watch::Sender<InstanceStatus>,
    ) -> Result<Speaker, SpeakerError> {
        let link = netlink.link(&spec.interface).await?;
        // Stale VIPs of ours from an earlier run (e.g. after SIGKILL): remove before anything.
        for (ip, _) in &spec.addresses {
            if netlink.remove(link.index, *ip).await? {
                tracing::info!(instance = %spec.group, address = %ip, "removed a stale virtual address left by an earlier run");
            }
        }
        let source = super::family::resolve_source(&spec, &netlink, link.index).await?;
        let sockets = AdvertSockets::open(
            &spec.interface,
            link.index,
            source,
            spec.unicast_peers
                .iter()
                .all(|p| p.is_ipv4() != source.is_ipv4()),
        )
        .map_err(|e| SpeakerError::Socket(spec.interface.clone(), e))?;
        let garp = GarpSender::open(&spec.interface)
            .map_err(|e| SpeakerError::Socket(spec.interface.clone(), e))?;
        let machine = Instance::new(InstanceConfig {
            name: spec.group.clone(),
            vrid: spec.vrid,
            priority: spec.priority,
            advert_interval: spec.advert_interval,
            preempt: spec.preempt,
            preempt_delay: spec.preempt_delay,
            primary_ip: source,
        });
        tracing::info!(instance = %spec.group, vrid = spec.vrid, interface = %spec.interface, %source,
            priority = spec.priority, mode = if spec.unicast_peers.is_empty() { "multicast" } else { "unicast" },
            "VRRP instance starting");
        let hold = Hold::new(
            spec.address_lifetime(),
            fence.kernel.is_some(),
            Permit::Always,
        );
        Ok(Speaker {
            hold,
            spec,
            machine,
            netlink,
            link,
            source,
            sockets,
            garp,
            hooks,
            kernel: fence.kernel.clone(),
            fence: FenceSide::new(fence),
            stats,
            status,
            origin: Instant::now(),
            tracker_delta: 0,
            demoted: false,
            install_fault: None,
            fault_pending: false,
            next_garp: None,
            fence_until: None,
            warned: HashSet::new(),
        })
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn vips(&self) -> Vec<IpAddr> {
        self.spec.addresses.iter().map(|(ip, _)| *ip).collect()
    }

    /// The unicast peers of this instance's family (the list is shared by a node's
    /// IPv4 and IPv6 instances). IPv6 peers are link-local addresses: IPv6 adverts leave
    /// from, and are accepted only from, link-local addresses (RFC 5798 section 5.1.2.1).
    fn peers(&self) -> Vec<IpAddr> {
        let v6 = self.source.is_ipv6();
        self.spec
            .unicast_peers
            .iter()
            .copied()
            .filter(|p| p.is_ipv6() == v6)
            .collect()
    }

    pub(super) async fn run(mut self, stop: CancellationToken) {
        let mut priority_delta = tracker::start(
            self.spec.trackers.clone(),
            self.spec.group.clone(),
            self.netlink.clone(),
            stop.child_token(),
        );
        let mut link_check = tokio::time::interval(Duration::from_millis(250));
        link_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 2048];
        let mut trackers_alive = true;
        let permit = self.fence.latest_permit();
        self.hold.on_permit(permit, Instant::now());
        // Unable to get a lease from the start: startup goes to Fault, silent.
        let able = self.fence.latest_able();
        let _ = self.machine.set_fenced_out(!able, self.now());
        let mut actions = self.machine.startup(self.now());
        self.tracker_delta = *priority_delta.borrow_and_update();
        let designated = self.fence.latest_designated();
        actions.extend(self.machine.set_designated(designated, self.now()));
        let demoted = self.fence.latest_demoted();
        // Demoted from the start: priority lowered (and a step-down, were we master already).
        actions.extend(self.set_demoted(demoted));
        // Tracker weights: no action unless the effective priority changes.
        actions.extend(
            self.machine
                .set_priority_adjustment(self.adjustment(), self.now()),
        );
        loop {
            self.execute(std::mem::take(&mut actions)).await;
            while std::mem::take(&mut self.fault_pending) {
                let step_down = self.enter_install_fault();
                self.execute(step_down).await;
            }
            self.publish_status();
            let timer = self.machine.poll_timeout().map(|t| self.origin + t);
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                _ = stop.cancelled() => break,
                received = self.sockets.recv(&mut buf) => match received {
                    Ok(parsed) => actions = self.on_packet(parsed),
                    Err(e) => {
                        tracing::warn!(instance = %self.spec.group, error = %e, "VRRP receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = tokio::time::sleep_until(timer.unwrap_or(far)), if timer.is_some() => {
                    actions = self.machine.on_timer(self.now());
                }
                changed = priority_delta.changed(), if trackers_alive => {
                    match changed {
                        Ok(()) => {
                            self.tracker_delta = *priority_delta.borrow_and_update();
                            actions = self.machine.set_priority_adjustment(self.adjustment(), self.now());
                        }
                        // No trackers (or they stopped): the channel is closed for good;
                        // without this guard the select! would spin on it.
                        Err(_) => trackers_alive = false,
                    }
                }
                event = self.fence.next() => match event {
                    FenceEvent::Permit(permit) => self.on_permit(permit).await,
                    FenceEvent::Demoted(demoted) => actions = self.set_demoted(demoted),
                    FenceEvent::Designated(designated) => {
                        actions = self.machine.set_designated(designated, self.now());
                    }
                    FenceEvent::Lapsed(lapsed) => {
                        actions = self.machine.set_lease_lapsed(lapsed, self.now());
                    }
                    FenceEvent::Able(able) => actions = self.machine.set_fenced_out(!able, self.now()),
                },
                _ = tokio::time::sleep_until(self.hold.deadline().unwrap_or(far)), if self.hold.deadline().is_some() => {
                    self.hold_window_ended().await;
                }
                _ = tokio::time::sleep_until(self.install_fault.unwrap_or(far)), if self.install_fault.is_some() => {
                    self.install_fault = None;
                    tracing::info!(instance = %self.spec.group, "normal priority again after a failed address install; VRRP may try again");
                    actions = self.machine.set_priority_adjustment(self.adjustment(), self.now());
                }
                _ = link_check.tick() => actions = self.check_link().await,
                _ = tokio::time::sleep_until(self.next_garp.unwrap_or(far)), if self.next_garp.is_some() => {
                    self.announce("periodic refresh");
                    let refresh = self.spec.garp_refresh;
                    self.next_garp = (!refresh.is_zero()).then(|| Instant::now() + refresh);
                }
            }
        }
        let actions = self.machine.shutdown(self.now());
        self.execute(actions).await;
        self.fence.set_wants(false);
        self.publish_status();
        tracing::info!(instance = %self.spec.group, "VRRP instance stopped");
    }

    fn on_packet(&mut self, parsed: Result<Received, crate::wire::WireError>) -> Vec<Action> {
        let advert = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                self.stats.dropped(e.reason());
                tracing::debug!(instance = %self.spec.group, error = %e, "malformed VRRP packet dropped");
                return Vec::new();
            }
        };
        let (src, vrid, priority, max_advert_int, addresses) = match advert {
            Received::V3 {
                src,
                vrid,
                priority,
                max_advert_int,
                addresses,
            } => (src, vrid, priority, max_advert_int, addresses),
            Received::V2 { src, vrid } => {
                if vrid == self.spec.vrid {
                    self.stats.dropped("vrrp_v2");
                    self.warn_once(src, "vrrp_v2", &format!(
                        "VRRPv2 advert from {src} for vrid {vrid} ignored: tandem speaks VRRPv3; set `vrrp_version 3` on that peer"));
                }
                return Vec::new();
            }
        };
        if vrid != self.spec.vrid || src == self.source {
            return Vec::new();
        }
        let peers = self.peers();
        if !peers.is_empty() && !peers.contains(&src) {
            self.stats.dropped("unknown_peer");
            self.warn_once(
                src,
                "unknown_peer",
                &format!("advert from {src} dropped: not in node.vrrp.unicast_peers"),
            );
            return Vec::new();
        }
        self.stats.received();
        let ours: HashSet<IpAddr> = self.spec.addresses.iter().map(|(ip, _)| *ip).collect();
        let theirs: HashSet<IpAddr> = addresses.iter().copied().collect();
        if ours != theirs {
            self.warn_once(
                src,
                "address_mismatch",
                &format!(
                    "advert from {src} for vrid {vrid} lists {addresses:?}, this node {:?}: the configs disagree",
                    self.spec.addresses
                ),
            );
        }
        self.machine.on_advert(
            MachineAdvert {
                src,
                priority,
                max_advert_int_cs: max_advert_int,
            },
            self.now(),
        )
    }

    fn warn_once(&mut self, src: IpAddr, what: &'static str, message: &str) {
        if self.warned.insert((src, what)) {
            tracing::warn!(instance = %self.spec.group, "{message}");
        }
    }

    async fn check_link(&mut self) -> Vec<Action> {
        let up = self
            .netlink
            .link(&self.spec.interface)
            .await
            .map(|l| l.up)
            .unwrap_or(false);
        if up == self.link.up {
            return Vec::new();
        }
        self.link.up = up;
        tracing::warn!(instance = %self.spec.group, interface = %self.spec.interface, up, "interface state changed");
        self.machine.set_interface_up(up, self.now())
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority).await,
                Action::TakeAddresses => self.set_wants(true).await,
                Action::ReleaseAddresses => self.set_wants(false).await,
                Action::Reannounce => {
                    self.announce("re-announce after a dual-master episode or a heal")
                }
                Action::Transition { from, to, reason } => {
                    self.stats.transition(to);
                    tracing::info!(instance = %self.spec.group, from = ?from, to = ?to, reason = %reason, "VRRP state change");
                    self.status.send_modify(|s| {
                        s.last_transition = Some((from, to, reason.to_string(), SystemTime::now()));
                    });
                    self.hooks.notify(HookEvent {
                        instance: self.spec.group.clone(),
                        old_state: format!("{from:?}").to_uppercase(),
                        new_state: format!("{to:?}").to_uppercase(),
                        reason: reason.to_string(),
                    });
                }
            }
        }
    }

    async fn send_advert(&mut self, priority: u8) {
        let addresses = self.vips();
        let advert = Outgoing {
            vrid: self.spec.vrid,
            priority,
            max_advert_int: (self.spec.advert_interval.as_millis() / 10).clamp(1, 4095) as u16,
            addresses: &addresses,
        };
        let peers = self.peers();
        let destinations = if peers.is_empty() {
            vec![self.sockets.multicast_group()]
        } else {
            peers
        };
        for dst in destinations {
            match self.sockets.send(&advert, self.source, dst).await {
                Ok(()) => self.stats.sent(),
                Err(e) => {
                    tracing::warn!(instance = %self.spec.group, %dst, error = %e, "VRRP advert not sent")
                }
            }
        }
        // Every advert as master renews the addresses' kernel lifetime (within the permit).
        if priority != 0 {
            let step = self.hold.on_advert(Instant::now());
            self.carry_out(step, "advert").await;
        }
    }

    /// VRRP's wish (Action::TakeAddresses / ReleaseAddresses), published to the fence too.
    async fn set_wants(&mut self, wants: bool) {
        self.fence.set_wants(wants);
        let now = Instant::now();
        let step = self.hold.set_wants(wants, now);
        let carried = self.carry_out(step, "became master").await;
        if wants && (!carried || step == HoldStep::Nothing) && !self.hold.holding() {
            tracing::info!(instance = %self.spec.group, permit = %self.hold.permit().describe(now),
                "VRRP is master of {} but the fence does not permit holding yet: waiting for the lease",
                self.spec.group);
        }
    }

    /// A new permit from the fence: take, extend or drop the addresses accordingly.
    async fn on_permit(&mut self, permit: Permit) {
        let previous = self.hold.permit();
        let now = Instant::now();
        let step = self.hold.on_permit(permit, now);
        let group = self.spec.group.clone();
        match step {
            HoldStep::Take { .. } => {
                if self.carry_out(step, "became master").await && self.hold.holding() {
                    tracing::info!(instance = %group, permit = %permit.describe(now), "the fence permits holding: virtual addresses taken");
                }
            }
            HoldStep::Extend { lifetime, .. } => {
                self.carry_out(step, "renewal").await;
                if std::mem::discriminant(&previous) != std::mem::discriminant(&permit) {
                    tracing::info!(instance = %group, permit = %permit.describe(now), "fence permit changed: holding on");
                } else {
                    tracing::debug!(instance = %group, lifetime = ?lifetime, "lease renewed: address lifetime extended");
                }
            }
            _ => {
                self.carry_out(step, "permit").await;
            }
        }
    }

    /// The hold window under `Permit::Until` ran out; a renewal that raced with the timer wins.
    async fn hold_window_ended(&mut self) {
        let latest = self.fence.latest_permit();
        if latest != self.hold.permit() {
            self.on_permit(latest).await;
        }
        let step = self.hold.on_deadline(Instant::now());
        self.carry_out(step, "window").await;
    }

    /// Carries out what the hold machine decided; false if a Take could not be carried out
    /// (the fence refresh failed: waiting for the next permit). A failed install counts as
    /// handled (true): the speaker steps down instead of waiting.
    async fn carry_out(&mut self, step: HoldStep, why: &str) -> bool {
        match step {
            HoldStep::Nothing => true,
            HoldStep::Take {
                lifetime,
                fence_until,
            } => {
                if !self.open_kernel_fence(fence_until).await {
                    self.hold.lost();
                    return false;
                }
                if !self.install_addresses(lifetime).await {
                    tracing::error!(instance = %self.spec.group, retry_in = ?INSTALL_RETRY,
                        "the virtual addresses could not be installed: stepping down at the lowest priority so that a peer serves them");
                    self.hold.lost();
                    self.remove_addresses().await;
                    self.fault_pending = true;
                    return true;
                }
                self.announce(why);
                let repeat = self.spec.garp_repeat_after;
                let refresh = self.spec.garp_refresh;
                let next = if !repeat.is_zero() { repeat } else { refresh };
                self.next_garp = (!next.is_zero()).then(|| Instant::now() + next);
                true
            }
            HoldStep::Extend {
                lifetime,
                fence_until,
            } => {
                if !self.open_kernel_fence(fence_until).await {
                    self.hold.lost();
                    self.remove_addresses().await;
                    return true;
                }
                self.install_addresses(lifetime).await;
                true
            }
            HoldStep::Refresh { lifetime } => {
                self.install_addresses(lifetime).await;
                true
            }
            HoldStep::Drop(reason) => {
                self.remove_addresses().await;
                match reason {
                    DropReason::Released => {}
                    DropReason::Withdrawn => tracing::info!(instance = %self.spec.group,
                        permit = %self.hold.permit().describe(Instant::now()),
                        "the fence withdrew its permit: virtual addresses removed (VRRP stays master, waiting for the lease)"),
                    DropReason::WindowEnded => tracing::warn!(instance = %self.spec.group,
                        "lease hold window ended before it was renewed: VIP removed"),
                }
                true
            }
        }
    }

    /// Operator demotion: priority lowered by 255 and, as Master, step down at once.
    fn set_demoted(&mut self, demoted: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        if demoted == self.demoted {
            return actions;
        }
        self.demoted = demoted;
        tracing::info!(instance = %self.spec.group, demoted,
            "{}", if demoted { "group moved to another node by the operator: priority lowered" } else { "operator demotion lifted: normal priority" });
        if demoted && self.machine.state() == State::Master {
            actions = self.machine.step_down(self.now());
        }
        actions.extend(
            self.machine
                .set_priority_adjustment(self.adjustment(), self.now()),
        );
        actions
    }

    fn adjustment(&self) -> i32 {
        let lowered = self.demoted || self.install_fault.is_some();
        self.tracker_delta + if lowered { -255 } else { 0 }
    }

    /// After a failed install: lowest priority for a while, and step down if master, so
    /// that a peer that can install the VIP serves it instead of nobody.
    fn enter_install_fault(&mut self) -> Vec<Action> {
        self.install_fault = Some(Instant::now() + INSTALL_RETRY);
        let mut actions = Vec::new();
        if self.machine.state() == State::Master {
            actions = self.machine.step_down(self.now());
        }
        actions.extend(
            self.machine
                .set_priority_adjustment(self.adjustment(), self.now()),
        );
        actions
    }

    /// Lets the VIPs through the kernel fence until `until` (a lease permit); true when
    /// there is no kernel fence or no end (`Permit::Always`). On failure (the table was
    /// removed by a firewall reload, nft missing) the VIPs must not be held: the table is
    /// put back and false returned, so the next permit tries again.
    async fn open_kernel_fence(&mut self, until: Option<Instant>) -> bool {
        let (Some(kernel), Some(until)) = (self.kernel.clone(), until) else {
            return true;
        };
        let ips = self.vips();
        match kernel.permit(&ips, until).await {
            Ok(took) => {
                self.fence_until = Some(until);
                if took > kernel.allowed_lateness() {
                    tracing::warn!(instance = %self.spec.group, took = ?took, allowed = ?kernel.allowed_lateness(),
                        "kernel fence refresh was slow: the fence may end this late after the hold window (raise node.cluster.lease.kernel_late if this repeats)");
                }
                true
            }
            Err(e) => {
                tracing::error!(instance = %self.spec.group, error = %e,
                    "kernel fence refresh failed: the VIP is not held; putting the fence table back");
                if let Err(e) = kernel.reinstall().await {
                    tracing::error!(instance = %self.spec.group, error = %e, "kernel fence could not be put back");
                }
                false
            }
        }
    }

    /// Installs (or refreshes) every address; false if any failed (each failure is logged).
    async fn install_addresses(&mut self, lifetime: Duration) -> bool {
        let mut all = true;
        for (ip, prefix) in self.spec.addresses.clone() {
            if let Err(e) = self
                .netlink
                .add_with_lifetime(self.link.index, ip, prefix, lifetime)
                .await
            {
                all = false;
                tracing::error!(instance = %self.spec.group, address = %ip, error = %e,
                    "cannot install virtual address (tandemd needs CAP_NET_ADMIN, and the interface must exist)");
            }
        }
        all
    }

    /// Removes the addresses and closes the fence (the hold machine already knows).
    async fn remove_addresses(&mut self) {
        self.next_garp = None;
        for (ip, _) in self.spec.addresses.clone() {
            if let Err(e) = self.netlink.remove(self.link.index, ip).await {
                tracing::error!(instance = %self.spec.group, address = %ip, error = %e, "cannot remove virtual address");
            }
        }
        if let Some(kernel) = self.kernel.clone() {
            self.fence_until = None;
            let ips = self.vips();
            if let Err(e) = kernel.revoke(&ips).await {
                // Harmless: the elements time out with the permit they were given.
                tracing::debug!(instance = %self.spec.group, error = %e, "kernel fence not closed early");
            }
        }
    }

    fn announce(&mut self, why: &str) {
        if !self.hold.holding() {
            return;
        }
        let ips = self.vips();
        self.garp
            .announce(self.link.mac, &ips, self.spec.garp_count);
        self.stats.garp_burst();
        tracing::debug!(instance = %self.spec.group, reason = why, "gratuitous ARP sent");
    }

    fn publish_status(&self) {
        let state = self.machine.state();
        let master = self.machine.current_master();
        let (base, effective) = (
            self.machine.base_priority(),
            self.machine.effective_priority(),
        );
        let holding = self.hold.holding();
        let waiting = self.hold.wants() && !holding;
        let demoted = self.demoted;
        let fenced_out = self.machine.fenced_out();
        let fence_until = self.fence_until;
        self.status.send_if_modified(|s| {
            let changed = s.state != state
                || s.master != master
                || s.effective_priority != effective
                || s.holds_addresses != holding
                || s.waiting_for_fence != waiting
                || s.demoted != demoted
                || s.fenced_out != fenced_out
                || s.kernel_fence_until != fence_until;
            s.state = state;
            s.master = master;
            s.base_priority = base;
            s.effective_priority = effective;
            s.holds_addresses = holding;
            s.waiting_for_fence = waiting;
            s.demoted = demoted;
            s.fenced_out = fenced_out;
            s.kernel_fence_until = fence_until;
            changed
        });
    }
}

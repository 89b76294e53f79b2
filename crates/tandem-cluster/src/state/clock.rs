//! The lease clock rules: when a holder may keep its VIP, when it renews, what lifetime
//! the kernel gets, and when a contender may propose `Acquire`.
//!
//! These run on the proposing nodes, with each node's own monotonic clock passed in as a
//! `Duration` since any origin; the state machine never sees a clock. Why two nodes never
//! hold at once, with every clock off by up to `drift`:
//!
//! - The holder H keeps the VIP until `s + lease - margin` on its clock, `s` being when it
//!   *sent* its last renewal that committed. In true time that ends by
//!   `t(s) + (lease - margin) / (1 - drift)`.
//! - A contender C's `Acquire{seen}` is granted only if nothing changed since `seen`, so C
//!   applied H's last committed renewal (after it committed, so after `t(s)`) and then
//!   waited `lease × (1 + drift) + slack` on its own clock: at least
//!   `t(s) + (lease × (1 + drift) + slack) / (1 + drift)` in true time before it can hold.
//! - A renewal that never commits extends nothing; one that commits after C's Acquire is
//!   refused (the epoch changed). [`LeaseTiming::validate`] checks that the first bound,
//!   plus the kernel's lateness (below), ends before the second.
//!
//! The kernel backstop ([`KernelBackstop`]) silences a SIGKILLed or frozen holder's VIP
//! without any action of its daemon, at most `kernel_late` after `valid_until`;
//! `validate` requires that to come before any contender may hold. So the margin between
//! "H stops" and "C may start" (`safety_margin` + `slack` + the `(1 + drift)` factor) must
//! cover the kernel's lateness; that is what sizes the defaults.
//!
//! - [`KernelBackstop::Nftables`] (default): nftables set elements with millisecond
//!   timeouts, refreshed after each confirmed renewal to end at `valid_until`. Late only by
//!   the time one `nft` run takes (under 25 ms measured, docs/cluster.md), so leases can be
//!   a few hundred milliseconds.
//! - [`KernelBackstop::AddressLifetime`]: the address's `valid_lft`, the time left in
//!   the hold window rounded down to whole seconds (the rule is the VRRP speaker's,
//!   `tandem_vrrp::machine::Permit::hold`, so that it exists once). The kernel counts it in whole seconds and checks it
//!   on a coarse timer (docs/vrrp.md: up to about a second late), which forces a hold
//!   window of at least 1 s and a lease of about 2 s.
//!
//! How a node drives them, per vip_group (each reading of "now" from its monotonic clock):
//!
//! - At start and after applying any entry, `contender.observed(state.lease(group), now)`.
//! - Contending: when `contender.may_acquire(now)` is `Some(seen)`, propose
//!   `Acquire{seen}`, remembering the send time `sent`.
//! - Granted Acquire or Renew: `holder.confirmed(sent)`; the speaker then opens the fence
//!   (or installs the address lifetime) up to `holder.valid_until()`.
//! - Every tick: if `!holder.may_hold(now)`, remove the addresses; if
//!   `holder.should_renew(now)` and no renewal went out in the last `renew_every`, propose
//!   `Renew{epoch}` (renewals are pipelined: see `LeaseMachine`).
//! - Refused Renew, or a lease applied with another holder or epoch: `holder.reset()` and
//!   remove the addresses.
//! - Planned handover or shutdown: `holder.release(now)`, remove the addresses, then
//!   propose `Release{epoch}`.

use super::command::Lease;
use std::time::Duration;

/// What silences a dead holder's VIP in the kernel (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KernelBackstop {
    #[default]
    Nftables,
    AddressLifetime,
}

/// Lease timing, shared by all nodes of a cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeaseTiming {
    /// The lease term, counted from the send of the last committed renewal.
    pub lease: Duration,
    /// The holder drops the VIP this long before the term ends.
    pub safety_margin: Duration,
    /// Bound on any node's clock rate error (0.01 = 1%, the promise in DESIGN.md).
    pub drift: f64,
    /// Extra wait for contenders on top of `lease × (1 + drift)`.
    pub slack: Duration,
    /// How often the holder renews (several times per hold window).
    pub renew_every: Duration,
    /// How late the kernel may remove an address after its `valid_lft` ran out (measured
    /// in docs/vrrp.md). Not in the brief's API: it makes the kernel rule checkable.
    pub kernel_late: Duration,
    /// Which kernel backstop bounds a dead holder.
    pub backstop: KernelBackstop,
}

impl Default for LeaseTiming {
    /// The nftables fence: lease 500 ms, margin 150 ms, drift 1%, slack 50 ms, renew every
    /// 100 ms, kernel lateness 100 ms. Why these:
    ///
    /// - Hold window `lease - margin` = 350 ms after each confirmed renewal; renewing every
    ///   100 ms (pipelined) gives three tries per window, so one lost renewal never drops
    ///   the VIP.
    /// - Safety: `(350 ms + 100 ms) / 0.99 = 455 ms` (latest a dead holder's kernel fence
    ///   closes) ≤ `(500 ms × 1.01 + 50 ms) / 1.01 = 550 ms` (earliest a contender may hold),
    ///   95 ms to spare.
    /// - Crash failover: the lease lapses `505 ms + 50 ms` after the last renewal a contender
    ///   applied, i.e. about 455-555 ms after the crash, before VRRP's own detection at
    ///   200 ms adverts (3 × 200 ms + skew, 522-722 ms after it); the lapse lets the backup
    ///   take over (`Instance::set_lease_lapsed`). When the crashed holder also led Raft,
    ///   the election (0.3 to 0.45 s with the pre-vote's spread of a third of the election
    ///   timeout) runs inside that wait. (600 ms was the default until the election spread
    ///   was cut: the election set the pace then; docs/cluster.md.)
    fn default() -> Self {
        LeaseTiming {
            lease: Duration::from_millis(500),
            safety_margin: Duration::from_millis(150),
            drift: 0.01,
            slack: Duration::from_millis(50),
            renew_every: Duration::from_millis(100),
            kernel_late: Duration::from_millis(100),
            backstop: KernelBackstop::Nftables,
        }
    }
}

impl LeaseTiming {
    /// The whole-second address-lifetime backstop (no nftables): lease 2 s, margin 800 ms, drift 1%, slack 300 ms, renew every 300 ms, kernel
    /// lateness 1 s. Why these:
    ///
    /// - The hold window after each confirmed renewal is `lease - margin` = 1.2 s: at least
    ///   1 s must be left when the renewal is confirmed (commit under 200 ms) or the kernel
    ///   lifetime rounds down to 0 and the VIP cannot be installed at all.
    /// - `renew_every` 300 ms gives four tries per window, and re-installs the kernel
    ///   lifetime (1 s) well before it lapses, even when one renewal is lost.
    /// - Kernel safety: `(1.2 s + 1 s) × 1.01 = 2.222 s` (latest the dead holder's kernel
    ///   drops the VIP) ≤ `(2 s × 1.01 + 0.3 s) × 0.99 = 2.297 s` (earliest a contender may
    ///   hold), with 75 ms to spare for the daemon's own reaction.
    ///
    /// Failover after a crash is therefore at most the contender wait,
    /// `2 s × 1.01 + 0.3 s = 2.32 s`, plus one check tick and one commit: about 2.4 s, not
    /// "well under 2 s". With a kernel that may be a second late and counts whole seconds,
    /// no timing fences a SIGKILLed holder faster: its address can live 1 s (smallest
    /// lifetime) + 1 s (lateness) after its last renewal. A cluster whose measured lateness
    /// is lower can shorten everything: with `kernel_late` 350 ms, lease 1.5 s, margin
    /// 200 ms, slack 200 ms validate (failover ~1.8 s). Planned handovers (`Release`) wait
    /// for nothing.
    pub fn address_lifetime() -> Self {
        LeaseTiming {
            lease: Duration::from_millis(2000),
            safety_margin: Duration::from_millis(800),
            drift: 0.01,
            slack: Duration::from_millis(300),
            renew_every: Duration::from_millis(300),
            kernel_late: Duration::from_millis(1000),
            backstop: KernelBackstop::AddressLifetime,
        }
    }

    /// How long the holder may keep the VIP after sending a renewal that committed:
    /// `lease - safety_margin` (zero if the margin is not smaller than the lease).
    pub fn hold_window(&self) -> Duration {
        self.lease.saturating_sub(self.safety_margin)
    }

    /// How long a contender waits, on its own clock, with no change to the lease applied
    /// before it may propose `Acquire`: `lease × (1 + drift) + slack`.
    pub fn contender_wait(&self) -> Duration {
        self.lease.mul_f64(1.0 + self.drift.max(0.0)) + self.slack
    }

    /// Checks the rules that make the lease safe and live; one message per broken rule.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !(self.drift.is_finite() && (0.0..0.1).contains(&self.drift)) {
            problems.push(format!(
                "drift {} must be at least 0 and below 0.1 (0.01 = 1%)",
                self.drift
            ));
        }
        if self.safety_margin >= self.lease {
            problems.push(format!(
                "safety_margin {:?} must be shorter than the lease {:?}",
                self.safety_margin, self.lease
            ));
        }
        let hold = self.hold_window();
        if self.backstop == KernelBackstop::Nftables {
            if self.renew_every.is_zero() || self.renew_every * 2 > hold {
                problems.push(format!(
                    "renew_every {:?} must be more than 0 and at most half of the hold window \
                     lease - safety_margin = {hold:?}, so that one lost renewal does not drop the VIP",
                    self.renew_every
                ));
            }
        } else if hold < Duration::from_secs(1) {
            problems.push(format!(
                "lease - safety_margin = {hold:?} must be at least 1s: the kernel counts \
                 address lifetimes in whole seconds, so a shorter window can never be installed \
                 (kernel_fence = \"nftables\" allows sub-second leases)"
            ));
        } else if self.renew_every.is_zero()
            || self.renew_every * 2 > Duration::from_secs(hold.as_secs())
        {
            problems.push(format!(
                "renew_every {:?} must be more than 0 and at most half of {}s (the kernel \
                 lifetime a renewal installs), so that one lost renewal does not drop the VIP",
                self.renew_every,
                hold.as_secs()
            ));
        }
        if problems.is_empty() {
            // Latest a holder (or its kernel) may still have the VIP, vs earliest a
            // contender may take it, both after the same send time, in true time.
            let holder_end = (hold + self.kernel_late).as_secs_f64() / (1.0 - self.drift);
            let contender_start = self.contender_wait().as_secs_f64() / (1.0 + self.drift);
            if holder_end > contender_start {
                problems.push(format!(
                    "unsafe: the holder's kernel may keep the VIP {holder_end:.3}s after a \
                     renewal ((lease - safety_margin + kernel_late) / (1 - drift)) but a \
                     contender may take it after {contender_start:.3}s \
                     ((lease × (1 + drift) + slack) / (1 + drift)); raise safety_margin or slack"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// The holder's side: it may hold the VIP only until `send_time(last successful renewal)
/// + lease - safety_margin`, by its own monotonic clock.
#[derive(Clone, Debug)]
pub struct HolderClock {
    timing: LeaseTiming,
    /// Send time of the latest confirmed Acquire/Renew.
    last_confirmed: Option<Duration>,
    /// Confirmations of sends at or before this are ignored (set by `release`).
    ignore_through: Option<Duration>,
}

impl HolderClock {
    pub fn new(timing: LeaseTiming) -> Self {
        HolderClock {
            timing,
            last_confirmed: None,
            ignore_through: None,
        }
    }

    /// An Acquire or Renew sent at `sent_at` (this clock) committed and was granted.
    /// Confirmations may arrive out of order; the latest send counts.
    pub fn confirmed(&mut self, sent_at: Duration) {
        if self.ignore_through.is_some_and(|t| sent_at <= t) {
            return;
        }
        self.last_confirmed = Some(self.last_confirmed.map_or(sent_at, |s| s.max(sent_at)));
    }

    /// End of the hold window; `None` before the first confirmation (or after a reset).
    pub fn valid_until(&self) -> Option<Duration> {
        self.last_confirmed.map(|s| s + self.timing.hold_window())
    }

    pub fn may_hold(&self, now: Duration) -> bool {
        self.valid_until().is_some_and(|until| now < until)
    }

    /// Time to send the next renewal: `renew_every` after the send of the last confirmed
    /// one. Stays true while renewals are lost (the caller paces retries by
    /// `renew_every`), even past `valid_until`: a renewal that still commits with the same
    /// epoch is as safe as any other and gives the VIP back.
    pub fn should_renew(&self, now: Duration) -> bool {
        self.last_confirmed
            .is_some_and(|s| now >= s + self.timing.renew_every)
    }

    /// When [`Self::should_renew`] turns true; `None` before the first confirmation.
    pub fn next_renewal(&self) -> Option<Duration> {
        self.last_confirmed.map(|s| s + self.timing.renew_every)
    }

    /// Forgets the hold: the lease was lost (another epoch applied, a Renew refused) or
    /// the node restarts its VIP logic. Not for planned handovers: use [`Self::release`].
    pub fn reset(&mut self) {
        self.last_confirmed = None;
    }

    /// Planned handover, step one: drop the hold now, before proposing `Release`, and
    /// ignore confirmations of anything sent until now. A renewal already in flight may
    /// still commit before the Release, and since contenders acquire at once after a
    /// Release, it must not bring the hold back. (Added to the brief's API: `reset` has no
    /// time to draw that line with.)
    pub fn release(&mut self, now: Duration) {
        self.last_confirmed = None;
        self.ignore_through = Some(self.ignore_through.map_or(now, |t| t.max(now)));
    }
}

/// A contender may propose `Acquire` only after it has applied no change to that lease for
/// `lease × (1 + drift) + slack` on its own clock, or at once when the lease is empty
/// (released, or never held: nobody may hold it, so nobody can be holding it).
#[derive(Clone, Debug)]
pub struct ContenderClock {
    timing: LeaseTiming,
    /// The lease as last applied here, and when this node first saw it.
    last: Option<(Lease, Duration)>,
}

impl ContenderClock {
    pub fn new(timing: LeaseTiming) -> Self {
        ContenderClock { timing, last: None }
    }

    /// Call at start and whenever the group's applied lease may have changed, with the
    /// local time of observation. Repeating an unchanged lease keeps the original time. The
    /// first observation counts as a change: this node cannot know when it really happened,
    /// only that it committed before now, which is all the rule needs.
    pub fn observed(&mut self, lease: Lease, now: Duration) {
        match self.last {
            Some((seen, _)) if seen == lease => {}
            _ => self.last = Some((lease, now)),
        }
    }

    /// `Some(seen)` (the `(epoch, seq)` to put in `Acquire`) when this node may propose.
    pub fn may_acquire(&self, now: Duration) -> Option<(u64, u64)> {
        let (lease, since) = self.last?;
        let waited = now.saturating_sub(since) >= self.timing.contender_wait();
        (lease.holder.is_none() || waited).then_some(lease.version())
    }

    /// When [`Self::may_acquire`] turns `Some`; `None` before the first observation.
    pub fn acquire_at(&self) -> Option<Duration> {
        let (lease, since) = self.last?;
        Some(match lease.holder {
            None => since,
            Some(_) => since + self.timing.contender_wait(),
        })
    }
}

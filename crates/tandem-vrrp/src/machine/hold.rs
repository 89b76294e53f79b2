//! Whether this node holds an instance's addresses: VRRP's wish ([`Hold::set_wants`]) and
//! the fence's permit ([`Hold::on_permit`]), as a machine with no I/O and no clock reads.
//! The speaker feeds it and carries out the [`HoldStep`] it returns; the lease safety
//! simulation (tandem-cluster's tests/state_sim) drives the same machine on a virtual
//! clock, so the rule that sizes the kernel lifetime exists once, here ([`Permit::hold`]).
//!
//! Times are `tokio::time::Instant` values handed in by the caller (the keeper's permits
//! are instants); the machine never reads a clock, so a test can pass any instants.

use std::time::Duration;
use tokio::time::Instant;

/// Under a kernel fence, a permit with less than this left is not worth taking the VIP for.
const MIN_KERNEL_FENCED_HOLD: Duration = Duration::from_millis(20);

/// What the fence allows one VIP group right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// Plain VRRP: hold whenever VRRP is master, with the VRRP address lifetime
    /// (`InstanceSpec::address_lifetime`).
    Always,
    /// May hold until this instant (monotonic). See [`Permit::hold`] for the kernel
    /// lifetime the addresses get; the speaker removes them at this instant at the latest
    /// even if nothing else happens.
    Until(Instant),
    /// May not hold now: addresses removed at once.
    Denied,
}

impl Permit {
    /// The kernel lifetime to install the addresses with at `now`, and the instant the
    /// speaker must remove them by (None: no such instant). None: do not install now.
    ///
    /// With a kernel fence (`kernel_fenced`), the nftables elements end the hold window
    /// to the millisecond, so the address lifetime is only the cleanup backstop: the time
    /// left rounded UP to whole seconds, plus one. Without it the lifetime is the fence
    /// itself: the time left rounded DOWN to whole seconds (the kernel counts whole
    /// seconds), so it never reaches past `t`, and nothing is installed under 1 s.
    pub fn hold(
        &self,
        now: Instant,
        vrrp_lifetime: Duration,
        kernel_fenced: bool,
    ) -> Option<(Duration, Option<Instant>)> {
        match *self {
            Permit::Always => Some((vrrp_lifetime, None)),
            Permit::Until(t) if kernel_fenced => {
                let left = t.saturating_duration_since(now);
                (left >= MIN_KERNEL_FENCED_HOLD).then(|| {
                    let cleanup = left.as_secs_f64().ceil() as u64 + 1;
                    (Duration::from_secs(cleanup), Some(t))
                })
            }
            Permit::Until(t) => {
                let secs = t.saturating_duration_since(now).as_secs();
                (secs >= 1).then(|| (Duration::from_secs(secs), Some(t)))
            }
            Permit::Denied => None,
        }
    }

    /// For logs: "always", "denied" or "for 4.2 s".
    pub fn describe(&self, now: Instant) -> String {
        match *self {
            Permit::Always => "always".into(),
            Permit::Until(t) => format!(
                "for {:.1} s",
                t.saturating_duration_since(now).as_secs_f64()
            ),
            Permit::Denied => "denied".into(),
        }
    }
}

/// Why the addresses go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// VRRP gave them up (backup, shutdown, fault).
    Released,
    /// The fence withdrew its permit (lease lost, denied).
    Withdrawn,
    /// The hold window ran out before a renewal arrived.
    WindowEnded,
}

/// What the speaker must do after an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldStep {
    Nothing,
    /// Newly take the addresses: open the kernel fence until `fence_until` (if it is
    /// `Some` and there is a kernel fence), install them with `lifetime`, announce them.
    /// If either fails, tell the machine with [`Hold::lost`].
    Take {
        lifetime: Duration,
        fence_until: Option<Instant>,
    },
    /// Already holding: a renewal. Refresh the fence until `fence_until` and the
    /// addresses' lifetime; if the fence refresh fails, drop them and call [`Hold::lost`].
    Extend {
        lifetime: Duration,
        fence_until: Option<Instant>,
    },
    /// A master advert went out: refresh the addresses' lifetime only (within the permit).
    Refresh {
        lifetime: Duration,
    },
    /// Remove the addresses and close the fence.
    Drop(DropReason),
}

/// The hold state of one instance (see the module docs).
#[derive(Clone, Debug)]
pub struct Hold {
    vrrp_lifetime: Duration,
    kernel_fenced: bool,
    /// VRRP wants to be master (from TakeAddresses until ReleaseAddresses).
    wants: bool,
    /// The last permit acted on.
    permit: Permit,
    holding: bool,
    /// Under `Permit::Until`: the addresses go at this instant unless renewed.
    until: Option<Instant>,
}

impl Hold {
    /// `vrrp_lifetime`: the address lifetime under plain VRRP; `kernel_fenced`: whether an
    /// nftables fence ends the hold window (else the address lifetime must).
    pub fn new(vrrp_lifetime: Duration, kernel_fenced: bool, permit: Permit) -> Hold {
        Hold {
            vrrp_lifetime,
            kernel_fenced,
            wants: false,
            permit,
            holding: false,
            until: None,
        }
    }

    pub fn wants(&self) -> bool {
        self.wants
    }
    pub fn holding(&self) -> bool {
        self.holding
    }
    pub fn permit(&self) -> Permit {
        self.permit
    }
    /// When to call [`Hold::on_deadline`]: the end of the hold window while holding.
    pub fn deadline(&self) -> Option<Instant> {
        self.until.filter(|_| self.holding)
    }

    /// VRRP's wish changed (Action::TakeAddresses / ReleaseAddresses).
    pub fn set_wants(&mut self, wants: bool, now: Instant) -> HoldStep {
        self.wants = wants;
        match (wants, self.holding) {
            (true, false) => self.take(now),
            (false, true) => self.drop(DropReason::Released),
            _ => HoldStep::Nothing,
        }
    }

    /// A new permit from the fence: take, extend or drop accordingly.
    pub fn on_permit(&mut self, permit: Permit, now: Instant) -> HoldStep {
        self.permit = permit;
        if !self.wants {
            return HoldStep::Nothing;
        }
        if !self.holding {
            return self.take(now);
        }
        match permit.hold(now, self.vrrp_lifetime, self.kernel_fenced) {
            Some((lifetime, fence_until)) => {
                self.until = fence_until;
                HoldStep::Extend {
                    lifetime,
                    fence_until,
                }
            }
            // Less than a second left without a kernel fence: nothing to extend. Keep
            // holding until `t2` only if that does not shorten the window the installed
            // lifetime was bound to.
            None => match permit {
                Permit::Until(t2) if self.until.is_some_and(|t1| t2 >= t1) => {
                    self.until = Some(t2);
                    HoldStep::Nothing
                }
                _ => self.drop(DropReason::Withdrawn),
            },
        }
    }

    /// An advert went out as master: the addresses' lifetime is refreshed within the permit.
    pub fn on_advert(&self, now: Instant) -> HoldStep {
        if !self.holding {
            return HoldStep::Nothing;
        }
        match self
            .permit
            .hold(now, self.vrrp_lifetime, self.kernel_fenced)
        {
            Some((lifetime, _)) => HoldStep::Refresh { lifetime },
            None => HoldStep::Nothing,
        }
    }

    /// The timer of [`Hold::deadline`] fired. (Feed the fence's latest permit first: a
    /// renewal that raced with the timer wins.)
    pub fn on_deadline(&mut self, now: Instant) -> HoldStep {
        match self.deadline() {
            Some(t) if t <= now => self.drop(DropReason::WindowEnded),
            _ => HoldStep::Nothing,
        }
    }

    /// Carrying out a Take or Extend failed: the addresses are not held.
    pub fn lost(&mut self) {
        self.holding = false;
        self.until = None;
    }

    fn take(&mut self, now: Instant) -> HoldStep {
        match self
            .permit
            .hold(now, self.vrrp_lifetime, self.kernel_fenced)
        {
            Some((lifetime, fence_until)) => {
                self.holding = true;
                self.until = fence_until;
                HoldStep::Take {
                    lifetime,
                    fence_until,
                }
            }
            None => HoldStep::Nothing,
        }
    }

    fn drop(&mut self, why: DropReason) -> HoldStep {
        self.lost();
        HoldStep::Drop(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VRRP: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn until_rounds_down_and_refuses_less_than_a_second() {
        let now = Instant::now();
        assert_eq!(Permit::Always.hold(now, VRRP, false), Some((VRRP, None)));
        assert_eq!(Permit::Denied.hold(now, VRRP, false), None);
        let t = now + ms(3999);
        assert_eq!(
            Permit::Until(t).hold(now, VRRP, false),
            Some((Duration::from_secs(3), Some(t)))
        );
        let t = now + ms(999);
        assert_eq!(Permit::Until(t).hold(now, VRRP, false), None);
        assert_eq!(
            Permit::Until(now).hold(now + Duration::from_secs(1), VRRP, false),
            None
        );
    }

    #[test]
    fn under_a_kernel_fence_short_windows_hold_and_the_lifetime_only_cleans_up() {
        let now = Instant::now();
        let t = now + ms(350);
        assert_eq!(
            Permit::Until(t).hold(now, VRRP, true),
            Some((Duration::from_secs(2), Some(t))),
            "350 ms left: cleanup lifetime ceil(0.35 s) + 1 s"
        );
        let t = now + ms(10);
        assert_eq!(
            Permit::Until(t).hold(now, VRRP, true),
            None,
            "too little left"
        );
        assert_eq!(Permit::Denied.hold(now, VRRP, true), None);
    }

    #[test]
    fn holds_only_when_vrrp_wants_and_the_fence_permits() {
        let t0 = Instant::now();
        let mut hold = Hold::new(VRRP, true, Permit::Denied);
        assert_eq!(hold.set_wants(true, t0), HoldStep::Nothing, "no permit yet");
        assert!(!hold.holding());
        let until = t0 + ms(450);
        assert_eq!(
            hold.on_permit(Permit::Until(until), t0),
            HoldStep::Take {
                lifetime: Duration::from_secs(2),
                fence_until: Some(until)
            }
        );
        assert!(hold.holding());
        assert_eq!(hold.deadline(), Some(until));
        assert_eq!(
            hold.set_wants(false, t0 + ms(10)),
            HoldStep::Drop(DropReason::Released)
        );
        assert!(!hold.holding());
        assert_eq!(hold.deadline(), None);
        // A permit without VRRP's wish takes nothing.
        assert_eq!(
            hold.on_permit(Permit::Until(t0 + ms(900)), t0 + ms(20)),
            HoldStep::Nothing
        );
    }

    #[test]
    fn renewals_extend_and_a_missed_one_ends_the_window() {
        let t0 = Instant::now();
        let mut hold = Hold::new(VRRP, true, Permit::Until(t0 + ms(450)));
        assert!(matches!(hold.set_wants(true, t0), HoldStep::Take { .. }));
        let renewed = t0 + ms(600);
        assert_eq!(
            hold.on_permit(Permit::Until(renewed), t0 + ms(150)),
            HoldStep::Extend {
                lifetime: Duration::from_secs(2),
                fence_until: Some(renewed)
            }
        );
        assert_eq!(
            hold.on_deadline(t0 + ms(599)),
            HoldStep::Nothing,
            "early timer"
        );
        assert_eq!(
            hold.on_deadline(renewed),
            HoldStep::Drop(DropReason::WindowEnded)
        );
        assert_eq!(
            hold.on_deadline(renewed + ms(1)),
            HoldStep::Nothing,
            "dropped once"
        );
    }

    #[test]
    fn a_withdrawn_permit_drops_at_once() {
        let t0 = Instant::now();
        let mut hold = Hold::new(VRRP, true, Permit::Until(t0 + ms(450)));
        hold.set_wants(true, t0);
        assert_eq!(
            hold.on_permit(Permit::Denied, t0 + ms(5)),
            HoldStep::Drop(DropReason::Withdrawn)
        );
        // Back again: taken anew (announced), not extended.
        assert!(matches!(
            hold.on_permit(Permit::Until(t0 + ms(900)), t0 + ms(300)),
            HoldStep::Take { .. }
        ));
    }

    #[test]
    fn without_a_kernel_fence_a_short_renewal_keeps_the_longer_window_only() {
        let t0 = Instant::now();
        let first = t0 + ms(2500);
        let mut hold = Hold::new(VRRP, false, Permit::Until(first));
        assert_eq!(
            hold.set_wants(true, t0),
            HoldStep::Take {
                lifetime: Duration::from_secs(2),
                fence_until: Some(first)
            }
        );
        // 0.8 s left at a later renewal, ending after the window: kept, nothing installed.
        let later = first + ms(100);
        assert_eq!(
            hold.on_permit(Permit::Until(later), later - ms(800)),
            HoldStep::Nothing
        );
        assert_eq!(hold.deadline(), Some(later));
        // A shorter one than the window the lifetime was bound to: dropped.
        let shorter = later - ms(200);
        assert_eq!(
            hold.on_permit(Permit::Until(shorter), shorter - ms(500)),
            HoldStep::Drop(DropReason::Withdrawn)
        );
    }

    #[test]
    fn adverts_refresh_within_the_permit_and_failures_are_reported_back() {
        let t0 = Instant::now();
        let mut hold = Hold::new(VRRP, false, Permit::Always);
        assert_eq!(hold.on_advert(t0), HoldStep::Nothing, "not holding");
        assert!(matches!(
            hold.set_wants(true, t0),
            HoldStep::Take {
                fence_until: None,
                ..
            }
        ));
        assert_eq!(hold.deadline(), None, "plain VRRP has no window");
        assert_eq!(hold.on_advert(t0), HoldStep::Refresh { lifetime: VRRP });
        hold.lost();
        assert!(!hold.holding());
        assert_eq!(hold.on_advert(t0), HoldStep::Nothing);
        // Still wanted: the next permit takes again.
        assert!(matches!(
            hold.on_permit(Permit::Always, t0),
            HoldStep::Take { .. }
        ));
    }
}

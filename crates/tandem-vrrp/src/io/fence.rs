//! The fencing seam: VRRP decides who *wants* to be master; a fence decides who *may* hold
//! the addresses, and for how long. `fencing = "none"` is [`NoFence`]; the Raft lease keeper
//! drives a [`FenceLink`] per VIP group.
//!
//! The speaker side ([`FenceSide`]) keeps the last value of every channel and stops
//! listening to a channel whose sender is gone, so a closed channel never makes it spin.

use std::sync::Arc;
use tokio::sync::watch;

use super::kernel_fence::KernelFence;

pub use crate::machine::Permit;

/// The speaker's connection to the fence for one group.
pub struct FenceLink {
    pub permit: watch::Receiver<Permit>,
    /// The speaker publishes whether VRRP wants to be master: true from
    /// Action::TakeAddresses, false on Action::ReleaseAddresses / step-down / shutdown /
    /// fault. (The fence acquires or releases the lease from it.)
    pub wants: watch::Sender<bool>,
    /// true: an operator moved this group to another node. The instance then runs with its
    /// priority adjustment lowered by 255 (so effective priority clamps to 1; tracker deltas
    /// still add) and, if it is Master, steps down at once (see
    /// [`Instance::step_down`](crate::machine::Instance::step_down)). false again: back to
    /// normal priority.
    pub demoted: watch::Receiver<bool>,
    /// true: an operator moved this group here. When the master leaves (priority 0), the
    /// instance takes over at once instead of after Skew_Time (see
    /// [`Instance::set_designated`](crate::machine::Instance::set_designated)).
    pub designated: watch::Receiver<bool>,
    /// true: the lease holder (another node) let its lease lapse. As Backup the instance
    /// then takes over after one silent advert interval (see
    /// [`Instance::set_lease_lapsed`](crate::machine::Instance::set_lease_lapsed)).
    pub lapsed: watch::Receiver<bool>,
    /// The nftables fence that silences the group's VIPs when the permit ends, even if
    /// this daemon is dead (`None`: the address lifetime is the only kernel backstop).
    pub kernel: Option<Arc<KernelFence>>,
    /// `false` while this node cannot keep or get a lease (no live Raft leader with a
    /// majority heard): the speaker then stops contending for master, so that a node
    /// that can hold the VIP takes it (a one-way cut must not leave it held by nobody).
    pub able: watch::Receiver<bool>,
}

pub trait Fence: Send + Sync + 'static {
    fn attach(&self, group: &str) -> FenceLink;
}

/// Plain VRRP (keepalived semantics): permit Always, never demoted.
pub struct NoFence;

impl Fence for NoFence {
    fn attach(&self, _group: &str) -> FenceLink {
        // The senders (and the wants receiver) are dropped here: the speaker keeps the
        // initial values and stops listening.
        let (_, permit) = watch::channel(Permit::Always);
        let (wants, _) = watch::channel(false);
        let (_, demoted) = watch::channel(false);
        let (_, designated) = watch::channel(false);
        let (_, lapsed) = watch::channel(false);
        let (_, able) = watch::channel(true);
        FenceLink {
            permit,
            wants,
            demoted,
            designated,
            lapsed,
            kernel: None,
            able,
        }
    }
}

/// A change the speaker must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FenceEvent {
    Permit(Permit),
    Demoted(bool),
    Designated(bool),
    Lapsed(bool),
    Able(bool),
}

/// The speaker's end of a [`FenceLink`].
pub(super) struct FenceSide {
    link: FenceLink,
    permit_open: bool,
    demoted_open: bool,
    designated_open: bool,
    lapsed_open: bool,
    able_open: bool,
}

impl FenceSide {
    pub(super) fn new(link: FenceLink) -> FenceSide {
        FenceSide {
            link,
            permit_open: true,
            demoted_open: true,
            designated_open: true,
            lapsed_open: true,
            able_open: true,
        }
    }

    /// The latest permit, marked as seen (so [`next`](Self::next) does not report it again).
    pub(super) fn latest_permit(&mut self) -> Permit {
        *self.link.permit.borrow_and_update()
    }

    /// The latest demotion flag, marked as seen.
    pub(super) fn latest_demoted(&mut self) -> bool {
        *self.link.demoted.borrow_and_update()
    }

    /// The latest designation flag, marked as seen.
    pub(super) fn latest_designated(&mut self) -> bool {
        *self.link.designated.borrow_and_update()
    }

    /// Whether this node can get a lease at all, marked as seen.
    pub(super) fn latest_able(&mut self) -> bool {
        *self.link.able.borrow_and_update()
    }

    /// Publishes whether VRRP wants to be master (receivers notified on change only; kept
    /// even when nobody listens).
    pub(super) fn set_wants(&self, wants: bool) {
        self.link.wants.send_if_modified(|w| {
            let changed = *w != wants;
            *w = wants;
            changed
        });
    }

    /// The next change; never completes once both channels are closed. Cancel-safe.
    pub(super) async fn next(&mut self) -> FenceEvent {
        loop {
            tokio::select! {
                changed = self.link.permit.changed(), if self.permit_open => match changed {
                    Ok(()) => return FenceEvent::Permit(*self.link.permit.borrow_and_update()),
                    // Sender gone: keep the last value, stop listening (no spinning).
                    Err(_) => self.permit_open = false,
                },
                changed = self.link.demoted.changed(), if self.demoted_open => match changed {
                    Ok(()) => return FenceEvent::Demoted(*self.link.demoted.borrow_and_update()),
                    Err(_) => self.demoted_open = false,
                },
                changed = self.link.designated.changed(), if self.designated_open => match changed {
                    Ok(()) => return FenceEvent::Designated(*self.link.designated.borrow_and_update()),
                    Err(_) => self.designated_open = false,
                },
                changed = self.link.lapsed.changed(), if self.lapsed_open => match changed {
                    Ok(()) => return FenceEvent::Lapsed(*self.link.lapsed.borrow_and_update()),
                    Err(_) => self.lapsed_open = false,
                },
                changed = self.link.able.changed(), if self.able_open => match changed {
                    Ok(()) => return FenceEvent::Able(*self.link.able.borrow_and_update()),
                    Err(_) => self.able_open = false,
                },
                else => std::future::pending::<()>().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn closed_channels_keep_their_last_value_and_never_wake() {
        let mut side = FenceSide::new(NoFence.attach("g"));
        assert_eq!(side.latest_permit(), Permit::Always);
        assert!(!side.latest_demoted());
        side.set_wants(true);
        let woke = tokio::time::timeout(Duration::from_millis(50), side.next()).await;
        assert!(woke.is_err(), "no event from closed channels: {woke:?}");
        assert!(
            !side.permit_open
                && !side.demoted_open
                && !side.designated_open
                && !side.lapsed_open
                && !side.able_open
        );
    }

    #[tokio::test]
    async fn changes_are_reported_once() {
        let (permit_tx, permit) = watch::channel(Permit::Denied);
        let (wants, mut wants_rx) = watch::channel(false);
        let (demoted_tx, demoted) = watch::channel(false);
        let (designated_tx, designated) = watch::channel(false);
        let (lapsed_tx, lapsed) = watch::channel(false);
        let (able_tx, able) = watch::channel(true);
        let mut side = FenceSide::new(FenceLink {
            permit,
            wants,
            demoted,
            designated,
            lapsed,
            kernel: None,
            able,
        });
        permit_tx.send(Permit::Always).unwrap();
        assert_eq!(side.next().await, FenceEvent::Permit(Permit::Always));
        demoted_tx.send(true).unwrap();
        assert_eq!(side.next().await, FenceEvent::Demoted(true));
        designated_tx.send(true).unwrap();
        assert_eq!(side.next().await, FenceEvent::Designated(true));
        lapsed_tx.send(true).unwrap();
        assert_eq!(side.next().await, FenceEvent::Lapsed(true));
        able_tx.send(false).unwrap();
        assert_eq!(side.next().await, FenceEvent::Able(false));
        side.set_wants(true);
        assert!(wants_rx.has_changed().unwrap());
        assert!(*wants_rx.borrow_and_update());
        side.set_wants(true);
        assert!(
            !wants_rx.has_changed().unwrap(),
            "no notification without a change"
        );
        drop((permit_tx, demoted_tx, designated_tx, lapsed_tx, able_tx));
        let woke = tokio::time::timeout(Duration::from_millis(50), side.next()).await;
        assert!(woke.is_err());
    }
}

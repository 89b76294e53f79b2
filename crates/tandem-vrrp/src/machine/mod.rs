//! The RFC 5798 section 6 state machine for one VRRP instance, IPv4 or IPv6 (the same
//! machine: only the address family of the primary address and of the peers differs).
//!
//! Pure: no I/O, no clock reads, no threads. Every call takes `now` (time since an
//! arbitrary origin chosen by the caller) and returns the [`Action`]s to carry out, in order.
//! The shell asks [`Instance::poll_timeout`] when to call [`Instance::on_timer`] next.
//!
//! Action order within one call: packets and address changes first, then the
//! [`Action::Transition`], so hooks run after the addresses are already in place (or gone).
//!
//! Where the RFC leaves room (keepalived-compatible where it matters):
//! - Preempt delay is measured from startup / interface up. Until it has passed, a Backup
//!   treats a lower-priority Master's adverts as if preempt were off (accepts them, so its
//!   Master_Down_Timer keeps being reset). A silent or leaving Master is still replaced
//!   after Master_Down_Interval / Skew_Time: the delay protects a working Master, not an
//!   absent one. The owner (255) ignores the delay, as it ignores `preempt = false`.
//! - A Master receiving a lower-priority advert (or an equal one from a lower address)
//!   answers with an advert at once and [`Action::Reannounce`]; the RFC only says to
//!   discard it. After a partition heals, the other side's Master may have poisoned ARP
//!   caches; if nobody re-announces, those clients stay lost (seen with keepalived).
//! - As Master, an advert from a peer after a silence longer than Master_Down_Interval is
//!   also answered with a Reannounce (unless it makes us Backup: the winner re-announces).
//! - Tracker changes alone never change state: as Master they only change what we
//!   advertise (an advert goes out at once), as Backup whether we preempt.
//! - Our own adverts looped back (source = our primary address) are ignored.

mod config;
pub mod hold;
mod instance;

pub use config::{
    ConfigError, InstanceConfig, MAX_ADVERT_INTERVAL, MIN_ADVERT_INTERVAL, OWNER_PRIORITY,
};
pub use hold::{DropReason, Hold, HoldStep, Permit};
pub use instance::Instance;

use std::fmt;
use std::net::IpAddr;

/// The RFC 5798 states plus keepalived's FAULT (interface down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        })
    }
}

/// One received, already validated advertisement for this VRID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    pub src: IpAddr,
    pub priority: u8,
    pub max_advert_int_cs: u16,
}

/// What the shell must do, in the order returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority (0 = "I am leaving") and our interval.
    SendAdvert { priority: u8 },
    /// Add the virtual addresses and announce them (gratuitous ARP). Emitted on entering Master.
    TakeAddresses,
    /// Remove the virtual addresses. Emitted on leaving Master.
    ReleaseAddresses,
    /// Re-announce (gratuitous ARP) without a state change: as Master, on a lower-priority
    /// advert (a rogue/stale master whose ARP may have poisoned caches) and when a peer's
    /// adverts reappear after a silence longer than Master_Down_Interval (partition heal).
    Reannounce,
    /// For logs, metrics and hooks: every state change, once, with a reason.
    Transition {
        from: State,
        to: State,
        reason: Reason,
    },
}

/// Why a transition happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Initialize → Backup (or Fault when the interface is down at startup).
    Startup,
    /// Initialize → Master: we own the addresses (priority 255).
    OwnerStartup,
    /// Backup → Master: no advert within Master_Down_Interval.
    MasterDown,
    /// Master → Backup: a peer with strictly higher priority advertised.
    Preempted {
        by: IpAddr,
        priority: u8,
    },
    /// Master → Backup: a peer with equal priority and a higher primary address advertised,
    /// so it ranks higher in the RFC's (priority, address) order (dual-master resolution).
    HigherPriorityMaster {
        src: IpAddr,
        priority: u8,
    },
    /// Backup → Master: we ignored this lower-priority master's adverts until our timer ran out.
    PreemptingLowerPriority {
        src: IpAddr,
        priority: u8,
    },
    /// Backup → Master: the master advertised priority 0 and we waited only Skew_Time.
    MasterLeft,
    /// Backup → Master: the master's lease lapsed (so it cannot hold the addresses) and it
    /// fell silent for an advert interval ([`Instance::set_lease_lapsed`]).
    MasterLeaseLapsed,
    InterfaceDown,
    InterfaceUp,
    /// → Fault: the fence cannot let this node hold the addresses (no lease reachable).
    NoLease,
    /// Fault → Backup: the fence can grant a lease again.
    LeaseReachable,
    Shutdown,
    /// Master → Backup: an operator moved the group to another node
    /// ([`Instance::step_down`]).
    SteppedDown,
    /// Not emitted by this machine: a tracker change alone never changes state. Kept so the
    /// shell has a name for it should it ever map a tracker to a state change.
    PriorityChanged,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => write!(f, "startup"),
            Reason::OwnerStartup => write!(f, "startup as address owner (priority 255)"),
            Reason::MasterDown => {
                write!(f, "no advertisement from a master within Master_Down_Interval")
            }
            Reason::Preempted { by, priority } => {
                write!(f, "preempted by {by} with higher priority {priority}")
            }
            Reason::HigherPriorityMaster { src, priority } => write!(
                f,
                "master {src} has the same priority {priority} and a higher address, it wins the tie-break"
            ),
            Reason::PreemptingLowerPriority { src, priority } => {
                write!(f, "preempting master {src} with lower priority {priority}")
            }
            Reason::MasterLeft => write!(f, "master left (advertised priority 0)"),
            Reason::MasterLeaseLapsed => write!(
                f,
                "the master's lease lapsed and no advertisement came for an interval"
            ),
            Reason::InterfaceDown => write!(f, "interface down"),
            Reason::InterfaceUp => write!(f, "interface up"),
            Reason::NoLease => write!(
                f,
                "no lease can be had (no live Raft leader with a majority is heard)"
            ),
            Reason::LeaseReachable => write!(f, "a lease can be had again"),
            Reason::Shutdown => write!(f, "shutdown"),
            Reason::SteppedDown => write!(f, "moved by the operator"),
            Reason::PriorityChanged => write!(f, "priority changed"),
        }
    }
}

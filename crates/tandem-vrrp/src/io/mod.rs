//! The I/O shell around the state machine: raw sockets, netlink, gratuitous ARP, hooks,
//! trackers and the fencing seam ([`Fence`]). One task per instance ([`spawn_instance`]).

mod fence;
pub mod fence_reader;
mod garp;
mod hooks;
pub mod kernel_fence;
mod netlink;
mod socket;
mod speaker;
mod stats;
pub mod tracker;

pub use fence::{Fence, FenceLink, NoFence, Permit};
pub use fence_reader::{fence_state, FenceState};
pub use hooks::{HookEvent, HookRunner};
pub use kernel_fence::{KernelFence, KernelFenceError};
pub use netlink::{LinkInfo, Netlink, NetlinkError};
pub use stats::VrrpStats;
pub use tracker::{Probe, TrackerSpec};

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::machine::State;

/// One instance, fully resolved from config.
#[derive(Clone)]
pub struct InstanceSpec {
    pub group: String,
    pub vrid: u8,
    pub priority: u8,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// (address, prefix length).
    pub addresses: Vec<(Ipv4Addr, u8)>,
    pub interface: String,
    /// Empty: multicast to 224.0.0.18.
    pub unicast_peers: Vec<Ipv4Addr>,
    pub source: Option<Ipv4Addr>,
    pub garp_count: u32,
    pub garp_repeat_after: Duration,
    pub garp_refresh: Duration,
    pub trackers: Vec<TrackerSpec>,
}

impl InstanceSpec {
    /// Kernel lifetime of the installed VIPs: three advert intervals, at least 2 s (the
    /// kernel counts whole seconds and checks expiry about once a second). Renewed with
    /// every advert, so a live master never lets it run out.
    pub fn address_lifetime(&self) -> Duration {
        let three = self.advert_interval * 3;
        Duration::from_secs(three.as_secs_f64().ceil().max(2.0) as u64)
    }
}

/// What an instance looks like now, for status output and tests.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceStatus {
    pub group: String,
    pub vrid: u8,
    pub state: State,
    pub base_priority: u8,
    pub effective_priority: u8,
    pub master: Option<Ipv4Addr>,
    pub holds_addresses: bool,
    pub last_transition: Option<(State, State, String, SystemTime)>,
    /// VRRP is master but the fence does not permit holding the addresses (yet).
    pub waiting_for_fence: bool,
    /// An operator moved this group to another node (priority lowered by 255).
    pub demoted: bool,
    /// The fence says no lease can be had here: the instance sits in Fault, silent.
    pub fenced_out: bool,
    /// Until when the kernel fence lets the addresses through (None: closed, or no
    /// kernel fence).
    pub kernel_fence_until: Option<tokio::time::Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(
        "interface {0:?} has no IPv4 address to send adverts from; add one or set node.vrrp.source"
    )]
    NoSourceAddress(String),
    #[error("opening raw sockets on {0:?}: {1} (tandemd needs CAP_NET_RAW)")]
    Socket(String, std::io::Error),
}

pub struct InstanceHandle {
    pub status: watch::Receiver<InstanceStatus>,
    pub stats: Arc<VrrpStats>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Resolves the interface, removes stale VIPs, opens sockets and starts the instance.
/// When `stop` fires it leaves gracefully (priority-0 advert, addresses removed).
pub async fn spawn_instance(
    spec: InstanceSpec,
    netlink: Netlink,
    hooks: HookRunner,
    fence: Arc<dyn Fence>,
    stop: CancellationToken,
) -> Result<InstanceHandle, SpeakerError> {
    let stats = Arc::new(VrrpStats::default());
    let (status_tx, status) = watch::channel(InstanceStatus {
        group: spec.group.clone(),
        vrid: spec.vrid,
        state: State::Initialize,
        base_priority: spec.priority,
        effective_priority: spec.priority,
        master: None,
        holds_addresses: false,
        last_transition: None,
        waiting_for_fence: false,
        demoted: false,
        fenced_out: false,
        kernel_fence_until: None,
    });
    let link = fence.attach(&spec.group);
    let speaker =
        speaker::Speaker::prepare(spec, netlink, hooks, link, stats.clone(), status_tx).await?;
    let task = tokio::spawn(speaker.run(stop));
    Ok(InstanceHandle {
        status,
        stats,
        task,
    })
}

//! The I/O shell around the state machine: raw sockets, netlink, gratuitous ARP, hooks,
//! trackers and the fencing seam ([`Fence`]). One task per instance ([`spawn_instance`]).

mod family;
mod fence;
pub mod fence_reader;
mod fence_share;
mod garp;
mod hooks;
pub mod kernel_fence;
mod netlink;
mod socket;
mod socket6;
mod speaker;
mod stats;
pub mod tracker;

pub use fence::{Fence, FenceLink, NoFence, Permit};
pub use fence_reader::{fence_state, FenceState};
pub use fence_share::SharedFence;
pub use hooks::{HookEvent, HookRunner};
pub use kernel_fence::{KernelFence, KernelFenceError};
pub use netlink::{LinkInfo, Netlink, NetlinkError};
pub use stats::VrrpStats;
pub use tracker::{Probe, TrackerSpec};

use std::net::IpAddr;
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
    /// (address, prefix length), all of one family: that family is the instance's
    /// (RFC 5798: an IPv4 and an IPv6 virtual router are separate instances).
    pub addresses: Vec<(IpAddr, u8)>,
    pub interface: String,
    /// Empty: multicast to 224.0.0.18 (IPv4) or ff02::12 (IPv6). Peers of the other
    /// family than the instance's are ignored.
    pub unicast_peers: Vec<IpAddr>,
    /// Source of IPv4 adverts (IPv6 adverts always leave from the link-local address);
    /// None: the interface's first IPv4 address that is not a VIP.
    pub source: Option<IpAddr>,
    pub garp_count: u32,
    pub garp_repeat_after: Duration,
    pub garp_refresh: Duration,
    pub trackers: Vec<TrackerSpec>,
}

impl InstanceSpec {
    /// Whether this is an IPv6 instance (its addresses are IPv6).
    pub fn is_ipv6(&self) -> bool {
        self.addresses.first().is_some_and(|(ip, _)| ip.is_ipv6())
    }

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
    pub master: Option<IpAddr>,
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
    #[error(
        "interface {0:?} has no usable IPv6 link-local address to send IPv6 adverts from \
         (waited {1:?}); enable IPv6 on it (net.ipv6.conf.<if>.disable_ipv6 = 0, addr_gen_mode) \
         and check that duplicate address detection did not fail"
    )]
    NoLinkLocal(String, std::time::Duration),
    #[error("vip_group {0:?} mixes IPv4 and IPv6 addresses in one instance; give each family its own instance")]
    MixedFamilies(String),
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

//! Starts this node's VRRP instances from config: each `[[node.vrrp.instance]]` joined with
//! its `[[vip_group]]`, trackers wired to the forwarding plane.

use anyhow::Context;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tandem_cluster::lease_keeper::LeaseKeeper;
use tandem_cluster::state::KernelBackstop;
use tandem_config::vrrp::{parse_vip, Fencing, Track};
use tandem_config::Config;
use tandem_proxy::Plane;
use tandem_vrrp::io::{
    spawn_instance, Fence, FenceLink, HookRunner, InstanceHandle, InstanceSpec, KernelFence,
    Netlink, NoFence, Permit, Probe, SharedFence, TrackerSpec,
};
use tokio::sync::watch;

use crate::cluster::Cluster;
use tokio_util::sync::CancellationToken;

/// The running VRRP instances of a node: one per `[[node.vrrp.instance]]`, two for a
/// dual-stack group (an IPv4 and an IPv6 instance sharing one lease).
pub struct Vrrp {
    pub instances: Vec<InstanceHandle>,
    /// Per instance: its family ("ipv4", "ipv6") when its group is dual-stack, for
    /// metric labels; None otherwise.
    pub families: Vec<Option<&'static str>>,
    /// The nftables fence of the leased VIPs (Raft fencing with `kernel_fence = "nftables"`).
    pub kernel_fence: Option<Arc<KernelFence>>,
    stop: CancellationToken,
}

/// Which fence the node runs: `fencing` from the config, `auto` meaning Raft leases when
/// the node is a cluster member (`[node.cluster]`), else none.
pub async fn choose_fence(
    fencing: Fencing,
    cluster: Option<&Cluster>,
    vips: &[std::net::IpAddr],
) -> anyhow::Result<(Arc<dyn Fence>, Option<Arc<KernelFence>>)> {
    let voters = cluster.map_or(0, Cluster::voters);
    let raft = match (fencing, cluster) {
        (Fencing::None, _) | (Fencing::Auto, None) => false,
        (Fencing::Raft, Some(_)) => true,
        // Decided at start, when a new cluster has one voter and a joining node none yet:
        // a member of a cluster is fenced; a bare pair says `fencing = "none"` explicitly.
        (Fencing::Auto, Some(_)) => true,
        (Fencing::Raft, None) => unreachable!("validated: fencing = raft needs [node.cluster]"),
    };
    match cluster.filter(|_| raft) {
        Some(cluster) => {
            if voters < 3 {
                tracing::warn!(
                    voters,
                    "fencing = \"raft\" with fewer than three voters: losing one node \
                    leaves no majority and then NO node may hold the VIP. Add a witness \
                    (tandemd witness) to make the pair safe."
                );
            }
            tracing::info!(
                voters,
                "fencing = raft: a VIP is held only under a Raft lease"
            );
            let timing = cluster.keeper.timing();
            let kernel = match timing.backstop {
                KernelBackstop::Nftables => Some(Arc::new(
                    KernelFence::install(vips, timing.kernel_late)
                        .await
                        .context(
                        "installing the kernel fence of the VIPs (node.cluster.lease.kernel_fence)",
                    )?,
                )),
                KernelBackstop::AddressLifetime => {
                    tracing::warn!(
                        "node.cluster.lease.kernel_fence = \"address-lifetime\": a dead or frozen \
                         holder's VIP is silenced only by the address lifetime (whole seconds, up \
                         to 1 s late), so failover waits for a lease of about 2 s. Install nftables \
                         and remove the setting for sub-second fenced failover."
                    );
                    None
                }
            };
            Ok((
                Arc::new(RaftFence {
                    keeper: cluster.keeper.clone(),
                    kernel: kernel.clone(),
                }),
                kernel,
            ))
        }
        None => {
            let why = match fencing {
                Fencing::Auto => "fencing = \"auto\" without [node.cluster] is \"none\"",
                _ => "fencing = \"none\"",
            };
            tracing::warn!(
                "{why}: plain VRRP without split-brain protection. A partition between the nodes \
                 can leave two of them holding the same VIP."
            );
            Ok((Arc::new(NoFence), None))
        }
    }
}

/// The Raft lease as the VRRP speaker's fence: the keeper's hold window becomes the
/// speaker's permit; the operator override turns it into `Always`.
struct RaftFence {
    keeper: Arc<LeaseKeeper>,
    kernel: Option<Arc<KernelFence>>,
}

impl Fence for RaftFence {
    fn attach(&self, group: &str) -> FenceLink {
        let link = self.keeper.attach(group);
        let permit_of = |until: Option<tokio::time::Instant>, forced: bool| match (forced, until) {
            (true, _) => Permit::Always,
            (false, Some(t)) => Permit::Until(t),
            (false, None) => Permit::Denied,
        };
        let (permit_tx, permit) =
            watch::channel(permit_of(*link.until.borrow(), *link.forced.borrow()));
        let (mut until, mut forced) = (link.until, link.forced);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = until.changed() => if changed.is_err() { break },
                    changed = forced.changed() => if changed.is_err() { break },
                }
                let next = permit_of(*until.borrow_and_update(), *forced.borrow_and_update());
                if permit_tx.send(next).is_err() {
                    break;
                }
            }
            // The keeper stopped: nothing can be renewed any more.
            let _ = permit_tx.send(Permit::Denied);
        });
        FenceLink {
            permit,
            wants: link.wants,
            demoted: link.demoted,
            designated: link.designated,
            lapsed: link.lapsed,
            kernel: self.kernel.clone(),
            able: link.able,
        }
    }
}

impl Vrrp {
    pub async fn start(
        config: &Config,
        plane: &Plane,
        cluster: Option<&Cluster>,
    ) -> anyhow::Result<Option<Vrrp>> {
        let Some(node_vrrp) = &config.node.vrrp else {
            return Ok(None);
        };
        let vips: Vec<std::net::IpAddr> = node_vrrp
            .instances
            .iter()
            .filter_map(|inst| {
                config
                    .cluster
                    .vip_groups
                    .iter()
                    .find(|g| g.name == inst.group)
            })
            .flat_map(|g| {
                g.addresses
                    .iter()
                    .filter_map(|a| parse_vip(a))
                    .map(|(ip, _)| ip)
            })
            .collect();
        let (fence, kernel_fence) = choose_fence(node_vrrp.fencing, cluster, &vips).await?;
        // A dual-stack group runs one instance per family; both hold one lease.
        let dual: HashSet<String> = config
            .cluster
            .vip_groups
            .iter()
            .filter(|g| by_family(&g.addresses).len() > 1)
            .map(|g| g.name.clone())
            .collect();
        let fence: Arc<dyn Fence> = if dual.is_empty() {
            fence
        } else {
            Arc::new(SharedFence::new(fence, dual.clone()))
        };
        let netlink = Netlink::open().context("starting VRRP")?;
        let hooks = HookRunner::start(node_vrrp.hooks.clone(), node_vrrp.hook_timeout.get());
        let stop = CancellationToken::new();
        let (mut instances, mut families) = (Vec::new(), Vec::new());
        for inst in &node_vrrp.instances {
            let group = config
                .cluster
                .vip_groups
                .iter()
                .find(|g| g.name == inst.group)
                .expect("validated: every instance names a vip_group");
            for addresses in by_family(&group.addresses) {
                let ipv6 = addresses.first().is_some_and(|(ip, _)| ip.is_ipv6());
                let spec = InstanceSpec {
                    group: group.name.clone(),
                    vrid: group.vrid,
                    priority: inst.priority,
                    advert_interval: group.advert_interval.get(),
                    preempt: group.preempt,
                    preempt_delay: group.preempt_delay.get(),
                    addresses,
                    interface: inst
                        .interface
                        .clone()
                        .unwrap_or_else(|| node_vrrp.interface.clone()),
                    unicast_peers: node_vrrp.unicast_peers.clone(),
                    source: node_vrrp.source.map(std::net::IpAddr::V4),
                    garp_count: node_vrrp.garp_count,
                    garp_repeat_after: node_vrrp.garp_repeat_after.get(),
                    garp_refresh: node_vrrp.garp_refresh.get(),
                    trackers: inst.tracks.iter().map(|t| tracker(t, plane)).collect(),
                };
                let family = if ipv6 { "ipv6" } else { "ipv4" };
                let handle = spawn_instance(
                    spec,
                    netlink.clone(),
                    hooks.clone(),
                    fence.clone(),
                    stop.clone(),
                )
                .await
                .with_context(|| {
                    format!(
                        "starting the {family} VRRP instance for vip_group {:?}",
                        group.name
                    )
                })?;
                instances.push(handle);
                families.push(dual.contains(&group.name).then_some(family));
            }
        }
        Ok(Some(Vrrp {
            instances,
            families,
            kernel_fence,
            stop,
        }))
    }

    /// Leaves gracefully: priority-0 adverts (the backup takes over after skew time only),
    /// addresses removed. Waits for every instance.
    pub async fn stop(self) {
        self.stop.cancel();
        for instance in self.instances {
            let _ = tokio::time::timeout(Duration::from_secs(5), instance.task).await;
        }
        if let Some(kernel) = self.kernel_fence {
            kernel.remove().await;
        }
    }
}

/// A group's addresses split by family, IPv4 first: one VRRP instance each (RFC 5798).
fn by_family(addresses: &[String]) -> Vec<Vec<(std::net::IpAddr, u8)>> {
    let parsed: Vec<_> = addresses.iter().filter_map(|a| parse_vip(a)).collect();
    let (v6, v4): (Vec<_>, Vec<_>) = parsed.into_iter().partition(|(ip, _)| ip.is_ipv6());
    [v4, v6].into_iter().filter(|f| !f.is_empty()).collect()
}

fn tracker(track: &Track, plane: &Plane) -> TrackerSpec {
    match track {
        Track::Pool {
            pool,
            min_healthy_share,
            weight,
        } => {
            let shared = plane
                .pool(pool)
                .expect("validated: tracked pool exists")
                .clone();
            let min = *min_healthy_share;
            TrackerSpec {
                name: format!("pool {pool}"),
                weight: *weight,
                probe: Probe::Condition {
                    check: Arc::new(move || shared.healthy_share() < min),
                    interval: Duration::from_millis(500),
                },
            }
        }
        Track::Script {
            command,
            interval,
            timeout,
            rise,
            fall,
            weight,
        } => TrackerSpec {
            name: format!("script {command}"),
            weight: *weight,
            probe: Probe::Script {
                command: command.clone(),
                interval: interval.get(),
                timeout: timeout.get(),
                rise: *rise,
                fall: *fall,
            },
        },
        Track::Interface { interface, weight } => TrackerSpec {
            name: format!("interface {interface}"),
            weight: *weight,
            probe: Probe::Interface {
                name: interface.clone(),
            },
        },
    }
}

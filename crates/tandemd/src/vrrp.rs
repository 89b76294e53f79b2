//! Starts this node's VRRP instances from config: each `[[node.vrrp.instance]]` joined with
//! its `[[vip_group]]`, trackers wired to the forwarding plane.

use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tandem_config::vrrp::{parse_vip, Fencing, Track};
use tandem_config::Config;
use tandem_proxy::Plane;
use tandem_vrrp::io::{
    spawn_instance, Fence, HookRunner, InstanceHandle, InstanceSpec, Netlink, NoFence, Probe,
    TrackerSpec,
};
use tokio_util::sync::CancellationToken;

/// The running VRRP instances of a node.
pub struct Vrrp {
    pub instances: Vec<InstanceHandle>,
    stop: CancellationToken,
}

impl Vrrp {
    pub async fn start(config: &Config, plane: &Plane) -> anyhow::Result<Option<Vrrp>> {
        let Some(node_vrrp) = &config.node.vrrp else {
            return Ok(None);
        };
        let fence: Arc<dyn Fence> = match node_vrrp.fencing {
            Fencing::None => {
                tracing::warn!(
                    "fencing = \"none\": plain VRRP without split-brain protection. A partition \
                     between the nodes can leave two of them holding the same VIP."
                );
                Arc::new(NoFence)
            }
        };
        let netlink = Netlink::open().context("starting VRRP")?;
        let hooks = HookRunner::start(node_vrrp.hooks.clone(), node_vrrp.hook_timeout.get());
        let stop = CancellationToken::new();
        let mut instances = Vec::new();
        for inst in &node_vrrp.instances {
            let group = config
                .cluster
                .vip_groups
                .iter()
                .find(|g| g.name == inst.group)
                .expect("validated: every instance names a vip_group");
            let spec = InstanceSpec {
                group: group.name.clone(),
                vrid: group.vrid,
                priority: inst.priority,
                advert_interval: group.advert_interval.get(),
                preempt: group.preempt,
                preempt_delay: group.preempt_delay.get(),
                addresses: group
                    .addresses
                    .iter()
                    .filter_map(|a| parse_vip(a))
                    .collect(),
                interface: inst
                    .interface
                    .clone()
                    .unwrap_or_else(|| node_vrrp.interface.clone()),
                unicast_peers: node_vrrp.unicast_peers.clone(),
                source: node_vrrp.source,
                garp_count: node_vrrp.garp_count,
                garp_repeat_after: node_vrrp.garp_repeat_after.get(),
                garp_refresh: node_vrrp.garp_refresh.get(),
                trackers: inst.tracks.iter().map(|t| tracker(t, plane)).collect(),
            };
            let handle = spawn_instance(
                spec,
                netlink.clone(),
                hooks.clone(),
                fence.clone(),
                stop.clone(),
            )
            .await
            .with_context(|| format!("starting VRRP instance for vip_group {:?}", group.name))?;
            instances.push(handle);
        }
        Ok(Some(Vrrp { instances, stop }))
    }

    /// Leaves gracefully: priority-0 adverts (the backup takes over after skew time only),
    /// addresses removed. Waits for every instance.
    pub async fn stop(self) {
        self.stop.cancel();
        for instance in self.instances {
            let _ = tokio::time::timeout(Duration::from_secs(5), instance.task).await;
        }
    }
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

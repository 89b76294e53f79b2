//! VRRP metrics, one series per instance, labelled by its vip_group (`group`, not
//! `instance`: Prometheus sets `instance` on every scraped series to name the target);
//! the two instances of a dual-stack group also by `family`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use tandem_vrrp::io::InstanceStatus;
use tandem_vrrp::machine::State;

use super::{labels, Out};
use crate::Node;

/// Reasons the speaker drops received packets for (`VrrpStats::drops`). They are always
/// exposed, at 0 until one happens, so rates and alerts work from the first drop.
pub const KNOWN_DROP_REASONS: [&str; 12] = [
    "truncated",
    "bad_ip_header",
    "bad_version",
    "bad_type",
    "bad_vrid",
    "bad_address_count",
    "zero_interval",
    "bad_checksum",
    "bad_ttl",
    "bad_arp",
    "vrrp_v2",
    "unknown_peer",
];

/// One VRRP instance as a scrape sees it.
#[derive(Clone, Debug)]
pub struct VrrpSample {
    pub status: InstanceStatus,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    pub became_master: u64,
    pub garp_bursts: u64,
    /// Dropped packets by reason.
    pub dropped: BTreeMap<String, u64>,
    /// "ipv4" or "ipv6" for the two instances of a dual-stack group (a `family` label
    /// tells their series apart); None for a single-family group.
    pub family: Option<&'static str>,
}

impl VrrpSample {
    pub(super) async fn gather(node: &Node) -> Vec<VrrpSample> {
        node.vrrp_stats()
            .await
            .into_iter()
            .map(|(status, family, s)| VrrpSample {
                adverts_sent: s.adverts_sent.load(Relaxed),
                adverts_received: s.adverts_received.load(Relaxed),
                transitions: s.transitions.load(Relaxed),
                became_master: s.became_master.load(Relaxed),
                garp_bursts: s.garp_bursts.load(Relaxed),
                dropped: s
                    .drops()
                    .into_iter()
                    .map(|(reason, n)| (reason.to_string(), n))
                    .collect(),
                status,
                family,
            })
            .collect()
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Initialize => "initialize",
        State::Backup => "backup",
        State::Master => "master",
        State::Fault => "fault",
    }
}

pub(super) fn encode(out: &mut Out, instances: &[VrrpSample]) {
    let state = out.gauge(
        "vrrp_state",
        "1 for the instance's current state (initialize, backup, master, fault), 0 for the others",
    );
    let priority = out.gauge("vrrp_priority", "Configured priority");
    let effective = out.gauge(
        "vrrp_effective_priority",
        "Priority advertised now, after trackers",
    );
    let holds = out.gauge(
        "vrrp_holds_addresses",
        "1 while this node has the group's virtual addresses installed",
    );
    let fenced_out = out.gauge(
        "vrrp_fenced_out",
        "1 while the instance sits in Fault because no lease can be had on this node",
    );
    let fence_left = out.float_gauge(
        "vrrp_kernel_fence_remaining_seconds",
        "Seconds the nftables kernel fence still lets the group's VIPs through (0: closed)",
    );
    let counters = [
        (
            out.counter("vrrp_transitions", "State changes of the instance"),
            (|s: &VrrpSample| s.transitions) as fn(&VrrpSample) -> u64,
        ),
        (
            out.counter("vrrp_became_master", "Transitions to master"),
            |s| s.became_master,
        ),
        (
            out.counter("vrrp_adverts_sent", "Advertisements sent"),
            |s| s.adverts_sent,
        ),
        (
            out.counter("vrrp_adverts_received", "Valid advertisements received"),
            |s| s.adverts_received,
        ),
        (
            out.counter("vrrp_garp_bursts", "Bursts of gratuitous ARP sent"),
            |s| s.garp_bursts,
        ),
    ];
    let dropped = out.counter(
        "vrrp_adverts_dropped",
        "Received packets dropped, by reason (bad_checksum, bad_ttl, unknown_peer, ...)",
    );
    for i in instances {
        let mut group = labels([("group", i.status.group.as_str())]);
        if let Some(family) = i.family {
            group.push(("family".into(), family.into()));
        }
        for s in [
            State::Initialize,
            State::Backup,
            State::Master,
            State::Fault,
        ] {
            let mut l = group.clone();
            l.push(("state".into(), state_name(s).into()));
            state.get_or_create(&l).set(i64::from(i.status.state == s));
        }
        priority
            .get_or_create(&group)
            .set(i64::from(i.status.base_priority));
        effective
            .get_or_create(&group)
            .set(i64::from(i.status.effective_priority));
        holds
            .get_or_create(&group)
            .set(i64::from(i.status.holds_addresses));
        fenced_out
            .get_or_create(&group)
            .set(i64::from(i.status.fenced_out));
        fence_left
            .get_or_create(&group)
            .set(i.status.kernel_fence_until.map_or(0.0, |t| {
                t.saturating_duration_since(tokio::time::Instant::now())
                    .as_secs_f64()
            }));
        for (family, value) in &counters {
            family.get_or_create(&group).inc_by(value(i));
        }
        let mut reasons: BTreeMap<&str, u64> = KNOWN_DROP_REASONS.iter().map(|r| (*r, 0)).collect();
        for (reason, n) in &i.dropped {
            *reasons.entry(reason.as_str()).or_default() += n;
        }
        for (reason, n) in reasons {
            let mut l = group.clone();
            l.push(("reason".into(), reason.into()));
            dropped.get_or_create(&l).inc_by(n);
        }
    }
}

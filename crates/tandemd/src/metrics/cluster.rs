//! Cluster metrics, only with `[node.cluster]`: this member's Raft view (term, leader, log
//! indexes, members and their last contact), the replicated config and sticky tables, and
//! the VIP leases, both as the replicated state has them and as this node's lease keeper
//! holds them. Read at scrape time from the same status `tandemctl cluster status` shows.

use tandem_cluster::lease_keeper::GroupView;
use tandem_cluster::node::ClusterStatus;
use tandem_config::cluster::Role;

use super::{labels, Out};
use crate::Node;

/// One cluster member as a scrape sees it.
#[derive(Clone, Debug)]
pub struct ClusterSample {
    pub status: ClusterStatus,
    pub role: Role,
    /// This node refused the replicated config it last tried to apply (its running config
    /// stayed as it was).
    pub config_refused: bool,
    /// The lease keeper's view of each VIP group with a VRRP instance on this node.
    pub groups: Vec<GroupView>,
    /// What the Raft listener refused, by reason.
    pub rejected: Vec<(&'static str, u64)>,
}

impl ClusterSample {
    pub(super) async fn gather(node: &Node) -> Option<ClusterSample> {
        let cluster = node.cluster()?;
        Some(ClusterSample {
            status: cluster.status().await,
            role: cluster.role,
            config_refused: cluster.config_follow().error.is_some(),
            groups: cluster.keeper.views(),
            rejected: cluster.node.rejections().counts(),
        })
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The member's name: its advertised address is `<node id>:<port>`.
fn member_name(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(name, _)| name)
}

/// The raft states openraft reports (`ServerState`), as label values.
const RAFT_STATES: [&str; 5] = ["leader", "follower", "candidate", "learner", "shutdown"];

pub(super) fn encode(out: &mut Out, sample: Option<&ClusterSample>) {
    let Some(c) = sample else { return };
    let s = &c.status;
    let raft_id = s.id.to_string();
    let role = match c.role {
        Role::Voter => "voter",
        Role::Witness => "witness",
    };
    out.gauge(
        "cluster_info",
        "Always 1: this member's Raft id and role (voter or witness)",
    )
    .get_or_create(&labels([("raft_id", raft_id.as_str()), ("role", role)]))
    .set(1);
    let state = s.state.to_ascii_lowercase();
    let states = out.gauge(
        "cluster_raft_state",
        "1 for this member's Raft state (leader, follower, candidate, learner, shutdown), 0 for the others",
    );
    for name in RAFT_STATES {
        states
            .get_or_create(&labels([("state", name)]))
            .set(i64::from(state == name));
    }
    out.single_gauge(
        "cluster_is_leader",
        "1 while this member is the Raft leader and a majority acknowledged it lately",
        i64::from(s.leader == Some(s.id)),
    );
    out.single_gauge(
        "cluster_leader_id",
        "Raft id of the leader this member knows (0: none known)",
        gauge_value(s.leader.unwrap_or(0)),
    );
    out.single_gauge("cluster_term", "Current Raft term", gauge_value(s.term));
    let indexes = [
        (
            "cluster_last_log_index",
            "Index of the last entry in this member's log",
            s.last_log_index,
        ),
        (
            "cluster_commit_index",
            "Index of the last entry this member knows is committed",
            s.commit_index,
        ),
        (
            "cluster_applied_index",
            "Index of the last entry applied to this member's state machine",
            s.applied_index,
        ),
    ];
    for (name, help, value) in indexes {
        if let Some(v) = value {
            out.single_gauge(name, help, gauge_value(v));
        }
    }
    out.single_gauge(
        "cluster_members",
        "Members (voters and learners) in the membership this member knows",
        gauge_value(s.members.len() as u64),
    );
    out.single_gauge(
        "cluster_voters",
        "Voters in the membership this member knows",
        gauge_value(s.members.iter().filter(|m| m.voter).count() as u64),
    );
    if let Some(ms) = s.millis_since_quorum_ack {
        out.single_float_gauge(
            "cluster_quorum_ack_age_seconds",
            "Leader only: seconds since a majority last acknowledged this leader",
            ms as f64 / 1000.0,
        );
    }
    let contact = out.float_gauge(
        "cluster_member_last_contact_seconds",
        "Seconds since this member last heard from each member (itself: 0)",
    );
    let matched = out.gauge(
        "cluster_member_matched_index",
        "Leader only: the last log index replicated to each member",
    );
    for m in &s.members {
        let id = m.id.to_string();
        let l = labels([("member", member_name(&m.addr)), ("raft_id", id.as_str())]);
        if let Some(ms) = m.last_contact_ms {
            contact.get_or_create(&l).set(ms as f64 / 1000.0);
        }
        if let Some(index) = m.matched_index {
            matched.get_or_create(&l).set(gauge_value(index));
        }
    }
    if let Some(version) = s.config_version {
        out.single_gauge(
            "cluster_config_version",
            "Version of the replicated cluster config (tandem_config_version: the one this node runs)",
            gauge_value(version),
        );
    }
    out.single_gauge(
        "cluster_config_refused",
        "1 when this node refused the replicated config it last tried to apply",
        i64::from(c.config_refused),
    );
    out.single_gauge(
        "cluster_sticky_entries",
        "Entries of the replicated sticky tables, all pools together",
        gauge_value(s.sticky_entries as u64),
    );
    let calls = out.counter(
        "cluster_rpc_calls",
        "Answered RPCs this member made to its peers, by transport (datagram: sealed UDP; stream: mutual TLS over TCP)",
    );
    for (transport, n) in [
        ("datagram", s.rpc_calls.datagram),
        ("stream", s.rpc_calls.stream),
    ] {
        calls
            .get_or_create(&labels([("transport", transport)]))
            .inc_by(n);
    }
    let rejected = out.counter(
        "cluster_rejected",
        "Connections and frames the Raft listener refused, by reason (tls_handshake, handshake_timeout, frame_too_large, undecodable, connection_limit)",
    );
    for (reason, n) in &c.rejected {
        rejected
            .get_or_create(&labels([("reason", reason)]))
            .inc_by(*n);
    }
    encode_leases(out, c);
}

fn encode_leases(out: &mut Out, c: &ClusterSample) {
    let s = &c.status;
    let name_of = |id: u64| {
        s.members
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| id.to_string(), |m| member_name(&m.addr).to_string())
    };
    let holder = out.gauge(
        "vip_lease_holder",
        "1 for the node holding the group's lease in the replicated state",
    );
    let holder_id = out.gauge(
        "vip_lease_holder_id",
        "Raft id of the node holding the group's lease in the replicated state (0: none)",
    );
    let epoch = out.gauge(
        "vip_lease_epoch",
        "Lease epoch: bumped by every acquisition (and forced hold)",
    );
    let seq = out.gauge(
        "vip_lease_sequence",
        "Lease sequence within the epoch: bumped by every renewal and the release",
    );
    for l in &s.leases {
        let group = labels([("group", l.group.as_str())]);
        if let Some(h) = l.holder {
            let name = name_of(h);
            holder
                .get_or_create(&labels([
                    ("group", l.group.as_str()),
                    ("node", name.as_str()),
                ]))
                .set(1);
        }
        holder_id
            .get_or_create(&group)
            .set(gauge_value(l.holder.unwrap_or(0)));
        epoch.get_or_create(&group).set(gauge_value(l.epoch));
        seq.get_or_create(&group).set(gauge_value(l.seq));
    }
    let holding = out.gauge(
        "vip_lease_holding",
        "1 while this node holds a confirmed lease for the group (its VRRP may keep the VIP)",
    );
    let remaining = out.float_gauge(
        "vip_lease_remaining_seconds",
        "Seconds left in this node's hold window for the group (0 when not holding)",
    );
    let forced = out.gauge(
        "vip_lease_forced",
        "1 while the operator override (tandemctl vip force-hold) is on for the group",
    );
    let able = out.gauge(
        "vip_lease_able",
        "1 while this node can get a lease for the group (holds one, or hears a live leader or a majority); 0: its VRRP stays silent in Fault",
    );
    for g in &c.groups {
        let group = labels([("group", g.group.as_str())]);
        holding.get_or_create(&group).set(i64::from(g.holding));
        remaining
            .get_or_create(&group)
            .set(g.hold_left_ms as f64 / 1000.0);
        forced.get_or_create(&group).set(i64::from(g.forced));
        able.get_or_create(&group).set(i64::from(g.able));
    }
}

#[cfg(test)]
mod tests {
    use super::member_name;

    #[test]
    fn member_names_come_from_the_advertised_address() {
        assert_eq!(member_name("n1:7300"), "n1");
        assert_eq!(member_name("lb-2.example:7300"), "lb-2.example");
        assert_eq!(member_name("odd"), "odd");
    }
}

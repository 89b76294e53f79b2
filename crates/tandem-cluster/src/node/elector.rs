//! Elections with a pre-vote (Raft thesis §9.6), because openraft 0.9 has none.
//!
//! Without it, a voter that stops hearing the leader bumps its term and campaigns even when
//! every other member still hears that leader. In the pair cut (the two forwarding nodes cut
//! apart, both reaching the witness) the cut-off node campaigns over and over; the witness
//! refuses it, but its term keeps growing, and when the cut heals that term deposes the
//! working leader: an election nobody needed, during which lease renewals stall and a VIP
//! can go unheld.
//!
//! So openraft's own election timer is off (`Config::enable_elect = false`) and [`Elector`]
//! decides when to campaign: a voter that has heard no leader for the quiet time plus a
//! random part asks the other voters whether they would vote for it, and calls an election
//! (`trigger().elect()`) only when a majority, itself included, says yes.
//!
//! A member says yes when it has not accepted AppendEntries from a leader within the quiet
//! time (a leader: when no majority has acknowledged it within that time) and the
//! candidate's log is at least as up to date as its own. The quiet time is just over
//! openraft's leader lease (`election_timeout_max`), within which it refuses a real vote.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::ServerState;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::raft::types::LogId;
use crate::raft::types::RaftMetrics;
use crate::raft::LogStore;
use crate::raft::NodeId;
use crate::raft::Raft;
use crate::transport::wire::PreVoteRequest;
use crate::transport::Contacts;
use crate::transport::TandemNetwork;

/// Decides when this voter campaigns, and answers other voters' pre-votes.
pub struct Elector {
    raft: Raft,
    log: LogStore,
    network: TandemNetwork,
    contacts: Contacts,
    /// No leader heard for this long: a member grants pre-votes.
    quiet: Duration,
    /// Up to this much extra random wait before campaigning, so that two voters that lost
    /// the leader together rarely campaign at the same instant.
    spread: Duration,
    /// A fixed extra wait before campaigning (see `ClusterOptions::campaign_delay`).
    delay: Duration,
}

impl Elector {
    /// `election_timeout` is the node's; the quiet time is just over it, past openraft's
    /// leader lease (`election_timeout_max`, one millisecond over it; see `ClusterNode`).
    /// `delay` postpones this node's campaigns.
    pub fn new(
        raft: Raft,
        log: LogStore,
        network: TandemNetwork,
        contacts: Contacts,
        election_timeout: Duration,
        delay: Duration,
    ) -> Self {
        Elector {
            raft,
            log,
            network,
            contacts,
            quiet: election_timeout + Duration::from_millis(10),
            // A third of the timeout: pre-votes keep simultaneous candidates from inflating
            // terms, so a wide spread buys little and every millisecond of it is a crashed
            // leader's failover (the witness waits apart, `campaign_delay`).
            spread: election_timeout / 3,
            delay,
        }
    }

    /// Whether a leader was alive within `within`, as far as this node can tell: it leads
    /// and a majority acknowledged it (or it is the only voter), or it accepted
    /// AppendEntries from a leader.
    pub fn leader_alive(&self, within: Duration) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.state == ServerState::Leader {
            voters(&metrics).len() == 1
                || metrics
                    .millis_since_quorum_ack
                    .is_some_and(|ms| u128::from(ms) <= within.as_millis())
        } else {
            self.contacts
                .leader_last_heard()
                .is_some_and(|at| at.elapsed() <= within)
        }
    }

    /// Whether this node heard, within `within`, from enough voters to make a majority with
    /// itself (any RPC in or reply out counts: heartbeats, votes, pre-votes). During an
    /// election after a leader crash the candidates are heard; after a one-way cut that
    /// stops everything coming in, nobody is.
    pub fn majority_contact(&self, within: Duration) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        let voters = voters(&metrics);
        let me = metrics.id;
        let heard = self.contacts.snapshot();
        let mut count = usize::from(voters.iter().any(|(id, _)| *id == me));
        for (id, _) in &voters {
            if *id != me && heard.get(id).is_some_and(|at| at.elapsed() <= within) {
                count += 1;
            }
        }
        !voters.is_empty() && count * 2 > voters.len()
    }

    /// The answer to a peer's pre-vote. Answering changes nothing here.
    pub async fn grant(&self, request: &PreVoteRequest) -> bool {
        if self.leader_alive(self.quiet) {
            tracing::debug!(
                candidate = request.candidate,
                "cluster: pre-vote refused: the leader is alive"
            );
            return false;
        }
        let mine = self.last_log_id().await;
        let granted = request.last_log_id >= mine;
        if !granted {
            tracing::debug!(
                candidate = request.candidate,
                "cluster: pre-vote refused: its log is behind this node's"
            );
        }
        granted
    }

    /// Watch for a lost leader until `stop`; campaign when a majority agrees it is lost.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let tick = (self.spread / 4).max(Duration::from_millis(10));
        // The later of: start, the last election this node called, the last moment it led.
        let mut since = Instant::now();
        let mut wait = self.next_wait();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let metrics = self.raft.metrics().borrow().clone();
            let voters = voters(&metrics);
            if metrics.state == ServerState::Leader
                || !voters.iter().any(|(id, _)| *id == metrics.id)
            {
                since = Instant::now();
                continue;
            }
            let heard = self
                .contacts
                .leader_last_heard()
                .map(Instant::from_std)
                .unwrap_or(since)
                .max(since);
            // A lone voter has nobody to wait for (openraft elects it at once too).
            if voters.len() > 1 && heard.elapsed() < wait {
                continue;
            }
            since = Instant::now();
            wait = self.next_wait();
            if self.pre_vote(&metrics, &voters).await {
                tracing::info!(
                    node = metrics.id,
                    term = metrics.current_term,
                    "cluster: no leader heard and a majority agrees: calling an election"
                );
                if let Err(e) = self.raft.trigger().elect().await {
                    tracing::warn!(error = %e, "cluster: cannot call an election");
                    return;
                }
            }
        }
    }

    /// Ask every other voter; true once a majority (this node included) says yes.
    async fn pre_vote(&self, metrics: &RaftMetrics, voters: &[(NodeId, String)]) -> bool {
        let needed = voters.len() / 2 + 1;
        let mut yes = 1;
        if yes >= needed {
            return true;
        }
        let last_log_id = self.last_log_id().await;
        let mut calls = JoinSet::new();
        for (id, addr) in voters.iter().filter(|(id, _)| *id != metrics.id) {
            let (network, id, addr) = (self.network.clone(), *id, addr.clone());
            let request = PreVoteRequest {
                candidate: metrics.id,
                last_log_id,
            };
            let timeout = self.quiet;
            calls.spawn(async move {
                let answer = network.call_pre_vote(id, &addr, request, timeout).await;
                (id, answer)
            });
        }
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok((_, Ok(true))) => yes += 1,
                Ok((id, Ok(false))) => tracing::debug!(peer = id, "cluster: pre-vote refused"),
                Ok((id, Err(reason))) => {
                    tracing::debug!(peer = id, %reason, "cluster: no pre-vote answer")
                }
                Err(_) => {}
            }
            if yes >= needed {
                return true;
            }
        }
        false
    }

    /// Ask one voter whether it would vote for this node now (what a campaign starts with;
    /// `tandemctl`-free diagnostics and tests use it too).
    pub async fn ask(&self, peer: NodeId) -> Result<bool, String> {
        let metrics = self.raft.metrics().borrow().clone();
        let (_, addr) = voters(&metrics)
            .into_iter()
            .find(|(id, _)| *id == peer)
            .ok_or_else(|| format!("node {peer} is not a voter"))?;
        let request = PreVoteRequest {
            candidate: metrics.id,
            last_log_id: self.last_log_id().await,
        };
        self.network
            .call_pre_vote(peer, &addr, request, self.quiet)
            .await
    }

    /// The last entry of this node's log (openraft does not expose it; the store knows).
    async fn last_log_id(&self) -> Option<LogId> {
        let mut log = self.log.clone();
        match log.get_log_state().await {
            Ok(state) => state.last_log_id,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot read the log state for a pre-vote");
                None
            }
        }
    }

    fn next_wait(&self) -> Duration {
        let random = RandomState::new().hash_one(Instant::now());
        let spread = self.spread.as_millis().max(1) as u64;
        self.quiet + self.delay + Duration::from_millis(random % spread)
    }
}

/// The voters of the membership this node knows, with their addresses.
fn voters(metrics: &RaftMetrics) -> Vec<(NodeId, String)> {
    let membership = metrics.membership_config.membership();
    let ids: Vec<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .filter(|(id, _)| ids.contains(id))
        .map(|(id, node)| (*id, node.addr.clone()))
        .collect()
}

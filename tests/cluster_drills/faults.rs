//! What the drills share: how they wait for a holder, cut and impair the links between the
//! lab nodes (nftables on the bridge), and read what the observer saw.

use std::time::Duration;

use tandem_tests::cluster_lab::{ClusterLab, Observation, Observer};
use tandem_tests::netns::{nft_in, run};

pub fn assert_no_overlap(cl: &ClusterLab, seen: &Observation) {
    assert_eq!(
        seen.overlaps,
        0,
        "two nodes held the VIP in {} of {} samples; changes: {:?}\n{}",
        seen.overlaps,
        seen.samples,
        seen.changes,
        cl.logs()
    );
    assert!(seen.samples > 100, "the observer barely ran: {seen:?}");
}

/// Every member's /metrics (the witness's too) has n1 as the holder of "front" in the
/// replicated state, and n1's keeper holds it with time left in its hold window.
pub async fn expect_holder(
    cl: &ClusterLab,
    observer: &Observer,
    node: usize,
    limit: Duration,
    what: &str,
) -> Duration {
    match observer.wait_for(&[node], limit).await {
        Some(t) => t,
        None => panic!(
            "{what}: n{} did not become the only holder within {limit:?}; changes {:?}\n{}",
            node + 1,
            observer.now().changes,
            cl.logs()
        ),
    }
}

/// `expect_holder`, then a second for the cluster to settle (renewals under way, Raft
/// quiet) before the next fault.
pub async fn settle_on(
    cl: &ClusterLab,
    observer: &Observer,
    node: usize,
    limit: Duration,
    what: &str,
) {
    expect_holder(cl, observer, node, limit, what).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Starts node `i` again and waits until it rejoined: three voters and a leader. A node
/// restarts from its own Raft state (no `cluster join`).
pub async fn restart_and_rejoin(cl: &mut ClusterLab, i: usize) {
    cl.start_node(i);
    cl.wait_admin(i).await;
    assert!(
        cl.wait_voters(3, Duration::from_secs(10)).await,
        "node {} did not rejoin\n{}",
        i + 1,
        cl.logs()
    );
}

/// Drops traffic between the given pairs of lab nodes at the bridge (both ways).
pub fn cut(cl: &ClusterLab, name: &str, pairs: &[(usize, usize)]) {
    let both: Vec<(usize, usize)> = pairs.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
    impair(cl, name, &both, "");
}

/// Bridge rules between lab nodes, one per (from, to) direction, each with `extra` in front
/// of `drop` (e.g. "numgen random mod 100 < 10" for 10 % loss).
pub fn impair(cl: &ClusterLab, name: &str, directions: &[(usize, usize)], extra: &str) {
    let mut rules = String::new();
    for (a, b) in directions {
        let (pa, pb) = (&cl.lab.nodes[*a].hub_port, &cl.lab.nodes[*b].hub_port);
        rules.push_str(&format!(
            "  iifname \"{pa}\" oifname \"{pb}\" {extra} drop\n"
        ));
    }
    let script = format!(
        "table bridge {name} {{\n chain forward_filter {{\n  type filter hook forward priority 0; policy accept;\n{rules} }}\n}}\n"
    );
    nft_in(&cl.lab.hub, &script);
}

pub fn heal(cl: &ClusterLab) {
    run(
        "ip",
        &["netns", "exec", &cl.lab.hub, "nft", "flush", "ruleset"],
    );
}

/// Share of the time in `[from, to]` (observer time) with exactly one holder.
pub fn held_share(seen: &Observation, from: Duration, to: Duration) -> f64 {
    let mut held = Duration::ZERO;
    let mut current: Option<(Duration, bool)> = None;
    for (t, holders) in &seen.changes {
        if let Some((since, one)) = current {
            let (a, b) = (since.max(from), (*t).min(to));
            if one && b > a {
                held += b - a;
            }
        }
        current = Some((*t, holders.len() == 1));
    }
    if let Some((since, true)) = current {
        let a = since.max(from);
        if to > a {
            held += to - a;
        }
    }
    held.as_secs_f64() / (to - from).as_secs_f64()
}

/// Small deterministic generator (xorshift) so a failing seed replays exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

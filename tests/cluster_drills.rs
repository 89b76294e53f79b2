//! Cluster drills in network namespaces (root): two forwarding nodes fenced by Raft leases,
//! a witness, two HTTP backends and a client. An observer samples both forwarding nodes
//! every 10 ms and every drill ends by asserting that no sample ever saw two holders of
//! the VIP. Failover times are printed (`cargo test -- --nocapture` shows them).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tandem_tests::cluster_lab::{
    cluster_part, http_get_from, metric, ClusterLab, Observer, Probe, VIP2, WITNESS,
};
use tandem_tests::netns::{nft_in, run};

/// VRRP detection at 200 ms adverts (3 × 200 ms + skew, about 0.72 s), which the default
/// lease's contender wait (600 ms × 1.01 + 50 ms = 656 ms) fits under, plus one tick and
/// one commit, with room for a loaded CI machine.
const CRASH_BOUND: Duration = Duration::from_millis(1300);
/// A planned move waits for no lease term: release, then acquire.
const PLANNED_BOUND: Duration = Duration::from_millis(1500);

fn assert_no_overlap(cl: &ClusterLab, seen: &tandem_tests::cluster_lab::Observation) {
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
async fn assert_lease_metrics_name_n1(cl: &ClusterLab) {
    for i in [0, 1, WITNESS] {
        let text = cl.metrics(i).await;
        let holder = metric(&text, r#"tandem_vip_lease_holder{group="front",node="n1"}"#);
        assert_eq!(holder, Some(1.0), "n{} /metrics:\n{text}", i + 1);
        assert!(
            metric(&text, "tandem_cluster_term").is_some_and(|t| t >= 1.0),
            "n{} /metrics:\n{text}",
            i + 1
        );
    }
    let witness = cl.metrics(WITNESS).await;
    let info = r#"tandem_cluster_info{raft_id="3",role="witness"}"#;
    assert_eq!(metric(&witness, info), Some(1.0), "{witness}");
    let n1 = cl.metrics(0).await;
    assert_eq!(
        metric(&n1, r#"tandem_vip_lease_holding{group="front"}"#),
        Some(1.0),
        "{n1}"
    );
    let left = metric(&n1, r#"tandem_vip_lease_remaining_seconds{group="front"}"#);
    assert!(left.is_some_and(|s| s > 0.0 && s <= 2.0), "{left:?}\n{n1}");
    // The kernel fence is open on the holder for what is left of its window, and shown.
    let fence = metric(
        &n1,
        r#"tandem_vrrp_kernel_fence_remaining_seconds{group="front"}"#,
    );
    assert!(
        fence.is_some_and(|s| s > 0.0 && s <= 0.45),
        "{fence:?}\n{n1}"
    );
    assert_eq!(
        metric(&n1, r#"tandem_vip_lease_able{group="front"}"#),
        Some(1.0),
        "{n1}"
    );
    let vrrp = cl.ctl_ok(0, &["vrrp"]);
    assert!(
        vrrp.contains("held, fence"),
        "tandemctl vrrp shows the fence:\n{vrrp}"
    );
}

async fn expect_holder(
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
async fn settle_on(cl: &ClusterLab, observer: &Observer, node: usize, limit: Duration, what: &str) {
    expect_holder(cl, observer, node, limit, what).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Starts node `i` again and waits until it rejoined: three voters and a leader. A node
/// restarts from its own Raft state (no `cluster join`).
async fn restart_and_rejoin(cl: &mut ClusterLab, i: usize) {
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
fn cut(cl: &ClusterLab, name: &str, pairs: &[(usize, usize)]) {
    let both: Vec<(usize, usize)> = pairs.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
    impair(cl, name, &both, "");
}

/// Bridge rules between lab nodes, one per (from, to) direction, each with `extra` in front
/// of `drop` (e.g. "numgen random mod 100 < 10" for 10 % loss).
fn impair(cl: &ClusterLab, name: &str, directions: &[(usize, usize)], extra: &str) {
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

fn heal(cl: &ClusterLab) {
    run(
        "ip",
        &["netns", "exec", &cl.lab.hub, "nft", "flush", "ruleset"],
    );
}

/// Share of the time in `[from, to]` (observer time) with exactly one holder.
fn held_share(seen: &tandem_tests::cluster_lab::Observation, from: Duration, to: Duration) -> f64 {
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

/// Impaired links between the nodes, the clients' traffic untouched: a one-way cut in each
/// direction for the holder, a one-way cut for the backup, random loss both ways, and a
/// frozen witness under loss. Each case asserts who holds, how soon, and the share of
/// time with exactly one holder; the whole drill asserts no overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lossy_and_one_way_links_keep_the_vip_held() {
    let mut cl = ClusterLab::start().await;
    let observer = Observer::start(&cl.lab);
    let origin = Instant::now()
        - observer
            .now()
            .changes
            .first()
            .map_or(Duration::ZERO, |c| c.0);
    let at = |o: Instant| o.saturating_duration_since(origin);
    settle_on(&cl, &observer, 0, Duration::from_secs(10), "start").await;

    // (1) The holder hears nothing from its peers but still sends: its lease lapses and it
    // falls silent (Fault), so n2 takes over instead of staying BACKUP behind its adverts.
    let start = Instant::now();
    impair(&cl, "deaf", &[(1, 0), (WITNESS, 0)], "");
    let took = expect_holder(&cl, &observer, 1, Duration::from_secs(5), "holder deaf").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let share = held_share(&observer.now(), at(start), at(Instant::now()));
    println!(
        "one-way cut, holder deaf: n2 holds after {took:?}; held {:.1} % of 3 s+",
        share * 100.0
    );
    if std::env::var_os("DRILL_LOGS").is_some() {
        println!("--- n1 ---\n{}\n--- n2 ---\n{}", cl.log(0), cl.log(1));
    }
    // The deaf node says why it stepped aside: Fault, no lease to be had.
    let n1 = cl.metrics(0).await;
    assert_eq!(
        metric(&n1, r#"tandem_vrrp_fenced_out{group="front"}"#),
        Some(1.0),
        "{n1}"
    );
    assert_eq!(
        metric(&n1, r#"tandem_vip_lease_able{group="front"}"#),
        Some(0.0),
        "{n1}"
    );
    // The holder here also leads Raft: its heartbeats still reach the followers, which
    // therefore refuse to elect until its connections time out (openraft 0.9 has no
    // leader step-down on a lost quorum). Measured 1.3-1.5 s; bound 2.5 s.
    assert!(
        took <= Duration::from_millis(2500),
        "deaf holder: n2 took {took:?}\n{}",
        cl.logs()
    );
    heal(&cl);
    settle_on(
        &cl,
        &observer,
        0,
        Duration::from_secs(15),
        "after heal (deaf)",
    )
    .await;

    // (2) The holder's messages to its peers are lost, it still hears them: n2 stops
    // hearing its adverts and takes over under a new lease.
    let start = Instant::now();
    impair(&cl, "mute", &[(0, 1), (0, WITNESS)], "");
    let took = expect_holder(&cl, &observer, 1, Duration::from_secs(5), "holder mute").await;
    println!("one-way cut, holder mute: n2 holds after {took:?}");
    assert!(
        took <= CRASH_BOUND,
        "mute holder: n2 took {took:?}\n{}",
        cl.logs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let share = held_share(&observer.now(), at(start), at(Instant::now()));
    println!("  held {:.1} %", share * 100.0);
    heal(&cl);
    settle_on(
        &cl,
        &observer,
        0,
        Duration::from_secs(15),
        "after heal (mute)",
    )
    .await;

    // (3) The backup deaf. After (1) and (2) it usually leads Raft, and a deaf leader keeps
    // its followers from electing until its connections time out, so the holder's renewals
    // stall for a while (the gap this drill measures; see docs/cluster.md).
    let start = Instant::now();
    impair(&cl, "backup_deaf", &[(0, 1), (WITNESS, 1)], "");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let seen = observer.now();
    let share = held_share(&seen, at(start), at(Instant::now()));
    let holders = seen.changes.last().map(|(_, h)| h.len());
    println!(
        "one-way cut, backup deaf: held {:.1} % of 4 s",
        share * 100.0
    );
    assert!(
        share >= 0.5 && holders == Some(1),
        "deaf backup: held {:.1} %, holders now {holders:?}\n{}",
        share * 100.0,
        cl.logs()
    );
    heal(&cl);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // (4) Random loss on every node-to-node link, both ways: 10 %, then 30 %.
    let links = [
        (0, 1),
        (1, 0),
        (0, WITNESS),
        (WITNESS, 0),
        (1, WITNESS),
        (WITNESS, 1),
    ];
    // Floors sit under this machine's measurements (10 %: 100 %, 30 %: 94 %, with the
    // cluster transport's 20 ms minimum RTO): issue 11's goal (99 % at 30 %) is not met yet,
    // see docs/cluster.md.
    for (pct, floor) in [(10, 0.95), (30, 0.5)] {
        let start = Instant::now();
        impair(
            &cl,
            "loss",
            &links,
            &format!("numgen random mod 100 < {pct}"),
        );
        tokio::time::sleep(Duration::from_secs(8)).await;
        let seen = observer.now();
        let share = held_share(&seen, at(start), at(Instant::now()));
        let moves = seen.changes.iter().filter(|(t, _)| *t >= at(start)).count();
        println!(
            "{pct} % loss each way for 8 s: held {:.2} % of the time, {moves} changes",
            share * 100.0
        );
        heal(&cl);
        assert!(
            share >= floor,
            "{pct} % loss: the VIP was held {:.1} % of the time (floor {:.0} %)\n{}",
            share * 100.0,
            floor * 100.0,
            cl.logs()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // (5) The witness frozen while 20 % of the pair's messages are lost: the two forwarding
    // nodes still make a majority, and the VIP stays held.
    expect_holder(
        &cl,
        &observer,
        0,
        Duration::from_secs(15),
        "before the frozen witness",
    )
    .await;
    let start = Instant::now();
    cl.signal(WITNESS, Signal::SIGSTOP);
    impair(&cl, "loss", &[(0, 1), (1, 0)], "numgen random mod 100 < 20");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let share = held_share(&observer.now(), at(start), at(Instant::now()));
    heal(&cl);
    cl.signal(WITNESS, Signal::SIGCONT);
    println!(
        "witness frozen, 20 % loss between the pair: held {:.2} %",
        share * 100.0
    );
    // Measured 97 % on this machine: with the witness frozen, every renewal needs the lossy
    // pair link (docs/cluster.md, "Availability under impairment").
    assert!(
        share >= 0.6,
        "frozen witness + loss: held {:.1} %\n{}",
        share * 100.0,
        cl.logs()
    );

    let seen = observer.finish();
    println!(
        "observer: {} samples, changes {:?}",
        seen.samples, seen.changes
    );
    assert_no_overlap(&cl, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_and_freeze_of_the_holder_fail_over_without_overlap() {
    let mut cl = ClusterLab::start().await;
    let observer = Observer::start(&cl.lab);
    settle_on(&cl, &observer, 0, Duration::from_secs(10), "start").await;
    assert_lease_metrics_name_n1(&cl).await;

    // SIGKILL: the daemon cannot act; its kernel drops the VIP (lifetime), n2 waits the lease out.
    let probe = Probe::start(&cl.lab);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    cl.kill(0).await;
    let took = expect_holder(&cl, &observer, 1, Duration::from_secs(8), "after SIGKILL").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (outage, _) = probe.finish().await;
    println!("SIGKILL of the holder: n2 holds after {took:?} (observer), client outage {outage:?}");
    if std::env::var_os("DRILL_LOGS").is_some() {
        println!("{}", cl.log(1));
    }
    assert!(killed.elapsed() >= took);
    assert!(
        took <= CRASH_BOUND,
        "failover took {took:?}, over the lease bound {CRASH_BOUND:?}\n{}",
        cl.logs()
    );

    // Restart: n1 rejoins from its own Raft state and, with preemption, takes the VIP back.
    restart_and_rejoin(&mut cl, 0).await;
    settle_on(
        &cl,
        &observer,
        0,
        Duration::from_secs(15),
        "after restart (preemption)",
    )
    .await;

    // SIGSTOP: a frozen holder keeps its VIP only as long as its kernel lifetime allows.
    cl.signal(0, Signal::SIGSTOP);
    let took = expect_holder(&cl, &observer, 1, Duration::from_secs(8), "after SIGSTOP").await;
    println!("SIGSTOP of the holder: n2 holds after {took:?}");
    assert!(
        took <= CRASH_BOUND,
        "failover after SIGSTOP took {took:?}\n{}",
        cl.logs()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    cl.signal(0, Signal::SIGCONT);
    // Thawed, n1 finds its lease gone; with the higher priority it takes the VIP back
    // through Raft (n2 releases when it yields).
    settle_on(&cl, &observer, 0, Duration::from_secs(15), "after SIGCONT").await;

    let seen = observer.finish();
    println!(
        "observer: {} samples, changes {:?}",
        seen.samples, seen.changes
    );
    assert_no_overlap(&cl, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_and_a_lost_witness_never_make_two_holders() {
    let mut cl = ClusterLab::start().await;
    let observer = Observer::start(&cl.lab);
    expect_holder(&cl, &observer, 0, Duration::from_secs(10), "start").await;

    // The holder cut off from both peers while the client still reaches it.
    cut(&cl, "holder", &[(0, 1), (0, WITNESS)]);
    let took = expect_holder(
        &cl,
        &observer,
        1,
        Duration::from_secs(10),
        "holder isolated from its peers",
    )
    .await;
    println!("holder partitioned from both peers: n2 holds after {took:?}");
    // A change on the cut-off node cannot reach a majority: "try later" (503), not "invalid".
    let (ok, out) = cl.ctl(0, &["--json", "backend", "weight", "web", "web1", "7"]);
    assert!(
        !ok && out.contains("unavailable"),
        "a backend change without a majority should be refused as unavailable: {out}"
    );
    heal(&cl);
    settle_on(&cl, &observer, 0, Duration::from_secs(15), "after heal").await;

    // The forwarding nodes cut off from each other, both reaching the witness: exactly one
    // holder throughout. After the holder's isolation above n2 usually leads Raft, the hard
    // case: n1 holds the VIP without leading, and renews through the witness.
    let leader = cl.status_json(0).and_then(|s| s["raft"]["leader"].as_u64());
    println!("pair cut: the Raft leader is node {leader:?}");
    let waits = |cl: &ClusterLab| {
        (0..2)
            .map(|i| cl.log(i).matches("waiting for the lease").count())
            .sum::<usize>()
    };
    let waits_before = waits(&cl);
    let changes_before = observer.now().changes.len();
    cut(&cl, "pair", &[(0, 1)]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = observer.now();
    assert_eq!(
        during.changes.len(),
        changes_before,
        "with n1 and n2 cut apart (both reaching the witness) the holder changed: {:?}\n{}",
        &during.changes[changes_before..],
        cl.logs()
    );
    assert!(
        waits(&cl) > waits_before,
        "with n1 and n2 cut apart, a second VRRP master should have waited for the lease\n{}",
        cl.logs()
    );
    heal(&cl);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healed = observer.now();
    assert_eq!(
        healed.changes.len(),
        changes_before,
        "healing the pair cut moved the VIP: {:?}\n{}",
        &healed.changes[changes_before..],
        cl.logs()
    );
    settle_on(
        &cl,
        &observer,
        0,
        Duration::from_secs(15),
        "after the pair healed",
    )
    .await;

    // The witness dies: two of three voters remain, nothing changes.
    let before = observer.now().changes.len();
    cl.kill(WITNESS).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        observer.now().changes.len(),
        before,
        "losing the witness moved the VIP\n{}",
        cl.logs()
    );
    restart_and_rejoin(&mut cl, WITNESS).await;

    let seen = observer.finish();
    println!(
        "observer: {} samples, changes {:?}",
        seen.samples, seen.changes
    );
    assert_no_overlap(&cl, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn planned_moves_config_apply_and_sticky_clients_survive_failover() {
    let mut cl = ClusterLab::start().await;
    let observer = Observer::start(&cl.lab);
    expect_holder(&cl, &observer, 0, Duration::from_secs(10), "start").await;

    // Ten clients, each pinned to a backend by n1's sticky table.
    let clients: Vec<Ipv4Addr> = (60..70).map(|i| Ipv4Addr::new(198, 51, 100, i)).collect();
    for ip in &clients {
        run(
            "ip",
            &[
                "-n",
                &cl.lab.client.ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ],
        );
    }
    let mut pinned = Vec::new();
    for ip in &clients {
        let backend = http_get_from(&cl.lab, *ip, Duration::from_secs(3)).await;
        pinned
            .push(backend.unwrap_or_else(|| {
                panic!("client {ip}: no answer through the VIP\n{}", cl.logs())
            }));
    }
    assert!(
        pinned.contains(&"web1".to_string()) && pinned.contains(&"web2".to_string()),
        "{pinned:?}"
    );
    let replicated = tandem_tests::eventually(Duration::from_secs(5), || {
        cl.status_json(1)
            .is_some_and(|s| s["raft"]["sticky_entries"].as_u64() >= Some(10))
    })
    .await;
    assert!(
        replicated,
        "the sticky entries did not reach n2\n{}",
        cl.logs()
    );

    // Planned move: release, then acquire, no lease wait.
    let asked = Instant::now();
    cl.ctl_ok(0, &["vip", "move", "front", "n2"]);
    expect_holder(&cl, &observer, 1, Duration::from_secs(5), "vip move").await;
    let took = asked.elapsed();
    println!("planned move: n2 holds {took:?} after `tandemctl vip move`");
    assert!(
        took <= PLANNED_BOUND,
        "the planned move took {took:?}\n{}",
        cl.logs()
    );

    // Every client is still on its backend, now through n2.
    for (ip, before) in clients.iter().zip(&pinned) {
        let now = http_get_from(&cl.lab, *ip, Duration::from_secs(3)).await;
        assert_eq!(
            now.as_ref(),
            Some(before),
            "client {ip} moved backends after the VIP moved\n{}",
            cl.logs()
        );
    }

    // Config apply under load: no failed request, every forwarding node on the new version.
    let load_lab_client = cl.lab.client.ip;
    let file = cl.dir.join("v2.toml");
    // Version 2 gives web2 weight 3 (the extra line lands in web2's table).
    std::fs::write(&file, cluster_part(&cl.lab, 2, "weight = 3\n")).unwrap();
    let (mut ok, mut failed) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut applied = false;
    while Instant::now() < deadline && ok + failed < 300 {
        if ok + failed == 20 {
            cl.ctl_ok(0, &["config", "apply", file.to_str().unwrap()]);
        }
        match http_get_from(&cl.lab, load_lab_client, Duration::from_secs(2)).await {
            Some(_) => ok += 1,
            None => failed += 1,
        }
        if ok + failed > 20 && cl.config_version(0) == Some(2) && cl.config_version(1) == Some(2) {
            applied = true;
            if ok + failed > 80 {
                break;
            }
        }
    }
    println!("config apply under load: {ok} requests ok, {failed} failed");
    assert!(applied, "not every node applied version 2\n{}", cl.logs());
    assert_eq!(
        failed,
        0,
        "requests failed during config apply\n{}",
        cl.logs()
    );

    // Unpin: VRRP priorities decide again, n1 (150, preempt) takes the group back.
    cl.ctl_ok(1, &["vip", "move", "front", "--auto"]);
    settle_on(
        &cl,
        &observer,
        0,
        Duration::from_secs(10),
        "vip move --auto",
    )
    .await;

    // systemctl stop: SIGTERM releases the lease, so n2 takes over at once.
    let asked = Instant::now();
    let status = cl.stop(0).await;
    expect_holder(
        &cl,
        &observer,
        1,
        Duration::from_secs(5),
        "SIGTERM of the holder",
    )
    .await;
    let took = asked.elapsed();
    println!("SIGTERM of the holder: n2 holds after {took:?}");
    assert!(
        status.is_some_and(|s| s.success()),
        "n1 did not exit cleanly: {status:?}\n{}",
        cl.logs()
    );
    assert!(
        took <= PLANNED_BOUND + Duration::from_secs(1),
        "handover on SIGTERM took {took:?}\n{}",
        cl.logs()
    );
    for (ip, before) in clients.iter().zip(&pinned) {
        let now = http_get_from(&cl.lab, *ip, Duration::from_secs(3)).await;
        assert_eq!(
            now.as_ref(),
            Some(before),
            "client {ip} moved backends after failover\n{}",
            cl.logs()
        );
    }

    let seen = observer.finish();
    println!(
        "observer: {} samples, changes {:?}",
        seen.samples, seen.changes
    );
    assert_no_overlap(&cl, &seen);
}

/// Small deterministic generator (xorshift) so a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random faults, often two at a time (a crash, freeze, isolation, one-way cut, witness
/// loss or planned move, half the time over random loss on every node-to-node link),
/// bounded: TANDEM_DRILL_ITERATIONS (default 20, what CI runs; the long mode for people is
/// `TANDEM_DRILL_ITERATIONS=500`, about two hours) and TANDEM_DRILL_SEED to replay a run
/// (the seed is printed first).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_drills_never_make_two_holders() {
    let iterations: u32 = std::env::var("TANDEM_DRILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("TANDEM_DRILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("randomized drills: seed {seed} (replay with TANDEM_DRILL_SEED={seed}), {iterations} iterations");
    let mut rng = Rng(seed);
    let mut cl = ClusterLab::start().await;
    let observer = Observer::start(&cl.lab);
    expect_holder(&cl, &observer, 0, Duration::from_secs(10), "start").await;
    for round in 0..iterations {
        let holder = observer
            .now()
            .changes
            .last()
            .and_then(|(_, h)| h.first().copied())
            .unwrap_or(0);
        let other = 1 - holder;
        let fault = rng.next(7);
        // Half the rounds run over background loss on every link between the nodes.
        let loss = [0, 0, 0, 5, 10, 20][rng.next(6) as usize];
        println!(
            "round {round}: fault {fault} with n{} holding, {loss} % loss",
            holder + 1
        );
        if loss > 0 {
            let links = [
                (0, 1),
                (1, 0),
                (0, WITNESS),
                (WITNESS, 0),
                (1, WITNESS),
                (WITNESS, 1),
            ];
            impair(
                &cl,
                "rand_loss",
                &links,
                &format!("numgen random mod 100 < {loss}"),
            );
        }
        // Under loss a takeover may need a few more rounds of renewals.
        let slack = Duration::from_secs(if loss > 0 { 10 } else { 0 });
        match fault {
            0 => {
                cl.kill(holder).await;
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(8) + slack,
                    "kill",
                )
                .await;
                cl.start_node(holder);
                cl.wait_admin(holder).await;
            }
            1 => {
                cl.signal(holder, Signal::SIGSTOP);
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(8) + slack,
                    "stop",
                )
                .await;
                cl.signal(holder, Signal::SIGCONT);
            }
            2 => {
                cut(&cl, "rand", &[(holder, other), (holder, WITNESS)]);
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(10) + slack,
                    "isolate",
                )
                .await;
            }
            5 => {
                // One-way: the holder hears nothing from its peers.
                impair(&cl, "rand_deaf", &[(other, holder), (WITNESS, holder)], "");
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(10) + slack,
                    "deaf",
                )
                .await;
            }
            6 => {
                // The witness frozen a while: the pair alone keeps the majority.
                cl.signal(WITNESS, Signal::SIGSTOP);
                tokio::time::sleep(Duration::from_millis(rng.next(3000) + 500)).await;
                cl.signal(WITNESS, Signal::SIGCONT);
            }
            3 => {
                cl.kill(WITNESS).await;
                tokio::time::sleep(Duration::from_millis(rng.next(3000) + 500)).await;
                cl.start_node(WITNESS);
                cl.wait_admin(WITNESS).await;
            }
            _ => {
                let name = format!("n{}", other + 1);
                cl.ctl_ok(holder, &["vip", "move", "front", &name]);
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(5) + slack,
                    "move",
                )
                .await;
                cl.ctl_ok(other, &["vip", "move", "front", "--auto"]);
            }
        }
        heal(&cl);
        assert!(
            cl.wait_voters(3, Duration::from_secs(15)).await,
            "round {round}: cluster not whole again\n{}",
            cl.logs()
        );
        // Settle: exactly one holder (n1 by priority), then the next fault.
        expect_holder(&cl, &observer, 0, Duration::from_secs(15), "settle").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            observer.now().overlaps,
            0,
            "round {round} (seed {seed}): two holders\n{}",
            cl.logs()
        );
    }
    let seen = observer.finish();
    println!(
        "observer: {} samples, changes {:?}",
        seen.samples, seen.changes
    );
    assert_no_overlap(&cl, &seen);
}

/// Active-active: "front" prefers n1 and "back" n2; each group is fenced by its own lease.
/// Killing n2 moves only "back" (to n1); n2's return takes "back" again and leaves "front"
/// alone. Neither VIP is ever held twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_active_groups_are_fenced_each_on_its_own() {
    let mut cl = ClusterLab::start().await;
    let front = Observer::start(&cl.lab);
    let back = Observer::start_for(&cl.lab, VIP2);
    expect_holder(&cl, &front, 0, Duration::from_secs(10), "front at start").await;
    expect_holder(&cl, &back, 1, Duration::from_secs(10), "back at start").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let front_changes = front.now().changes.len();

    cl.kill(1).await;
    let took = expect_holder(
        &cl,
        &back,
        0,
        Duration::from_secs(8),
        "back after SIGKILL of n2",
    )
    .await;
    println!("active-active: SIGKILL of n2, n1 holds \"back\" too after {took:?}");
    assert!(
        took <= CRASH_BOUND,
        "failover of back took {took:?}\n{}",
        cl.logs()
    );

    restart_and_rejoin(&mut cl, 1).await;
    expect_holder(
        &cl,
        &back,
        1,
        Duration::from_secs(15),
        "back after n2 came back",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        front.now().changes.len(),
        front_changes,
        "\"front\" moved while only \"back\"'s preferred node failed: {:?}\n{}",
        front.now().changes,
        cl.logs()
    );
    for (name, seen) in [("front", front.finish()), ("back", back.finish())] {
        println!(
            "observer {name}: {} samples, changes {:?}",
            seen.samples, seen.changes
        );
        assert_no_overlap(&cl, &seen);
    }
}

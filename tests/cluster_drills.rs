//! Cluster drills in network namespaces (root): two forwarding nodes fenced by Raft leases,
//! a witness, two HTTP backends and a client. An observer samples both forwarding nodes
//! every 10 ms and every drill ends by asserting that no sample ever saw two holders of
//! the VIP. Failover times are printed (`cargo test -- --nocapture` shows them).
//! Crashes, partitions, moves and active-active here, each over IPv4 and over IPv6 (the
//! whole lab in one family: Raft, backends, VIPs, clients); impaired links and the
//! randomized runner in `cluster_drills/impairment.rs`; the helpers both use in
//! `cluster_drills/faults.rs`.

#[path = "cluster_drills/dual_stack.rs"]
mod dual_stack;
#[path = "cluster_drills/faults.rs"]
mod faults;
#[path = "cluster_drills/impairment.rs"]
mod impairment;

use std::time::{Duration, Instant};

use faults::{assert_no_overlap, cut, expect_holder, heal, restart_and_rejoin, settle_on};
use nix::sys::signal::Signal;
use tandem_tests::cluster_lab::{
    cluster_part, http_get_from, metric, ClusterLab, Family, Observer, Probe, WITNESS,
};

/// VRRP detection at 200 ms adverts (3 × 200 ms + skew, about 0.72 s), which the default
/// lease's contender wait (500 ms × 1.01 + 50 ms = 555 ms) fits under, plus one tick and
/// one commit, with room for a loaded CI machine.
pub(crate) const CRASH_BOUND: Duration = Duration::from_millis(1300);
/// A planned move waits for no lease term: release, then acquire.
const PLANNED_BOUND: Duration = Duration::from_millis(1500);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_and_freeze_of_the_holder_fail_over_without_overlap() {
    crash_and_freeze(Family::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_and_freeze_of_the_holder_fail_over_without_overlap_ipv6() {
    crash_and_freeze(Family::V6).await;
}

async fn crash_and_freeze(family: Family) {
    let mut cl = ClusterLab::start_in(family).await;
    let observer = Observer::start(&cl);
    settle_on(&cl, &observer, 0, Duration::from_secs(10), "start").await;
    assert_lease_metrics_name_n1(&cl).await;

    // SIGKILL: the daemon cannot act; its kernel drops the VIP (lifetime), n2 waits the lease out.
    let probe = Probe::start(&cl);
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
    partitions_and_lost_witness(Family::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_and_a_lost_witness_never_make_two_holders_ipv6() {
    partitions_and_lost_witness(Family::V6).await;
}

async fn partitions_and_lost_witness(family: Family) {
    let mut cl = ClusterLab::start_in(family).await;
    let observer = Observer::start(&cl);
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
    planned_moves_and_sticky_clients(Family::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn planned_moves_config_apply_and_sticky_clients_survive_failover_ipv6() {
    planned_moves_and_sticky_clients(Family::V6).await;
}

async fn planned_moves_and_sticky_clients(family: Family) {
    let mut cl = ClusterLab::start_in(family).await;
    let observer = Observer::start(&cl);
    expect_holder(&cl, &observer, 0, Duration::from_secs(10), "start").await;

    // Ten clients, each pinned to a backend by n1's sticky table.
    let clients: Vec<_> = (60..70).map(|n| family.client_address(n)).collect();
    for ip in &clients {
        cl.add_client_address(*ip);
    }
    let mut pinned = Vec::new();
    for ip in &clients {
        let backend = http_get_from(&cl, *ip, Duration::from_secs(3)).await;
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
        let now = http_get_from(&cl, *ip, Duration::from_secs(3)).await;
        assert_eq!(
            now.as_ref(),
            Some(before),
            "client {ip} moved backends after the VIP moved\n{}",
            cl.logs()
        );
    }

    // Config apply under load: no failed request, every forwarding node on the new version.
    let load_lab_client = cl.client_ip();
    let file = cl.dir.join("v2.toml");
    // Version 2 gives web2 weight 3 (the extra line lands in web2's table).
    std::fs::write(&file, cluster_part(&cl.lab, family, 2, "weight = 3\n")).unwrap();
    let (mut ok, mut failed) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut applied = false;
    while Instant::now() < deadline && ok + failed < 300 {
        if ok + failed == 20 {
            cl.ctl_ok(0, &["config", "apply", file.to_str().unwrap()]);
        }
        match http_get_from(&cl, load_lab_client, Duration::from_secs(2)).await {
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
        let now = http_get_from(&cl, *ip, Duration::from_secs(3)).await;
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

/// Active-active: "front" prefers n1 and "back" n2; each group is fenced by its own lease.
/// Killing n2 moves only "back" (to n1); n2's return takes "back" again and leaves "front"
/// alone. Neither VIP is ever held twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_active_groups_are_fenced_each_on_its_own() {
    active_active(Family::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_active_groups_are_fenced_each_on_its_own_ipv6() {
    active_active(Family::V6).await;
}

async fn active_active(family: Family) {
    let mut cl = ClusterLab::start_in(family).await;
    let front = Observer::start(&cl);
    let back = Observer::start_for(&cl.lab, family.vip2());
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

//! Two tandem nodes in network namespaces sharing a VIP by VRRPv3. Runs as root; fails
//! loudly without it.

use nix::sys::signal::Signal;
use std::time::Duration;
use tandem_tests::netns::Lab;
use tandem_tests::vrrp_lab::*;
#[path = "vrrp/behaviour.rs"]
mod behaviour;
#[path = "vrrp/ipv6.rs"]
mod ipv6;
#[path = "vrrp/keepalived.rs"]
mod keepalived;
#[path = "vrrp/keepalived6.rs"]
mod keepalived6;

/// Two nodes (n1 priority 150, n2 priority 100), both with who-am-I backends.
async fn pair(lab: &mut Lab, n1: NodeSpec, n2: NodeSpec) -> (usize, usize) {
    let a = start_tandem(lab, 0, &n1);
    let b = start_tandem(lab, 1, &n2);
    (a, b)
}

fn logs(lab: &Lab) -> String {
    format!(
        "--- n1 ---\n{}\n--- n2 ---\n{}",
        node_log(lab, 0),
        node_log(lab, 1)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_higher_priority_node_holds_the_vip_and_fails_over_on_sigkill() {
    let mut lab = Lab::new(2);
    let _who = (start_who_backend(&lab, 0), start_who_backend(&lab, 1));
    let (n1, _n2) = pair(
        &mut lab,
        NodeSpec::new(150, "100ms"),
        NodeSpec::new(100, "100ms"),
    )
    .await;

    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "n1 holds the VIP\n{}",
        logs(&lab)
    );
    assert!(
        wait_client_reaches(&lab, "n1", Duration::from_secs(3))
            .await
            .is_some(),
        "client reaches n1\n{}",
        logs(&lab)
    );
    assert_eq!(
        lab.client_neighbour(VIP).as_deref(),
        Some(lab.nodes[0].mac.as_str())
    );
    let lifetime = lab
        .valid_lifetime(&lab.nodes[0], VIP)
        .expect("the VIP has a finite kernel lifetime");
    assert!(
        lifetime <= 2,
        "lifetime of a few advert intervals (2 s floor), got {lifetime}s"
    );

    lab.child(n1).signal(Signal::SIGKILL);
    let killed = tokio::time::Instant::now();
    // n2 (priority 100, 100 ms adverts): Master_Down_Interval = 300 ms + 156/256 × 100 ms ≈ 361 ms.
    let took = wait_holder_includes(&lab, VIP, 1, Duration::from_secs(3))
        .await
        .expect("n2 takes the VIP");
    assert!(
        took < Duration::from_millis(361 + 400),
        "failover took {took:?}, MDI is 361 ms\n{}",
        logs(&lab)
    );
    assert!(
        wait_client_reaches(&lab, "n2", Duration::from_secs(2))
            .await
            .is_some(),
        "client reaches n2\n{}",
        logs(&lab)
    );
    assert_eq!(
        lab.client_neighbour(VIP).as_deref(),
        Some(lab.nodes[1].mac.as_str()),
        "gratuitous ARP moved the client"
    );

    // The SIGKILLed node cannot remove its VIP; the kernel does at the end of its lifetime.
    let gone = wait_holders(&lab, &[1], Duration::from_secs(5)).await;
    if gone.is_none() {
        let out = tandem_tests::netns::run(
            "ip",
            &["-n", &lab.nodes[0].ns, "addr", "show", "dev", "eth0"],
        );
        let ps = tandem_tests::netns::run("ps", &["-ef"]);
        panic!(
            "the dead node's VIP did not expire by itself:\n{out}\n{ps}\n{}",
            logs(&lab)
        );
    }
    let since_kill = killed.elapsed();
    eprintln!("VIP left the killed node {since_kill:?} after SIGKILL (lifetime {lifetime}s), failover {took:?}");
    assert!(
        since_kill <= Duration::from_secs(lifetime + 2),
        "kernel expiry took {since_kill:?} for a {lifetime}s lifetime"
    );
    let _ = gone;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_master_preempts_when_it_returns_and_not_with_preempt_off() {
    for preempt in [true, false] {
        let mut lab = Lab::new(2);
        let mut s1 = NodeSpec::new(150, "100ms");
        let mut s2 = NodeSpec::new(100, "100ms");
        s1.preempt = preempt;
        s2.preempt = preempt;
        let (n1, _) = pair(&mut lab, s1.clone(), s2).await;
        assert!(
            wait_holders(&lab, &[0], Duration::from_secs(5))
                .await
                .is_some(),
            "{}",
            logs(&lab)
        );
        lab.child(n1).signal(Signal::SIGTERM);
        assert!(
            wait_holders(&lab, &[1], Duration::from_secs(5))
                .await
                .is_some(),
            "{}",
            logs(&lab)
        );
        assert!(lab
            .child(n1)
            .wait_for_exit(Duration::from_secs(5))
            .await
            .is_some());
        start_tandem(&mut lab, 0, &s1);
        if preempt {
            assert!(
                wait_holders(&lab, &[0], Duration::from_secs(5))
                    .await
                    .is_some(),
                "n1 preempts\n{}",
                logs(&lab)
            );
        } else {
            // Give it several Master_Down_Intervals: n2 must keep the VIP.
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(
                lab.holders(VIP),
                vec![1],
                "preempt off: n2 keeps the VIP\n{}",
                logs(&lab)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_over_at_once_with_priority_zero() {
    let mut lab = Lab::new(2);
    // 1 s adverts: Master_Down_Interval is 3.6 s, Skew_Time 0.61 s. A handover far
    // quicker than MDI proves the priority-0 advert did its job.
    let (n1, _) = pair(&mut lab, NodeSpec::new(150, "1s"), NodeSpec::new(100, "1s")).await;
    assert!(
        wait_holders(&lab, &[0], Duration::from_secs(8))
            .await
            .is_some(),
        "{}",
        logs(&lab)
    );
    lab.child(n1).signal(Signal::SIGTERM);
    let took = wait_holders(&lab, &[1], Duration::from_secs(5))
        .await
        .expect("n2 takes over");
    assert!(
        took < Duration::from_millis(1500),
        "handover took {took:?}; MDI would be 3.6 s\n{}",
        logs(&lab)
    );
    let status = lab
        .child(n1)
        .wait_for_exit(Duration::from_secs(5))
        .await
        .expect("n1 exits");
    assert!(status.success());
    eprintln!("planned handover (SIGTERM) took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicast_mode_works_with_multicast_dropped() {
    let mut lab = Lab::new(2);
    let no_multicast = "table bridge nomc {\n chain forward_filter {\n  type filter hook forward priority 0; policy accept;\n  ip daddr 224.0.0.18 drop\n }\n}\n";
    tandem_tests::netns::nft_in(&lab.hub, no_multicast);
    let mut s1 = NodeSpec::new(150, "100ms");
    let mut s2 = NodeSpec::new(100, "100ms");
    s1.unicast = true;
    s2.unicast = true;
    let (n1, _) = pair(&mut lab, s1, s2).await;
    assert!(
        wait_holders(&lab, &[0], Duration::from_secs(5))
            .await
            .is_some(),
        "{}",
        logs(&lab)
    );
    // n2 stays backup for a good while: it hears n1's unicast adverts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        lab.holders(VIP),
        vec![0],
        "n2 hears n1 over unicast\n{}",
        logs(&lab)
    );
    lab.child(n1).signal(Signal::SIGKILL);
    assert!(
        wait_holder_includes(&lab, VIP, 1, Duration::from_secs(3))
            .await
            .is_some(),
        "{}",
        logs(&lab)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_vrrp_partition_heals_the_client_reaches_the_master_within_a_second() {
    let mut lab = Lab::new(2);
    let _who = (start_who_backend(&lab, 0), start_who_backend(&lab, 1));
    pair(
        &mut lab,
        NodeSpec::new(150, "100ms"),
        NodeSpec::new(100, "100ms"),
    )
    .await;
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "{}",
        logs(&lab)
    );
    for round in 0..3 {
        lab.partition_vrrp();
        // Both become master: n2 takes the VIP too and its gratuitous ARP moves the client.
        assert!(
            wait_holders(&lab, &[0, 1], Duration::from_secs(3))
                .await
                .is_some(),
            "round {round}: dual master\n{}",
            logs(&lab)
        );
        assert!(
            wait_client_reaches(&lab, "n2", Duration::from_secs(3))
                .await
                .is_some(),
            "round {round}: client moved to n2"
        );
        lab.heal();
        let healed = tokio::time::Instant::now();
        let took = wait_client_reaches(&lab, "n1", Duration::from_secs(3)).await;
        assert!(
            matches!(took, Some(t) if t <= Duration::from_secs(1)),
            "round {round}: the client must reach the remaining master within 1 s of the heal, took {took:?}\n{}",
            logs(&lab)
        );
        assert!(
            wait_holders(&lab, &[0], Duration::from_secs(3))
                .await
                .is_some(),
            "round {round}: n2 yields"
        );
        eprintln!(
            "round {round}: client back on n1 {:?} after the heal",
            healed.elapsed()
        );
    }
}

/// A node that cannot install the VIP (here: started without CAP_NET_ADMIN) must not sit
/// on mastership while nobody serves the address: it steps down at the lowest priority,
/// the peer holds the VIP, and the failure is logged with what to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_install_the_vip_leaves_it_to_its_peer() {
    let mut lab = Lab::new(2);
    let _who = (start_who_backend(&lab, 0), start_who_backend(&lab, 1));
    let dir = scratch(&lab);
    let config = dir.join("n1.toml");
    std::fs::write(
        &config,
        tandem_config(&lab, 0, &NodeSpec::new(150, "100ms")),
    )
    .unwrap();
    let ns = lab.nodes[0].ns.clone();
    let bin = tandem_tests::tandemd_bin();
    std::env::set_var("RUST_LOG", "info,tandem_vrrp=debug");
    // setpriv execs tandemd (same PID) with CAP_NET_ADMIN out of its bounding set: VRRP
    // adverts still go out (CAP_NET_RAW), adding an address fails with EPERM.
    lab.spawn(
        &ns,
        "setpriv",
        &[
            "--bounding-set",
            "-net_admin",
            "--",
            bin.to_str().unwrap(),
            "run",
            "--config",
            config.to_str().unwrap(),
        ],
        Some(&dir.join("n1.log")),
    );
    start_tandem(&mut lab, 1, &NodeSpec::new(100, "100ms"));

    assert!(
        wait_stable_holder(&lab, 1, Duration::from_secs(2), Duration::from_secs(10)).await,
        "n2 should hold the VIP when n1 cannot install it\n{}",
        logs(&lab)
    );
    assert!(
        wait_client_reaches(&lab, "n2", Duration::from_secs(3))
            .await
            .is_some(),
        "client reaches n2\n{}",
        logs(&lab)
    );
    let n1 = node_log(&lab, 0);
    assert!(
        n1.contains("could not be installed: stepping down"),
        "n1 should say why it steps down\n{n1}"
    );
    assert!(n1.contains("CAP_NET_ADMIN"), "{n1}");
}

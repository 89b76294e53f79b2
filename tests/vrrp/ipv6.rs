//! An IPv6 VIP (2001:db8:51::100) between two tandem nodes: adverts over IPv6, the VIP
//! installed without DAD, unsolicited neighbour advertisements moving the client's
//! neighbour entry on SIGKILL, SIGTERM and after a partition heals.

use nix::sys::signal::Signal;
use std::net::IpAddr;
use std::time::Duration;
use tandem_tests::netns::Lab;
use tandem_tests::vrrp_lab::*;

fn logs(lab: &Lab) -> String {
    format!(
        "--- n1 ---\n{}\n--- n2 ---\n{}",
        node_log(lab, 0),
        node_log(lab, 1)
    )
}

fn v6(priority: u8) -> NodeSpec {
    let mut spec = NodeSpec::new(priority, "100ms");
    spec.ipv6 = true;
    spec
}

const VIP: IpAddr = IpAddr::V6(VIP6);

/// A two-node IPv6 lab with n1 (150) holding the VIP, the client reaching it and its
/// neighbour entry for the VIP on n1's MAC. Returns the lab's child indexes of n1 and n2.
async fn ipv6_pair(lab: &mut Lab, n2: NodeSpec) -> (usize, usize) {
    lab.enable_ipv6();
    let a = start_tandem(lab, 0, &v6(150));
    let b = start_tandem(lab, 1, &n2);
    assert!(
        wait_stable_holder_of(
            lab,
            VIP,
            0,
            Duration::from_millis(500),
            Duration::from_secs(8)
        )
        .await,
        "n1 holds the IPv6 VIP\n{}",
        logs(lab)
    );
    let flags = lab
        .addresses_with_flags(&lab.nodes[0])
        .into_iter()
        .find(|(ip, _)| *ip == VIP)
        .map(|(_, f)| f)
        .expect("the VIP is on n1");
    assert!(
        flags.contains("nodad") && !flags.contains("tentative"),
        "the VIP is installed without DAD, usable at once: {flags:?}"
    );
    assert!(
        wait_client_reaches_at(lab, vip6_addr(), "n1", Duration::from_secs(3))
            .await
            .is_some(),
        "client reaches n1 through [{VIP6}]\n{}",
        logs(lab)
    );
    assert_eq!(
        lab.client_neighbour(VIP).as_deref(),
        Some(lab.nodes[0].mac.as_str()),
        "the client's neighbour entry for the VIP is n1's MAC"
    );
    (a, b)
}

/// After a takeover by n2: the client's neighbour entry moved to n2's MAC and the client
/// reaches n2 through the VIP.
async fn assert_client_moved_to_n2(lab: &Lab) {
    assert!(
        wait_client_neighbour(lab, VIP, &lab.nodes[1].mac, Duration::from_secs(2)).await,
        "the unsolicited neighbour advertisement moved the client's entry to n2's MAC: {:?}\n{}",
        lab.client_neighbour(VIP),
        logs(lab)
    );
    assert!(
        wait_client_reaches_at(lab, vip6_addr(), "n2", Duration::from_secs(2))
            .await
            .is_some(),
        "client reaches n2\n{}",
        logs(lab)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_vip_fails_over_on_sigkill_and_the_client_neighbour_entry_moves() {
    let mut lab = Lab::new(2);
    let _who = (start_who_backend(&lab, 0), start_who_backend(&lab, 1));
    let (n1, _) = ipv6_pair(&mut lab, v6(100)).await;
    let lifetime = lab
        .valid_lifetime(&lab.nodes[0], VIP)
        .expect("the IPv6 VIP has a finite kernel lifetime");
    assert!(
        lifetime <= 2,
        "same lifetime as IPv4 (2 s floor), got {lifetime}s"
    );

    lab.child(n1).signal(Signal::SIGKILL);
    let killed = tokio::time::Instant::now();
    let took = wait_holder_includes(&lab, VIP, 1, Duration::from_secs(3))
        .await
        .expect("n2 takes the IPv6 VIP");
    // Master_Down_Interval of n2 (priority 100, 100 ms adverts) is about 361 ms.
    assert!(
        took < Duration::from_millis(361 + 400),
        "failover took {took:?}, MDI is 361 ms\n{}",
        logs(&lab)
    );
    assert_client_moved_to_n2(&lab).await;
    // The dead node cannot remove its VIP; the kernel does when its lifetime runs out.
    assert!(
        wait_holders_of(&lab, VIP, &[1], Duration::from_secs(5))
            .await
            .is_some(),
        "the killed node's IPv6 VIP did not expire by itself\n{}",
        logs(&lab)
    );
    eprintln!(
        "IPv6 VIP: failover {took:?}; gone from the killed node {:?} after SIGKILL",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_an_ipv6_vip_over_at_once() {
    let mut lab = Lab::new(2);
    let _who = (start_who_backend(&lab, 0), start_who_backend(&lab, 1));
    let (n1, _) = ipv6_pair(&mut lab, v6(100)).await;
    lab.child(n1).signal(Signal::SIGTERM);
    // A priority-0 advert: n2 waits Skew_Time (about 61 ms) only.
    let took = wait_holders_of(&lab, VIP, &[1], Duration::from_secs(3))
        .await
        .expect("n2 alone holds the IPv6 VIP after n1's SIGTERM");
    assert!(
        took < Duration::from_millis(300),
        "handover after SIGTERM took {took:?}\n{}",
        logs(&lab)
    );
    assert_client_moved_to_n2(&lab).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_ipv6_partition_heals_one_holder_remains_and_the_client_follows() {
    let mut lab = Lab::new(2);
    let _who = (start_who_backend(&lab, 0), start_who_backend(&lab, 1));
    ipv6_pair(&mut lab, v6(100)).await;
    lab.partition_vrrp();
    assert!(
        wait_holders_of(&lab, VIP, &[0, 1], Duration::from_secs(3))
            .await
            .is_some(),
        "with IPv6 VRRP dropped both nodes become master (plain VRRP)\n{}",
        logs(&lab)
    );
    // n2's announcements won the client over during the partition.
    assert!(
        wait_client_neighbour(&lab, VIP, &lab.nodes[1].mac, Duration::from_secs(3)).await,
        "n2's neighbour advertisements reached the client: {:?}",
        lab.client_neighbour(VIP)
    );
    lab.heal();
    assert!(
        wait_holders_of(&lab, VIP, &[0], Duration::from_secs(3))
            .await
            .is_some(),
        "after the heal only n1 (higher priority) holds the VIP\n{}",
        logs(&lab)
    );
    assert!(
        wait_client_neighbour(&lab, VIP, &lab.nodes[0].mac, Duration::from_secs(1)).await,
        "n1 re-announced after the heal: the client's entry is n1's MAC again: {:?}\n{}",
        lab.client_neighbour(VIP),
        logs(&lab)
    );
    assert!(
        wait_client_reaches_at(&lab, vip6_addr(), "n1", Duration::from_secs(1))
            .await
            .is_some(),
        "client reaches n1 within a second of the heal\n{}",
        logs(&lab)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_unicast_peers_work_with_multicast_dropped() {
    let mut lab = Lab::new(2);
    let no_multicast = "table bridge nomc6 {\n chain forward_filter {\n  type filter hook forward priority 0; policy accept;\n  ip6 daddr ff02::12 drop\n }\n}\n";
    tandem_tests::netns::nft_in(&lab.hub, no_multicast);
    lab.enable_ipv6();
    let (mut s1, mut s2) = (v6(150), v6(100));
    s1.unicast = true;
    s2.unicast = true;
    let n1 = start_tandem(&mut lab, 0, &s1);
    start_tandem(&mut lab, 1, &s2);
    assert!(
        wait_stable_holder_of(&lab, VIP, 0, Duration::from_secs(1), Duration::from_secs(8)).await,
        "n1 alone holds the IPv6 VIP: n2 hears its adverts at its link-local address\n{}",
        logs(&lab)
    );
    lab.child(n1).signal(Signal::SIGKILL);
    assert!(
        wait_holder_includes(&lab, VIP, 1, Duration::from_secs(3))
            .await
            .is_some(),
        "n2 takes over\n{}",
        logs(&lab)
    );
}

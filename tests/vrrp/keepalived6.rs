//! Interoperability with keepalived for an IPv6 instance (`vrrp_version 3`, `native_ipv6`,
//! an IPv6 `virtual_ipaddress`): takeover both ways, neither side complaining about the
//! other's adverts, and the client's neighbour entry following the new holder.

use nix::sys::signal::Signal;
use std::net::IpAddr;
use std::time::Duration;
use tandem_tests::netns::Lab;
use tandem_tests::vrrp_lab::*;

use super::keepalived::{assert_no_complaints, logs};

const VIP: IpAddr = IpAddr::V6(VIP6);

fn tandem6(priority: u8) -> NodeSpec {
    let mut spec = NodeSpec::new(priority, "1s");
    spec.ipv6 = true;
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_tandem_master_keepalived_backup_and_takeover_on_sigkill() {
    let mut lab = Lab::new(2);
    lab.enable_ipv6();
    let _who = start_who_backend(&lab, 0);
    let t = start_tandem(&mut lab, 0, &tandem6(150));
    let _k = start_keepalived6(&mut lab, 1, 100, "1");
    assert!(
        wait_stable_holder_of(
            &lab,
            VIP,
            0,
            Duration::from_secs(3),
            Duration::from_secs(15)
        )
        .await,
        "tandem holds the IPv6 VIP\n{}",
        logs(&lab, 0, 1)
    );
    assert!(
        keepalived_log(&lab, 1).contains("Entering BACKUP STATE"),
        "keepalived accepts tandem's IPv6 adverts and stays backup\n{}",
        logs(&lab, 0, 1)
    );
    assert!(
        wait_client_reaches_at(&lab, vip6_addr(), "n1", Duration::from_secs(3))
            .await
            .is_some(),
        "client reaches tandem through the IPv6 VIP\n{}",
        logs(&lab, 0, 1)
    );
    lab.child(t).signal(Signal::SIGKILL);
    assert!(
        wait_holder_includes(&lab, VIP, 1, Duration::from_secs(8))
            .await
            .is_some(),
        "keepalived takes the IPv6 VIP over\n{}",
        logs(&lab, 0, 1)
    );
    assert!(keepalived_log(&lab, 1).contains("Entering MASTER STATE"));
    assert!(
        wait_client_neighbour(&lab, VIP, &lab.nodes[1].mac.clone(), Duration::from_secs(3)).await,
        "keepalived's neighbour advertisement moved the client: {:?}",
        lab.client_neighbour(VIP)
    );
    assert_no_complaints(&lab, 0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_keepalived_master_tandem_backup_and_takeover_on_sigkill() {
    let mut lab = Lab::new(2);
    lab.enable_ipv6();
    let _who = start_who_backend(&lab, 1);
    let k = start_keepalived6(&mut lab, 0, 150, "1");
    assert!(
        wait_stable_holder_of(
            &lab,
            VIP,
            0,
            Duration::from_secs(3),
            Duration::from_secs(15)
        )
        .await,
        "keepalived holds the IPv6 VIP\n{}",
        logs(&lab, 1, 0)
    );
    start_tandem(&mut lab, 1, &tandem6(100));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        lab.holders(VIP),
        vec![0],
        "tandem stays backup behind keepalived\n{}",
        logs(&lab, 1, 0)
    );
    assert!(node_log(&lab, 1).contains("to=Backup"));
    // The client resolves the VIP to keepalived's node (nothing listens there: the
    // connection is refused, which is enough).
    let _ = lab
        .client_ask(vip6_addr(), Duration::from_millis(300))
        .await;
    assert_eq!(
        lab.client_neighbour(VIP).as_deref(),
        Some(lab.nodes[0].mac.as_str())
    );
    lab.child(k).signal(Signal::SIGKILL);
    assert!(
        wait_holder_includes(&lab, VIP, 1, Duration::from_secs(8))
            .await
            .is_some(),
        "tandem takes the IPv6 VIP over\n{}",
        logs(&lab, 1, 0)
    );
    // keepalived left its VIP behind (SIGKILL); tandem's unsolicited neighbour
    // advertisements (override flag) still move the client.
    assert!(
        wait_client_neighbour(&lab, VIP, &lab.nodes[1].mac.clone(), Duration::from_secs(3)).await,
        "tandem's neighbour advertisement moved the client: {:?}\n{}",
        lab.client_neighbour(VIP),
        logs(&lab, 1, 0)
    );
    assert_no_complaints(&lab, 1, 0);
}

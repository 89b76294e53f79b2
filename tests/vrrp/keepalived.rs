//! Interoperability with keepalived (Debian's package, `vrrp_version 3`): a real VRRP
//! peer that we did not write judges our packets, and we judge its.

use nix::sys::signal::Signal;
use std::time::Duration;
use tandem_tests::netns::Lab;
use tandem_tests::vrrp_lab::*;

/// keepalived lines that would mean it disliked our packets.
const KEEPALIVED_COMPLAINTS: [&str; 6] = [
    "invalid",
    "bad ",
    "mismatch",
    "wrong",
    "not present",
    "error",
];

pub(super) fn assert_no_complaints(lab: &Lab, tandem: usize, keepalived: usize) {
    let k = keepalived_log(lab, keepalived).to_lowercase();
    for word in KEEPALIVED_COMPLAINTS {
        let hits: Vec<&str> = k
            .lines()
            .filter(|l| l.contains(word) && l.contains("vrrp"))
            .collect();
        assert!(
            hits.is_empty(),
            "keepalived complained ({word}):\n{}",
            hits.join("\n")
        );
    }
    let t = node_log(lab, tandem);
    for word in [
        "malformed VRRP packet",
        "VRRPv2 advert",
        "the configs disagree",
    ] {
        assert!(
            !t.contains(word),
            "tandem complained about keepalived's packets ({word}):\n{t}"
        );
    }
}

pub(super) fn logs(lab: &Lab, tandem: usize, keepalived: usize) -> String {
    format!(
        "--- tandem ---\n{}\n--- keepalived ---\n{}",
        node_log(lab, tandem),
        keepalived_log(lab, keepalived)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_master_keepalived_backup_and_takeover_on_sigkill() {
    let mut lab = Lab::new(2);
    let t = start_tandem(&mut lab, 0, &NodeSpec::new(150, "1s"));
    let _k = start_keepalived(&mut lab, 1, 100, "1", true);
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_secs(3), Duration::from_secs(15)).await,
        "tandem holds the VIP\n{}",
        logs(&lab, 0, 1)
    );
    assert!(
        keepalived_log(&lab, 1).contains("Entering BACKUP STATE"),
        "{}",
        logs(&lab, 0, 1)
    );
    lab.child(t).signal(Signal::SIGKILL);
    assert!(
        wait_holder_includes(&lab, VIP, 1, Duration::from_secs(8))
            .await
            .is_some(),
        "keepalived takes over\n{}",
        logs(&lab, 0, 1)
    );
    assert!(keepalived_log(&lab, 1).contains("Entering MASTER STATE"));
    assert_no_complaints(&lab, 0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalived_master_tandem_backup_and_takeover_on_sigkill() {
    let mut lab = Lab::new(2);
    let k = start_keepalived(&mut lab, 0, 150, "1", true);
    // Let keepalived become master first, then start tandem as the backup.
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_secs(3), Duration::from_secs(15)).await,
        "keepalived holds the VIP\n{}",
        logs(&lab, 1, 0)
    );
    start_tandem(&mut lab, 1, &NodeSpec::new(100, "1s"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        lab.holders(VIP),
        vec![0],
        "tandem stays backup behind keepalived\n{}",
        logs(&lab, 1, 0)
    );
    assert!(node_log(&lab, 1).contains("to=Backup"));
    lab.child(k).signal(Signal::SIGKILL);
    assert!(
        wait_holder_includes(&lab, VIP, 1, Duration::from_secs(8))
            .await
            .is_some(),
        "tandem takes over\n{}",
        logs(&lab, 1, 0)
    );
    // keepalived left its VIP behind (it cannot remove it after SIGKILL); tandem's gratuitous
    // ARP still moves the client.
    assert!(wait_client_resolves(&lab, &lab.nodes[1].mac.clone(), Duration::from_secs(3)).await);
    assert_no_complaints(&lab, 1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_priority_tie_break_agrees_with_keepalived() {
    // Equal priority only matters when two masters meet (a Backup accepts an equal-priority
    // master, RFC 5798 6.4.2). Make them meet: start both behind a VRRP partition, let both
    // become master, heal. The higher primary address (n2) must win (6.4.3), whichever
    // implementation runs where.
    for tandem_on in [0usize, 1] {
        let mut lab = Lab::new(2);
        let keepalived_on = 1 - tandem_on;
        lab.partition_vrrp();
        start_tandem(&mut lab, tandem_on, &NodeSpec::new(100, "1s"));
        start_keepalived(&mut lab, keepalived_on, 100, "1", true);
        assert!(
            wait_holders(&lab, &[0, 1], Duration::from_secs(10))
                .await
                .is_some(),
            "both become master while partitioned\n{}",
            logs(&lab, tandem_on, keepalived_on)
        );
        lab.heal();
        assert!(
            wait_stable_holder(&lab, 1, Duration::from_secs(3), Duration::from_secs(15)).await,
            "tandem on n{}: the higher address (n2) must win\n{}",
            tandem_on + 1,
            logs(&lab, tandem_on, keepalived_on)
        );
        assert_no_complaints(&lab, tandem_on, keepalived_on);
    }
}

/// Polls the client's neighbour entry for the VIP every 50 ms until it is `mac`, asking
/// through the VIP each time (which makes the client resolve it).
async fn wait_client_resolves(lab: &Lab, mac: &str, limit: Duration) -> bool {
    let resolved = || async move {
        let _ = lab.client_ask(vip_addr(), Duration::from_millis(200)).await;
        lab.client_neighbour(VIP).as_deref() == Some(mac)
    };
    tandem_tests::wait_until_async(limit, Duration::from_millis(50), resolved)
        .await
        .is_some()
}

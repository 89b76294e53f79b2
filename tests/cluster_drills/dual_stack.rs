//! A dual-stack VIP group: "front" holds 198.51.100.100 and 2001:db8:51::100, so each
//! forwarding node runs an IPv4 and an IPv6 VRRP instance for it under one Raft lease.
//! Both addresses move together (SIGKILL, return with preemption, planned move) and
//! neither is ever held by two nodes; clients of both families reach the holder through
//! `[::]` listeners with `ipv6_only = false`.

use std::net::SocketAddr;
use std::time::Duration;

use tandem_tests::cluster_lab::{ClusterLab, Family, Observer};
use tandem_tests::vrrp_lab::{PORT, VIP, VIP6};

use super::faults::{assert_no_overlap, expect_holder, restart_and_rejoin, settle_on};
use super::CRASH_BOUND;

/// Both VIPs on `node` (each observer's last sample), each within `limit`; the times.
async fn expect_both_on(
    cl: &ClusterLab,
    v4: &Observer,
    v6: &Observer,
    node: usize,
    limit: Duration,
    what: &str,
) -> (Duration, Duration) {
    let (what4, what6) = (format!("{what} (IPv4 VIP)"), format!("{what} (IPv6 VIP)"));
    tokio::join!(
        expect_holder(cl, v4, node, limit, &what4),
        expect_holder(cl, v6, node, limit, &what6),
    )
}

/// The client reaches `name` through both VIPs ("who" listener).
async fn client_reaches_both(cl: &ClusterLab, name: &str) {
    for vip in [
        SocketAddr::from((VIP, PORT)),
        SocketAddr::from((VIP6, PORT)),
    ] {
        let mut answer = None;
        for _ in 0..20 {
            answer = cl.lab.client_ask(vip, Duration::from_millis(500)).await;
            if answer.as_deref() == Some(name) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            answer.as_deref(),
            Some(name),
            "the client reaches {name} through {vip}\n{}",
            cl.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dual_stack_group_moves_both_addresses_as_one_unit() {
    let mut cl = ClusterLab::start_in(Family::DualStack).await;
    let v4 = Observer::start_for(&cl.lab, VIP.into());
    let v6 = Observer::start_for(&cl.lab, VIP6.into());
    expect_both_on(&cl, &v4, &v6, 0, Duration::from_secs(10), "start").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    client_reaches_both(&cl, "n1").await;
    let vrrp = cl.ctl_ok(0, &["vrrp"]);
    assert_eq!(
        vrrp.matches("front").count(),
        2,
        "an IPv4 and an IPv6 instance for the dual-stack group:\n{vrrp}"
    );
    let metrics = cl.metrics(0).await;
    for family in ["ipv4", "ipv6"] {
        let series = format!(r#"tandem_vrrp_holds_addresses{{group="front",family="{family}"}}"#);
        assert_eq!(
            tandem_tests::cluster_lab::metric(&metrics, &series),
            Some(1.0),
            "{series} on n1:\n{metrics}"
        );
    }

    // SIGKILL of the holder: n2 takes both under the one lease.
    cl.kill(0).await;
    let (t4, t6) = expect_both_on(&cl, &v4, &v6, 1, Duration::from_secs(8), "after SIGKILL").await;
    println!(
        "dual-stack group, SIGKILL of the holder: n2 holds IPv4 after {t4:?}, IPv6 after {t6:?}"
    );
    assert!(
        t4 <= CRASH_BOUND && t6 <= CRASH_BOUND,
        "failover took {t4:?} (IPv4) and {t6:?} (IPv6), over {CRASH_BOUND:?}\n{}",
        cl.logs()
    );
    client_reaches_both(&cl, "n2").await;

    // n1 returns and, preferred, takes both back.
    restart_and_rejoin(&mut cl, 0).await;
    expect_both_on(&cl, &v4, &v6, 0, Duration::from_secs(15), "after restart").await;
    settle_on(&cl, &v6, 0, Duration::from_secs(1), "settled").await;

    // A planned move moves the group: both addresses.
    cl.ctl_ok(0, &["vip", "move", "front", "n2"]);
    let (t4, t6) = expect_both_on(&cl, &v4, &v6, 1, Duration::from_secs(5), "vip move").await;
    println!("dual-stack group, planned move: IPv4 after {t4:?}, IPv6 after {t6:?}");
    client_reaches_both(&cl, "n2").await;

    for (name, seen) in [("IPv4", v4.finish()), ("IPv6", v6.finish())] {
        println!(
            "observer {name}: {} samples, changes {:?}",
            seen.samples, seen.changes
        );
        assert_no_overlap(&cl, &seen);
    }
}

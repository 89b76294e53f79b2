//! The VRRP speaker's operator-facing behaviour in the namespace lab: trackers, interface
//! fault, hooks, stale VIPs, and garbage on the wire. Root only; fails loudly without it.

use std::net::Ipv4Addr;
use std::time::Duration;
use tandem_tests::netns::{run, Lab};
use tandem_tests::vrrp_lab::*;

fn logs(lab: &Lab) -> String {
    let addrs = |i: usize| {
        run(
            "ip",
            &["-n", &lab.nodes[i].ns, "addr", "show", "dev", "eth0"],
        )
    };
    format!(
        "--- n1 ---\n{}{}\n--- n2 ---\n{}{}",
        addrs(0),
        node_log(lab, 0),
        addrs(1),
        node_log(lab, 1)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_track_script_lowers_priority_and_the_peer_takes_over() {
    let mut lab = Lab::new(2);
    let flag = scratch(&lab).join("n1-broken");
    let mut s1 = NodeSpec::new(150, "100ms");
    s1.extra_instance = format!(
        "[[node.vrrp.instance.track]]\nkind = \"script\"\ncommand = \"test ! -e {}\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfall = 2\nrise = 2\nweight = -100\n",
        flag.display()
    );
    start_tandem(&mut lab, 0, &s1);
    start_tandem(&mut lab, 1, &NodeSpec::new(100, "100ms"));
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "{}",
        logs(&lab)
    );
    std::fs::write(&flag, "").unwrap();
    // 150 - 100 = 50 < 100: n2 preempts after its Master_Down_Interval.
    assert!(
        wait_stable_holder(&lab, 1, Duration::from_millis(500), Duration::from_secs(5)).await,
        "n2 takes over\n{}",
        logs(&lab)
    );
    std::fs::remove_file(&flag).unwrap();
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "n1 recovers and preempts\n{}",
        logs(&lab)
    );
    assert!(node_log(&lab, 0).contains("tracked condition changed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_down_is_a_fault_and_the_peer_takes_over() {
    let mut lab = Lab::new(2);
    start_tandem(&mut lab, 0, &NodeSpec::new(150, "100ms"));
    start_tandem(&mut lab, 1, &NodeSpec::new(100, "100ms"));
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "{}",
        logs(&lab)
    );
    run(
        "ip",
        &["-n", &lab.nodes[0].ns, "link", "set", "eth0", "down"],
    );
    assert!(
        wait_stable_holder(&lab, 1, Duration::from_millis(300), Duration::from_secs(5)).await,
        "{}",
        logs(&lab)
    );
    assert!(
        node_log(&lab, 0).contains("to=Fault"),
        "n1 entered Fault\n{}",
        logs(&lab)
    );
    run("ip", &["-n", &lab.nodes[0].ns, "link", "set", "eth0", "up"]);
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(8)).await,
        "n1 back and preempting\n{}",
        logs(&lab)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_order_with_the_transition_in_their_environment() {
    let mut lab = Lab::new(2);
    let out = scratch(&lab).join("hooks.out");
    let mut s1 = NodeSpec::new(150, "100ms");
    s1.extra_node = format!(
        "hooks = [\"echo first $TANDEM_INSTANCE $TANDEM_OLD_STATE $TANDEM_NEW_STATE >> {o}\", \"sleep 0.2; echo second $TANDEM_NEW_STATE >> {o}\"]\nhook_timeout = \"2s\"",
        o = out.display()
    );
    start_tandem(&mut lab, 0, &s1);
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(300), Duration::from_secs(5)).await,
        "{}",
        logs(&lab)
    );
    let expected =
        "first front INITIALIZE BACKUP\nsecond BACKUP\nfirst front BACKUP MASTER\nsecond MASTER\n";
    let mut seen = String::new();
    for _ in 0..100 {
        seen = std::fs::read_to_string(&out).unwrap_or_default();
        if seen == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        expected,
        "hooks ran in order, each awaited\n{}",
        logs(&lab)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_vip_left_by_an_earlier_run_is_removed_at_start() {
    let mut lab = Lab::new(2);
    // As if a keepalived-style daemon died holding it: permanent, no lifetime.
    run(
        "ip",
        &[
            "-n",
            &lab.nodes[1].ns,
            "addr",
            "add",
            &format!("{VIP}/24"),
            "dev",
            "eth0",
        ],
    );
    start_tandem(&mut lab, 0, &NodeSpec::new(150, "100ms"));
    start_tandem(&mut lab, 1, &NodeSpec::new(100, "100ms"));
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "only the master holds it; the backup removed its stale copy\n{}",
        logs(&lab)
    );
    assert!(node_log(&lab, 1).contains("removed a stale virtual address"));
}

/// Sends raw IPv4 protocol-112 packets from the client namespace to 224.0.0.18.
fn send_raw(lab: &Lab, payloads: &[Vec<u8>], ttl: u32) {
    send_raw_to(lab, payloads, ttl, Ipv4Addr::new(224, 0, 0, 18));
}

/// Sends raw IPv4 protocol-112 packets from the client namespace to `dst`.
fn send_raw_to(lab: &Lab, payloads: &[Vec<u8>], ttl: u32, dst: Ipv4Addr) {
    let path = format!("/var/run/netns/{}", lab.client.ns);
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsFd;
            let f = std::fs::File::open(&path).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let sock = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(112)),
            )
            .unwrap();
            sock.set_multicast_ttl_v4(ttl).unwrap();
            sock.set_multicast_if_v4(&Ipv4Addr::new(198, 51, 100, 50))
                .unwrap();
            sock.set_ttl_v4(ttl).unwrap();
            let dst = socket2::SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
            for p in payloads {
                sock.send_to(p, &dst).unwrap();
            }
        })
        .join()
        .unwrap()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_is_dropped_and_never_fatal() {
    let mut lab = Lab::new(2);
    let _who = start_who_backend(&lab, 0);
    start_tandem(&mut lab, 0, &NodeSpec::new(150, "100ms"));
    start_tandem(&mut lab, 1, &NodeSpec::new(100, "100ms"));
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "{}",
        logs(&lab)
    );
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x31],
        vec![0x31, 51, 255, 1, 0, 100, 0, 0], // count 1, no address, bad checksum
        vec![0x31, 51, 255, 0, 0, 100, 0xde, 0xad], // priority 255 claim, bad checksum
        vec![0x21, 51, 255, 1, 0, 1, 0, 0, 198, 51, 100, 100], // VRRPv2
        vec![0x41; 64],                       // version 4
    ];
    for i in 0..200u32 {
        garbage.push(
            (0..(i % 40))
                .map(|j| (i.wrapping_mul(31).wrapping_add(j * 7)) as u8)
                .collect(),
        );
    }
    send_raw(&lab, &garbage, 255);
    send_raw(&lab, &garbage[2..4], 64); // wrong TTL
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        lab.holders(VIP),
        vec![0],
        "no garbage moved the VIP\n{}",
        logs(&lab)
    );
    assert_eq!(
        lab.client_ask(vip_addr(), Duration::from_secs(1))
            .await
            .as_deref(),
        Some("n1"),
        "n1 still serves"
    );
    let log = node_log(&lab, 0);
    assert!(
        log.contains("malformed VRRP packet dropped"),
        "drops are logged at debug\n{log}"
    );
    // Both daemons are alive: SIGTERM makes them exit 0.
    for i in 0..2 {
        lab.child(i).signal(nix::sys::signal::Signal::SIGTERM);
        let status = lab
            .child(i)
            .wait_for_exit(Duration::from_secs(5))
            .await
            .expect("still running until SIGTERM");
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicast_mode_accepts_adverts_from_listed_peers_only() {
    let mut lab = Lab::new(2);
    let mut s1 = NodeSpec::new(150, "100ms");
    let mut s2 = NodeSpec::new(100, "100ms");
    s1.unicast = true;
    s2.unicast = true;
    start_tandem(&mut lab, 0, &s1);
    start_tandem(&mut lab, 1, &s2);
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "{}",
        logs(&lab)
    );
    // A well-formed advert with priority 254 from the client, which is not a listed peer,
    // sent straight to n1: it must not make n1 yield.
    let client = Ipv4Addr::new(198, 51, 100, 50);
    let n1 = lab.nodes[0].ip;
    let rogue = tandem_vrrp::wire::VrrpRepr {
        vrid: VRID,
        priority: 254,
        max_advert_int: 10,
        addresses: vec![VIP],
    }
    .to_bytes(client, n1);
    for _ in 0..10 {
        send_raw_to(&lab, std::slice::from_ref(&rogue), 255, n1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        lab.holders(VIP),
        vec![0],
        "a non-peer cannot take the VIP\n{}",
        logs(&lab)
    );
    assert!(
        node_log(&lab, 0).contains("not in node.vrrp.unicast_peers"),
        "the drop is logged\n{}",
        logs(&lab)
    );
}

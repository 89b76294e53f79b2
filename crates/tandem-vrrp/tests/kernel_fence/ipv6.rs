//! The kernel fence of an IPv6 VIP: traffic to it and the neighbour advertisements that
//! would announce it stop when its permit ends, with no daemon acting.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::netns_pair::{enter, eventually, ms, run, Netns};
use super::Prober;

const NODE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x11);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x12);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x100);

fn add(ns: &str, ip: Ipv6Addr) {
    let cidr = format!("{ip}/64");
    run(
        "ip",
        &["-n", ns, "addr", "add", &cidr, "dev", "eth0", "nodad"],
    );
}

#[test]
fn the_kernel_fence_silences_an_ipv6_vip_and_its_neighbour_advertisements() {
    let ns = Netns::new();
    add(&ns.node, NODE6);
    add(&ns.node, VIP6);
    add(&ns.peer, PEER6);
    let node = ns.node.clone();
    let peer = ns.peer.clone();
    let body = std::thread::spawn(move || {
        enter(&node);
        let echo = std::net::UdpSocket::bind((VIP6, 7007)).expect("echo socket on the VIP");
        echo.set_read_timeout(Some(ms(20))).unwrap();
        let echo_stop = Arc::new(AtomicBool::new(false));
        let echo_thread = std::thread::spawn({
            let stop = echo_stop.clone();
            move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = echo.recv_from(&mut buf) {
                        let _ = echo.send_to(&buf[..n], from);
                    }
                }
            }
        });
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(scenario(&peer));
        echo_stop.store(true, Ordering::Relaxed);
        let _ = echo_thread.join();
    });
    if let Err(panic) = body.join() {
        std::panic::resume_unwind(panic);
    }
    drop(ns);
}

/// The peer's neighbour entry for the VIP has a link-layer address (it was resolved).
fn peer_resolved(peer: &str) -> bool {
    run(
        "ip",
        &["-n", peer, "-6", "neigh", "show", &VIP6.to_string()],
    )
    .contains("lladdr")
}

async fn scenario(peer: &str) {
    use tandem_vrrp::io::{fence_state, FenceState, KernelFence};
    let state = || fence_state(VIP6).expect("nfnetlink dump of the fence");
    assert_eq!(state(), FenceState::NoFence, "no table yet");
    let fence = KernelFence::install(&[VIP6.into()], ms(100))
        .await
        .expect("kernel fence installs (nft from Debian's nftables)");
    let prober = Prober::start_between(
        peer,
        SocketAddr::from((PEER6, 0)),
        SocketAddr::from((VIP6, 7007)),
    );

    assert_eq!(state(), FenceState::Closed, "installed, nothing permitted");
    // Nothing permitted: no echo, and the VIP is not even resolved (the node's neighbour
    // advertisements for it leave from the VIP and are dropped).
    tokio::time::sleep(ms(500)).await;
    assert_eq!(prober.last_echo(), None, "silent before any permit");
    assert!(
        !peer_resolved(peer),
        "a fenced IPv6 VIP must not be resolved: {}",
        run("ip", &["-n", peer, "-6", "neigh"])
    );

    fence
        .permit(&[VIP6.into()], Instant::now() + Duration::from_secs(5))
        .await
        .expect("permit");
    eventually(
        "echoes from the IPv6 VIP under the permit",
        Duration::from_secs(5),
        || async { prober.last_echo().is_some() },
    )
    .await;
    assert!(peer_resolved(peer), "resolved under the permit");
    assert_eq!(state(), FenceState::Open, "permitted");

    // Shortened to end 300 ms from now; then nobody acts.
    let until = Instant::now() + ms(300);
    let took = fence.permit(&[VIP6.into()], until).await.expect("refresh");
    tokio::time::sleep(ms(700)).await;
    let last = prober.last_echo().expect("echoes");
    let late = last.saturating_duration_since(until);
    eprintln!(
        "IPv6 kernel fence: last echo {:.1} ms after the permit's end (nft took {:.1} ms)",
        late.as_secs_f64() * 1000.0,
        took.as_secs_f64() * 1000.0
    );
    assert!(
        late <= took + ms(15),
        "the fence closed {late:?} after the permit's end (nft took {took:?})"
    );
    assert_eq!(
        prober.echoes_since(until + took + ms(15)),
        0,
        "nothing answers once the permit ended"
    );
    assert_eq!(state(), FenceState::Closed, "the element expired");

    // Neighbour discovery: with the peer's entry gone, the VIP is not resolved again.
    run("ip", &["-n", peer, "-6", "neigh", "flush", "dev", "eth0"]);
    tokio::time::sleep(ms(1500)).await;
    assert!(
        !peer_resolved(peer),
        "the lapsed IPv6 VIP must not be announced by neighbour advertisements: {}",
        run("ip", &["-n", peer, "-6", "neigh"])
    );
    fence.remove().await;
    assert_eq!(state(), FenceState::NoFence, "removed");
}

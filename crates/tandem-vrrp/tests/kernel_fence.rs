//! The nftables kernel fence against a real kernel: a VIP configured in a namespace answers
//! a peer only while the fence permits it, and stops within milliseconds of the permit's end
//! with no daemon acting; the nfnetlink reader agrees with it at every step.

#[path = "kernel_fence/ipv6.rs"]
mod ipv6;
mod netns_pair;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netns_pair::{enter, eventually, ms, run, Netns, PEER_IP, VIP};
use tokio::time::Instant;

/// Times at which echoes from the VIP came back to the peer: a UDP datagram every 2 ms.
struct Prober {
    echoes: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(ns: &str) -> Prober {
        Prober::start_between(ns, (PEER_IP, 0).into(), (VIP, 7007).into())
    }

    /// Probes `to` from `from` inside `ns`.
    fn start_between(ns: &str, from: std::net::SocketAddr, to: std::net::SocketAddr) -> Prober {
        let echoes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let ns = ns.to_string();
        let thread = std::thread::spawn({
            let (echoes, stop) = (echoes.clone(), stop.clone());
            move || {
                enter(&ns);
                let s = std::net::UdpSocket::bind(from).expect("prober socket");
                s.connect(to).expect("prober connect");
                s.set_read_timeout(Some(ms(2))).unwrap();
                let mut buf = [0u8; 16];
                while !stop.load(Ordering::Relaxed) {
                    let _ = s.send(b"probe");
                    while let Ok(_n) = s.recv(&mut buf) {
                        echoes.lock().unwrap().push(Instant::now());
                    }
                }
            }
        });
        Prober {
            echoes,
            stop,
            thread: Some(thread),
        }
    }

    fn last_echo(&self) -> Option<Instant> {
        self.echoes.lock().unwrap().last().copied()
    }

    fn echoes_since(&self, t: Instant) -> usize {
        self.echoes
            .lock()
            .unwrap()
            .iter()
            .filter(|e| **e >= t)
            .count()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The nftables fence alone, with no daemon acting at the end of the permit (as after a
/// SIGKILL): a VIP configured on the node answers only while its element lives, and stops
/// within milliseconds of the permit's end, for IP and for ARP.
#[test]
fn the_kernel_fence_silences_the_vip_when_its_permit_ends_with_no_daemon_acting() {
    let ns = Netns::new();
    run(
        "ip",
        &[
            "-n",
            &ns.node,
            "addr",
            "add",
            &format!("{VIP}/24"),
            "dev",
            "eth0",
        ],
    );
    let node = ns.node.clone();
    let peer = ns.peer.clone();
    let body = std::thread::spawn(move || {
        enter(&node);
        let echo = std::net::UdpSocket::bind((VIP, 7007)).expect("echo socket on the VIP");
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
            .block_on(kernel_fence_scenario(&node, &peer));
        echo_stop.store(true, Ordering::Relaxed);
        let _ = echo_thread.join();
    });
    if let Err(panic) = body.join() {
        std::panic::resume_unwind(panic);
    }
    drop(ns);
}

async fn kernel_fence_scenario(node: &str, peer: &str) {
    use tandem_vrrp::io::{fence_state, FenceState, KernelFence};
    // The reader the drills' observer and tandem-holders use, checked against the fence.
    let state = || fence_state(VIP).expect("nfnetlink dump of the fence");
    assert_eq!(state(), FenceState::NoFence, "no table yet");
    let fence = KernelFence::install(&[VIP.into()], ms(100))
        .await
        .expect("kernel fence installs (nft from Debian's nftables)");
    assert_eq!(state(), FenceState::Closed, "installed, nothing permitted");
    let prober = Prober::start(peer);

    // Installed, nothing permitted: the VIP does not answer, not even ARP.
    tokio::time::sleep(ms(300)).await;
    assert_eq!(prober.last_echo(), None, "silent before any permit");

    // A long permit: echoes flow.
    fence
        .permit(&[VIP.into()], Instant::now() + Duration::from_secs(5))
        .await
        .expect("permit");
    eventually(
        "echoes under the permit",
        Duration::from_secs(3),
        || async { prober.last_echo().is_some() },
    )
    .await;
    assert_eq!(state(), FenceState::Open, "permitted");

    // Shortened to end 300 ms from now, then nobody acts: echoes stop at its end.
    let until = Instant::now() + ms(300);
    let took = fence.permit(&[VIP.into()], until).await.expect("refresh");
    tokio::time::sleep(ms(700)).await;
    let last = prober.last_echo().expect("echoes");
    let (early, late) = (
        until.saturating_duration_since(last),
        last.saturating_duration_since(until),
    );
    eprintln!(
        "kernel fence: last echo {:.1} ms {} the permit's end (nft refresh took {:.1} ms)",
        if late > early { late } else { early }.as_secs_f64() * 1000.0,
        if late > early { "after" } else { "before" },
        took.as_secs_f64() * 1000.0
    );
    assert!(
        late <= took + ms(15),
        "the fence closed {late:?} after the permit's end (nft took {took:?})"
    );
    assert!(
        early <= ms(30),
        "echoes stopped {early:?} before the permit's end"
    );
    assert_eq!(
        prober.echoes_since(until + took + ms(15)),
        0,
        "nothing answers once the permit ended"
    );
    assert_eq!(state(), FenceState::Closed, "the element expired");

    // ARP: with the peer's neighbour entry gone, the VIP is not resolved any more.
    run("ip", &["-n", peer, "neigh", "flush", "dev", "eth0"]);
    tokio::time::sleep(ms(400)).await;
    let neigh = run("ip", &["-n", peer, "neigh", "show", &VIP.to_string()]);
    assert!(
        !neigh.contains("lladdr"),
        "the fenced VIP must not be resolved by ARP: {neigh}"
    );

    // Revoke closes at once; remove takes the tables away.
    fence.remove().await;
    let tables = run("ip", &["netns", "exec", node, "nft", "list", "tables"]);
    assert!(!tables.contains("tandem_fence"), "tables removed: {tables}");
    assert_eq!(state(), FenceState::NoFence, "removed");
}

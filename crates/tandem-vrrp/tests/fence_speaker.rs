//! The fencing seam driven from outside, as the Raft lease keeper will: one speaker alone on
//! a veth link in a namespace of its own, a test fence that sends permits and demotions, and
//! the kernel's view of the VIP (`ip -j addr`: present? valid_lft?). A second namespace on
//! the other end of the veth listens to the adverts.
//!
//! Root only (namespaces, raw sockets): without it the test fails with a clear message; it
//! never skips.

mod netns_pair;

use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_vrrp::io::{
    spawn_instance, Fence, FenceLink, HookRunner, InstanceSpec, InstanceStatus, Netlink, Permit,
};
use tandem_vrrp::machine::State;
use tandem_vrrp::wire::{parse_advert, Advert};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use netns_pair::{enter, eventually, ms, Netns, NODE_IP, PEER_IP, VIP};

/// What a lease keeper would hold: the permit and demotion it sends, the wish it reads.
struct TestFence {
    permit: watch::Sender<Permit>,
    demoted: watch::Sender<bool>,
    designated: watch::Sender<bool>,
    lapsed: watch::Sender<bool>,
    wants: watch::Sender<bool>,
    able: watch::Sender<bool>,
}

impl Fence for TestFence {
    fn attach(&self, group: &str) -> FenceLink {
        assert_eq!(group, "web");
        FenceLink {
            permit: self.permit.subscribe(),
            wants: self.wants.clone(),
            demoted: self.demoted.subscribe(),
            designated: self.designated.subscribe(),
            lapsed: self.lapsed.subscribe(),
            kernel: None,
            able: self.able.subscribe(),
        }
    }
}

/// Priorities of the VRRP adverts seen on the peer's end of the link, in order.
struct Listener {
    priorities: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start(ns: &str) -> Listener {
        let priorities = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let thread = std::thread::spawn({
            let (priorities, stop) = (priorities.clone(), stop.clone());
            move || {
                enter(&ns);
                use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
                let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
                    .expect("raw VRRP socket");
                s.bind_device(Some(b"eth0")).unwrap();
                s.join_multicast_v4_n(
                    &Ipv4Addr::new(224, 0, 0, 18),
                    &InterfaceIndexOrAddress::Address(PEER_IP),
                )
                .unwrap();
                s.set_read_timeout(Some(ms(50))).unwrap();
                ready_tx.send(()).unwrap();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = (&s).read(&mut buf) {
                        if let Ok((ip, Advert::V3(v3))) = parse_advert(&buf[..n]) {
                            if ip.src == NODE_IP {
                                priorities.lock().unwrap().push(v3.priority);
                            }
                        }
                    }
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(5))
            .expect("listener ready");
        Listener {
            priorities,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<u8> {
        self.priorities.lock().unwrap().clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The VIP's remaining valid_lft in seconds as the kernel reports it; None: absent.
async fn vip_lifetime(ns: &str) -> Option<u64> {
    let out = tokio::process::Command::new("ip")
        .args(["-n", ns, "-4", "-j", "addr", "show", "dev", "eth0"])
        .output()
        .await
        .expect("ip -j addr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8_lossy(&out.stdout);
    // Each addr_info entry is a flat JSON object: find ours, then its valid_life_time.
    let at = json.find(&format!("\"local\":\"{VIP}\""))?;
    let entry = &json[at..at + json[at..].find('}').expect("closing brace")];
    let key = "\"valid_life_time\":";
    let value = &entry[entry.find(key).expect("valid_life_time") + key.len()..];
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    Some(digits.parse().expect("a number"))
}

fn spec() -> InstanceSpec {
    InstanceSpec {
        group: "web".into(),
        vrid: 51,
        priority: 100,
        advert_interval: ms(100),
        preempt: true,
        preempt_delay: Duration::ZERO,
        addresses: vec![(VIP.into(), 24)],
        interface: "eth0".into(),
        unicast_peers: Vec::new(),
        source: None,
        garp_count: 1,
        garp_repeat_after: Duration::ZERO,
        garp_refresh: Duration::ZERO,
        trackers: Vec::new(),
    }
}

#[test]
fn the_fence_decides_when_and_how_long_the_master_holds_the_vip() {
    let ns = Netns::new();
    let listener = Listener::start(&ns.peer);
    let node = ns.node.clone();
    let body = std::thread::spawn(move || {
        enter(&node);
        // Built in the namespace: its worker threads, sockets and netlink are there too.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(scenario(&node, &listener))
    });
    if let Err(panic) = body.join() {
        std::panic::resume_unwind(panic);
    }
    drop(ns);
}

/// Everything the scenario watches changing: the speaker's wish and its status, in order.
#[derive(Default)]
struct History {
    wants: Mutex<Vec<bool>>,
    states: Mutex<Vec<(State, u8, Option<String>)>>,
}

async fn scenario(ns: &str, listener: &Listener) {
    let fence = Arc::new(TestFence {
        permit: watch::channel(Permit::Denied).0,
        demoted: watch::channel(false).0,
        designated: watch::channel(false).0,
        lapsed: watch::channel(false).0,
        wants: watch::channel(false).0,
        able: watch::channel(true).0,
    });
    let stop = CancellationToken::new();
    let handle = spawn_instance(
        spec(),
        Netlink::open().expect("netlink"),
        HookRunner::none(),
        fence.clone(),
        stop.clone(),
    )
    .await
    .expect("instance starts");
    let history = Arc::new(History::default());
    record(&fence, &handle.status, &history);
    let h = &*history;
    let status = handle.status.clone();
    let st = || -> InstanceStatus { status.borrow().clone() };
    let wants = || *fence.wants.borrow();
    let garps = || handle.stats.garp_bursts.load(Ordering::Relaxed);

    // (1) Alone on the link it becomes master after Master_Down_Interval (~0.36 s) and says
    // it wants the VIP; the fence denies, so no VIP, no gratuitous ARP, but adverts go out.
    eventually(
        "VRRP master wants the VIP",
        Duration::from_secs(3),
        || async move { wants() },
    )
    .await;
    tokio::time::sleep(ms(250)).await;
    let s = st();
    assert_eq!(s.state, State::Master);
    assert!(s.waiting_for_fence && !s.holds_addresses, "{s:?}");
    assert_eq!(vip_lifetime(ns).await, None, "no VIP without a permit");
    assert_eq!(
        garps(),
        0,
        "no gratuitous ARP before the addresses are taken"
    );
    assert!(
        listener.seen().iter().filter(|p| **p == 100).count() >= 2,
        "a waiting master still advertises: {:?}",
        listener.seen()
    );

    // (2) A lease until now + 3.5 s: the VIP appears with a lifetime of at most 3 s.
    fence
        .permit
        .send_replace(Permit::Until(Instant::now() + ms(3500)));
    eventually("VIP installed under the lease", ms(500), || async move {
        vip_lifetime(ns).await.is_some()
    })
    .await;
    let lft = vip_lifetime(ns).await.unwrap();
    assert!((1..=3).contains(&lft), "valid_lft {lft} within the lease");
    eventually("status shows the VIP held", ms(500), || async move {
        let s = st();
        s.holds_addresses && !s.waiting_for_fence
    })
    .await;
    assert_eq!(garps(), 1, "announced once, when taken");

    // (3) Renewed until now + 5.5 s: the kernel lifetime is extended at once.
    fence
        .permit
        .send_replace(Permit::Until(Instant::now() + ms(5500)));
    eventually("lifetime extended past 3 s", ms(500), || async move {
        vip_lifetime(ns).await.is_some_and(|l| l > 3)
    })
    .await;
    assert!(vip_lifetime(ns).await.unwrap() <= 5);
    assert_eq!(garps(), 1, "a renewal is no new announcement");

    // (4) Denied: the VIP goes at once; VRRP stays master and still wants it.
    fence.permit.send_replace(Permit::Denied);
    eventually("VIP removed on Denied", ms(200), || async move {
        vip_lifetime(ns).await.is_none()
    })
    .await;
    eventually("status waits for the fence again", ms(200), || async move {
        let s = st();
        s.state == State::Master && s.waiting_for_fence && !s.holds_addresses
    })
    .await;
    assert!(wants());

    // (5) A lease until now + 1.5 s and no renewal: the speaker removes the VIP at the end
    // of the window (its status says so: the kernel's own expiry would not change it).
    let granted = Instant::now();
    fence.permit.send_replace(Permit::Until(granted + ms(1500)));
    eventually("VIP taken under the short lease", ms(300), || async move {
        vip_lifetime(ns).await.is_some()
    })
    .await;
    eventually(
        "VIP removed when the window ends",
        ms(2500),
        || async move { !st().holds_addresses && vip_lifetime(ns).await.is_none() },
    )
    .await;
    let after = granted.elapsed();
    assert!(
        after >= ms(1400) && after <= ms(1700),
        "removed {after:?} after the grant, expected about 1.5 s"
    );
    assert!(st().waiting_for_fence && wants());

    // (6) Plain permit again, then the operator moves the group away: the instance steps
    // down (priority-0 advert, VIP released, wants false) and, with no peer, comes back as
    // master after Master_Down_Interval at priority 1.
    fence.permit.send_replace(Permit::Always);
    eventually("VIP held under Always", ms(500), || async move {
        vip_lifetime(ns).await.is_some() && st().holds_addresses
    })
    .await;
    let (adverts0, wants0, states0) = (
        listener.seen().len(),
        h.wants.lock().unwrap().len(),
        h.states.lock().unwrap().len(),
    );
    fence.demoted.send_replace(true);
    eventually(
        "master again at priority 1",
        Duration::from_secs(3),
        || async move {
            let s = st();
            s.state == State::Master && s.effective_priority == 1 && s.demoted && s.holds_addresses
        },
    )
    .await;
    let adverts = listener.seen()[adverts0..].to_vec();
    let stepped = adverts.iter().position(|p| *p == 0);
    assert!(
        stepped.is_some_and(|i| adverts[i + 1..].contains(&1)),
        "a priority-0 advert, later ones at priority 1: {adverts:?}"
    );
    let wants_log = h.wants.lock().unwrap()[wants0..].to_vec();
    assert_eq!(wants_log, vec![false, true], "released, then wanted again");
    let states = h.states.lock().unwrap()[states0..].to_vec();
    assert!(
        states
            .iter()
            .any(|(state, _, reason)| *state == State::Backup
                && reason.as_deref() == Some("moved by the operator")),
        "stepped down as Backup: {states:?}"
    );
    assert!(vip_lifetime(ns).await.is_some());
    assert_eq!(st().base_priority, 100);

    // Demotion lifted: back to priority 100 (as master, advertised at once).
    fence.demoted.send_replace(false);
    eventually("priority 100 again", ms(500), || async move {
        let s = st();
        !s.demoted && s.effective_priority == 100 && s.state == State::Master
    })
    .await;

    // (7) No lease can be had (cut off from the majority): the master advertises priority 0,
    // releases the VIP and falls silent in Fault, so that any peer takes over, even one with
    // preempt off. Able again: Backup, then (alone) Master after Master_Down_Interval.
    let adverts0 = listener.seen().len();
    fence.able.send_replace(false);
    eventually("Fault without the VIP", ms(500), || async move {
        let s = st();
        s.state == State::Fault && s.fenced_out && !s.holds_addresses
    })
    .await;
    assert_eq!(vip_lifetime(ns).await, None, "VIP released in Fault");
    assert!(!wants(), "Fault does not want the VIP");
    let quiet_from = listener.seen().len();
    tokio::time::sleep(ms(600)).await;
    let adverts = listener.seen()[adverts0..].to_vec();
    assert!(
        adverts.contains(&0),
        "a priority-0 advert on leaving: {adverts:?}"
    );
    assert!(
        listener.seen().len() <= quiet_from + 1,
        "silent in Fault (an advert in flight at most): {:?}",
        &listener.seen()[quiet_from..]
    );
    fence.able.send_replace(true);
    eventually(
        "Master again once a lease can be had",
        Duration::from_secs(3),
        || async move {
            let s = st();
            s.state == State::Master && !s.fenced_out && s.holds_addresses
        },
    )
    .await;

    // Shutdown: the VIP goes and the speaker no longer wants it.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(3), handle.task)
        .await
        .expect("speaker stops within 3 s")
        .expect("speaker task");
    assert_eq!(vip_lifetime(ns).await, None);
    assert!(!wants());
}

/// Records every change of the speaker's wish and status (tasks end with the runtime).
fn record(fence: &TestFence, status: &watch::Receiver<InstanceStatus>, history: &Arc<History>) {
    let mut wants = fence.wants.subscribe();
    let h = history.clone();
    tokio::spawn(async move {
        while wants.changed().await.is_ok() {
            let now = *wants.borrow_and_update();
            h.wants.lock().unwrap().push(now);
        }
    });
    let mut status = status.clone();
    let h = history.clone();
    tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let s = status.borrow_and_update().clone();
            let reason = s.last_transition.map(|(_, _, reason, _)| reason);
            h.states
                .lock()
                .unwrap()
                .push((s.state, s.effective_priority, reason));
        }
    });
}

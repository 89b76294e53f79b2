//! What the drills watch: [`Observer`] samples every forwarding node's addresses and
//! kernel fence every 10 ms from one thread (setns into each namespace, read
//! /proc/thread-self/net and dump the fence's `held`/`held6` set over nfnetlink) and counts
//! every sample with two holders; [`Probe`] is the client-seen view.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ClusterLab, FORWARDERS};
use crate::netns::Lab;
use crate::vrrp_lab::PORT;

/// What the observer saw.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    pub samples: u64,
    /// Samples with two or more holders: must stay 0.
    pub overlaps: u64,
    /// (time since start, holders) at each change.
    pub changes: Vec<(Duration, Vec<usize>)>,
    pub longest_round: Duration,
}

/// Samples every 10 ms, from one thread, until stopped.
pub struct Observer {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Observation>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The VIP is held: the address is local (and usable) and the kernel fence (if any) lets
/// it through.
fn holds_vip(vip: IpAddr) -> bool {
    use tandem_vrrp::io::{fence_state, FenceState};
    let local = match vip {
        IpAddr::V4(v4) => has_address(v4),
        IpAddr::V6(v6) => has_address6(v6),
    };
    local
        && fence_state(vip).expect("reading the kernel fence over nfnetlink") != FenceState::Closed
}

fn has_address(vip: Ipv4Addr) -> bool {
    // Local addresses appear in the FIB trie as "|-- ADDR" followed by "/32 host LOCAL".
    let trie = std::fs::read_to_string("/proc/thread-self/net/fib_trie").unwrap_or_default();
    let needle = format!("-- {vip}");
    let mut lines = trie.lines();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with(&needle) {
            if let Some(next) = lines.next() {
                if next.contains("host LOCAL") {
                    return true;
                }
            }
        }
    }
    false
}

/// An IPv6 address is on an interface and usable: listed in if_inet6 ("ADDR-HEX ifindex
/// prefix scope flags name") without the tentative (0x40) or dadfailed (0x08) flag.
fn has_address6(vip: Ipv6Addr) -> bool {
    let table = std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap_or_default();
    let hex: String = vip.octets().iter().map(|b| format!("{b:02x}")).collect();
    table.lines().any(|line| {
        let mut words = line.split_whitespace();
        let flags = words
            .nth(4)
            .and_then(|f| u32::from_str_radix(f, 16).ok())
            .unwrap_or(0x40);
        line.starts_with(&hex) && flags & (0x40 | 0x08) == 0
    })
}

impl Observer {
    /// Watches the lab's "front" VIP.
    pub fn start(cl: &ClusterLab) -> Observer {
        Self::start_for(&cl.lab, cl.family.vip())
    }

    /// Watches `vip`.
    pub fn start_for(lab: &Lab, vip: IpAddr) -> Observer {
        let namespaces: Vec<File> = FORWARDERS
            .iter()
            .map(|i| File::open(format!("/var/run/netns/{}", lab.nodes[*i].ns)).unwrap())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Observation::default()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut last: Option<Vec<usize>> = None;
            while !stop2.load(Ordering::Relaxed) {
                let round = Instant::now();
                let mut holders = Vec::new();
                for (i, ns) in namespaces.iter().enumerate() {
                    if nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).is_ok()
                        && holds_vip(vip)
                    {
                        holders.push(FORWARDERS[i]);
                    }
                }
                let took = round.elapsed();
                let mut s = seen2.lock().unwrap();
                s.samples += 1;
                s.longest_round = s.longest_round.max(took);
                if holders.len() > 1 {
                    s.overlaps += 1;
                }
                if last.as_ref() != Some(&holders) {
                    s.changes.push((start.elapsed(), holders.clone()));
                    last = Some(holders);
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(10).saturating_sub(took));
            }
        });
        Observer {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn now(&self) -> Observation {
        self.seen.lock().unwrap().clone()
    }

    /// Until exactly `holders` hold the VIP (as last sampled); the time it took.
    pub async fn wait_for(&self, holders: &[usize], limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let s = self.now();
            if s.changes.last().map(|(_, h)| h.as_slice()) == Some(holders) {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    pub fn finish(mut self) -> Observation {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.now()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The client-seen view: probes the "who" listener through the lab's "front" VIP every
/// 10 ms with a 100 ms timeout and records the answers.
pub struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Duration, Option<String>)>>,
}

impl Probe {
    pub fn start(cl: &ClusterLab) -> Probe {
        let (lab, target) = (&cl.lab, SocketAddr::from((cl.family.vip(), PORT)));
        let domain = socket2::Domain::for_address(target);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let sockets_ns = lab.client.ns.clone();
        let make = move || {
            let path = format!("/var/run/netns/{sockets_ns}");
            File::open(path).unwrap()
        };
        let ns = make();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let start = Instant::now();
            // Bounded: at most 10 minutes of probing even if nobody stops it.
            while !stop2.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(600) {
                let socket = std::thread::scope(|s| {
                    s.spawn(|| {
                        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
                        socket2::Socket::new(domain, socket2::Type::STREAM, None).ok()
                    })
                    .join()
                    .ok()
                    .flatten()
                });
                let answer = match socket {
                    Some(s) => {
                        s.set_nonblocking(true).ok();
                        let socket = tokio::net::TcpSocket::from_std_stream(s.into());
                        let limit = Duration::from_millis(100);
                        tokio::time::timeout(limit, async {
                            let mut stream = socket.connect(target).await.ok()?;
                            crate::read_line(&mut stream, limit).await
                        })
                        .await
                        .ok()
                        .flatten()
                    }
                    None => None,
                };
                seen.push((start.elapsed(), answer));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        });
        Probe { stop, task }
    }

    /// Stops and returns the longest run without an answer (the client-seen outage).
    pub async fn finish(self) -> (Duration, Vec<(Duration, Option<String>)>) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.task.await.unwrap_or_default();
        let mut longest = Duration::ZERO;
        let mut gap_start = None;
        for (t, answer) in &seen {
            match (answer, gap_start) {
                (None, None) => gap_start = Some(*t),
                (Some(_), Some(s)) => {
                    longest = longest.max(*t - s);
                    gap_start = None;
                }
                _ => {}
            }
        }
        (longest, seen)
    }
}

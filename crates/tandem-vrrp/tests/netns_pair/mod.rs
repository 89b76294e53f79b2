//! Two network namespaces joined by a veth pair, for the tests that drive the VRRP speaker
//! and the kernel fence against a real kernel (root only: without it they fail, they never
//! skip).

use std::fs::File;
use std::future::Future;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 12);
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (install iproute2)"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair (`eth0` on both sides); deleted on drop, on
/// failure too.
pub struct Netns {
    pub node: String,
    pub peer: String,
}

impl Netns {
    pub fn new() -> Netns {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test builds network namespaces and opens raw sockets: it needs root \
             (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN); run scripts/test as root (CI does). \
             It does not skip."
        );
        // One pair per test: tests of this binary run in parallel.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let prefix = format!(
            "tvf{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns {
            node: format!("{prefix}-node"),
            peer: format!("{prefix}-peer"),
        };
        run("ip", &["netns", "add", &ns.node]);
        run("ip", &["netns", "add", &ns.peer]);
        run(
            "ip",
            &[
                "-n", &ns.node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                "netns", &ns.peer,
            ],
        );
        for (name, ip) in [(&ns.node, NODE_IP), (&ns.peer, PEER_IP)] {
            run("ip", &["-n", name, "link", "set", "lo", "up"]);
            run(
                "ip",
                &[
                    "-n",
                    name,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    "eth0",
                ],
            );
            run("ip", &["-n", name, "link", "set", "eth0", "up"]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in [&self.node, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Moves the calling thread into a namespace (threads it starts afterwards inherit it).
pub fn enter(ns: &str) {
    let path = format!("/var/run/netns/{ns}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("setns into the test namespace");
}

/// Polls `check` every 10 ms until it holds; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(ms(10)).await;
    }
}

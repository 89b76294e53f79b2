//! tandem-holders: which nodes hold a VIP, as their kernels see it, sampled every
//! `--interval` from one thread (setns into each node's network namespace, no fork per
//! sample). A node holds the VIP when the address is local (its FIB) and tandem's kernel
//! fence, if the node has one, lets the VIP through (an address that a dead holder left
//! behind but that its fence silences is not held). bench/cluster.sh reads its output:
//!
//!     tandem-holders 198.51.100.100 --netns /proc/123/ns/net --netns /proc/456/ns/net \
//!         --max 30s --stop /tmp/stop
//!
//! prints "T_US H1 H2 ..." (microseconds since the epoch, 1 or 0 per namespace) at the first
//! sample and at each change, then "end T_US SAMPLES DUAL_SAMPLES".

use clap::Parser;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tandem_vrrp::io::{fence_state, FenceState};

#[derive(Parser)]
#[command(name = "tandem-holders", version)]
struct Args {
    /// The VIP to watch.
    vip: Ipv4Addr,
    /// A node's network namespace (a file such as /proc/PID/ns/net or /run/netns/NAME),
    /// once per node, in output column order.
    #[arg(long = "netns", required = true)]
    namespaces: Vec<PathBuf>,
    /// Time between samples.
    #[arg(long, default_value = "10ms", value_parser = tandem_config::parse_duration)]
    interval: Duration,
    /// Stop after this long.
    #[arg(long, default_value = "30s", value_parser = tandem_config::parse_duration)]
    max: Duration,
    /// Stop as soon as this file exists.
    #[arg(long)]
    stop: Option<PathBuf>,
}

fn has_address(vip: Ipv4Addr) -> bool {
    // Local addresses appear in the FIB trie as "|-- ADDR" followed by "/32 host LOCAL".
    let trie = std::fs::read_to_string("/proc/thread-self/net/fib_trie").unwrap_or_default();
    let needle = format!("-- {vip}");
    let mut lines = trie.lines();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with(&needle)
            && lines.next().is_some_and(|next| next.contains("host LOCAL"))
        {
            return true;
        }
    }
    false
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

fn main() {
    let args = Args::parse();
    let namespaces: Vec<File> = args
        .namespaces
        .iter()
        .map(|p| {
            File::open(p).unwrap_or_else(|e| {
                eprintln!("tandem-holders: cannot open {}: {e}", p.display());
                std::process::exit(2)
            })
        })
        .collect();
    let start = Instant::now();
    let (mut samples, mut dual) = (0u64, 0u64);
    let mut last: Option<Vec<bool>> = None;
    while start.elapsed() < args.max && !args.stop.as_ref().is_some_and(|s| s.exists()) {
        let round = Instant::now();
        let holders: Vec<bool> = namespaces
            .iter()
            .map(|ns| {
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).is_ok()
                    && has_address(args.vip)
                    && fence_state(args.vip).is_ok_and(|f| f != FenceState::Closed)
            })
            .collect();
        samples += 1;
        if holders.iter().filter(|h| **h).count() > 1 {
            dual += 1;
        }
        if last.as_ref() != Some(&holders) {
            let cols: Vec<&str> = holders.iter().map(|h| if *h { "1" } else { "0" }).collect();
            println!("{} {}", now_us(), cols.join(" "));
            last = Some(holders);
        }
        std::thread::sleep(args.interval.saturating_sub(round.elapsed()));
    }
    println!("end {} {samples} {dual}", now_us());
}

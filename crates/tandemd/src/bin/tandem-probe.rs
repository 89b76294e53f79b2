//! tandem-probe: failover as a client sees it. Every `--interval` it opens a TCP connection
//! to the target, reads the first line (the answering node's name, e.g. from the lab's
//! who-am-I backends) and records it. It prints each change of answerer and, at the end,
//! the longest gap without an answer, as one JSON line for scripts.
//!
//!     tandem-probe 198.51.100.100:7000 --interval 10ms --duration 20s

use clap::Parser;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

#[derive(Parser)]
#[command(name = "tandem-probe", version)]
struct Args {
    /// Address to probe (a VIP and port whose backend answers with a name).
    target: SocketAddr,
    /// Time between probes.
    #[arg(long, default_value = "10ms", value_parser = tandem_config::parse_duration)]
    interval: Duration,
    /// Stop after this long.
    #[arg(long, default_value = "10s", value_parser = tandem_config::parse_duration)]
    duration: Duration,
    /// Timeout of one probe.
    #[arg(long, default_value = "100ms", value_parser = tandem_config::parse_duration)]
    timeout: Duration,
    /// Stop early once this many answerer changes were seen (0 = never).
    #[arg(long, default_value_t = 0)]
    stop_after_changes: usize,
}

async fn ask(target: SocketAddr, timeout: Duration) -> Option<String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(target).await.ok()?;
        let mut buf = [0u8; 128];
        let mut got = Vec::new();
        while !got.contains(&b'\n') && got.len() < 128 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&got)
            .lines()
            .next()?
            .trim()
            .to_string();
        (!line.is_empty()).then_some(line)
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let start = Instant::now();
    let mut last: Option<String> = None;
    let mut last_answer = start;
    let mut longest_gap = Duration::ZERO;
    let (mut probes, mut answered, mut changes) = (0u64, 0u64, 0usize);
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while start.elapsed() < args.duration {
        ticker.tick().await;
        probes += 1;
        let now = Instant::now();
        if let Some(name) = ask(args.target, args.timeout).await {
            answered += 1;
            let gap = now.duration_since(last_answer);
            if last.as_deref() != Some(name.as_str()) {
                println!(
                    "{:>9.3}s  {} -> {}  (gap {:.0} ms)",
                    start.elapsed().as_secs_f64(),
                    last.as_deref().unwrap_or("-"),
                    name,
                    gap.as_secs_f64() * 1000.0
                );
                if last.is_some() {
                    changes += 1;
                }
                last = Some(name);
            }
            if answered > 1 {
                longest_gap = longest_gap.max(gap);
            }
            last_answer = Instant::now();
            if args.stop_after_changes > 0 && changes >= args.stop_after_changes {
                break;
            }
        }
    }
    println!(
        "{{\"probes\":{probes},\"answered\":{answered},\"changes\":{changes},\"longest_gap_ms\":{:.1},\"last\":\"{}\"}}",
        longest_gap.as_secs_f64() * 1000.0,
        last.unwrap_or_default()
    );
}

//! The cluster transport through heavy loss: once a peer's datagram session works,
//! heartbeats, forwarded writes and their replication travel as sealed datagrams resent
//! every few milliseconds, so 30 % loss each way (nftables on loopback, on the three nodes'
//! ports only, TCP and UDP alike) still lets nearly every write commit within a lease
//! renewal's time.

use std::process::{Command as Process, Stdio};

use super::*;

/// Random loss on the given loopback ports, both ways, for as long as it is held.
struct Loss {
    table: String,
}

impl Loss {
    fn install(ports: &[u16], percent: u32) -> Loss {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            root,
            "this test drops packets with nftables and must run as root (CI does)"
        );
        let table = format!("tandem_test_loss_{}", std::process::id());
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let ports = ports.join(", ");
        let rules = format!(
            "table inet {table} {{\n chain input {{ type filter hook input priority -10;\n  \
             meta l4proto {{ tcp, udp }} th dport {{ {ports} }} numgen random mod 100 < {percent} drop\n  \
             meta l4proto {{ tcp, udp }} th sport {{ {ports} }} numgen random mod 100 < {percent} drop\n }}\n}}\n"
        );
        nft(&rules);
        Loss { table }
    }
}

impl Drop for Loss {
    fn drop(&mut self) {
        nft(&format!("delete table inet {}\n", self.table));
    }
}

fn nft(script: &str) {
    use std::io::Write;
    let mut child = Process::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft runs (apt-get install nftables; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "nft -f - refused:\n{script}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_commit_through_thirty_percent_loss_over_datagrams() {
    let cluster = Cluster::three("lossy").await;
    let leader = cluster.agreed(&[1, 2, 3]).await;
    // Sessions are proven by the first probes; heartbeats then go as datagrams.
    let deadline = Instant::now() + SETTLE;
    while cluster.node(leader).status().await.rpc_calls.datagram < 20 {
        tick(deadline, || {
            "the leader's heartbeats go as datagrams".into()
        })
        .await;
    }
    let follower = if leader == 1 { 2 } else { 1 };
    let ports: Vec<u16> = cluster.ports.values().copied().collect();
    let before = cluster.node(follower).status().await.rpc_calls;
    let loss = Loss::install(&ports, 30);
    const WRITES: u64 = 40;
    let mut committed = 0;
    for i in 0..WRITES {
        let started = Instant::now();
        let write = cluster.node(follower).write(config(100 + i));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(450), write).await {
            committed += 1;
        }
        tokio::time::sleep_until(started + Duration::from_millis(150)).await;
    }
    drop(loss);
    let after = cluster.node(follower).status().await.rpc_calls;
    eprintln!("30 % loss: {committed} of {WRITES} forwarded writes committed within 450 ms; follower's calls {before:?} -> {after:?}");
    assert!(
        after.datagram > before.datagram + WRITES / 2,
        "the forwarded writes went as datagrams: {before:?} -> {after:?}"
    );
    assert!(
        committed >= WRITES * 9 / 10,
        "only {committed} of {WRITES} writes committed within 450 ms at 30 % loss"
    );
    cluster.shutdown().await;
}

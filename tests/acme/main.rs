//! ACME certificates replicated through the cluster, against a real ACME server: Pebble
//! (Let's Encrypt's test server) in the lab's client namespace, resolving the domain to
//! the VIP through dnsmasq, so its HTTP-01 validation reaches whichever node holds the
//! VIP. The cluster is tests/support/cluster_lab.rs's (n1, n2 forward, n3 witness); the
//! ACME listener comes in a replicated config (`tandemctl config apply`). A single node
//! without a cluster, with its local store, is in `single.rs`. Needs root.

mod single;
mod status;

use status::{acme_entry, assert_valid_entry, unix_now, wait_acme_state};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tandem_tests::cluster_lab::{cluster_part, metric, ClusterLab, FORWARDERS, WEB_PORT};
use tandem_tests::dnsmasq::Dnsmasq;
use tandem_tests::netns::Lab;
use tandem_tests::pebble::Pebble;
use tandem_tests::tls_client;
use tandem_tests::vrrp_lab::{wait_holders, VIP};
use tandem_tests::{Config, Listener};

const DOMAIN: &str = "www.acme.test";
const HTTPS_PORT: u16 = 8443;

/// The lab's cluster plus Pebble and its DNS server in the client namespace.
struct AcmeLab {
    cl: ClusterLab,
    pebble: Pebble,
    _dns: Dnsmasq,
}

impl AcmeLab {
    async fn start() -> AcmeLab {
        let mut cl = ClusterLab::start().await;
        let ns = cl.lab.client.ns.clone();
        let client_ip = cl.lab.client.ip;
        let dns = Dnsmasq::start(
            &mut cl.lab,
            &ns,
            client_ip,
            &format!("{VIP} {DOMAIN}\n"),
            &[],
        )
        .await;
        let dir = cl.dir.clone();
        let pebble = Pebble::start(
            &mut cl.lab,
            &dir,
            &ns,
            client_ip,
            SocketAddr::from((client_ip, 53)),
            WEB_PORT,
        )
        .await;
        AcmeLab {
            cl,
            pebble,
            _dns: dns,
        }
    }

    /// Proposes config `version` with an HTTPS listener on :8443 whose certificate comes
    /// from Pebble (the plain "web" listener on :8080 answers the challenges).
    fn apply_acme_listener(&self, version: u64, extra: &str) {
        let tls = format!(
            "[listener.tls.acme]\ndomains = [\"{DOMAIN}\"]\ndirectory = \"{}\"\ncontact = [\"mailto:ops@acme.test\"]\nca = \"{}\"\n{extra}",
            self.pebble.directory(),
            self.pebble.https_ca.display(),
        );
        let secure = Listener::http("secure", format!("0.0.0.0:{HTTPS_PORT}"))
            .pool("web")
            .tables(&tls);
        let acme = Config::shared().listener(secure).to_toml();
        let file = self.cl.dir.join(format!("v{version}.toml"));
        std::fs::write(
            &file,
            cluster_part(&self.cl.lab, self.cl.family, version, &acme),
        )
        .unwrap();
        self.cl
            .ctl_ok(0, &["config", "apply", file.to_str().unwrap()]);
    }

    fn logs(&self) -> String {
        format!(
            "{}\n--- pebble ---\n{}",
            self.cl.logs(),
            tail(&self.pebble.log_text(), 40)
        )
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Until node `i` serves a certificate for DOMAIN that verifies against `root` (and the
/// request behind it reaches a backend): the time it took, or the last error.
async fn wait_served(
    al: &AcmeLab,
    i: usize,
    root: &str,
    limit: Duration,
) -> Result<Duration, String> {
    let addr = SocketAddr::from((al.cl.lab.nodes[i].ip, HTTPS_PORT));
    wait_served_at(&al.cl.lab, addr, root, limit).await
}

/// Until `addr` serves (to the lab's client) a certificate for DOMAIN that verifies
/// against `root` and the request behind it reaches a backend.
async fn wait_served_at(
    lab: &Lab,
    addr: SocketAddr,
    root: &str,
    limit: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let config = tls_client::config_trusting(root.as_bytes());
    let mut last = String::new();
    while started.elapsed() < limit {
        match tls_client::get(
            lab,
            &lab.client.ns,
            addr,
            DOMAIN,
            "/",
            config.clone(),
            Duration::from_secs(3),
        )
        .await
        {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") => return Ok(started.elapsed()),
            Ok(answer) => last = format!("answered: {}", tail(&answer, 5)),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(last)
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// The challenge path is hit on a node's plain listener (its access log).
const CHALLENGE_HIT: &str = "path=\"/.well-known/acme-challenge/";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_obtains_one_certificate_through_the_vip_and_every_node_serves_it() {
    let al = AcmeLab::start().await;
    // The hard case: the VIP (where Pebble's validation lands) on the forwarding node that
    // does not lead Raft (where the order runs), so the answer must come through the log.
    let leader = al
        .cl
        .status_json(0)
        .and_then(|s| s["raft"]["leader"].as_u64());
    let holder = match leader {
        Some(1) => 1,
        Some(2) => 0,
        other => panic!("no forwarding node leads Raft ({other:?})\n{}", al.logs()),
    };
    let leader = 1 - holder;
    al.cl
        .ctl_ok(0, &["vip", "move", "front", &format!("n{}", holder + 1)]);
    assert!(
        wait_holders(&al.cl.lab, &[holder], Duration::from_secs(10))
            .await
            .is_some(),
        "the VIP did not move to n{}\n{}",
        holder + 1,
        al.logs()
    );
    let started = Instant::now();
    al.apply_acme_listener(2, "");
    let root = al.pebble.issuing_root(&al.cl.lab).await;
    for i in FORWARDERS {
        let took = wait_served(&al, i, &root, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "n{} does not serve a certificate from Pebble for {DOMAIN}: {e}\n{}",
                    i + 1,
                    al.logs()
                )
            });
        println!(
            "n{} serves the ACME certificate {took:?} after polling began",
            i + 1
        );
    }
    println!(
        "certificate on every forwarding node {:?} after the config apply",
        started.elapsed()
    );
    // Obtained once: one order, one issued certificate in the whole cluster.
    let logs: String = (0..3).map(|i| al.cl.log(i)).collect();
    assert_eq!(
        count(&logs, "ACME certificate issued and replicated"),
        1,
        "{}",
        al.logs()
    );
    for i in FORWARDERS {
        assert!(
            al.cl
                .log(i)
                .contains("ACME certificate in force on this node"),
            "n{}: {}",
            i + 1,
            al.logs()
        );
    }
    // The leader ordered; the VIP holder answered Pebble's validation requests (it
    // resolves the domain to the VIP), from the replicated state.
    assert_eq!(
        count(&al.cl.log(leader), "ACME certificate issued and replicated"),
        1,
        "{}",
        al.logs()
    );
    let answered = count(&al.cl.log(holder), CHALLENGE_HIT);
    assert!(
        answered >= 1 && al.cl.log(holder).contains("status=200"),
        "n{} (the VIP holder) answered no challenge\n{}",
        holder + 1,
        al.logs()
    );
    assert_eq!(count(&al.cl.log(leader), CHALLENGE_HIT), 0, "{}", al.logs());
    println!(
        "n{} ordered, n{} (VIP) answered {answered} validation request(s)",
        leader + 1,
        holder + 1
    );
    // Every forwarding node shows the certificate's expiry.
    for i in FORWARDERS {
        let text = al.cl.metrics(i).await;
        let expiry = metric(
            &text,
            &format!("{EXPIRY}{{listener=\"secure\",cert=\"acme:{DOMAIN}\"}}"),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            expiry.is_some_and(|at| at > now),
            "n{}: no future expiry for the ACME certificate in /metrics:\n{text}",
            i + 1
        );
    }
    // The admin API and `tandemctl status` show it on both nodes; only the leader ordered.
    for i in FORWARDERS {
        let status = || {
            let (ok, json) = al.cl.ctl(i, &["--json", "status"]);
            ok.then(|| serde_json::from_str(&json).ok()).flatten()
        };
        let entry = wait_acme_state(status, "valid", Duration::from_secs(5)).await;
        assert_valid_entry(&entry, &format!("n{}", i + 1));
        assert_eq!(
            entry["last_order"].is_u64(),
            i == leader,
            "n{}: last_order is set only where the order ran: {entry:#}",
            i + 1
        );
        let text = al.cl.ctl_ok(i, &["status"]);
        let row = text
            .lines()
            .find(|l| l.starts_with(DOMAIN))
            .unwrap_or_else(|| panic!("n{}: no {DOMAIN} row in tandemctl status:\n{text}", i + 1));
        assert!(
            row.contains("valid") && row.contains(" in "),
            "n{}: {row}\n{text}",
            i + 1
        );
        assert!(text.contains("ACME CERTIFICATE"), "{text}");
    }
}

const EXPIRY: &str = "tandem_tls_certificate_expiry_timestamp_seconds";

/// The leaf node `i` serves now (verified against `root`).
async fn served_leaf(al: &AcmeLab, i: usize, root: &str) -> Result<Vec<u8>, String> {
    let addr = SocketAddr::from((al.cl.lab.nodes[i].ip, HTTPS_PORT));
    served_leaf_at(&al.cl.lab, addr, root).await
}

async fn served_leaf_at(lab: &Lab, addr: SocketAddr, root: &str) -> Result<Vec<u8>, String> {
    let config = tls_client::config_trusting(root.as_bytes());
    let tls = tls_client::connect(lab, &lab.client.ns, addr, DOMAIN, config).await?;
    Ok(tls_client::peer_leaf(&tls))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renewal_swaps_without_dropping_and_an_unreachable_server_leaves_it_serving() {
    let mut al = AcmeLab::start().await;
    al.apply_acme_listener(2, "");
    let root = al.pebble.issuing_root(&al.cl.lab).await;
    for i in FORWARDERS {
        wait_served(&al, i, &root, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("n{}: {e}\n{}", i + 1, al.logs()));
    }
    let first: Vec<Vec<u8>> = {
        let mut v = Vec::new();
        for i in FORWARDERS {
            v.push(served_leaf(&al, i, &root).await.unwrap());
        }
        v
    };
    assert_eq!(
        first[0], first[1],
        "the two nodes serve different certificates"
    );
    // A keep-alive connection opened before the renewal.
    let config = tls_client::config_trusting(root.as_bytes());
    let n1 = SocketAddr::from((al.cl.lab.nodes[0].ip, HTTPS_PORT));
    let mut kept =
        tls_client::connect(&al.cl.lab, &al.cl.lab.client.ns, n1, DOMAIN, config.clone())
            .await
            .unwrap();
    let before = tls_client::get_on(&mut kept, DOMAIN, "/", Duration::from_secs(3)).await;
    assert!(
        before.as_ref().is_ok_and(|a| a.starts_with("HTTP/1.1 200")),
        "{before:?}"
    );

    // Renewal: a renew_before longer than Pebble's 5-year certificates makes it due now.
    al.apply_acme_listener(3, "renew_before = \"2000d\"");
    let renewed = Instant::now();
    let (mut ok, mut failed) = (0u32, 0u32);
    let mut swapped = false;
    while renewed.elapsed() < Duration::from_secs(30) && ok + failed < 3000 {
        let node = (ok + failed) as usize % 2;
        let addr = SocketAddr::from((al.cl.lab.nodes[node].ip, HTTPS_PORT));
        match tls_client::connect(
            &al.cl.lab,
            &al.cl.lab.client.ns,
            addr,
            DOMAIN,
            config.clone(),
        )
        .await
        {
            Ok(mut tls) => {
                let leaf = tls_client::peer_leaf(&tls);
                match tls_client::get_on(&mut tls, DOMAIN, "/", Duration::from_secs(3)).await {
                    Ok(a) if a.starts_with("HTTP/1.1 200") => ok += 1,
                    _ => failed += 1,
                }
                if leaf != first[0] && node == 1 {
                    swapped = true;
                }
            }
            Err(_) => failed += 1,
        }
        if swapped && ok + failed >= 40 {
            break;
        }
    }
    println!(
        "renewal: {ok} HTTPS requests ok, {failed} failed, swapped after {:?}",
        renewed.elapsed()
    );
    assert!(
        swapped,
        "no node serves a renewed certificate\n{}",
        al.logs()
    );
    assert_eq!(
        failed,
        0,
        "requests failed during the renewal\n{}",
        al.logs()
    );
    let after = tls_client::get_on(&mut kept, DOMAIN, "/", Duration::from_secs(3)).await;
    assert!(
        after.as_ref().is_ok_and(|a| a.starts_with("HTTP/1.1 200")),
        "the connection opened before the renewal was dropped: {after:?}\n{}",
        al.logs()
    );
    assert_eq!(
        tls_client::peer_leaf(&kept),
        first[0],
        "a connection keeps its certificate"
    );

    // The ACME server goes away: orders fail, the certificate in force keeps serving, the
    // failure is logged once and counted.
    al.pebble.stop(&mut al.cl.lab).await;
    let leader = al
        .cl
        .status_json(0)
        .and_then(|s| s["raft"]["leader"].as_u64())
        .expect("a leader") as usize
        - 1;
    let series = format!("tandem_acme_orders_failed_total{{certificate=\"{DOMAIN}\"}}");
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut failures = 0.0;
    while Instant::now() < deadline {
        failures = metric(&al.cl.metrics(leader).await, &series).unwrap_or(0.0);
        if failures >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        failures >= 2.0,
        "fewer than 2 failed orders counted ({failures})\n{}",
        al.logs()
    );
    assert_eq!(
        count(&al.cl.log(leader), "ACME order failed;"),
        1,
        "a failure streak is logged once\n{}",
        al.logs()
    );
    for i in FORWARDERS {
        let leaf = served_leaf(&al, i, &root).await;
        assert!(
            leaf.is_ok(),
            "n{} stopped serving a valid certificate: {leaf:?}",
            i + 1
        );
    }
    // The leader's status says the order failed, why, and when it tries again.
    let status: serde_json::Value =
        serde_json::from_str(&al.cl.ctl_ok(leader, &["--json", "status"])).unwrap();
    let entry = acme_entry(&status);
    assert_eq!(entry["state"], "failed", "{entry:#}");
    assert!(
        entry["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&al.pebble.directory())),
        "the error names the directory: {entry:#}"
    );
    assert!(
        entry["retry_at"]
            .as_u64()
            .is_some_and(|at| at + 5 >= unix_now()),
        "{entry:#}"
    );
    assert!(
        entry["not_after"]
            .as_u64()
            .is_some_and(|at| at > unix_now()),
        "{entry:#}"
    );
    let text = al.cl.ctl_ok(leader, &["status"]);
    assert!(text.contains("last order failed"), "{text}");
    println!(
        "ACME server down: {failures} failed orders counted, one log line, both nodes still serve"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_lost_during_an_order_is_replaced_and_the_order_completes() {
    let mut al = AcmeLab::start().await;
    // Pebble waits 0 to 15 s before validating: time to kill the ordering leader.
    al.pebble.restart_with_va_sleeps(&mut al.cl.lab).await;
    let leader = al
        .cl
        .status_json(0)
        .and_then(|s| s["raft"]["leader"].as_u64())
        .expect("a leader") as usize
        - 1;
    assert!(
        FORWARDERS.contains(&leader),
        "the witness leads: {}",
        al.logs()
    );
    let survivor = 1 - leader;
    al.apply_acme_listener(2, "");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !al
        .cl
        .log(leader)
        .contains("challenges answered, waiting for validation")
    {
        assert!(
            Instant::now() < deadline,
            "the order did not start\n{}",
            al.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    al.cl.kill(leader).await;
    let killed = Instant::now();
    let root = al.pebble.issuing_root(&al.cl.lab).await;
    wait_served(&al, survivor, &root, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("n{}: {e}\n{}", survivor + 1, al.logs()));
    println!(
        "leader n{} killed mid-order; n{} serves the certificate {:?} later",
        leader + 1,
        survivor + 1,
        killed.elapsed()
    );
    assert!(
        al.cl
            .log(survivor)
            .contains("ACME certificate issued and replicated"),
        "the new leader did not order\n{}",
        al.logs()
    );
    // The dead leader's challenge answers are withdrawn by the new leader: the plain
    // listener no longer answers the first token Pebble validated.
    let pebble_log = al.pebble.log_text();
    let token = pebble_log
        .lines()
        .find_map(|l| l.split("/.well-known/acme-challenge/").nth(1))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| panic!("no validation in Pebble's log: {pebble_log}"));
    let addr = SocketAddr::from((al.cl.lab.nodes[survivor].ip, WEB_PORT));
    let path = format!("/.well-known/acme-challenge/{token}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = plain_get(&al, addr, &path).await;
        if !answer.contains(&format!("{token}.")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n{} still answers the old challenge {token}\n{}",
            survivor + 1,
            al.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The killed node comes back and serves the replicated certificate.
    al.cl.start_node(leader);
    wait_served(&al, leader, &root, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("restarted n{}: {e}\n{}", leader + 1, al.logs()));
}

/// One plain HTTP/1.1 GET from the client namespace; the whole answer as text.
async fn plain_get(al: &AcmeLab, addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = al
        .cl
        .lab
        .socket_in(&al.cl.lab.client.ns, socket2::Type::STREAM);
    s.set_nonblocking(true).unwrap();
    let socket = tokio::net::TcpSocket::from_std_stream(s.into());
    let exchange = async {
        let mut stream = socket.connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nhost: {DOMAIN}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

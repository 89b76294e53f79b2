//! Backends written as DNS names, against a real DNS server (dnsmasq) in a lab namespace.
//!
//! The lab: dnsmasq in n1 (198.51.100.11), backends in n2 (198.51.100.12 and .22) and n3
//! (.13), `tandemd run` in the client namespace (198.51.100.50) with a TCP and an HTTP
//! listener in front of pools whose one backend is `app.test:PORT`, and an HTTP listener
//! in front of an SRV name. The load runs from the client namespace too. Needs root.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_tests::admin::Daemon;
use tandem_tests::dnsmasq::Dnsmasq;
use tandem_tests::http_kit::{Answer, HttpBackend};
use tandem_tests::netns::{run, Lab};
use tandem_tests::{Config, Listener, NameBackend, Pool, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TCP_PORT: u16 = 7000;
const HTTP_PORT: u16 = 8080;
const SRV_PORT: u16 = 8081;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, last)
}

fn hosts(lasts: &[u8]) -> String {
    lasts
        .iter()
        .map(|l| format!("{} app.test\n", ip(*l)))
        .collect()
}

/// An HTTP/1.1 server that answers every request with its own address (one request per
/// connection), on a listener made inside a lab namespace.
fn http_backend(listener: tokio::net::TcpListener) -> HttpBackend {
    let me = listener.local_addr().unwrap().to_string();
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{me}",
        me.len()
    );
    let answer = Answer::Script {
        replies: vec![reply.into_bytes()],
        close: true,
    };
    HttpBackend::builder(&me).answer(answer).serve_on(listener)
}

/// What the load saw: successes per backend address, and failures with their reason.
#[derive(Default)]
struct Seen {
    ok: Mutex<std::collections::BTreeMap<String, u64>>,
    failed: Mutex<Vec<String>>,
    total: AtomicU64,
}

async fn one_tcp(proxy: SocketAddr) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("tcp connect: {e}"))?;
    let line = tandem_tests::read_line(&mut s, Duration::from_secs(5))
        .await
        .ok_or("tcp: no greeting")?;
    Ok(format!("tcp {line}"))
}

async fn one_http(proxy: SocketAddr) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("http connect: {e}"))?;
    s.write_all(b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("http write: {e}"))?;
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut reply))
        .await
        .map_err(|_| "http: no answer in 5s".to_string())?
        .map_err(|e| format!("http read: {e}"))?;
    if !reply.starts_with("HTTP/1.1 200") {
        return Err(format!("http: {}", reply.lines().next().unwrap_or("")));
    }
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    Ok(format!("http {body}"))
}

/// Runs `workers` TCP and `workers` HTTP clients from inside `ns` (a thread that entered
/// it, with its own runtime) until `stop`, at most 20 000 exchanges or 120 s.
fn start_load(
    ns: &str,
    tcp: SocketAddr,
    http: SocketAddr,
    stop: Arc<AtomicBool>,
) -> (Arc<Seen>, std::thread::JoinHandle<()>) {
    let seen = Arc::new(Seen::default());
    let path = format!("/var/run/netns/{ns}");
    let s = seen.clone();
    let thread = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            let mut tasks = Vec::new();
            for worker in 0..4 {
                let (s, stop) = (s.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst)
                        && tokio::time::Instant::now() < deadline
                        && s.total.fetch_add(1, Ordering::SeqCst) < 20_000
                    {
                        let outcome = if worker % 2 == 0 {
                            one_tcp(tcp).await
                        } else {
                            one_http(http).await
                        };
                        match outcome {
                            Ok(who) => *s.ok.lock().unwrap().entry(who).or_default() += 1,
                            Err(why) => s.failed.lock().unwrap().push(why),
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    });
    (seen, thread)
}

/// The resolved addresses of a pool's backends, and the DNS name each shows.
async fn pool_backends(daemon: &Daemon, pool: &str) -> Vec<(String, String, String, u64)> {
    let v = daemon.get(&format!("/v1/pools/{pool}")).await;
    v["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["id"].as_str().unwrap_or("").to_string(),
                b["address"].as_str().unwrap_or("").to_string(),
                b["dns_name"].as_str().unwrap_or("").to_string(),
                b["weight"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

async fn addresses_of(daemon: &Daemon, pool: &str) -> BTreeSet<String> {
    pool_backends(daemon, pool)
        .await
        .into_iter()
        .map(|b| b.1)
        .collect()
}

fn expect(lasts: &[u8], port: u16) -> BTreeSet<String> {
    lasts.iter().map(|l| format!("{}:{port}", ip(*l))).collect()
}

/// Waits (up to 10 s) until both name pools hold exactly `lasts`.
async fn wait_for(daemon: &Daemon, lasts: &[u8]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tcp = addresses_of(daemon, "tcp").await;
        let web = addresses_of(daemon, "web").await;
        if tcp == expect(lasts, TCP_PORT) && web == expect(lasts, HTTP_PORT) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pools did not follow DNS to {lasts:?}: tcp {tcp:?}, web {web:?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(dns: Ipv4Addr, extra_dns: &str) -> String {
    let client = |port: u16| SocketAddr::from((ip(50), port));
    let dns = format!(
        "[node.dns]\nresolvers = [\"{dns}:53\"]\nmin_ttl = \"1s\"\nretry = \"200ms\"\nkeep_stale = \"30s\"\n{extra_dns}"
    );
    let checks = "interval = \"200ms\"\ntimeout = \"150ms\"";
    Config::shared()
        .admin_socket("")
        .node_tables(&dns)
        .listener(Listener::tcp("tcp-front", client(TCP_PORT)).pool("tcp"))
        .listener(Listener::http("web-front", client(HTTP_PORT)).pool("web"))
        .listener(Listener::http("srv-front", client(SRV_PORT)).pool("srv"))
        .pool(
            Pool::new("tcp")
                .raw(&format!("[pool.health_check]\n{checks}"))
                .backend("app", format!("app.test:{TCP_PORT}")),
        )
        .pool(
            Pool::new("web")
                .raw(&format!(
                    "[pool.http]\n[pool.health_check]\nkind = \"http\"\n{checks}"
                ))
                .backend("app", format!("app.test:{HTTP_PORT}")),
        )
        .pool(
            Pool::new("srv")
                .algorithm("weighted_round_robin")
                .raw("[pool.http]")
                .backend("svc", "_http._tcp.svc.test"),
        )
        .to_toml()
}

/// The lab with backends on .12, .22 (n2) and .13 (n3), TCP and HTTP on each.
async fn lab_with_backends() -> (Lab, (Vec<NameBackend>, Vec<HttpBackend>)) {
    let lab = Lab::new(3);
    run(
        "ip",
        &[
            "-n",
            &lab.nodes[1].ns,
            "addr",
            "add",
            "198.51.100.22/24",
            "dev",
            "eth0",
        ],
    );
    let (mut tcp, mut http) = (Vec::new(), Vec::new());
    for (node, last) in [(1, 12), (1, 22), (2, 13)] {
        let ns = lab.nodes[node].ns.clone();
        let tcp_listener = lab.listen_in(&ns, SocketAddr::from((ip(last), TCP_PORT)));
        tcp.push(NameBackend::from_listener(
            &ip(last).to_string(),
            tcp_listener,
        ));
        http.push(http_backend(
            lab.listen_in(&ns, SocketAddr::from((ip(last), HTTP_PORT))),
        ));
        http.push(http_backend(lab.listen_in(
            &ns,
            SocketAddr::from((ip(last), 9000 + u16::from(last))),
        )));
    }
    (lab, (tcp, http))
}

fn start_daemon(lab: &Lab, config: &str) -> Daemon {
    let dir = TempDir::new();
    let socket = dir.path("admin.sock");
    let path = dir.write("tandem.toml", Daemon::with_socket(config, &socket));
    Daemon::spawn_in(&lab.client.ns, dir, path, socket)
}

const SRV: [&str; 2] = [
    "_http._tcp.svc.test,s1.test,9012,0,3",
    "_http._tcp.svc.test,s2.test,9013,0,1",
];
const SRV_HOSTS: &str = "198.51.100.12 s1.test\n198.51.100.13 s2.test\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_backends_follow_dns_changes_under_load_with_no_failed_request() {
    let (mut lab, _tcp_backends) = lab_with_backends().await;
    let dns_ns = lab.nodes[0].ns.clone();
    let mut dns = Dnsmasq::start(
        &mut lab,
        &dns_ns,
        ip(11),
        &(hosts(&[12, 13]) + SRV_HOSTS),
        &SRV,
    )
    .await;
    let daemon = start_daemon(&lab, &config(ip(11), ""));
    daemon.wait_ready().await;

    // Resolved at start: one backend per address, ids from the name, the name shown.
    wait_for(&daemon, &[12, 13]).await;
    // Metrics: a series per resolved address, the name in the backend id.
    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let (status, _, metrics) =
        tandem_tests::admin::exchange(stream, http::Method::GET, "/metrics", &[], None)
            .await
            .unwrap();
    assert_eq!(status, http::StatusCode::OK);
    let metrics = String::from_utf8_lossy(&metrics);
    for id in [
        "app@198.51.100.12:8080",
        "app@198.51.100.13:7000",
        "svc@198.51.100.13:9013",
    ] {
        assert!(
            metrics.contains(&format!("backend=\"{id}\"")),
            "{id} missing:\n{metrics}"
        );
    }
    let web = pool_backends(&daemon, "web").await;
    assert!(
        web.contains(&(
            "app@198.51.100.12:8080".into(),
            "198.51.100.12:8080".into(),
            "app.test:8080".into(),
            1
        )),
        "{web:?}"
    );
    // SRV: port and weight from the records.
    let srv = pool_backends(&daemon, "srv").await;
    let srv: BTreeSet<(String, u64)> = srv.into_iter().map(|b| (b.1, b.3)).collect();
    assert_eq!(
        srv,
        BTreeSet::from([
            ("198.51.100.12:9012".into(), 3),
            ("198.51.100.13:9013".into(), 1)
        ])
    );
    let (code, table, _) = daemon.ctl(&["backends", "web"]).await;
    assert_eq!(code, 0);
    assert!(
        table.contains("198.51.100.13:8080 (app.test:8080)"),
        "{table}"
    );
    // At run time too: a name is accepted, a name that does not resolve is refused.
    let (code, out, err) = daemon
        .ctl(&["backend", "add", "srv", "more", "app.test:9013"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("more@198.51.100.12:9013") && out.contains("(app.test:9013)"),
        "{out}"
    );
    let (code, out, err) = daemon
        .ctl(&["backend", "add", "srv", "bad", "nothere.test:80"])
        .await;
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("nothere.test:80 does not resolve") && err.contains("NXDOMAIN"),
        "{err}"
    );
    let (code, out, err) = daemon.ctl(&["backend", "remove", "srv", "more"]).await;
    assert_eq!(code, 0, "{out}{err}");

    let stop = Arc::new(AtomicBool::new(false));
    let tcp_front = SocketAddr::from((ip(50), TCP_PORT));
    let http_front = SocketAddr::from((ip(50), HTTP_PORT));
    let (seen, load) = start_load(&lab.client.ns, tcp_front, http_front, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // An address appears and one disappears (SIGHUP: dnsmasq re-reads its hosts file).
    dns.set_hosts(&mut lab, &(hosts(&[13, 22]) + SRV_HOSTS));
    wait_for(&daemon, &[13, 22]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    dns.set_hosts(&mut lab, &(hosts(&[22]) + SRV_HOSTS));
    wait_for(&daemon, &[22]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The DNS server goes away: the last good addresses stay (keep_stale 30s), said once.
    dns.stop(&mut lab).await;
    // (Up to 20 s: a lookup to a server that is gone ends in a timeout.)
    let said = tandem_tests::eventually(Duration::from_secs(20), || {
        daemon.log().matches("no longer resolves").count() >= 3
    });
    assert!(said.await, "{}", daemon.log());
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for(&daemon, &[22]).await;
    assert_eq!(
        daemon.log().matches("no longer resolves").count(),
        3,
        "once per name:\n{}",
        daemon.log()
    );
    // Back, with other records: followed again.
    dns.restart(&mut lab, &(hosts(&[12, 22]) + SRV_HOSTS), &SRV)
        .await;
    wait_for(&daemon, &[12, 22]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    stop.store(true, Ordering::SeqCst);
    load.join().expect("load thread");
    let ok = seen.ok.lock().unwrap().clone();
    let failed = seen.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} failed exchanges: {:?}\nsucceeded: {ok:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    let total: u64 = ok.values().sum();
    assert!(total >= 200, "too little load to show anything: {ok:?}");
    // Every address served while it was in DNS, on both planes.
    for who in [
        "tcp 198.51.100.12",
        "tcp 198.51.100.13",
        "tcp 198.51.100.22",
        "http 198.51.100.12:8080",
        "http 198.51.100.13:8080",
        "http 198.51.100.22:8080",
    ] {
        assert!(
            ok.get(who).copied().unwrap_or(0) > 0,
            "{who} never answered: {ok:?}"
        );
    }
    eprintln!("DNS changes under load: {total} exchanges, 0 failed: {ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_refuses_the_start_or_waits_when_allowed() {
    let (mut lab, _tcp_backends) = lab_with_backends().await;
    let dns_ns = lab.nodes[0].ns.clone();
    let mut dns = Dnsmasq::start(&mut lab, &dns_ns, ip(11), SRV_HOSTS, &SRV).await;

    // Refused: the error names the backend, the name and the server's answer.
    let mut daemon = start_daemon(&lab, &config(ip(11), ""));
    let status = daemon.child.wait_for_exit(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "tandemd must refuse to start"
    );
    let log = daemon.log();
    assert!(
        log.contains("pool[0].backend[0] (pool \"tcp\", backend \"app\")"),
        "{log}"
    );
    assert!(log.contains("app.test:7000 does not resolve"), "{log}");
    assert!(log.contains("NXDOMAIN"), "{log}");
    assert!(log.contains("node.dns.start_unresolved"), "{log}");

    // Allowed: starts with the pools empty, and fills them once the name resolves.
    daemon = start_daemon(&lab, &config(ip(11), "start_unresolved = true"));
    daemon.wait_ready().await;
    assert!(addresses_of(&daemon, "web").await.is_empty());
    assert!(
        daemon.log_contains("does not resolve").await,
        "{}",
        daemon.log()
    );
    dns.set_hosts(&mut lab, &(hosts(&[13]) + SRV_HOSTS));
    wait_for(&daemon, &[13]).await;
    let reply = tandem_tests::netns::run(
        "ip",
        &[
            "netns",
            "exec",
            &lab.client.ns,
            "curl",
            "-s",
            "--max-time",
            "5",
            &format!("http://{}:{HTTP_PORT}/", ip(50)),
        ],
    );
    assert_eq!(reply, "198.51.100.13:8080");
    drop(daemon);
    dns.stop(&mut lab).await;
}

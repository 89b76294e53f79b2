//! ACME on a single node without `[node.cluster]`: the same order and renewal code with a
//! local store under `data_dir/acme/`. One tandemd in the lab's n1 namespace (a plain
//! listener on :8080 answering the HTTP-01 challenges, an HTTPS listener on :8443 with
//! `[listener.tls.acme]`, a backend on its loopback), Pebble and dnsmasq (the domain
//! resolving to n1) in the client namespace.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tandem_tests::cluster_lab::{http_name_server, run_quiet, tandemctl_bin, WEB_PORT};
use tandem_tests::dnsmasq::Dnsmasq;
use tandem_tests::netns::Lab;
use tandem_tests::pebble::Pebble;
use tandem_tests::vrrp_lab::scratch;

use super::status::{acme_entry, assert_valid_entry, unix_now, wait_acme_state};
use super::{count, served_leaf_at, tail, wait_served_at, DOMAIN, HTTPS_PORT};

const BACKEND: &str = "127.0.0.1:8000";

/// One tandemd without a cluster in n1, and where its files go.
struct Solo {
    lab: Lab,
    dir: PathBuf,
    /// The lab's index of the running tandemd.
    daemon: Option<usize>,
    /// How many times it was started (each run logs to its own file).
    runs: u32,
    _web: tokio::task::JoinHandle<()>,
}

impl Solo {
    fn new() -> Solo {
        let lab = Lab::new(1);
        let dir = scratch(&lab);
        let listener = lab.listen_in(&lab.nodes[0].ns, BACKEND.parse().unwrap());
        let web = tokio::spawn(http_name_server("web1".into(), listener));
        Solo {
            lab,
            dir,
            daemon: None,
            runs: 0,
            _web: web,
        }
    }

    fn ip(&self) -> Ipv4Addr {
        self.lab.nodes[0].ip
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("solo-data")
    }

    /// Writes the config (the ACME section: `directory`, `ca`) and starts tandemd.
    async fn start(&mut self, directory: &str, ca: Option<&std::path::Path>) {
        let ca = ca.map_or(String::new(), |p| format!("ca = \"{}\"", p.display()));
        let config = format!(
            r#"version = 1

[node]
id = "solo"
drain_timeout = "1s"
admin_socket = "{dir}/solo.sock"
data_dir = "{data}"

[[listener]]
name = "web"
protocol = "http"
bind = "0.0.0.0:{WEB_PORT}"
pool = "web"

[[listener]]
name = "secure"
protocol = "http"
bind = "0.0.0.0:{HTTPS_PORT}"
pool = "web"
[listener.tls.acme]
domains = ["{DOMAIN}"]
directory = "{directory}"
contact = ["mailto:ops@acme.test"]
{ca}

[[pool]]
name = "web"
[[pool.backend]]
id = "web1"
address = "{BACKEND}"
"#,
            dir = self.dir.display(),
            data = self.data_dir().display(),
        );
        let path = self.dir.join("solo.toml");
        std::fs::write(&path, config).unwrap();
        self.runs += 1;
        std::env::set_var("RUST_LOG", "info");
        let ns = self.lab.nodes[0].ns.clone();
        let log = self.log_path(self.runs);
        let child = self.lab.spawn(
            &ns,
            tandem_tests::tandemd_bin().to_str().unwrap(),
            &["run", "--config", path.to_str().unwrap()],
            Some(&log),
        );
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status().is_none() {
            assert!(
                Instant::now() < deadline,
                "tandemd never answered on its admin socket:\n{}",
                self.log(self.runs)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM and wait for the exit.
    async fn stop(&mut self) {
        let child = self.daemon.take().expect("tandemd running");
        let c = self.lab.child(child);
        c.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(
            c.wait_for_exit(Duration::from_secs(10)).await.is_some(),
            "tandemd did not stop on SIGTERM"
        );
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.join(format!("solo-{run}.log"))
    }

    fn log(&self, run: u32) -> String {
        std::fs::read_to_string(self.log_path(run)).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> String {
        let socket = self.dir.join("solo.sock");
        let mut all = vec!["--socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        let (ok, out) = run_quiet(&tandemctl_bin(), &all);
        assert!(ok, "tandemctl {args:?}: {out}\n{}", self.log(self.runs));
        out
    }

    fn status(&self) -> Option<serde_json::Value> {
        let socket = self.dir.join("solo.sock");
        let (ok, out) = run_quiet(
            &tandemctl_bin(),
            &["--socket", socket.to_str().unwrap(), "--json", "status"],
        );
        ok.then(|| serde_json::from_str(&out).ok()).flatten()
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// New orders Pebble took (its log has one request line per new-order call).
fn pebble_orders(pebble: &Pebble) -> usize {
    count(&pebble.log_text(), "/order-plz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_node_obtains_stores_and_after_a_restart_serves_the_stored_certificate() {
    let mut solo = Solo::new();
    let ns = solo.lab.client.ns.clone();
    let client_ip = solo.lab.client.ip;
    let hosts = format!("{} {DOMAIN}\n", solo.ip());
    let _dns = Dnsmasq::start(&mut solo.lab, &ns, client_ip, &hosts, &[]).await;
    let dir = solo.dir.clone();
    let pebble = Pebble::start(
        &mut solo.lab,
        &dir,
        &ns,
        client_ip,
        SocketAddr::from((client_ip, 53)),
        WEB_PORT,
    )
    .await;
    let started = Instant::now();
    solo.start(&pebble.directory(), Some(&pebble.https_ca))
        .await;
    let root = pebble.issuing_root(&solo.lab).await;
    let addr = SocketAddr::from((solo.ip(), HTTPS_PORT));
    let took = wait_served_at(&solo.lab, addr, &root, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the single node does not serve a certificate from Pebble: {e}\n{}\n--- pebble ---\n{}",
                solo.log(1),
                tail(&pebble.log_text(), 40)
            )
        });
    println!(
        "single node serves its ACME certificate {:?} after start ({took:?} of polling)",
        started.elapsed()
    );
    let first_leaf = served_leaf_at(&solo.lab, addr, &root).await.unwrap();
    let orders = pebble_orders(&pebble);
    assert!(
        orders >= 1,
        "no new-order request in Pebble's log:\n{}",
        pebble.log_text()
    );
    assert_eq!(count(&solo.log(1), "ACME certificate issued and stored"), 1);

    // The store: a private directory, private files.
    let store = solo.data_dir().join("acme");
    assert_eq!(mode(&store), 0o700, "{}", store.display());
    for file in [
        format!("{DOMAIN}.crt"),
        format!("{DOMAIN}.key"),
        "accounts.json".into(),
    ] {
        assert_eq!(mode(&store.join(&file)), 0o600, "{file}");
    }
    let stored = std::fs::read(store.join(format!("{DOMAIN}.crt"))).unwrap();

    // Status: valid, with its expiry, renewal and the order that got it.
    let entry = wait_acme_state(|| solo.status(), "valid", Duration::from_secs(5)).await;
    assert_valid_entry(&entry, "single node");
    assert!(
        entry["last_order"]
            .as_u64()
            .is_some_and(|t| t <= unix_now()),
        "{entry:#}"
    );
    let text = solo.ctl(&["status"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with(DOMAIN) && l.contains("valid")),
        "{text}"
    );

    // Restart: the stored certificate serves, Pebble is not asked again.
    solo.stop().await;
    solo.start(&pebble.directory(), Some(&pebble.https_ca))
        .await;
    wait_served_at(&solo.lab, addr, &root, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("after the restart: {e}\n{}", solo.log(2)));
    let leaf = served_leaf_at(&solo.lab, addr, &root).await.unwrap();
    assert_eq!(
        leaf, first_leaf,
        "the restarted node serves another certificate"
    );
    // Still nothing ordered a few ticks of the ACME loop later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pebble_orders(&pebble), orders, "Pebble was asked again");
    let log = solo.log(2);
    assert!(
        log.contains("certificates loaded from the local store"),
        "{log}"
    );
    assert_eq!(count(&log, "ACME: ordering a certificate"), 0, "{log}");
    assert_eq!(
        std::fs::read(store.join(format!("{DOMAIN}.crt"))).unwrap(),
        stored
    );
    let entry = acme_entry(&solo.status().unwrap());
    assert_valid_entry(&entry, "single node after a restart");
    assert!(entry["last_order"].is_null(), "{entry:#}");
    println!("restarted: the same certificate serves, Pebble took {orders} order(s) in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_node_shows_a_refused_directory_as_a_failed_order() {
    let mut solo = Solo::new();
    // The client's address, where nothing listens on port 1: connection refused.
    let directory = format!("https://{}:1/dir", solo.lab.client.ip);
    solo.start(&directory, None).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let entry = acme_entry(&solo.status().unwrap());
        if entry["state"] == "failed" {
            break entry;
        }
        assert!(
            Instant::now() < deadline,
            "no failed order shown: {entry:#}\n{}",
            solo.log(1)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = entry["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(&directory), "{entry:#}");
    assert!(
        entry["retry_at"]
            .as_u64()
            .is_some_and(|at| at + 5 >= unix_now()),
        "{entry:#}"
    );
    assert!(entry["not_after"].is_null(), "{entry:#}");
    assert!(entry["failed_orders"].as_u64() >= Some(1), "{entry:#}");
    let text = solo.ctl(&["status"]);
    assert!(
        text.contains("last order failed") && text.contains(&directory),
        "{text}"
    );
    println!("refused directory: {error}");
    assert!(
        !solo
            .data_dir()
            .join("acme")
            .join(format!("{DOMAIN}.crt"))
            .exists(),
        "nothing stored for a failed order"
    );
}

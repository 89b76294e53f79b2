//! tandemd under systemd: the units in systemd/ pass `systemd-analyze verify` (and a typo
//! would not), and the daemon speaks the notify protocol to a socket the test binds the
//! way systemd does: READY=1 once it serves, watchdog pings, RELOADING=1 and READY=1
//! around a reload, STOPPING=1 on SIGTERM.

use http::Method;
use nix::sys::signal::Signal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tandem_tests::admin::{exchange, tandemctl_bin, Daemon};
use tandem_tests::TempDir;
use tandem_tests::*;
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;
use tokio::time::Instant;

const UNITS: [&str; 2] = ["tandemd.service", "tandem-witness.service"];

/// The units, copied into `dir` with ExecStart and ExecReload on the tandemd and tandemctl
/// just built (verify checks that the programs exist).
fn units_in(dir: &TempDir) -> Vec<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    UNITS
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(source.join(name)).unwrap();
            assert!(text.contains("ExecStart=/usr/bin/tandemd "), "{name}");
            dir.write(
                name,
                text.replace("/usr/bin/tandemd", tandemd_bin().to_str().unwrap())
                    .replace("/usr/bin/tandemctl", tandemctl_bin().to_str().unwrap()),
            )
        })
        .collect()
}

/// `systemd-analyze verify`: Ok when it exits 0 with nothing to say. Unknown keys and bad
/// values are only warnings (exit 0), so any output counts as a failure.
fn verify(units: &[PathBuf]) -> Result<(), String> {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--no-pager"])
        .args(units)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs the systemd package)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match (out.status.success(), said.trim().is_empty()) {
        (true, true) => Ok(()),
        _ => Err(format!("{}: {said}", out.status)),
    }
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let dir = TempDir::new();
    let units = units_in(&dir);
    verify(&units).unwrap_or_else(|e| panic!("systemd-analyze verify: {e}"));

    // The sandbox stays: `systemd-analyze security` fails above its threshold (in tenths
    // of its 0-10 exposure scale; now 2.0 for the node, 1.5 for the witness).
    for (unit, threshold) in units.iter().zip(["25", "20"]) {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager", "--threshold"])
            .arg(threshold)
            .arg(unit)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        let overall = report.lines().find(|l| l.contains("Overall exposure"));
        assert!(out.status.success(), "{}: {overall:?}", unit.display());
    }

    let node = std::fs::read_to_string(&units[0]).unwrap();
    let value = |key: &str| {
        node.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("tandemd.service has no {key}="))
            .to_string()
    };
    assert_eq!(value("Type"), "notify");
    assert!(value("ExecStart").ends_with(" run --config /etc/tandem/tandem.toml"));
    let stop = tandem_config::parse_duration(&value("TimeoutStopSec")).unwrap();
    let drain = tandem_config::NodeConfig::default().drain_timeout.get();
    assert!(
        stop > drain,
        "TimeoutStopSec {stop:?} leaves no room for a {drain:?} drain"
    );
}

#[test]
fn verify_reports_a_typo_in_a_unit() {
    // Whole lines: a comment may hold the same words.
    for (good, typo, named) in [
        (
            "\nNoNewPrivileges=yes\n",
            "\nNoNewPrivilege=yes\n",
            "NoNewPrivilege",
        ),
        ("\nType=notify\n", "\nType=notfy\n", "notfy"),
        ("=AF_UNIX AF_INET", "=AF_UNX AF_INET", "AF_UNX"),
    ] {
        let dir = TempDir::new();
        let units = units_in(&dir);
        for unit in &units {
            let text = std::fs::read_to_string(unit).unwrap();
            assert!(text.contains(good), "{}: {good}", unit.display());
            std::fs::write(unit, text.replacen(good, typo, 1)).unwrap();
            let err = verify(std::slice::from_ref(unit)).expect_err(typo.trim());
            assert!(err.contains(named), "{}: {err}", typo.trim());
            std::fs::write(unit, text).unwrap();
        }
    }
}

/// The notify socket as systemd would bind it; each datagram is a set of `KEY=VALUE`
/// lines, kept with when it arrived.
struct Notifications {
    path: PathBuf,
    rx: mpsc::UnboundedReceiver<(Instant, Vec<String>)>,
}

impl Notifications {
    fn bind(dir: &TempDir) -> Notifications {
        let path = dir.path("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf).await {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let lines = text.lines().map(str::to_string).collect();
                if tx.send((Instant::now(), lines)).is_err() {
                    break;
                }
            }
        });
        Notifications { path, rx }
    }

    /// The next message with the line `line`. Only watchdog pings may come before it:
    /// anything else is out of order.
    async fn expect(&mut self, line: &str) -> (Instant, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            let (at, lines) = next
                .unwrap_or_else(|_| panic!("no {line} within 20 s"))
                .expect("the notify socket is open");
            if lines.iter().any(|l| l == line) {
                return (at, lines);
            }
            assert_eq!(lines, ["WATCHDOG=1"], "while waiting for {line}");
        }
    }

    /// How many watchdog pings arrive during `window` (nothing else may).
    async fn pings_during(&mut self, window: Duration) -> usize {
        let end = Instant::now() + window;
        let mut pings = 0;
        while let Ok(Some((_, lines))) = tokio::time::timeout_at(end, self.rx.recv()).await {
            assert_eq!(lines, ["WATCHDOG=1"]);
            pings += 1;
        }
        pings
    }
}

fn status(lines: &[String]) -> &str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= in {lines:?}"))
}

/// `tandemd run` on a one-backend config with its admin socket in `dir`, told to notify
/// `notify`, with `WATCHDOG_USEC` and `WATCHDOG_PID` as given.
async fn spawn(
    dir: &TempDir,
    notify: &Path,
    watchdog_pid: Option<&str>,
) -> (Child, SocketAddr, NameBackend) {
    let backend = NameBackend::start("b").await;
    let port = free_port();
    let config = tcp_config(port, "round_robin", &[("b", backend.addr, 1)], "", "");
    let config = Daemon::with_socket(&config, &dir.path("admin.sock"));
    let path = dir.write("tandem.toml", config);
    let mut command = Command::new(tandemd_bin());
    command
        .args(["run", "--config"])
        .arg(path)
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(pid) = watchdog_pid {
        command.env("WATCHDOG_PID", pid);
    }
    let child = Child(command.spawn().unwrap());
    (child, ([127, 0, 0, 1], port).into(), backend)
}

async fn admin(dir: &TempDir, method: Method, path: &str) -> http::StatusCode {
    let stream = tokio::net::UnixStream::connect(dir.path("admin.sock"))
        .await
        .expect("the admin socket accepts");
    let (status, _, _) = exchange(stream, method, path, &[], None).await.unwrap();
    status
}

#[tokio::test]
async fn tandemd_notifies_ready_watchdog_reload_and_stop() {
    let dir = TempDir::new();
    let mut notes = Notifications::bind(&dir);
    // WATCHDOG_PID unset: sd_notify::watchdog_enabled then takes WATCHDOG_USEC as ours.
    let (mut child, proxy, _backend) = spawn(&dir, &notes.path, None).await;

    let (_, ready) = notes.expect("READY=1").await;
    // At READY=1 the listener and the admin API already answer: no retry here.
    assert_eq!(which_backend(proxy).await.as_deref(), Some("b"));
    assert_eq!(admin(&dir, Method::GET, "/v1/status").await, 200);
    assert!(status(&ready).starts_with("serving: 1 listener(s), 1 pool(s)"));

    // WATCHDOG_USEC/2 = 100 ms: about 10 pings a second, not a busy loop.
    let pings = notes.pings_during(Duration::from_secs(1)).await;
    assert!((3..=20).contains(&pings), "{pings} pings in 1 s");

    child.signal(Signal::SIGHUP);
    let (began, reloading) = notes.expect("RELOADING=1").await;
    let usec = reloading
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(usec.is_some_and(|u| u > 0), "{reloading:?}");
    let (done, after) = notes.expect("READY=1").await;
    assert!(done >= began);
    assert!(status(&after).contains("reloaded by SIGHUP"), "{after:?}");

    // The admin API's reload says the same; a refused one still ends in READY=1.
    assert_eq!(admin(&dir, Method::POST, "/v1/reload").await, 200);
    notes.expect("RELOADING=1").await;
    notes.expect("READY=1").await;
    dir.write("tandem.toml", "[node]\nid = \n");
    child.signal(Signal::SIGHUP);
    notes.expect("RELOADING=1").await;
    let (_, refused) = notes.expect("READY=1").await;
    assert!(status(&refused).contains("refused"), "{refused:?}");

    child.signal(Signal::SIGTERM);
    let (_, stopping) = notes.expect("STOPPING=1").await;
    assert!(status(&stopping).starts_with("stopping"), "{stopping:?}");
    let exit = child.wait_for_exit(Duration::from_secs(10)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
}

/// `systemctl reload` as systemd runs it: the unit's ExecReload= lines in order, stopping
/// at the first that fails (each line here is a plain argv, no shell), with the shipped
/// paths moved to the test's config and admin socket. Returns whether the reload
/// succeeded and what the commands printed.
fn systemctl_reload(unit: &str, config: &Path, socket: &Path, main_pid: u32) -> (bool, String) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../systemd")
            .join(unit),
    )
    .unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("ExecReload="))
        .collect();
    assert_eq!(lines.len(), 2, "{unit}: check, then reload: {lines:?}");
    assert!(lines[0].contains(" check-config "), "{unit}: {lines:?}");
    // Synchronous: the last line waits for the daemon's answer; a signal would not.
    assert!(lines[1].ends_with(" reload"), "{unit}: {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("kill")),
        "{unit}: {lines:?}"
    );
    let mut said = String::new();
    for line in lines {
        let line = line
            .replace("/usr/bin/tandemd", tandemd_bin().to_str().unwrap())
            .replace("/usr/bin/tandemctl", tandemctl_bin().to_str().unwrap())
            .replace("/etc/tandem/tandem.toml", config.to_str().unwrap())
            .replace("/etc/tandem/witness.toml", config.to_str().unwrap())
            .replace("/run/tandem/admin.sock", socket.to_str().unwrap())
            .replace("/run/tandem-witness/admin.sock", socket.to_str().unwrap())
            .replace("$MAINPID", &main_pid.to_string());
        assert!(!line.contains("/run/") && !line.contains("/etc/"), "{line}");
        let argv: Vec<&str> = line.split_whitespace().collect();
        let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
        said.push_str(&String::from_utf8_lossy(&out.stdout));
        said.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return (false, said);
        }
    }
    (true, said)
}

/// The unit checks the config, then reloads through the admin socket and waits for the
/// answer: a broken file fails `systemctl reload` and the daemon is not even asked; a good
/// one is serving when the command returns; one the daemon refuses at apply time (a port
/// already taken) fails it too, and the old config keeps serving.
#[tokio::test]
async fn systemctl_reload_waits_for_the_apply_and_fails_when_it_is_refused() {
    let dir = TempDir::new();
    let mut notes = Notifications::bind(&dir);
    let (mut child, proxy, _backend) = spawn(&dir, &notes.path, Some("1")).await;
    notes.expect("READY=1").await;
    let config = dir.path("tandem.toml");
    let socket = dir.path("admin.sock");
    let first = std::fs::read_to_string(&config).unwrap();
    let other = NameBackend::start("c").await;
    let backend_b = first
        .lines()
        .find_map(|l| l.strip_prefix("address = "))
        .unwrap()
        .to_string();
    let good = first.replace(&backend_b, &format!("\"{}\"", other.addr));

    // Applied by the time the command returns: no retry on the next request.
    std::fs::write(&config, &good).unwrap();
    let (ok, said) = systemctl_reload("tandemd.service", &config, &socket, child.0.id());
    assert!(ok, "a good config reloads: {said}");
    assert!(said.contains("reloaded: "), "{said}");
    assert_eq!(which_backend(proxy).await.as_deref(), Some("c"));
    notes.expect("RELOADING=1").await;
    let (_, after) = notes.expect("READY=1").await;
    assert!(status(&after).contains("reloaded by"), "{after:?}");

    // Passes check-config, refused at apply: a second listener on a port someone holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let refused = first.replacen(
        "[[pool]]",
        &format!(
            "[[listener]]\nname = \"taken\"\nbind = \"{taken_addr}\"\npool = \"p\"\n\n[[pool]]"
        ),
        1,
    );
    std::fs::write(&config, &refused).unwrap();
    let check = Command::new(tandemd_bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let (ok, said) = systemctl_reload("tandemd.service", &config, &socket, child.0.id());
    assert!(
        !ok,
        "a config the daemon refuses must fail the reload: {said}"
    );
    assert!(
        said.contains("reload refused, tandemd keeps its running config")
            && said.contains(&taken_addr.to_string()),
        "{said}"
    );
    assert_eq!(which_backend(proxy).await.as_deref(), Some("c"));
    notes.expect("RELOADING=1").await;
    let (_, kept) = notes.expect("READY=1").await;
    assert!(status(&kept).contains("refused"), "{kept:?}");
    drop(taken);

    // A key path error: check-config names it, and the daemon is not asked.
    std::fs::write(&config, good.replace("round_robin", "round_robinn")).unwrap();
    let (ok, said) = systemctl_reload("tandemd.service", &config, &socket, child.0.id());
    assert!(!ok, "a broken config must fail the reload");
    assert!(said.contains("pool[0].algorithm"), "{said}");
    let quiet = tokio::time::timeout(Duration::from_millis(700), notes.rx.recv()).await;
    assert!(quiet.is_err(), "the daemon was asked: {quiet:?}");

    // The witness unit checks its file as a witness's: [node.cluster] is required.
    std::fs::write(&config, &good).unwrap();
    let (ok, said) = systemctl_reload("tandem-witness.service", &config, &socket, child.0.id());
    assert!(!ok, "a file without [node.cluster] is no witness config");
    assert!(said.contains("node.cluster"), "{said}");

    child.signal(Signal::SIGTERM);
    assert!(child.wait_for_exit(Duration::from_secs(10)).await.is_some());
}

#[tokio::test]
async fn no_watchdog_pings_when_watchdog_pid_is_another_process() {
    let dir = TempDir::new();
    let mut notes = Notifications::bind(&dir);
    let (mut child, _, _backend) = spawn(&dir, &notes.path, Some("1")).await;
    notes.expect("READY=1").await;
    assert_eq!(notes.pings_during(Duration::from_millis(700)).await, 0);
    child.signal(Signal::SIGTERM);
    notes.expect("STOPPING=1").await;
    assert!(child.wait_for_exit(Duration::from_secs(10)).await.is_some());
}

/// Starts `tandemd ARGS` with its log in `log`, told to notify `notify` if given.
fn start_logged(args: &[&str], log: &Path, notify: Option<&Path>) -> Child {
    let mut command = Command::new(tandemd_bin());
    command
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(notify) = notify {
        command.env("NOTIFY_SOCKET", notify);
    }
    Child(command.spawn().unwrap())
}

/// Voters in `tandemctl cluster status` of the member whose admin socket is `socket`,
/// once it names a leader.
async fn voters_with_leader(socket: &Path) -> usize {
    let (code, out, _) = tandem_tests::admin::ctl(&[
        "--socket",
        socket.to_str().unwrap(),
        "--json",
        "cluster",
        "status",
    ])
    .await;
    let Some(s) = (code == 0)
        .then(|| serde_json::from_str::<serde_json::Value>(&out).ok())
        .flatten()
    else {
        return 0;
    };
    if s["raft"]["leader"].is_null() {
        return 0;
    }
    s["raft"]["members"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["voter"] == true).count())
}

/// READY=1 means "serving and joined": a member restarted while its cluster has no
/// majority waits for a leader before READY=1, and says so in STATUS=.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_member_is_ready_only_once_it_has_a_leader() {
    let dir = TempDir::new();
    let pki = dir.path("pki");
    let (code, out, err) =
        tandem_tests::admin::ctl(&["cluster", "init", "--dir", pki.to_str().unwrap(), "n1", "w"])
            .await;
    assert_eq!(code, 0, "tandemctl cluster init: {out}{err}");
    let (raft1, raft2, port) = (free_port(), free_port(), free_port());
    let member = |id: &str, raft_id: u64, raft_port: u16, bootstrap: bool| {
        let mut cluster = Cluster::new(raft_id, format!("127.0.0.1:{raft_port}"), &pki)
            .host("n1", "127.0.0.1")
            .host("w", "127.0.0.1");
        if bootstrap {
            cluster = cluster.bootstrap(true);
        }
        Config::new(id)
            .admin_socket(dir.path(&format!("{id}.sock")).to_str().unwrap())
            .node_key("data_dir", &toml_path(&dir.path(id)))
            .cluster(cluster)
    };
    let n1_config = member("n1", 1, raft1, true)
        .drain_timeout("1s")
        .version(1)
        .listener(Listener::tcp("l", port).pool("p"))
        .pool(Pool::new("p").backend("b", "127.0.0.1:9"));
    let n1 = dir.write("n1.toml", n1_config.to_toml());
    // A witness: no listener, so the two members share loopback without port clashes.
    let w = dir.write("w.toml", member("w", 2, raft2, false).to_toml());
    let (n1_args, w_args) = (
        ["run", "--config", n1.to_str().unwrap()],
        ["witness", "--config", w.to_str().unwrap()],
    );
    let (n1_sock, w_sock) = (dir.path("n1.sock"), dir.path("w.sock"));
    let logs = |dir: &TempDir| {
        format!(
            "n1:\n{}\nw:\n{}",
            std::fs::read_to_string(dir.path("n1.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path("w.log")).unwrap_or_default()
        )
    };

    // A two-voter cluster: n1 bootstraps, the witness joins.
    let mut first = start_logged(&n1_args, &dir.path("n1.log"), None);
    let mut witness = start_logged(&w_args, &dir.path("w.log"), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, _) = tandem_tests::admin::ctl(&[
            "--socket",
            w_sock.to_str().unwrap(),
            "cluster",
            "join",
            &format!("n1:{raft1}"),
        ])
        .await;
        if code == 0 && voters_with_leader(&n1_sock).await == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the witness did not join\n{}",
            logs(&dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for child in [&mut witness, &mut first] {
        child.signal(Signal::SIGTERM);
        assert!(child.wait_for_exit(Duration::from_secs(10)).await.is_some());
    }

    // The witness alone: a member (Raft state on disk) with no majority. No READY=1.
    let mut notes = Notifications::bind(&dir);
    let mut witness = start_logged(&w_args, &dir.path("w.log"), Some(&notes.path));
    let early = tokio::time::timeout(Duration::from_secs(3), notes.rx.recv()).await;
    assert!(
        early.is_err(),
        "a member without a leader notified {early:?}\n{}",
        logs(&dir)
    );

    // n1 back: a leader is elected, and only then the witness is ready.
    let back = Instant::now();
    let mut first = start_logged(&n1_args, &dir.path("n1.log"), None);
    let (ready_at, ready) = notes.expect("READY=1").await;
    assert!(ready_at >= back);
    assert!(
        ready_at - back < Duration::from_secs(10),
        "READY=1 {:?} after the leader came back (the start-up wait is 15 s)\n{}",
        ready_at - back,
        logs(&dir)
    );
    assert!(
        status(&ready).contains("cluster: leader node"),
        "{ready:?}\n{}",
        logs(&dir)
    );
    // The witness reloads its file through its unit's ExecReload lines, like a node.
    let (ok, said) = systemctl_reload("tandem-witness.service", &w, &w_sock, witness.0.id());
    assert!(ok, "the witness reloads: {said}\n{}", logs(&dir));
    notes.expect("RELOADING=1").await;
    let (_, reloaded) = notes.expect("READY=1").await;
    assert!(
        status(&reloaded).contains("reloaded by"),
        "{reloaded:?}\n{}",
        logs(&dir)
    );
    // SIGHUP still reloads it (asynchronously).
    witness.signal(Signal::SIGHUP);
    notes.expect("RELOADING=1").await;
    let (_, reloaded) = notes.expect("READY=1").await;
    assert!(
        status(&reloaded).contains("reloaded by SIGHUP"),
        "{reloaded:?}\n{}",
        logs(&dir)
    );
    for child in [&mut witness, &mut first] {
        child.signal(Signal::SIGTERM);
        assert!(child.wait_for_exit(Duration::from_secs(10)).await.is_some());
    }
}

//! appliance/lab.sh end to end, as a person would use it: `up` a two-node lab with 100 ms
//! adverts, wait for n1 to hold the VIP, run the crash drill, and check what the client saw:
//! the answerer moved to n2 and the longest gap stayed under 2 s. `down` always runs (a
//! guard with Drop), and afterwards no namespace of the lab is left.
//!
//! Runs as root; fails loudly without it (it never skips).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

/// One lab made by lab.sh, with its own --name and state dir; `down` when dropped.
struct LabScript {
    script: PathBuf,
    name: String,
    state_dir: PathBuf,
    tandemd: PathBuf,
    probe: PathBuf,
}

impl LabScript {
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg("--name")
            .arg(&self.name)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .env("TANDEMD", &self.tandemd)
            .env("TANDEM_PROBE", &self.probe)
            .output()
            .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", self.script.display()));
        eprintln!(
            "$ lab.sh {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lab.sh {} failed ({}):\n{}{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every node's log, for failure messages.
    fn logs(&self) -> String {
        let mut all = String::new();
        for node in ["n1", "n2"] {
            let path = self.state_dir.join(format!("{node}.log"));
            all.push_str(&format!(
                "--- {} ---\n{}\n",
                path.display(),
                std::fs::read_to_string(&path).unwrap_or_default()
            ));
        }
        all
    }

    fn namespaces(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list (install iproute2)");
        let prefix = format!("tlab-{}-", self.name);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ns| ns.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for LabScript {
    fn drop(&mut self) {
        let out = self.run(&["down"]);
        if !out.status.success() {
            eprintln!("lab.sh down failed while cleaning up ({})", out.status);
        }
    }
}

/// The `status` line of a node, split into words (None if the node has no line).
fn status_line(status: &str, node: &str) -> Option<Vec<String>> {
    status
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|words| words.first().map(String::as_str) == Some(node))
}

fn holds_vip(status: &str, node: &str) -> bool {
    status_line(status, node).is_some_and(|w| w.iter().any(|x| x == "HOLDS-VIP"))
}

/// `key=value` from the drill's `RESULT ...` line.
fn result_field<'a>(result: &'a str, key: &str) -> &'a str {
    result
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the drill's result line: {result}"))
}

#[test]
fn lab_script_up_crash_drill_down() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs appliance/lab.sh, which builds network namespaces and needs root \
         (CAP_NET_ADMIN, CAP_SYS_ADMIN); run it as root (CI does). It does not skip."
    );
    let root = repo_root();
    let script = root.join("appliance/lab.sh");
    assert!(script.exists(), "{} is missing", script.display());
    let tandemd = tandem_tests::tandemd_bin();
    let probe = tandemd.with_file_name("tandem-probe");
    assert!(
        probe.exists(),
        "{} is missing: build it with `cargo build -p tandemd` (scripts/test does this)",
        probe.display()
    );

    let name = format!("t{}", std::process::id());
    let state_dir = std::env::temp_dir().join(format!("tandem-lab-{name}"));
    let lab = LabScript {
        script,
        name,
        state_dir: state_dir.clone(),
        tandemd,
        probe,
    };
    assert!(
        lab.namespaces().is_empty(),
        "namespaces of a lab named {} exist already: {:?}",
        lab.name,
        lab.namespaces()
    );

    lab.ok(&["up", "--nodes", "2", "--interval", "100ms"]);

    // n1 (priority 150) alone holds the VIP: 100 ms adverts, so within a second or two.
    let start = Instant::now();
    let mut status = String::new();
    while start.elapsed() < Duration::from_secs(10) {
        status = lab.ok(&["status"]);
        if holds_vip(&status, "n1") && !holds_vip(&status, "n2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        holds_vip(&status, "n1") && !holds_vip(&status, "n2"),
        "status never showed n1 alone holding the VIP:\n{status}\n{}",
        lab.logs()
    );

    let drill = lab.ok(&["drill", "crash"]);
    let result = drill
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("the drill printed no RESULT line:\n{drill}"));
    assert_eq!(result_field(result, "holder"), "n1", "{drill}");
    assert_eq!(
        result_field(result, "to"),
        "n2",
        "the client must see the answerer change to n2:\n{drill}\n{}",
        lab.logs()
    );
    let gap: f64 = result_field(result, "longest_gap_ms")
        .parse()
        .unwrap_or_else(|e| panic!("longest_gap_ms is not a number ({e}): {result}"));
    assert!(
        gap < 2000.0,
        "client-seen failover took {gap} ms, more than 2000 ms (Master_Down_Interval is 361 ms):\n{drill}\n{}",
        lab.logs()
    );
    eprintln!("crash drill with 100 ms adverts: client-seen longest gap {gap} ms");

    // Tear down explicitly (the guard would too) and check nothing is left.
    lab.ok(&["down"]);
    let left = lab.namespaces();
    assert!(left.is_empty(), "namespaces left after down: {left:?}");
    // `down` twice is fine.
    lab.ok(&["down"]);
    drop(lab);
    let _ = std::fs::remove_dir_all(&state_dir);
}

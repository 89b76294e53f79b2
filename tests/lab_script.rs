//! appliance/lab.sh end to end, as a person would use it: `up` a two-node lab with 100 ms
//! adverts, wait for n1 to hold the VIP, run the crash drill, and check what the client saw:
//! the answerer moved to n2 and the longest gap stayed under 2 s. `down` always runs (a
//! guard with Drop), and afterwards no namespace of the lab is left.
//!
//! Runs as root; fails loudly without it (it never skips).

use std::time::{Duration, Instant};

use tandem_tests::lab_script::LabScript;
use tandem_tests::repo_root;

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
    let script = repo_root().join("appliance/lab.sh");
    assert!(script.exists(), "{} is missing", script.display());
    let probe = tandem_tests::tandemd_bin().with_file_name("tandem-probe");
    assert!(
        probe.exists(),
        "{} is missing: build it with `cargo build -p tandemd` (scripts/test does this)",
        probe.display()
    );

    let name = format!("t{}", std::process::id());
    let state_dir = std::env::temp_dir().join(format!("tandem-lab-{name}"));
    let lab = LabScript::new(name, state_dir.clone());

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
    // The strike follows the holder's advert (tcpdump in its namespace): inside the
    // 100 ms interval, so every run hits the same phase.
    let after: u64 = result_field(result, "after_advert_ms")
        .parse()
        .unwrap_or_else(|_| {
            panic!("the drill did not strike after an advert (is tcpdump installed?):\n{drill}")
        });
    assert!(
        after < 100,
        "struck {after} ms after the advert, not within the 100 ms interval:\n{drill}"
    );
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
    lab.down_leaving_nothing();
    // `down` twice is fine.
    lab.ok(&["down"]);
    drop(lab);
    let _ = std::fs::remove_dir_all(&state_dir);
}

//! The appliance drills end to end: `appliance/lab.sh up --cluster` builds the cluster lab
//! (n1, n2, witness, web1, web2, client in namespaces), then every drill of
//! `vagrant/drills/run.sh --target lab` runs against it: crash the holder, partition the
//! holder, planned move, kill a backend, rolling upgrade. Each prints one line
//! `drill=NAME failover_ms=N requests=N failed=N ... result=pass|FAIL`; the test parses it
//! and asserts the bounds itself (the same as run.sh's defaults), so a script that forgot
//! to check would not pass. `down` always runs (a guard with Drop), and afterwards no
//! namespace of the lab is left.
//!
//! The second test runs `vagrant validate` on vagrant/Vagrantfile (Debian's vagrant
//! package; the libvirt and VirtualBox plugins need not be installed: provider blocks are
//! skipped with --ignore-provider), and checks that it does fail on broken copies, so the
//! check is not a no-op.
//!
//! Both run as root in CI; the first fails loudly without root (it never skips).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use tandem_tests::lab_script::{output_text as text, LabScript};
use tandem_tests::repo_root;

/// `vagrant/drills/run.sh --target lab` against `lab`, running one drill.
fn run_drill(lab: &LabScript, drill: &str) -> Output {
    let out = lab
        .command("vagrant/drills/run.sh")
        .args([
            "--target",
            "lab",
            "--lab-name",
            &lab.name,
            "--lab-state-dir",
        ])
        .arg(&lab.state_dir)
        .arg(drill)
        .output()
        .expect("cannot run bash vagrant/drills/run.sh");
    eprintln!("$ run.sh --target lab {drill}\n{}", text(&out));
    out
}

/// The drill's result line, as key → value.
fn result_line(drill: &str, output: &str) -> Vec<(String, String)> {
    let prefix = format!("drill={drill} ");
    let lines: Vec<&str> = output.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one result line for {drill}:\n{output}"
    );
    lines[0]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}= in the result line {fields:?}"))
}

fn number(fields: &[(String, String)], key: &str) -> i64 {
    field(fields, key)
        .parse()
        .unwrap_or_else(|e| panic!("{key} is not a number ({e}): {fields:?}"))
}

#[test]
fn drills_against_the_cluster_lab() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs appliance/lab.sh up --cluster and the drills, which build network \
         namespaces and need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); run it as root (CI does). \
         It does not skip."
    );
    let tandemd = tandem_tests::tandemd_bin();
    for bin in ["tandemctl", "tandem-probe"] {
        let path = tandemd.with_file_name(bin);
        assert!(
            path.exists(),
            "{} is missing: build it with `cargo build --bins` (scripts/test does this)",
            path.display()
        );
    }
    for tool in ["curl", "socat", "nft"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing: run .ci/run --deps-only");
    }

    let name = format!("d{}", std::process::id());
    let state_dir = std::env::temp_dir().join(format!("tandem-drills-{name}"));
    let lab = LabScript::new(name, state_dir.clone());

    let start = Instant::now();
    let up = lab.ok(&["up", "--cluster"]);
    assert!(
        up.contains("n1 holds the VIP"),
        "after up --cluster n1 should hold the VIP and answer the client:\n{up}\n{}",
        lab.logs()
    );
    let status = lab.ok(&["status"]);
    for want in ["witness", "web1", "web2", "Leader"] {
        assert!(status.contains(want), "status lacks {want}:\n{status}");
    }

    let mut summary = Vec::new();
    for drill in [
        "crash-holder",
        "partition-holder",
        "planned-move",
        "kill-backend",
        "rolling-upgrade",
    ] {
        let t = Instant::now();
        let out = run_drill(&lab, drill);
        let all = text(&out);
        let context = format!("{all}\n{}", lab.logs());
        assert!(
            out.status.success(),
            "drill {drill} exited with {}:\n{context}",
            out.status
        );
        let f = result_line(drill, &String::from_utf8_lossy(&out.stdout));
        assert_eq!(field(&f, "result"), "pass", "{context}");
        let (gap, requests, failed) = (
            number(&f, "failover_ms"),
            number(&f, "requests"),
            number(&f, "failed"),
        );
        assert!(
            requests >= 20,
            "{drill}: only {requests} requests: no real load\n{context}"
        );
        match drill {
            "crash-holder" => {
                assert!(gap <= 4000, "crash failover {gap} ms > 4000 ms\n{context}");
                assert_eq!(
                    (field(&f, "from"), field(&f, "to")),
                    ("n1", "n2"),
                    "{context}"
                );
            }
            "partition-holder" => {
                assert!(
                    gap <= 6000,
                    "partition failover {gap} ms > 6000 ms\n{context}"
                );
                assert_eq!(field(&f, "to"), "n2", "{context}");
            }
            "planned-move" => {
                assert!(failed <= 2, "planned move: {failed} failed > 2\n{context}");
                assert!(
                    gap <= 1500,
                    "planned move gap {gap} ms > 1500 ms\n{context}"
                );
            }
            "kill-backend" => {
                assert!(failed <= 3, "kill-backend: {failed} failed > 3\n{context}");
                assert_eq!(number(&f, "failed_after_down"), 0, "{context}");
            }
            "rolling-upgrade" => {
                assert!(
                    failed <= 4,
                    "rolling upgrade: {failed} failed > 4\n{context}"
                );
                assert!(
                    gap <= 3000,
                    "rolling upgrade gap {gap} ms > 3000 ms\n{context}"
                );
                assert_eq!(number(&f, "rejoined"), 2, "{context}");
            }
            _ => unreachable!(),
        }
        summary.push(format!(
            "{drill}: failover_ms={gap} requests={requests} failed={failed} ({:.1} s)",
            t.elapsed().as_secs_f64()
        ));
    }
    eprintln!(
        "appliance drills against the lab ({:.1} s):\n  {}",
        start.elapsed().as_secs_f64(),
        summary.join("\n  ")
    );

    // A drill name that does not exist is refused (exit 2), not run.
    let bad = run_drill(&lab, "crash-everything");
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));

    lab.down_leaving_nothing();
    drop(lab);
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// `vagrant validate` with provider blocks skipped, in DIR; dot files go to a scratch dir.
fn vagrant_validate(dir: &Path, dotfiles: &Path) -> Output {
    Command::new("vagrant")
        .args(["validate", "--ignore-provider"])
        .current_dir(dir)
        .env("VAGRANT_DOTFILE_PATH", dotfiles)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("cannot run vagrant: apt-get install --no-install-recommends vagrant (.ci/run installs it)")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn vagrantfile_validates_and_a_broken_one_does_not() {
    let has_vagrant = Command::new("sh")
        .args(["-c", "command -v vagrant"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_vagrant,
        "vagrant is missing: apt-get install --no-install-recommends vagrant (.ci/run installs it). \
         This test does not skip."
    );
    let root = repo_root();
    let scratch = std::env::temp_dir().join(format!("tandem-vagrant-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let dotfiles = scratch.join("dot");
    std::fs::create_dir_all(&dotfiles).unwrap();

    let out = vagrant_validate(&root.join("vagrant"), &dotfiles);
    assert!(
        out.status.success() && text(&out).contains("validated successfully"),
        "vagrant validate on vagrant/Vagrantfile failed:\n{}",
        text(&out)
    );
    for machine in ["lb1", "lb2", "witness", "web1", "web2", "client"] {
        assert!(
            text(&out).contains(&format!("==> {machine}:")),
            "no machine {machine} in the Vagrantfile:\n{}",
            text(&out)
        );
    }

    // A copy validates too (the control), then each break must make it fail.
    let copy = scratch.join("vagrant");
    let fresh_copy = || {
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(&root.join("vagrant/provision"), &copy.join("provision"));
        std::fs::copy(root.join("vagrant/Vagrantfile"), copy.join("Vagrantfile")).unwrap();
    };
    fresh_copy();
    let out = vagrant_validate(&copy, &dotfiles);
    assert!(
        out.status.success(),
        "the unmodified copy should validate:\n{}",
        text(&out)
    );
    let original = std::fs::read_to_string(copy.join("Vagrantfile")).unwrap();
    let breaks: [(&str, &dyn Fn(), &str); 3] = [
        (
            "a Ruby syntax error",
            &|| std::fs::write(copy.join("Vagrantfile"), format!("{original}\nend\n")).unwrap(),
            "syntax error",
        ),
        (
            "an unknown setting",
            &|| {
                let broken = original.replace("node.vm.hostname = name", "node.vm.hostnam = name");
                assert_ne!(
                    broken, original,
                    "the Vagrantfile no longer sets node.vm.hostname"
                );
                std::fs::write(copy.join("Vagrantfile"), broken).unwrap()
            },
            "hostnam",
        ),
        (
            "a missing provisioning script",
            &|| std::fs::remove_file(copy.join("provision/lb.sh")).unwrap(),
            "lb.sh",
        ),
    ];
    for (what, break_it, expect) in breaks {
        fresh_copy();
        break_it();
        let out = vagrant_validate(&copy, &dotfiles);
        assert!(
            !out.status.success(),
            "vagrant validate passed a Vagrantfile with {what}:\n{}",
            text(&out)
        );
        assert!(
            text(&out).contains(expect),
            "vagrant validate failed on {what}, but without mentioning {expect:?}:\n{}",
            text(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

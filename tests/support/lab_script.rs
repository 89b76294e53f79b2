//! appliance/lab.sh driven from a test, as a person would run it: one lab with its own
//! `--name` and state dir, the binaries of this build, and `down` when dropped, so a
//! failing test leaves no namespaces behind. Shared by tests/lab_script.rs (the two-node
//! VRRP lab) and tests/appliance_drills.rs (the cluster lab and the drills).

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::repo_root;

/// A command's stdout and stderr together, for logs and failure messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One lab made by lab.sh, with its own --name and state dir; `down` when dropped.
pub struct LabScript {
    pub name: String,
    pub state_dir: PathBuf,
    tandemd: PathBuf,
}

impl LabScript {
    /// A lab called `name` keeping its state in `state_dir`. Nothing is started yet; it
    /// asserts that no namespace of a lab with that name exists already, so the test's
    /// final "nothing left" check means something.
    pub fn new(name: String, state_dir: PathBuf) -> Self {
        let lab = LabScript {
            name,
            state_dir,
            tandemd: crate::tandemd_bin(),
        };
        assert!(
            lab.namespaces().is_empty(),
            "namespaces of a lab named {} exist already: {:?}",
            lab.name,
            lab.namespaces()
        );
        lab
    }

    /// `bash <repo>/<script>` with the binaries of this build in the environment (lab.sh
    /// and vagrant/drills/run.sh would otherwise look for a release build first).
    pub fn command(&self, script: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(repo_root().join(script))
            .env("TANDEMD", &self.tandemd)
            .env("TANDEM_PROBE", self.tandemd.with_file_name("tandem-probe"))
            .env("TANDEMCTL", self.tandemd.with_file_name("tandemctl"));
        c
    }

    /// `lab.sh --name NAME --state-dir DIR ARGS...`; its output goes to the test's log.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self
            .command("appliance/lab.sh")
            .arg("--name")
            .arg(&self.name)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .output()
            .expect("cannot run bash appliance/lab.sh");
        eprintln!("$ lab.sh {}\n{}", args.join(" "), output_text(&out));
        out
    }

    /// Runs a lab.sh command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lab.sh {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            output_text(&out),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The tail of each daemon's log (n1, n2 and, in the cluster lab, the witness) without
    /// the access log lines, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for node in ["n1", "n2", "witness"] {
            let path = self.state_dir.join(format!("{node}.log"));
            let Ok(log) = std::fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" access: ")).collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            all.push_str(&format!(
                "--- {} ---\n{}\n",
                path.display(),
                tail.join("\n")
            ));
        }
        all
    }

    /// The network namespaces of this lab that exist now (lab.sh names them tlab-NAME-*).
    pub fn namespaces(&self) -> Vec<String> {
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

    /// `down`, which must succeed and leave no namespace of the lab behind.
    pub fn down_leaving_nothing(&self) {
        self.ok(&["down"]);
        let left = self.namespaces();
        assert!(left.is_empty(), "namespaces left after down: {left:?}");
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

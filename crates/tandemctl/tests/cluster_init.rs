//! `tandemctl cluster init`: runs locally (no tandemd needed), writes the cluster PKI, says
//! what goes to which node, and refuses to replace a CA without --force.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A scratch dir removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tandemctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tandemctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        // Must not try to reach an admin socket: this command is local.
        .args(["--socket", "/nonexistent/admin.sock"])
        .args(args)
        .output()
        .expect("run tandemctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cluster_init_writes_the_pki_and_says_what_goes_where() {
    let scratch = Scratch::new("init");
    let dir = scratch.0.join("pki");
    let dir_arg = dir.to_str().unwrap();

    let run = tandemctl(&[
        "cluster", "init", "--dir", dir_arg, "lb-a", "lb-b", "witness",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let out = text(&run.stdout);
    for node in ["lb-a", "lb-b", "witness"] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{node}:")))
            .unwrap_or_else(|| panic!("a line for {node} in:\n{out}"));
        for file in [
            "ca.pem".to_string(),
            format!("{node}.pem"),
            format!("{node}.key"),
        ] {
            assert!(
                line.contains(&dir.join(&file).display().to_string()),
                "{line}"
            );
        }
        let key = std::fs::metadata(dir.join(format!("{node}.key"))).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
    assert!(out.contains("ca.key off the nodes"), "{out}");
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();

    let again = tandemctl(&["cluster", "init", "--dir", dir_arg, "lb-a"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read(dir.join("ca.pem")).unwrap(),
        ca,
        "CA untouched"
    );

    let forced = tandemctl(&["cluster", "init", "--force", "--dir", dir_arg, "lb-a"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_ne!(std::fs::read(dir.join("ca.pem")).unwrap(), ca, "a new CA");

    let bad = tandemctl(&["cluster", "init", "--dir", dir_arg, "lb a"]);
    assert_eq!(bad.status.code(), Some(2), "a bad name is a usage error");
    assert!(
        text(&bad.stderr).contains("bad node name"),
        "{}",
        text(&bad.stderr)
    );
}

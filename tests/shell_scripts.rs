//! Every shell script in the repository parses (`bash -n`, or `sh -n` for `#!/bin/sh`) and
//! passes `shellcheck -S warning` (following sourced files). Most of them also run in other
//! tests (install.sh, lab.sh, the drills, the Debian maintainer scripts; the Vagrant
//! scripts in CI's VM stage, scripts/vms, after this suite); the benchmarks run nowhere in
//! CI, so this is their check.
//! shellcheck missing is a failure, not a skip: `.ci/run --deps-only` installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// Tracked files that are shell scripts: `*.sh`, and anything whose first line is a
/// bash or sh shebang.
fn scripts() -> Vec<PathBuf> {
    let root = repo();
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .expect("git ls-files runs");
    assert!(out.status.success(), "git ls-files failed");
    let mut found: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(|f| root.join(f))
        .filter(|p| {
            let shebang = std::fs::read(p)
                .ok()
                .and_then(|b| b.split(|&c| c == b'\n').next().map(|l| l.to_vec()))
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            p.extension().is_some_and(|e| e == "sh")
                || shebang.starts_with("#!/bin/sh")
                || shebang.starts_with("#!/bin/bash")
                || shebang.starts_with("#!/usr/bin/env bash")
        })
        .collect();
    found.sort();
    found
}

fn is_posix_sh(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.starts_with("#!/bin/sh"))
}

#[test]
fn every_script_parses_and_passes_shellcheck() {
    let scripts = scripts();
    let names: Vec<String> = scripts
        .iter()
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    for expected in [
        "scripts/test",
        ".ci/run",
        "appliance/install.sh",
        "appliance/lab.sh",
        "appliance/debian/postinst",
        "vagrant/provision/lb.sh",
        "vagrant/drills/run.sh",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found in {names:?}"
        );
    }

    let mut problems = Vec::new();
    for script in &scripts {
        let shell = if is_posix_sh(script) { "sh" } else { "bash" };
        let parse = Command::new(shell).arg("-n").arg(script).output().unwrap();
        if !parse.status.success() {
            problems.push(format!(
                "{shell} -n {}:\n{}",
                script.display(),
                String::from_utf8_lossy(&parse.stderr)
            ));
        }
    }
    let lint = Command::new("shellcheck")
        .args(["-x", "-S", "warning", "--format", "gcc"])
        .args(&scripts)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run shellcheck ({e}): install it with `sudo .ci/run --deps-only` (apt-get install shellcheck)")
        });
    if !lint.status.success() {
        problems.push(format!(
            "shellcheck -S warning:\n{}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check above must be able to fail: a script with an unquoted-variable bug is caught.
#[test]
fn shellcheck_catches_a_real_mistake() {
    let dir = std::env::temp_dir().join(format!("tandem-shellcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.sh");
    std::fs::write(
        &bad,
        "#!/usr/bin/env bash\nrm -rf \"$dir\"/ $unset_var/*\ncd /nowhere\n",
    )
    .unwrap();
    let lint = Command::new("shellcheck")
        .args(["-x", "-S", "warning"])
        .arg(&bad)
        .output()
        .expect("shellcheck runs (install it with .ci/run --deps-only)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !lint.status.success(),
        "shellcheck accepted a broken script"
    );
}

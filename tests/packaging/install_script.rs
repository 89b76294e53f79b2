//! appliance/install.sh into a scratch root (`--root`), as a person building an image would
//! use it: install, check every file, its mode, the sysctls, the user and group lines and
//! that the config skeleton passes `tandemd check-config`; install again (nothing changes
//! and it says so); edit the config and install again (the operator's file is kept);
//! `--uninstall` (everything gone but the config); `--uninstall --purge` (the config too).
//!
//! Needs no root: `--root` never touches the host (no useradd, systemctl or sysctl).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use tandem_tests::appliance_install::{
    bin_dir, check_tandem_account, installed, mode, tandem_entry, tree_under, BASE_GROUP,
    BASE_PASSWD,
};
use tandem_tests::repo_root;

/// A scratch root with a minimal etc/passwd and etc/group; removed when dropped.
struct Scratch {
    root: PathBuf,
    bin_dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("tandem-install-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), BASE_PASSWD).unwrap();
        fs::write(root.join("etc/group"), BASE_GROUP).unwrap();
        Scratch {
            root,
            bin_dir: bin_dir(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn run(&self, args: &[&str]) -> Output {
        let script = repo_root().join("appliance/install.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .env_remove("PREFIX")
            .output()
            .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
        eprintln!(
            "$ install.sh --root {} {}\n{}{}",
            self.root.display(),
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
            "install.sh {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn install(&self) -> String {
        let bin_dir = self.bin_dir.to_str().unwrap().to_string();
        self.ok(&["--bin-dir", &bin_dir])
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn sysctl_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not key = value: {l}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// The subcommands `BIN --help` lists (clap's "Commands:" section), `help` left out.
fn subcommands(bin: &str) -> Vec<String> {
    let out = Command::new(bin_dir().join(bin))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The installed man pages render with `man -l` and name every subcommand, each of which
/// has a page of its own; the bash completion loads in bash and completes subcommands;
/// the zsh and fish ones are the scripts for `_tandemctl` and `complete -c tandemctl`.
fn check_man_pages_and_completions(s: &Scratch) {
    for bin in ["tandemd", "tandemctl"] {
        let page = s.path(&format!("usr/share/man/man1/{bin}.1"));
        let out = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man is installed (package man-db)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("SYNOPSIS"),
            "man -l {}: {}\n{text}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let subs = subcommands(bin);
        assert!(subs.len() >= 4, "{bin} --help lists its commands: {subs:?}");
        for sub in &subs {
            assert!(
                text.contains(&format!("{bin}-{sub}(1)")),
                "{bin}.1 names {sub}:\n{text}"
            );
            assert!(
                s.path(&format!("usr/share/man/man1/{bin}-{sub}.1"))
                    .is_file(),
                "no page {bin}-{sub}.1"
            );
        }
        assert!(
            !text.contains("generate-docs"),
            "the packaging command is not a documented one"
        );
    }

    let bash_file = s.path("usr/share/bash-completion/completions/tandemctl");
    let script = format!(
        "source '{}' && complete -p tandemctl && \
         COMP_WORDS=(tandemctl st) COMP_CWORD=1 && _tandemctl tandemctl st tandemctl && \
         echo \"first: ${{COMPREPLY[*]}}\" && \
         COMP_WORDS=(tandemctl backend dr) COMP_CWORD=2 && _tandemctl tandemctl dr backend && \
         echo \"second: ${{COMPREPLY[*]}}\"",
        bash_file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bash: {}{said}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("-F _tandemctl tandemctl"), "{said}");
    assert!(said.contains("first: status"), "tandemctl st<TAB>: {said}");
    assert!(
        said.contains("second: drain"),
        "tandemctl backend dr<TAB>: {said}"
    );
    let bash = fs::read_to_string(&bash_file).unwrap();
    assert!(
        !bash.contains("generate-docs"),
        "packaging only, not offered: {bash}"
    );
    let zsh = fs::read_to_string(s.path("usr/share/zsh/vendor-completions/_tandemctl")).unwrap();
    assert!(zsh.starts_with("#compdef tandemctl"), "{zsh}");
    let fish =
        fs::read_to_string(s.path("usr/share/fish/vendor_completions.d/tandemctl.fish")).unwrap();
    assert!(fish.contains("complete -c tandemctl"), "{fish}");
}

#[test]
fn install_idempotent_keeps_config_uninstall_purge() {
    let s = Scratch::new("cycle");

    // ---- first install -------------------------------------------------------------
    let out = s.install();
    assert!(
        out.contains("change(s)"),
        "first install reports changes:\n{out}"
    );
    let installed = installed();
    for (rel, want) in &installed {
        let path = s.path(rel);
        assert!(
            path.is_file(),
            "{} missing after install:\n{out}",
            path.display()
        );
        assert_eq!(mode(&path), *want, "mode of {rel}: {:o}", mode(&path));
    }
    assert_eq!(mode(&s.path("etc/tandem")), 0o750, "etc/tandem mode");
    assert!(
        !s.path("var/lib/tandem").exists(),
        "/var/lib/tandem is systemd's (StateDirectory=), not the installer's"
    );

    // Binaries and units are the repository's, byte for byte.
    for bin in ["tandemd", "tandemctl", "tandem-probe"] {
        assert_eq!(
            fs::read(s.path(&format!("usr/bin/{bin}"))).unwrap(),
            fs::read(s.bin_dir.join(bin)).unwrap(),
            "{bin} differs from the --bin-dir one"
        );
    }
    for unit in ["tandemd.service", "tandem-witness.service"] {
        assert_eq!(
            fs::read(s.path(&format!("lib/systemd/system/{unit}"))).unwrap(),
            fs::read(repo_root().join("systemd").join(unit)).unwrap(),
            "{unit} differs from systemd/{unit}"
        );
    }

    check_man_pages_and_completions(&s);

    // The sysctls a VIP holder needs, each explained.
    let sysctl = fs::read_to_string(s.path("etc/sysctl.d/60-tandem.conf")).unwrap();
    assert_eq!(
        sysctl_settings(&sysctl),
        [
            ("net.ipv4.ip_nonlocal_bind", "1"),
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
        "sysctl file:\n{sysctl}"
    );
    let comments = sysctl.lines().filter(|l| l.starts_with('#')).count();
    assert!(
        comments >= 8,
        "the sysctl file says why each setting is there:\n{sysctl}"
    );

    // The user and group: a system id, no home, no login shell; nothing else touched.
    let passwd = fs::read_to_string(s.path("etc/passwd")).unwrap();
    let group = fs::read_to_string(s.path("etc/group")).unwrap();
    let user =
        tandem_entry(&passwd).unwrap_or_else(|| panic!("no tandem user in etc/passwd:\n{passwd}"));
    let grp =
        tandem_entry(&group).unwrap_or_else(|| panic!("no tandem group in etc/group:\n{group}"));
    assert_eq!(grp.len(), 4, "group line {grp:?}");
    let gid = check_tandem_account(&user, &grp);
    assert_eq!(
        passwd.lines().count(),
        5,
        "one line added to passwd:\n{passwd}"
    );
    assert_eq!(
        group.lines().count(),
        5,
        "one line added to group:\n{group}"
    );
    if nix::unistd::geteuid().is_root() {
        // As root the installer sets root:tandem with the target's gid.
        for rel in ["etc/tandem", "etc/tandem/tandem.toml"] {
            let meta = fs::metadata(s.path(rel)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (0, gid), "owner of {rel}");
        }
    }

    // The skeleton is a valid config, loopback only.
    let conf = s.path("etc/tandem/tandem.toml");
    let check = Command::new(tandem_tests::tandemd_bin())
        .arg("check-config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "skeleton fails check-config:\n{}{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr),
        fs::read_to_string(&conf).unwrap()
    );
    let skeleton = fs::read_to_string(&conf).unwrap();
    for line in skeleton
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
    {
        if line.contains("bind") || line.contains("address") {
            assert!(line.contains("127.0.0.1"), "not loopback-only: {line}");
        }
    }
    assert!(
        skeleton.contains("# [[vip_group]]") && skeleton.contains("# interface = \"eth0\""),
        "the VRRP pair example is there, commented:\n{skeleton}"
    );

    // ---- second install: nothing changes, and it says so --------------------------
    let before = tree_under(&s.root);
    let out = s.install();
    assert!(
        out.contains("no changes"),
        "second install says nothing changed:\n{out}"
    );
    assert!(
        !out.contains("installed  "),
        "second install installed something:\n{out}"
    );
    assert_eq!(tree_under(&s.root), before, "second install changed files");

    // ---- the operator edits the config: kept --------------------------------------
    let edited = skeleton.replace("id = \"lb1\"", "id = \"edge-7\"") + "# the operator's\n";
    fs::write(&conf, &edited).unwrap();
    let out = s.install();
    assert!(
        out.contains("kept"),
        "install reports the operator's config kept:\n{out}"
    );
    assert!(out.contains("no changes"), "nothing else changed:\n{out}");
    assert_eq!(
        fs::read_to_string(&conf).unwrap(),
        edited,
        "operator's config overwritten"
    );

    // ---- uninstall: everything but the config ------------------------------------
    let out = s.ok(&["--uninstall"]);
    assert!(
        out.contains("removed"),
        "uninstall reports removals:\n{out}"
    );
    for (rel, _) in installed
        .iter()
        .filter(|(r, _)| r != "etc/tandem/tandem.toml")
    {
        assert!(!s.path(rel).exists(), "{rel} still there after --uninstall");
    }
    assert_eq!(
        fs::read_to_string(&conf).unwrap(),
        edited,
        "--uninstall removed the config"
    );
    let out = s.ok(&["--uninstall"]);
    assert!(
        out.contains("no changes"),
        "second --uninstall changes nothing:\n{out}"
    );

    // ---- purge: the config, the directory, the user and group too -----------------
    s.ok(&["--uninstall", "--purge"]);
    assert!(!conf.exists(), "--purge left the config");
    assert!(!s.path("etc/tandem").exists(), "--purge left etc/tandem");
    let passwd = fs::read_to_string(s.path("etc/passwd")).unwrap();
    let group = fs::read_to_string(s.path("etc/group")).unwrap();
    assert!(
        !passwd.contains("tandem:"),
        "--purge left the user:\n{passwd}"
    );
    assert!(
        !group.contains("tandem:"),
        "--purge left the group:\n{group}"
    );
    assert_eq!(
        passwd.lines().count(),
        4,
        "only tandem's line removed:\n{passwd}"
    );
    for (rel, _) in &installed {
        assert!(!s.path(rel).exists(), "{rel} still there after --purge");
    }
}

#[test]
fn refuses_clearly() {
    let s = Scratch::new("refuse");
    let bin_dir = s.bin_dir.to_str().unwrap().to_string();

    // A kernel without the VIP sysctls.
    let out = Command::new("bash")
        .arg(repo_root().join("appliance/install.sh"))
        .args(["--root", s.root.to_str().unwrap(), "--bin-dir", &bin_dir])
        .env("TANDEM_INSTALL_PROC", s.path("no-proc"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "installed on a kernel without ip_nonlocal_bind"
    );
    assert!(
        err.contains("ip_nonlocal_bind"),
        "says what is missing: {err}"
    );

    // Binaries that are not there.
    let out = s.run(&["--bin-dir", s.path("nowhere").to_str().unwrap()]);
    assert!(!out.status.success(), "installed without binaries");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));

    // Unknown options; --purge without --uninstall.
    assert!(!s.run(&["--frobnicate"]).status.success());
    assert!(!s.run(&["--purge"]).status.success());
    assert!(
        !s.path("usr/bin/tandemd").exists(),
        "a refused run installed something"
    );

    // --help works and describes the options.
    let help = s.ok(&["--help"]);
    for opt in ["--root", "--uninstall", "--purge", "--bin-dir"] {
        assert!(help.contains(opt), "--help lacks {opt}:\n{help}");
    }
}

//! The Debian package `tandem` (cargo-deb, `[package.metadata.deb]` in
//! crates/tandemd/Cargo.toml), made from the debug binaries `cargo build --workspace --bins`
//! left in target/debug (`cargo deb --no-build`, see `build_deb`): no release build.
//!
//! - `package_matches_install_sh`: the control fields, the file list with modes and owners,
//!   the conffiles, the maintainer scripts (`sh -n`, and shellcheck when installed), and
//!   every file appliance/install.sh installs is in the package with the same content and
//!   mode. Needs no root.
//! - `dpkg_install_remove_purge_in_a_scratch_root`: a real `dpkg --root DIR
//!   --force-script-chrootless` install into a scratch root with its own dpkg database
//!   (the maintainer scripts run on this host with DPKG_ROOT=DIR and touch only DIR), an
//!   edited config kept across a reinstall, remove (conffiles, user and group stay), purge
//!   (nothing of tandem left), and this host's passwd, group and dpkg log unchanged.
//!   Needs root (useradd --prefix, chown); it does not skip.
//!
//! Needs cargo-deb (`.ci/run --deps-only` installs it) and dpkg-deb.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tandem_tests::appliance_install::{
    bin_dir, check_tandem_account, files_under, generated_docs, installed, mode, tandem_entry,
    tree_under, BASE_GROUP, BASE_PASSWD,
};
use tandem_tests::{repo_root, TempDir};

fn show(cmd: &str, out: &Output) -> String {
    format!(
        "$ {cmd} ({})\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command that must succeed; returns its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let line = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {line}: {e}"));
    eprintln!("{}", show(&line, &out));
    assert!(out.status.success(), "failed:\n{}", show(&line, &out));
    String::from_utf8(out.stdout).unwrap()
}

/// `cargo deb` into `out`; returns the path of the .deb.
///
/// cargo-deb packages `target/release/…` of the target directory `cargo metadata` names.
/// Its `--profile dev` reads target/debug instead, but it warns that this will become an
/// error, strips the binaries (it sees no debug setting for dev), and stages the stripped
/// copies in target/tandemd/ and deletes target/debian/tandem_*.deb, so two runs at once
/// race. Instead it gets a private CARGO_TARGET_DIR whose release/ holds symlinks to the
/// debug binaries: a plain `cargo deb --no-build`, the release settings (not stripped, as
/// with `debug = "line-tables-only"`), and nothing written outside `out`.
fn build_deb(out: &TempDir) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let version = Command::new(&cargo).args(["deb", "--version"]).output();
    assert!(
        matches!(&version, Ok(v) if v.status.success()),
        "cargo-deb is missing (`cargo deb --version` failed: {}): run .ci/run --deps-only, \
         which installs it with `cargo install cargo-deb --locked`",
        match &version {
            Ok(v) => String::from_utf8_lossy(&v.stderr).into_owned(),
            Err(e) => e.to_string(),
        }
    );
    let target = out.path("target");
    fs::create_dir_all(target.join("release")).unwrap();
    for bin in ["tandemd", "tandemctl", "tandem-probe"] {
        std::os::unix::fs::symlink(bin_dir().join(bin), target.join("release").join(bin)).unwrap();
    }
    // The man pages (gzipped) and completions, by the script build-deb.sh runs.
    run_ok(
        Command::new("bash")
            .arg(repo_root().join("appliance/package-docs.sh"))
            .arg(bin_dir())
            .arg(target.join("release/share")),
    );
    let debs = out.path("debs");
    fs::create_dir_all(&debs).unwrap();
    run_ok(
        Command::new(&cargo)
            .current_dir(repo_root())
            .env("CARGO_TARGET_DIR", &target)
            .args(["deb", "-p", "tandemd", "--no-build", "--locked", "--fast"])
            .arg("--output")
            .arg(&debs),
    );
    let found: Vec<PathBuf> = fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(found.len(), 1, "one .deb in {}: {found:?}", debs.display());
    found.into_iter().next().unwrap()
}

/// Where the package has what install.sh installs at `rel`: man pages are gzipped in the
/// package (Debian policy), plain from install.sh.
fn in_deb(rel: &Path) -> PathBuf {
    if rel.starts_with("usr/share/man") {
        let mut name = rel.as_os_str().to_owned();
        name.push(".gz");
        PathBuf::from(name)
    } else {
        rel.to_path_buf()
    }
}

/// The page in a gzip file made the way Debian policy asks (`gzip -9n`): best compression
/// (XFL 2), no time stamp and no file name, so a rebuild gives the same bytes.
fn gunzip_policy(gz: &[u8], rel: &Path) -> Vec<u8> {
    let what = rel.display();
    assert!(
        gz.len() > 10 && gz[..3] == [0x1f, 0x8b, 8],
        "{what}.gz is not gzip"
    );
    assert_eq!(
        gz[3] & 0x08,
        0,
        "{what}.gz keeps a file name (gzip without -n)"
    );
    assert_eq!(
        gz[4..8],
        [0, 0, 0, 0],
        "{what}.gz has a time stamp (gzip without -n)"
    );
    assert_eq!(gz[8], 2, "{what}.gz is not at -9");
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(gz).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip -dc {what}.gz: {}", out.status);
    out.stdout
}

/// Every path (files and directories) under `root`, relative.
fn paths_under(root: &Path) -> BTreeSet<PathBuf> {
    tree_under(root).into_keys().collect()
}

const CONFFILES: [&str; 2] = ["/etc/sysctl.d/60-tandem.conf", "/etc/tandem/tandem.toml"];

/// One line of `dpkg-deb -c`: mode string, owner/group, path (without the leading ".").
fn parse_contents(listing: &str) -> BTreeMap<String, (String, String)> {
    listing
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(f.len() >= 6, "dpkg-deb -c line: {line}");
            let path = f[5].trim_start_matches('.').to_string();
            (path, (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

#[test]
fn package_matches_install_sh() {
    let out = TempDir::new();
    let deb = build_deb(&out);

    // ---- control fields ------------------------------------------------------------
    let field = |name: &str| {
        run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "tandem");
    assert_eq!(
        field("Version"),
        format!("{}-1", env!("CARGO_PKG_VERSION")),
        "the workspace version, Debian revision 1"
    );
    let arch = run_ok(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field("Architecture"), arch.trim());
    assert_eq!(field("Section"), "net");
    assert!(field("Maintainer").contains('@'), "a maintainer address");
    let depends = field("Depends");
    let names: Vec<&str> = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(
        names.contains(&"libc6"),
        "Depends names libc6 (cargo-deb's $auto needs dpkg-shlibdeps from dpkg-dev): {depends}"
    );
    assert!(
        names.contains(&"passwd"),
        "Depends names passwd (useradd): {depends}"
    );
    assert_eq!(field("Recommends"), "systemd");
    let description = field("Description");
    assert!(
        description.contains("VRRP") && description.contains("neither enabled nor started"),
        "description:\n{description}"
    );

    // ---- the file list: where, which modes, owned by root ----------------------------
    let listing = parse_contents(&run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    for (path, (mode, owner)) in &listing {
        assert!(
            owner == "0/0" || owner == "root/root",
            "owner of {path}: {owner}"
        );
        let allowed = [
            "/usr/bin/",
            "/lib/systemd/system/",
            "/etc/sysctl.d/",
            "/etc/tandem/",
            "/usr/share/doc/tandem/",
            "/usr/share/man/man1/tandem",
            "/usr/share/bash-completion/completions/tandem",
            "/usr/share/zsh/vendor-completions/_tandem",
            "/usr/share/fish/vendor_completions.d/tandem",
        ];
        assert!(
            mode.starts_with('d') || allowed.iter().any(|a| path.starts_with(a)),
            "{path} is outside what the package should install"
        );
    }
    let installed = installed();
    for (rel, want) in &installed {
        let (mode, _) = listing
            .get(&format!("/{}", in_deb(Path::new(rel)).display()))
            .unwrap_or_else(|| panic!("/{rel} is not in the package: {listing:#?}"));
        let want = format!(
            "-{}",
            (0..9)
                .map(|i| if want & (0o400 >> i) != 0 {
                    ['r', 'w', 'x'][i % 3]
                } else {
                    '-'
                })
                .collect::<String>()
        );
        assert_eq!(mode, &want, "mode of /{rel}");
    }
    let docs = generated_docs();
    for page in [
        "usr/share/man/man1/tandemd.1",
        "usr/share/man/man1/tandemctl-backend-drain.1",
    ] {
        assert!(
            docs.iter().any(|d| d == page),
            "{page} is generated: {docs:?}"
        );
    }
    for doc in [
        "/usr/share/doc/tandem/copyright",
        "/usr/share/doc/tandem/README.md",
        "/usr/share/doc/tandem/operations.md",
        "/usr/share/doc/tandem/config.md",
        "/usr/share/doc/tandem/examples/vrrp-pair.toml",
        "/usr/share/doc/tandem/examples/witness.toml",
    ] {
        assert!(listing.contains_key(doc), "{doc} is not in the package");
    }
    let examples: BTreeSet<String> = listing
        .keys()
        .filter_map(|p| p.strip_prefix("/usr/share/doc/tandem/examples/"))
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    let config: BTreeSet<String> = fs::read_dir(repo_root().join("config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    assert_eq!(
        examples, config,
        "every config/ example is in /usr/share/doc/tandem/examples"
    );
    assert!(
        !listing.keys().any(|p| p.starts_with("/var/")),
        "/var/lib/tandem is systemd's (StateDirectory=), not the package's"
    );

    // ---- control area: conffiles and maintainer scripts -------------------------------
    let control = out.path("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(
        conffiles.lines().collect::<BTreeSet<_>>(),
        CONFFILES.into_iter().collect(),
        "conffiles"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        assert_eq!(
            fs::read(&path).unwrap(),
            fs::read(repo_root().join("appliance/debian").join(script)).unwrap(),
            "{script} is appliance/debian/{script}"
        );
        assert_eq!(mode(&path) & 0o777, 0o755, "mode of {script}");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{script}: #!/bin/sh");
        run_ok(Command::new("sh").arg("-n").arg(&path));
        if Command::new("shellcheck").arg("--version").output().is_ok() {
            run_ok(Command::new("shellcheck").arg(&path));
        }
    }

    // ---- the same files as install.sh ------------------------------------------------
    let extracted = out.path("extracted");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted));
    let from_deb = files_under(&extracted);
    let scratch = out.path("install-sh");
    fs::create_dir_all(&scratch).unwrap();
    run_ok(
        Command::new("bash")
            .arg(repo_root().join("appliance/install.sh"))
            .arg("--root")
            .arg(&scratch)
            .arg("--bin-dir")
            .arg(bin_dir())
            .env_remove("PREFIX"),
    );
    let from_script = files_under(&scratch);
    assert_eq!(
        from_script.keys().cloned().collect::<BTreeSet<_>>(),
        installed
            .iter()
            .map(|(rel, _)| PathBuf::from(rel))
            .collect(),
        "install.sh installs what installed() (tests/support/appliance_install.rs) lists"
    );
    let mut pages = 0;
    for (rel, (script_mode, script_content)) in &from_script {
        let (deb_mode, deb_content) = from_deb.get(&in_deb(rel)).unwrap_or_else(|| {
            panic!(
                "install.sh installs {} but the package lacks it",
                rel.display()
            )
        });
        assert_eq!(deb_mode, script_mode, "mode of {}", rel.display());
        let deb_content = if in_deb(rel) == *rel {
            deb_content.clone()
        } else {
            pages += 1;
            gunzip_policy(deb_content, rel)
        };
        assert!(
            deb_content == *script_content,
            "{} differs between the package and install.sh",
            rel.display()
        );
    }
    assert!(pages >= 2, "man pages compared: {pages}");
    let plain: Vec<&PathBuf> = from_deb
        .keys()
        .filter(|p| p.starts_with("usr/share/man") && p.extension().is_none_or(|e| e != "gz"))
        .collect();
    assert!(
        plain.is_empty(),
        "uncompressed man pages in the package: {plain:?}"
    );
    for unit in ["tandemd.service", "tandem-witness.service"] {
        assert_eq!(
            from_deb[&Path::new("lib/systemd/system").join(unit)].1,
            fs::read(repo_root().join("systemd").join(unit)).unwrap(),
            "{unit} is systemd/{unit}"
        );
    }
    for bin in ["tandemd", "tandemctl", "tandem-probe"] {
        assert!(
            from_deb[&Path::new("usr/bin").join(bin)].1 == fs::read(bin_dir().join(bin)).unwrap(),
            "{bin} is target/debug/{bin}, unstripped"
        );
    }
}

/// A scratch root with etc/{passwd,group,shadow,gshadow} and an empty dpkg database that
/// knows the package's dependencies (their stanzas copied from this host's database).
struct Root {
    dir: TempDir,
}

const ROOT_FILES: [(&str, &str, u32); 4] = [
    ("etc/passwd", BASE_PASSWD, 0o644),
    ("etc/group", BASE_GROUP, 0o644),
    (
        "etc/shadow",
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n\
         systemd-network:!*:19000::::::\nnobody:*:19000:0:99999:7:::\n",
        0o640,
    ),
    (
        "etc/gshadow",
        "root:*::\ndaemon:*::\nsystemd-network:!*::\nnogroup:*::\n",
        0o640,
    ),
];

impl Root {
    fn new(deb: &Path) -> Self {
        let dir = TempDir::new();
        fs::create_dir_all(dir.path("etc")).unwrap();
        for (rel, text, mode) in ROOT_FILES {
            fs::write(dir.path(rel), text).unwrap();
            fs::set_permissions(dir.path(rel), fs::Permissions::from_mode(mode)).unwrap();
        }
        let db = dir.path("var/lib/dpkg");
        for sub in ["info", "updates", "triggers"] {
            fs::create_dir_all(db.join(sub)).unwrap();
        }
        fs::write(db.join("available"), "").unwrap();
        let depends = run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Depends"));
        let mut status = String::new();
        for dep in depends.split(',') {
            let name = dep.split_whitespace().next().unwrap();
            let stanza = run_ok(Command::new("dpkg-query").args(["-s", name]));
            status.push_str(stanza.trim_end());
            status.push_str("\n\n");
            fs::write(db.join("info").join(format!("{name}.list")), "").unwrap();
        }
        fs::write(db.join("status"), status).unwrap();
        Root { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path(rel)
    }

    /// dpkg on the scratch root: maintainer scripts run here with DPKG_ROOT set, the log
    /// goes into the scratch directory (by default dpkg appends to this host's log).
    fn dpkg(&self, args: &[&std::ffi::OsStr]) -> String {
        run_ok(
            Command::new("dpkg")
                .arg(format!("--root={}", self.dir.root().display()))
                .arg(format!("--log={}", self.path("dpkg.log").display()))
                .arg("--force-script-chrootless")
                .args(args)
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ),
        )
    }

    fn status(&self) -> String {
        let out = Command::new("dpkg-query")
            .arg(format!("--root={}", self.dir.root().display()))
            .args(["-W", "-f=${Status}", "tandem"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The tandem line of etc/passwd or etc/group, split at ':'.
    fn entry(&self, file: &str) -> Option<Vec<String>> {
        tandem_entry(&fs::read_to_string(self.path(file)).unwrap())
    }
}

#[test]
fn dpkg_install_remove_purge_in_a_scratch_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test installs the package with dpkg --root into a scratch root; the \
         maintainer scripts chown files and run useradd --prefix, which need root; run it \
         as root (CI does). It does not skip, and it changes nothing outside its scratch root."
    );
    let out = TempDir::new();
    let deb = build_deb(&out);
    let root = Root::new(&deb);
    let host = [
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
        "/var/log/dpkg.log",
    ]
    .map(|p| (p, fs::read(p).ok()));
    let before = paths_under(root.dir.root());
    let before_files: Vec<Vec<u8>> = ROOT_FILES
        .iter()
        .map(|(rel, ..)| fs::read(root.path(rel)).unwrap())
        .collect();

    // ---- install ---------------------------------------------------------------------
    root.dpkg(&["-i".as_ref(), deb.as_os_str()]);
    assert_eq!(root.status(), "install ok installed");
    // install.sh's list, with the package's gzipped man pages.
    let installed: Vec<(String, u32)> = installed()
        .into_iter()
        .map(|(rel, mode)| (in_deb(Path::new(&rel)).display().to_string(), mode))
        .collect();
    for (rel, want) in &installed {
        let path = root.path(rel);
        assert!(path.is_file(), "{rel} missing after dpkg -i");
        assert_eq!(mode(&path), *want, "mode of {rel}: {:o}", mode(&path));
    }
    let user = root
        .entry("etc/passwd")
        .expect("no tandem user in etc/passwd");
    let group = root
        .entry("etc/group")
        .expect("no tandem group in etc/group");
    let gid = check_tandem_account(&user, &group);
    assert!(
        root.entry("etc/shadow").is_some() && root.entry("etc/gshadow").is_some(),
        "useradd --prefix wrote the shadow files too"
    );
    for (rel, want) in [("etc/tandem", 0o750), ("etc/tandem/tandem.toml", 0o640)] {
        let meta = fs::metadata(root.path(rel)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, gid), "owner of {rel}");
        assert_eq!(mode(&root.path(rel)), want, "mode of {rel}");
    }
    for unit in ["tandemd.service", "tandem-witness.service"] {
        assert!(
            !root
                .path("etc/systemd/system/multi-user.target.wants")
                .join(unit)
                .exists(),
            "{unit} enabled by the install"
        );
    }
    let check = Command::new(tandem_tests::tandemd_bin())
        .arg("check-config")
        .arg(root.path("etc/tandem/tandem.toml"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", show("check-config", &check));
    let listed: BTreeSet<String> = run_ok(
        Command::new("dpkg-query")
            .arg(format!("--root={}", root.dir.root().display()))
            .args(["-L", "tandem"]),
    )
    .lines()
    .map(str::to_string)
    .collect();
    for (rel, _) in &installed {
        assert!(listed.contains(&format!("/{rel}")), "dpkg -L lacks /{rel}");
    }

    // ---- the operator edits the config and enables the node; a reinstall keeps both ----
    let conf = root.path("etc/tandem/tandem.toml");
    let edited = fs::read_to_string(&conf)
        .unwrap()
        .replace("id = \"lb1\"", "id = \"edge-7\"")
        + "# the operator's\n";
    fs::write(&conf, &edited).unwrap();
    let systemctl = Command::new("systemctl").arg("--version").output();
    assert!(
        systemctl.is_ok(),
        "systemctl is missing: run .ci/run --deps-only (it installs systemd)"
    );
    run_ok(
        Command::new("systemctl")
            .arg(format!("--root={}", root.dir.root().display()))
            .args(["enable", "tandemd.service"]),
    );
    let wants = root.path("etc/systemd/system/multi-user.target.wants/tandemd.service");
    assert!(
        fs::symlink_metadata(&wants).is_ok(),
        "systemctl --root enable"
    );
    root.dpkg(&["-i".as_ref(), deb.as_os_str()]);
    assert_eq!(
        fs::read_to_string(&conf).unwrap(),
        edited,
        "config overwritten"
    );
    assert_eq!(
        fs::metadata(&conf).unwrap().gid(),
        gid,
        "config group after reinstall"
    );
    assert!(
        fs::symlink_metadata(&wants).is_ok(),
        "reinstall disabled tandemd"
    );
    assert_eq!(
        root.entry("etc/passwd").unwrap(),
        user,
        "reinstall changed the user"
    );

    // State systemd would have made (StateDirectory=).
    for dir in ["var/lib/tandem", "var/lib/tandem-witness"] {
        fs::create_dir_all(root.path(dir)).unwrap();
        fs::write(root.path(dir).join("raft.redb"), "state").unwrap();
    }

    // ---- remove: conffiles, state, user and group stay; units disabled ------------------
    root.dpkg(&["-r".as_ref(), "tandem".as_ref()]);
    assert_eq!(root.status(), "deinstall ok config-files");
    for (rel, _) in &installed {
        let kept = CONFFILES.contains(&format!("/{rel}").as_str());
        assert_eq!(
            root.path(rel).exists(),
            kept,
            "{rel} after dpkg -r (conffiles stay until purge)"
        );
    }
    assert_eq!(
        fs::read_to_string(&conf).unwrap(),
        edited,
        "dpkg -r changed the config"
    );
    assert!(
        fs::symlink_metadata(&wants).is_err(),
        "dpkg -r left tandemd enabled"
    );
    assert!(
        root.path("var/lib/tandem/raft.redb").exists(),
        "dpkg -r removed state"
    );
    assert!(
        root.entry("etc/passwd").is_some(),
        "dpkg -r removed the user"
    );
    assert!(
        root.entry("etc/group").is_some(),
        "dpkg -r removed the group"
    );

    // ---- purge: nothing of tandem left ------------------------------------------------
    root.dpkg(&["-P".as_ref(), "tandem".as_ref()]);
    assert_eq!(
        root.status(),
        "",
        "dpkg -P left the package in the database"
    );
    for (i, (rel, ..)) in ROOT_FILES.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(root.path(rel)).unwrap(),
            String::from_utf8_lossy(&before_files[i]),
            "{rel} after purge is as before the install"
        );
    }
    // What is new since before the install: dpkg's own database and log, the shadow tools'
    // backups (etc/passwd- ...), and the directories `systemctl enable` made above.
    let left: Vec<PathBuf> = paths_under(root.dir.root())
        .difference(&before)
        .filter(|p| {
            !(p.starts_with("var/lib/dpkg")
                || p.starts_with("etc/systemd")
                || *p == Path::new("dpkg.log")
                || p.to_str()
                    .is_some_and(|s| s.starts_with("etc/") && s.ends_with('-')))
        })
        .cloned()
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    assert!(
        fs::symlink_metadata(&wants).is_err(),
        "the enablement symlink is left after purge"
    );

    // ---- this host: untouched --------------------------------------------------------------
    for (path, content) in host {
        assert!(
            fs::read(path).ok() == content,
            "{path} on this host changed"
        );
    }
}

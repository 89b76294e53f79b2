//! What appliance/install.sh and the Debian package put on a machine, and how a test looks
//! at it: the one list of installed files and modes, the accounts a scratch root starts
//! with, the checks on the `tandem` user and group, and file tree snapshots. Shared by
//! tests/packaging/install_script.rs and tests/packaging/debian_package.rs, so the two install paths are held
//! to the same list and the same checks.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every file install.sh installs (and the package ships outside /usr/share/doc), relative
/// to the root, with its mode.
pub const INSTALLED: [(&str, u32); 7] = [
    ("usr/bin/tandemd", 0o755),
    ("usr/bin/tandemctl", 0o755),
    ("usr/bin/tandem-probe", 0o755),
    ("lib/systemd/system/tandemd.service", 0o644),
    ("lib/systemd/system/tandem-witness.service", 0o644),
    ("etc/sysctl.d/60-tandem.conf", 0o644),
    ("etc/tandem/tandem.toml", 0o640),
];

/// Every file install.sh installs and the package ships outside /usr/share/doc: [`INSTALLED`]
/// and the man pages and completions that the binaries in [`bin_dir`] generate (their
/// `generate-docs`), under usr/share, mode 0644.
pub fn installed() -> Vec<(String, u32)> {
    let mut all: Vec<(String, u32)> = INSTALLED
        .iter()
        .map(|(rel, mode)| (rel.to_string(), *mode))
        .collect();
    all.extend(generated_docs().into_iter().map(|rel| (rel, 0o644)));
    all
}

/// The man pages and completions of tandemd and tandemctl, as paths under the root
/// (`usr/share/...`), from running their `generate-docs` into a scratch directory.
pub fn generated_docs() -> Vec<String> {
    // One directory per call: tests in one binary run this at the same time.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tandem-docs-{}-{call}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    generate_docs(&dir);
    let docs: Vec<String> = files_under(&dir)
        .into_keys()
        .map(|rel| format!("usr/share/{}", rel.display()))
        .collect();
    fs::remove_dir_all(&dir).unwrap();
    docs
}

/// Has the debug tandemd and tandemctl write their man pages and completions under `dir`
/// (`generate-docs`, the layout of /usr/share), as install.sh and build-deb.sh do.
pub fn generate_docs(dir: &Path) {
    for bin in ["tandemd", "tandemctl"] {
        let out = std::process::Command::new(bin_dir().join(bin))
            .arg("generate-docs")
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("{bin} generate-docs: {e}"));
        assert!(
            out.status.success(),
            "{bin} generate-docs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// etc/passwd of a scratch root: a few Debian system accounts, with gid 998 taken so a
/// test sees that the installer picks a free id.
pub const BASE_PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
     daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
     systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n\
     nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

/// etc/group to go with [`BASE_PASSWD`].
pub const BASE_GROUP: &str = "root:x:0:\ndaemon:x:1:\nsystemd-network:x:998:\nnogroup:x:65534:\n";

/// The directory of the debug binaries (target/debug) that install.sh and cargo-deb take;
/// asserts that the ones besides tandemd were built too.
pub fn bin_dir() -> PathBuf {
    let dir = crate::tandemd_bin()
        .parent()
        .expect("target/debug")
        .to_path_buf();
    for bin in ["tandemctl", "tandem-probe"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: build it first with `cargo build --workspace --bins`",
            dir.join(bin).display()
        );
    }
    dir
}

/// The permission bits of `path` itself (a symlink is not followed).
pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The `tandem` line of a passwd, group or shadow file's text, split at ':'.
pub fn tandem_entry(text: &str) -> Option<Vec<String>> {
    text.lines()
        .find(|l| l.starts_with("tandem:"))
        .map(|l| l.split(':').map(str::to_string).collect())
}

/// Checks the `tandem` passwd and group lines an installer added: system ids (not the
/// taken 998), tandem as the primary group, no home and no login shell. Returns the gid,
/// for the owner checks that follow.
pub fn check_tandem_account(user: &[String], group: &[String]) -> u32 {
    assert_eq!(user.len(), 7, "passwd line {user:?}");
    let uid: u32 = user[2].parse().unwrap();
    let gid: u32 = group[2].parse().unwrap();
    assert!((100..1000).contains(&uid), "system uid, got {uid}");
    assert!((100..1000).contains(&gid), "system gid, got {gid}");
    assert_ne!(gid, 998, "gid 998 is taken by systemd-network");
    assert_eq!(user[3], group[2], "the user's primary group is tandem");
    assert_eq!(user[5], "/nonexistent", "no home");
    assert_eq!(user[6], "/usr/sbin/nologin", "no login shell");
    gid
}

/// One path under a snapshot's root: its mode and, for a file its bytes, for a symlink
/// its target; a directory has no content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub is_dir: bool,
    pub mode: u32,
    pub content: Vec<u8>,
}

/// Every file, symlink and directory under `root`, by path relative to it: enough to see
/// that a second run changed nothing, or that two installs put the same files down.
pub fn tree_under(root: &Path) -> BTreeMap<PathBuf, TreeEntry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, TreeEntry>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_dir() {
                walk(root, &path, out);
                Vec::new()
            } else if meta.is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                fs::read(&path).unwrap()
            };
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let entry = TreeEntry {
                is_dir: meta.is_dir(),
                mode: meta.permissions().mode() & 0o7777,
                content,
            };
            out.insert(rel, entry);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The files and symlinks under `root` (no directories), by relative path: mode, content.
pub fn files_under(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    tree_under(root)
        .into_iter()
        .filter(|(_, e)| !e.is_dir)
        .map(|(rel, e)| (rel, (e.mode, e.content)))
        .collect()
}

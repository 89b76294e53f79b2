//! Every example config in config/ is valid, and `tandemd check-config` agrees.

use std::path::PathBuf;
use std::process::Command;
use tandem_tests::http_kit::TestCa;
use tandem_tests::tandemd_bin;
use tandem_tests::TempDir;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Examples name certificates under /etc/tandem/tls/. The test makes real ones (from a
/// test CA) in a scratch directory and points a copy of the example there, so check-config
/// really reads, matches and dates them.
fn with_test_certificates(text: &str, dir: &TempDir, ca: &TestCa) -> String {
    const PREFIX: &str = "/etc/tandem/tls/";
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let tail = &rest[at + PREFIX.len()..];
        let end = tail.find('"').expect("a quoted path");
        let file = &tail[..end];
        rest = &tail[end..];
        if dir.path(file).exists() {
            continue;
        }
        if file.ends_with("ca.pem") {
            dir.write(file, &ca.cert_pem);
            continue;
        }
        let stem = file.trim_end_matches(".pem").trim_end_matches(".key");
        let name = stem.replacen("wildcard.", "*.", 1);
        ca.leaf(dir, stem, &name, &[name.as_str()]);
    }
    let scratch = dir.path("");
    text.replace(
        PREFIX,
        &format!("{}/", scratch.display().to_string().trim_end_matches('/')),
    )
}

#[test]
fn every_example_config_is_valid() {
    let files = examples();
    assert!(files.len() >= 10, "config/ holds the examples: {files:?}");
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "examples");
    // Cluster examples read their cluster certificates (tandemctl cluster init) from
    // /etc/tandem/cluster: made for real in the scratch dir.
    let pki = dir.path("cluster");
    let init = Command::new(tandemd_bin().with_file_name("tandemctl"))
        .args([
            "cluster",
            "init",
            "--dir",
            pki.to_str().unwrap(),
            "lb1",
            "lb2",
            "witness",
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for path in files {
        let original = std::fs::read_to_string(&path).unwrap();
        let text = with_test_certificates(&original, &dir, &ca)
            .replace("/etc/tandem/cluster", pki.to_str().unwrap());
        let copy = dir.write(path.file_name().unwrap().to_str().unwrap(), &text);
        if let Err(e) = tandem_config::load(&copy) {
            panic!("{}: {e}", path.display());
        }
        let out = Command::new(tandemd_bin())
            .arg("check-config")
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_demo_config_is_valid() {
    let backends: Vec<_> = (1..=3)
        .map(|i| {
            (
                format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                format!("127.0.0.1:{}", 9100 + i).parse().unwrap(),
            )
        })
        .collect();
    let text = tandemd::demo::config_text(tandemd::demo::Ports::default(), &backends);
    let cfg = tandem_config::parse(&text, "demo").unwrap();
    let protocols: Vec<_> = cfg.cluster.listeners.iter().map(|l| l.protocol).collect();
    use tandem_config::Protocol;
    assert_eq!(protocols, [Protocol::Tcp, Protocol::Http, Protocol::Udp]);
    assert_eq!(cfg.cluster.pools[0].backends.len(), 3);
}

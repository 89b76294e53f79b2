//! Every example config in config/ is valid, and `tandemd check-config` agrees.

use std::path::PathBuf;
use std::process::Command;
use tandem_tests::tandemd_bin;

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

#[test]
fn every_example_config_is_valid() {
    let files = examples();
    assert!(files.len() >= 5, "config/ holds the examples: {files:?}");
    for path in files {
        if let Err(e) = tandem_config::load(&path) {
            panic!("{e}");
        }
        let out = Command::new(tandemd_bin())
            .arg("check-config")
            .arg(&path)
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
    let text = tandemd::demo::config_text(8080, 8053, &backends);
    let cfg = tandem_config::parse(&text, "demo").unwrap();
    assert_eq!(cfg.cluster.listeners.len(), 2);
    assert_eq!(cfg.cluster.pools[0].backends.len(), 3);
}

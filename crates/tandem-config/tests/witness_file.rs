//! `tandemd witness --config FILE` reads FILE as a witness's: no listener needed, and no
//! `role = "witness"` line either; a file that cannot be a witness's is refused clearly.

use std::path::PathBuf;

use tandem_config::cluster::Role;

/// A config file in the system temp dir, removed when dropped.
struct File(PathBuf);

impl File {
    fn new(name: &str, text: &str) -> File {
        let path =
            std::env::temp_dir().join(format!("tandem-witness-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write a temp config");
        File(path)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const NODE: &str = r#"
[node]
id = "witness"

[node.cluster]
raft_id = 3
listen = "127.0.0.1:7300"
cert_dir = "/etc/tandem/cluster"
"#;

#[test]
fn a_witness_file_needs_no_listener_and_no_role_line() {
    let file = File::new("plain", NODE);
    let as_node = tandem_config::load(&file.0).expect_err("a node needs a listener");
    assert!(as_node.to_string().contains("listener"), "{as_node}");

    let config = tandem_config::load_witness(&file.0).expect("valid as a witness");
    assert_eq!(config.node.cluster.expect("cluster").role, Role::Witness);
}

#[test]
fn a_witness_file_without_cluster_or_with_vrrp_is_refused() {
    let file = File::new("no-cluster", "[node]\nid = \"witness\"\n");
    let e = tandem_config::load_witness(&file.0).expect_err("no [node.cluster]");
    assert!(
        e.to_string().contains("a witness needs [node.cluster]"),
        "{e}"
    );

    let vrrp = format!("{NODE}\n[node.vrrp]\ninterface = \"eth0\"\n");
    let file = File::new("vrrp", &vrrp);
    let e = tandem_config::load_witness(&file.0).expect_err("a witness holds no VIP");
    assert!(e.to_string().contains("a witness holds no VIP"), "{e}");
}

//! The cluster PKI: files and modes, what the certificates say (checked with the same
//! webpki verifiers the transport uses), and refusing to replace a CA.

#[path = "raft_support/temp.rs"]
mod temp;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::ServerName;
use rustls_pki_types::UnixTime;
use tandem_cluster::transport::init_cluster_pki;
use tandem_cluster::transport::init_cluster_pki_with;
use tandem_cluster::transport::ClusterTls;
use tandem_cluster::transport::ClusterTlsError;
use tandem_cluster::transport::NodeFiles;
use tandem_cluster::transport::PkiError;
use tandem_cluster::transport::PkiOptions;
use tandem_tls::rustls::client::danger::ServerCertVerifier;
use tandem_tls::rustls::client::WebPkiServerVerifier;
use tandem_tls::rustls::crypto::ring;
use tandem_tls::rustls::server::WebPkiClientVerifier;
use tandem_tls::rustls::CertificateError;
use tandem_tls::rustls::Error as TlsError;
use tandem_tls::rustls::RootCertStore;
use temp::TempDir;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("a PEM certificate")
}

fn roots(ca: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(cert(ca)).expect("the CA is a usable root");
    Arc::new(roots)
}

/// Checks `leaf` as the transport's client does (server auth, for `name`) and as its server
/// does (client auth), against `ca` alone.
fn verify(ca: &Path, leaf: &Path, name: &str) -> Result<(), TlsError> {
    let provider = Arc::new(ring::default_provider());
    let leaf = cert(leaf);
    let as_server = WebPkiServerVerifier::builder_with_provider(roots(ca), provider.clone())
        .build()
        .unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    as_server.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())?;
    let as_client = WebPkiClientVerifier::builder_with_provider(roots(ca), provider)
        .build()
        .unwrap();
    as_client.verify_client_cert(&leaf, &[], UnixTime::now())?;
    Ok(())
}

#[test]
fn pki_writes_the_ca_and_node_files_with_private_keys_0600() {
    let temp = TempDir::new("pki-files");
    let dir = temp.path().join("cluster");
    let pki = init_cluster_pki(&dir, &names(&["node-a", "node-b", "witness"])).unwrap();

    assert_eq!(mode(&dir), 0o700, "a dir created for the CA key is private");
    assert_eq!(pki.ca_cert, dir.join("ca.pem"));
    assert_eq!(pki.ca_key, dir.join("ca.key"));
    assert_eq!(mode(&pki.ca_cert), 0o644);
    assert_eq!(mode(&pki.ca_key), 0o600);
    let written: Vec<&str> = pki.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(written, ["node-a", "node-b", "witness"]);
    for node in &pki.nodes {
        assert_eq!(node.cert, dir.join(format!("{}.pem", node.name)));
        assert_eq!(node.key, dir.join(format!("{}.key", node.name)));
        assert_eq!(mode(&node.cert), 0o644, "{}", node.cert.display());
        assert_eq!(mode(&node.key), 0o600, "{}", node.key.display());
        let key = std::fs::read_to_string(&node.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let expected = [
        "ca.key",
        "ca.pem",
        "node-a.key",
        "node-a.pem",
        "node-b.key",
        "node-b.pem",
        "witness.key",
        "witness.pem",
    ];
    assert_eq!(files, expected);
}

#[test]
fn pki_leaves_are_signed_by_the_ca_for_their_own_name_and_both_uses() {
    let temp = TempDir::new("pki-verify");
    let pki = init_cluster_pki(temp.path(), &names(&["node-a", "node-b", "192.0.2.7"])).unwrap();
    for node in &pki.nodes {
        verify(&pki.ca_cert, &node.cert, &node.name)
            .unwrap_or_else(|e| panic!("{} verifies: {e}", node.name));
    }
    // The name is what the client checks: node-a's certificate does not pass for node-b.
    let wrong_name = verify(&pki.ca_cert, &pki.nodes[0].cert, "node-b").unwrap_err();
    assert!(
        matches!(
            wrong_name,
            TlsError::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "{wrong_name:?}"
    );
    // Another cluster's CA does not vouch for these nodes.
    let other = TempDir::new("pki-verify-other");
    let other_pki = init_cluster_pki(other.path(), &names(&["node-a"])).unwrap();
    let foreign = verify(&other_pki.ca_cert, &pki.nodes[0].cert, "node-a").unwrap_err();
    assert_eq!(
        foreign,
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer)
    );

    // What a node loads at start-up: its own files pass, a mix of two clusters' does not.
    ClusterTls::from_dir(temp.path(), "node-b").expect("node-b's files load");
    let mixed = ClusterTls::load(&pki.ca_cert, &other_pki.nodes[0].spec()).unwrap_err();
    assert!(
        matches!(mixed, ClusterTlsError::NotFromCa { .. }),
        "{mixed}"
    );
    assert!(mixed
        .to_string()
        .contains("is not a certificate of the cluster CA"));
}

#[test]
fn pki_refuses_to_replace_an_existing_ca_unless_forced() {
    let temp = TempDir::new("pki-again");
    let first = init_cluster_pki(temp.path(), &names(&["node-a"])).unwrap();
    let ca_before = std::fs::read(&first.ca_cert).unwrap();
    let key_before = std::fs::read(&first.ca_key).unwrap();

    let again = init_cluster_pki(temp.path(), &names(&["node-b"])).unwrap_err();
    assert!(
        matches!(&again, PkiError::Exists(p) if p == &first.ca_cert),
        "{again}"
    );
    assert!(again.to_string().contains("--force"), "{again}");
    assert_eq!(std::fs::read(&first.ca_cert).unwrap(), ca_before);
    assert_eq!(std::fs::read(&first.ca_key).unwrap(), key_before);
    assert!(!NodeFiles::in_dir(temp.path(), "node-b").cert.exists());

    // A node's files are protected too, even without a CA next to them.
    std::fs::remove_file(&first.ca_cert).unwrap();
    std::fs::remove_file(&first.ca_key).unwrap();
    let node = init_cluster_pki(temp.path(), &names(&["node-a"])).unwrap_err();
    assert!(matches!(node, PkiError::Exists(p) if p.ends_with("node-a.pem")));

    // Forced: a new CA, and keys still 0600 even where the old file was wider.
    std::fs::set_permissions(&first.nodes[0].key, PermissionsExt::from_mode(0o644)).unwrap();
    let forced =
        init_cluster_pki_with(temp.path(), &names(&["node-a"]), PkiOptions { force: true })
            .unwrap();
    assert_ne!(std::fs::read(&forced.ca_key).unwrap(), key_before);
    assert_eq!(mode(&forced.nodes[0].key), 0o600);
    verify(&forced.ca_cert, &forced.nodes[0].cert, "node-a").unwrap();
}

#[test]
fn pki_refuses_names_that_cannot_be_a_tls_name_and_a_file() {
    let temp = TempDir::new("pki-names");
    let dir = temp.path().join("never");
    let cases: &[(&[&str], &str)] = &[
        (&[], "no node names given"),
        (&["a", "A"], "given twice"),
        (&["node a"], "letters, digits"),
        (&["../etc/passwd"], "labels of 1 to 63"),
        (&["-a"], "start or end with '-'"),
        (&["ca"], "the CA's own file name"),
    ];
    for (list, words) in cases {
        let e = init_cluster_pki(&dir, &names(list)).unwrap_err();
        assert!(e.to_string().contains(words), "{list:?}: {e}");
    }
    assert!(!dir.exists(), "nothing is written for bad names");
}

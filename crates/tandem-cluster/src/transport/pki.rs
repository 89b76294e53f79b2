//! The cluster's own small PKI: one CA that exists only to say "this is a member of this
//! cluster", and one certificate per node, used both to serve (the node's Raft listener) and
//! as a client (its connections to peers).
//!
//! Why a private CA rather than the operator's web PKI: membership is the only claim these
//! certificates make, so any certificate the public PKI (or the company CA) would sign must
//! *not* be accepted. The transport trusts exactly this CA and nothing else.
//!
//! Layout written by [`init_cluster_pki`] (and by `tandemctl cluster init`):
//!
//! | file           | mode | goes to                                               |
//! |----------------|------|-------------------------------------------------------|
//! | `ca.pem`       | 0644 | every node                                            |
//! | `ca.key`       | 0600 | nowhere: keep it offline, it can mint cluster members |
//! | `<name>.pem`   | 0644 | node `<name>` only                                    |
//! | `<name>.key`   | 0600 | node `<name>` only                                    |
//!
//! A node's name is the host part of the address its peers dial (`BasicNode.addr`,
//! `"<name>:<port>"`) and the name the client verifies, so it is the leaf's only subject
//! alternative name (a DNS name, or an IP address when the name is one).

use std::fs::DirBuilder;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use tandem_tls::CertSpec;

/// The CA certificate's file name.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file name.
pub const CA_KEY_FILE: &str = "ca.key";

/// How long the CA and the node certificates are valid. Long, because nothing renews them
/// automatically and an expired cluster certificate stops Raft (and so VIP fencing) outright;
/// short enough that a leaked key does not stay useful forever. Rotate by re-running
/// `tandemctl cluster init --force` and rolling the files out.
pub const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Backdating of `notBefore`, so a peer whose clock is somewhat behind the issuing machine's
/// still accepts a freshly issued certificate.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);

/// Why the PKI could not be written. Nothing is written when the names are bad or files
/// would be replaced without `force`.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("no node names given: name every Raft member, the witness too")]
    NoNodes,
    #[error("bad node name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    #[error("node name {0:?} is given twice")]
    Duplicate(String),
    #[error(
        "{} already exists: refusing to replace the cluster CA or its certificates (nodes \
         holding the old ones would stop trusting the new ones); use --force to start over",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("cannot create {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate the certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Options for [`init_cluster_pki_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PkiOptions {
    /// Replace an existing CA and node files. Every node then needs its new files.
    pub force: bool,
}

/// What [`init_cluster_pki`] wrote.
#[derive(Clone, Debug)]
pub struct ClusterPki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub nodes: Vec<NodeFiles>,
}

/// One node's certificate and key.
#[derive(Clone, Debug)]
pub struct NodeFiles {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl NodeFiles {
    /// Where the node's files are in `dir`, named as [`init_cluster_pki`] names them.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        NodeFiles {
            name: name.to_string(),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }

    /// As tandem-tls wants it for loading.
    pub fn spec(&self) -> CertSpec {
        CertSpec::new(&self.cert, &self.key)
    }
}

/// Create a new cluster CA and one certificate per node in `dir` (created 0700 if missing).
/// Refuses to replace any existing file; see [`init_cluster_pki_with`] to force.
pub fn init_cluster_pki(dir: &Path, node_names: &[String]) -> Result<ClusterPki, PkiError> {
    init_cluster_pki_with(dir, node_names, PkiOptions::default())
}

/// [`init_cluster_pki`] with options. All names are checked and every certificate is
/// generated before the first file is written, so a refusal leaves `dir` as it was.
pub fn init_cluster_pki_with(
    dir: &Path,
    node_names: &[String],
    options: PkiOptions,
) -> Result<ClusterPki, PkiError> {
    check_names(node_names)?;
    let pki = ClusterPki {
        ca_cert: dir.join(CA_CERT_FILE),
        ca_key: dir.join(CA_KEY_FILE),
        nodes: node_names
            .iter()
            .map(|n| NodeFiles::in_dir(dir, n))
            .collect(),
    };
    if !options.force {
        let mut paths = vec![&pki.ca_cert, &pki.ca_key];
        paths.extend(pki.nodes.iter().flat_map(|n| [&n.cert, &n.key]));
        if let Some(existing) = paths.into_iter().find(|p| p.exists()) {
            return Err(PkiError::Exists(existing.clone()));
        }
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (not_before, not_after) = {
        let now = rcgen::date_time_ymd(1970, 1, 1) + now;
        (now - BACKDATE, now + VALIDITY)
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    // Path length 0: the CA signs node certificates only, never another CA.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // A name of its own per CA: certificates are matched to their issuer by name first, so
    // with one fixed name a node of another cluster would be refused as "bad signature"
    // instead of the clearer "unknown issuer"; it also tells two clusters' files apart.
    let ca_id: String = ca_key.public_key_raw()[1..7]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ca.distinguished_name
        .push(DnType::CommonName, format!("tandem cluster CA {ca_id}"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::from_params(&ca, &ca_key);

    let mut leaves = Vec::new();
    for node in &pki.nodes {
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(vec![node.name.clone()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, node.name.as_str());
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Each node is a server (its Raft listener) and a client (its calls to peers).
        leaf.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = not_before;
        leaf.not_after = not_after;
        let cert = leaf.signed_by(&key, &issuer)?;
        leaves.push((cert.pem(), key.serialize_pem()));
    }

    create_dir(dir)?;
    write_file(&pki.ca_cert, ca_pem.as_bytes(), 0o644)?;
    write_file(&pki.ca_key, ca_key.serialize_pem().as_bytes(), 0o600)?;
    for (node, (cert, key)) in pki.nodes.iter().zip(&leaves) {
        write_file(&node.cert, cert.as_bytes(), 0o644)?;
        write_file(&node.key, key.as_bytes(), 0o600)?;
    }
    Ok(pki)
}

/// Node names become a certificate's subject alternative name, a TLS server name and two
/// file names, so they must be all three: a DNS name (letters, digits, `-`, dots between
/// labels) or an IP address, and not `ca`.
fn check_names(names: &[String]) -> Result<(), PkiError> {
    if names.is_empty() {
        return Err(PkiError::NoNodes);
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        let bad = |why| PkiError::BadName {
            name: name.clone(),
            why,
        };
        if name.parse::<IpAddr>().is_err() {
            if name.is_empty() || name.len() > 253 {
                return Err(bad("must be 1 to 253 characters"));
            }
            for label in name.split('.') {
                if label.is_empty() || label.len() > 63 {
                    return Err(bad("dot-separated labels of 1 to 63 characters"));
                }
                if !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(bad("letters, digits, '-' and '.' only (it is a DNS name)"));
                }
                if label.starts_with('-') || label.ends_with('-') {
                    return Err(bad("a label cannot start or end with '-'"));
                }
            }
        }
        if name.eq_ignore_ascii_case("ca") {
            return Err(bad("\"ca\" is the CA's own file name"));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(PkiError::Duplicate(name.clone()));
        }
    }
    Ok(())
}

/// Create `dir` 0700 if missing: it holds the CA key. An existing dir keeps its mode; it is
/// the operator's.
fn create_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Write `bytes` to `path` with exactly `mode`, fsynced. The mode is set on the open file
/// before any byte is written, so a key never sits in a file others can read, including
/// when `--force` reuses a file that had a wider mode.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

//! Mutual TLS between cluster members: both ends present a certificate from the cluster CA
//! (see [`pki`](super::pki)) and both ends trust that CA and nothing else.
//!
//! * Server: a client certificate is *required* ([`WebPkiClientVerifier`] with the cluster CA
//!   as the only root). A Raft RPC can grant a vote or overwrite log entries, so an
//!   unauthenticated peer must not get as far as sending one.
//! * Client: verifies the server against the cluster CA *and* the peer's node name (the host
//!   part of its `BasicNode.addr`), so traffic for node b cannot be answered by node c, nor by
//!   anything holding a certificate from some other CA.
//! * TLS 1.3 only on the server (both ends are tandem, there is no old peer to support) and
//!   the ALPN id [`ALPN`], which versions the wire format: a node speaking another version
//!   fails the handshake with a clear "no application protocol" instead of misreading frames.
//! * The ring provider, passed explicitly, as everywhere in tandem (see tandem-tls).
//!
//! What this does not do: tell members apart. Any holder of a cluster certificate may send
//! any RPC; the CA is the membership boundary. There is no revocation list: to expel a
//! node's key, rotate the CA (`tandemctl cluster init --force`).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::UnixTime;
use tandem_tls::rustls;
use tandem_tls::rustls::crypto::ring;
use tandem_tls::rustls::server::WebPkiClientVerifier;
use tandem_tls::rustls::sign::SingleCertAndKey;
use tandem_tls::rustls::ClientConfig;
use tandem_tls::rustls::RootCertStore;
use tandem_tls::rustls::ServerConfig;
use tandem_tls::CertSpec;
use tandem_tls::ClientTlsSpec;
use tandem_tls::TlsError;

use super::pki::NodeFiles;
use super::pki::CA_CERT_FILE;

/// The ALPN protocol id of the cluster transport; bump the number with any incompatible
/// change to the frames or messages in `wire.rs`.
pub const ALPN: &[u8] = b"tandem-raft/1";

/// Why a node's cluster TLS could not be set up. Messages name the files involved.
#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot read the cluster CA {}: {detail}", .path.display())]
    Ca {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "{} is not a certificate of the cluster CA {}: {detail} (were the files of two \
         `tandemctl cluster init` runs mixed?)",
        .cert.display(),
        .ca.display()
    )]
    NotFromCa {
        cert: std::path::PathBuf,
        ca: std::path::PathBuf,
        detail: String,
    },
}

/// One node's TLS for the cluster transport: the config its Raft listener serves with and
/// the config its peer clients connect with. Both are cheap to clone (`Arc`).
#[derive(Clone, Debug)]
pub struct ClusterTls {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

impl ClusterTls {
    /// Load the node's files as `init_cluster_pki` wrote them to `dir`: `ca.pem`,
    /// `<name>.pem` and `<name>.key`.
    pub fn from_dir(dir: &Path, name: &str) -> Result<Self, ClusterTlsError> {
        Self::load(
            &dir.join(CA_CERT_FILE),
            &NodeFiles::in_dir(dir, name).spec(),
        )
    }

    /// Load the cluster CA from `ca` and the node's certificate and key from `node`.
    ///
    /// The node's own certificate is checked against the CA here, as a peer would check it,
    /// so a node given the wrong files fails at start-up with a message naming them rather
    /// than later with handshake errors on every peer.
    pub fn load(ca: &Path, node: &CertSpec) -> Result<Self, ClusterTlsError> {
        let provider = Arc::new(ring::default_provider());
        let roots = Arc::new(ca_roots(ca)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| ClusterTlsError::Ca {
                path: ca.to_path_buf(),
                detail: e.to_string(),
            })?;

        let loaded = tandem_tls::load_cert(node, SystemTime::now())?;
        let leaf = &loaded.key.cert[0];
        verifier
            .verify_client_cert(leaf, &loaded.key.cert[1..], UnixTime::now())
            .map_err(|e| ClusterTlsError::NotFromCa {
                cert: node.cert.clone(),
                ca: ca.to_path_buf(),
                detail: e.to_string(),
            })?;

        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::from)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(loaded.key)));
        server.alpn_protocols = vec![ALPN.to_vec()];

        // tandem-tls's backend client config is exactly the client half: ring, roots from
        // the CA file only, the node's certificate presented when asked.
        let client = tandem_tls::client_config(&ClientTlsSpec {
            ca: Some(ca.to_path_buf()),
            verify: true,
            alpn: vec![ALPN.to_vec()],
            client_cert: Some(node.clone()),
        })?;
        Ok(ClusterTls {
            server: Arc::new(server),
            client,
        })
    }
}

/// The cluster CA as the only trusted root. Every certificate in the file must parse: unlike
/// a system bundle, this file is ours, and a broken one is a mistake to report.
fn ca_roots(path: &Path) -> Result<RootCertStore, ClusterTlsError> {
    let bad = |detail: String| ClusterTlsError::Ca {
        path: path.to_path_buf(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    Ok(roots)
}

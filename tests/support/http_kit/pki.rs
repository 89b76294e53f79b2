//! A throwaway PKI (rcgen) for TLS backends and clients, written to a `crate::TempDir`.

use crate::TempDir;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::PathBuf;
use std::sync::Arc;
use tandem_tls::rustls;

/// A certificate and its key as PEM text, and where they were written.
pub struct CertFiles {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test CA; its certificate is written to `<dir>/<name>-ca.pem`.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pub cert_pem: String,
    pub path: PathBuf,
}

impl TestCa {
    pub fn new(dir: &TempDir, name: &str) -> TestCa {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert_pem = params.self_signed(&key).expect("self-sign ca").pem();
        let path = dir.write(&format!("{name}-ca.pem"), &cert_pem);
        TestCa {
            params,
            key,
            cert_pem,
            path,
        }
    }

    /// A leaf with subject CN `cn` and DNS names `names`, written as `<file>.pem`/`.key`.
    pub fn leaf(&self, dir: &TempDir, file: &str, cn: &str, names: &[&str]) -> CertFiles {
        self.leaf_with(dir, file, cn, names, |_| {})
    }

    /// A leaf whose validity ended on 2000-01-01.
    pub fn expired_leaf(&self, dir: &TempDir, file: &str, names: &[&str]) -> CertFiles {
        self.leaf_with(dir, file, "expired", names, |p| {
            p.not_before = rcgen::date_time_ymd(1999, 1, 1);
            p.not_after = rcgen::date_time_ymd(2000, 1, 1);
        })
    }

    fn leaf_with(
        &self,
        dir: &TempDir,
        file: &str,
        cn: &str,
        names: &[&str],
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> CertFiles {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        tweak(&mut params);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert_pem = params.signed_by(&key, &issuer).expect("sign leaf").pem();
        let key_pem = key.serialize_pem();
        CertFiles {
            cert: dir.write(&format!("{file}.pem"), &cert_pem),
            key: dir.write(&format!("{file}.key"), &key_pem),
            cert_pem,
            key_pem,
        }
    }
}

/// A rustls server config for a test backend (independent of tandem's own TLS code).
pub fn backend_tls_config(files: &CertFiles, alpn: &[&str]) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(files.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("test cert PEM");
    let key = PrivateKeyDer::from_pem_slice(files.key_pem.as_bytes()).expect("test key PEM");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("test server config");
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// A rustls client config trusting only `ca_pem`, offering `alpn`.
pub fn client_tls_config(ca_pem: &str, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

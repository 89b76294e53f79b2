//! Test fixtures: a scratch directory, a throwaway CA that issues certificates with rcgen,
//! and an in-memory handshake between a rustls client and server.

use crate::CertSpec;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SignatureAlgorithm,
};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A fresh directory under the system temp dir, removed on drop (also when a test fails).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tandem-tls-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }

    /// Writes `<name>.pem` and `<name>.key` and returns their spec.
    pub fn write_pair(&self, name: &str, pair: &Pair) -> CertSpec {
        CertSpec::new(
            self.write(&format!("{name}.pem"), &pair.cert_pem),
            self.write(&format!("{name}.key"), &pair.key_pem),
        )
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate (chain) and its key, as PEM text.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A CA that can sign leaves and intermediates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub cert_pem: String,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Ca {
    pub fn new(cn: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let params = ca_params(cn);
        let cert_pem = params.self_signed(&key).expect("self-sign ca").pem();
        Self {
            params,
            key,
            cert_pem,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// An ECDSA P-256 leaf for `names`, valid from 1975 to 4096 (rcgen's defaults).
    pub fn leaf(&self, names: &[&str]) -> Pair {
        self.leaf_with(names, &rcgen::PKCS_ECDSA_P256_SHA256, |_| {})
    }

    /// A leaf with the given key algorithm, after `tweak` has had a go at the parameters.
    pub fn leaf_with(
        &self,
        names: &[&str],
        alg: &'static SignatureAlgorithm,
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> Pair {
        let key = KeyPair::generate_for(alg).expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "tandem test leaf");
        tweak(&mut params);
        let cert = params.signed_by(&key, &self.issuer()).expect("sign leaf");
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A leaf signed by a fresh intermediate of this CA; the PEM holds leaf then intermediate.
    pub fn chained_leaf(&self, names: &[&str]) -> Pair {
        let inter_key = KeyPair::generate().expect("intermediate key");
        let inter_params = ca_params("tandem test intermediate");
        let inter_cert = inter_params
            .signed_by(&inter_key, &self.issuer())
            .expect("sign intermediate");
        let inter = Ca {
            params: inter_params,
            key: inter_key,
            cert_pem: inter_cert.pem(),
        };
        let leaf = inter.leaf(names);
        Pair {
            cert_pem: format!("{}{}", leaf.cert_pem, inter.cert_pem),
            key_pem: leaf.key_pem,
        }
    }
}

/// The first DNS subject alternative name of a DER certificate.
pub fn first_dns_name(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).expect("parse peer certificate");
    let san = cert
        .subject_alternative_name()
        .expect("san")
        .expect("certificate has SANs");
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .expect("a DNS SAN")
}

/// The result of a completed handshake.
pub struct Done {
    pub client: ClientConnection,
    pub server: ServerConnection,
}

impl Done {
    /// The first DNS name of the certificate the client received.
    pub fn served_name(&self) -> String {
        let chain = self
            .client
            .peer_certificates()
            .expect("server sent certificates");
        first_dns_name(&chain[0])
    }
}

/// Runs a full handshake in memory, shuttling bytes between the two ends until neither has
/// anything more to say. The error is whichever side gave up first.
pub fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    sni: &str,
) -> Result<Done, rustls::Error> {
    let name = crate::server_name(sni).expect("valid test server name");
    let mut c = Connection::Client(ClientConnection::new(client, name)?);
    let mut s = Connection::Server(ServerConnection::new(server)?);
    loop {
        let sent = transfer(&mut c, &mut s)? + transfer(&mut s, &mut c)?;
        if sent == 0 {
            break;
        }
    }
    if c.is_handshaking() || s.is_handshaking() {
        return Err(rustls::Error::General("handshake stalled".into()));
    }
    match (c, s) {
        (Connection::Client(client), Connection::Server(server)) => Ok(Done { client, server }),
        _ => unreachable!("the ends were built as client and server"),
    }
}

/// Moves everything `from` wants to send into `to` and lets `to` process it.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<usize, rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write to a Vec");
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read from a slice");
        to.process_new_packets()?;
    }
    Ok(wire.len())
}

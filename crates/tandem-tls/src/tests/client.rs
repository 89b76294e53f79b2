//! The client side: trust roots, verify = false, mTLS to backends, server names.

use super::pki::{handshake, Ca, TempDir};
use crate::client::roots_from_system;
use crate::{
    client_config, load_cert, server_config, server_name, ClientTlsSpec, MinVersion, SniResolver,
    TlsError,
};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::sync::Arc;
use std::time::SystemTime;

/// A server on `names` with a certificate from `ca`.
fn server_for(dir: &TempDir, ca: &Ca, names: &[&str]) -> Arc<ServerConfig> {
    server_config(resolver_for(dir, ca, names), Vec::new(), MinVersion::Tls12)
}

fn resolver_for(dir: &TempDir, ca: &Ca, names: &[&str]) -> Arc<SniResolver> {
    let spec = dir.write_pair(names[0], &ca.chained_leaf(names));
    let cert = load_cert(&spec, SystemTime::now()).expect("server cert");
    Arc::new(SniResolver::new(vec![cert]).expect("resolver"))
}

fn trusting(dir: &TempDir, ca: &Ca) -> ClientTlsSpec {
    ClientTlsSpec {
        ca: Some(dir.write("ca.pem", &ca.cert_pem)),
        verify: true,
        ..ClientTlsSpec::default()
    }
}

#[test]
fn the_test_ca_verifies_the_test_server_through_an_intermediate() {
    let dir = TempDir::new();
    let ca = Ca::new("backend ca");
    let server = server_for(&dir, &ca, &["backend.test"]);
    let client = client_config(&trusting(&dir, &ca)).expect("client config");
    let done = handshake(client, server, "backend.test").expect("verified handshake");
    assert_eq!(done.client.peer_certificates().unwrap().len(), 2);
}

#[test]
fn another_ca_fails_the_handshake_and_verify_false_accepts_anything() {
    let dir = TempDir::new();
    let server = server_for(&dir, &Ca::new("real ca"), &["backend.test"]);
    let stranger = Ca::new("some other ca");
    let client = client_config(&trusting(&dir, &stranger)).expect("client config");
    let err = handshake(client, server.clone(), "backend.test").err();
    assert!(
        matches!(
            err,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );

    // No verification: unknown issuer *and* the wrong name are both fine.
    let lax = client_config(&ClientTlsSpec {
        verify: false,
        ca: Some(dir.path("never-read.pem")),
        alpn: vec![b"http/1.1".to_vec()],
        client_cert: None,
    })
    .expect("lax config");
    handshake(lax, server, "not-the-name.test").expect("anything goes");
}

#[test]
fn ca_file_problems_name_the_file() {
    let dir = TempDir::new();
    let missing = dir.path("missing-ca.pem");
    let spec = ClientTlsSpec {
        ca: Some(missing.clone()),
        verify: true,
        ..ClientTlsSpec::default()
    };
    let err = client_config(&spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read CA file {}: No such file or directory",
            missing.display()
        )
    );

    let empty = dir.write("empty-ca.pem", "no certificates here\n");
    let err = client_config(&ClientTlsSpec {
        ca: Some(empty.clone()),
        ..spec.clone()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no trusted root certificates found in {}", empty.display())
    );

    // PEM blocks that are not certificates at all do not count as roots.
    let junk = dir.write(
        "junk-ca.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
    );
    let err = client_config(&ClientTlsSpec {
        ca: Some(junk),
        ..spec
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::NoRoots { .. }), "{err:?}");
}

#[test]
fn system_roots_load_or_say_the_store_is_empty() {
    let spec = ClientTlsSpec {
        verify: true,
        ..ClientTlsSpec::default()
    };
    match client_config(&spec) {
        Ok(_) => {}
        // Debian's bundle is there whenever ca-certificates is installed: then it must load.
        Err(err) if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() => {
            panic!("system roots present but not loaded: {err}")
        }
        Err(err) => assert!(matches!(err, TlsError::NoSystemRoots { .. }), "{err}"),
    }

    // What an empty store reads like, whatever this machine has.
    let err = roots_from_system(rustls_native_certs::CertificateResult::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no trusted root certificates found in the system store: install the ca-certificates \
         package or set a CA file"
    );
}

#[test]
fn client_certificate_is_presented_to_a_server_that_asks() {
    let dir = TempDir::new();
    let ca = Ca::new("mtls ca");
    let mut client_roots = RootCertStore::empty();
    client_roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
            .build()
            .expect("client verifier");
    let server = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver_for(&dir, &ca, &["secure.test"])),
    );

    let without = client_config(&trusting(&dir, &ca)).unwrap();
    assert!(handshake(without, server.clone(), "secure.test").is_err());

    let mut spec = trusting(&dir, &ca);
    spec.client_cert = Some(dir.write_pair("proxy", &ca.leaf(&["proxy.test"])));
    let with = client_config(&spec).expect("mtls client config");
    let done = handshake(with, server, "secure.test").expect("mtls handshake");
    assert!(done.server.peer_certificates().is_some());

    // A broken client certificate is caught when the config is built.
    spec.client_cert = Some(crate::CertSpec::new(
        dir.path("nope.pem"),
        dir.path("nope.key"),
    ));
    assert!(matches!(
        client_config(&spec),
        Err(TlsError::ReadCert { .. })
    ));
}

#[test]
fn server_names_parse_dns_and_ip() {
    assert!(matches!(
        server_name("backend.example.test").unwrap(),
        ServerName::DnsName(_)
    ));
    assert!(matches!(
        server_name("backend.example.test.").unwrap(),
        ServerName::DnsName(_)
    ));
    assert!(matches!(
        server_name("10.0.0.7").unwrap(),
        ServerName::IpAddress(_)
    ));
    assert!(matches!(
        server_name("[::1]").unwrap(),
        ServerName::IpAddress(_)
    ));
    assert!(matches!(
        server_name("::1").unwrap(),
        ServerName::IpAddress(_)
    ));
    let err = server_name("not a host!").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid TLS server name \"not a host!\": expected a DNS name or an IP address"
    );
}

//! The server side through real (in-memory) handshakes: SNI choice, ALPN, versions, reload.

use super::pki::{handshake, Ca, TempDir};
use crate::{client_config, load_cert, server_config, ClientTlsSpec, MinVersion, SniResolver};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// A CA on disk and a resolver with three certificates: the default first, then an exact
/// name and a wildcard.
struct Site {
    dir: TempDir,
    ca: Ca,
    ca_file: PathBuf,
    resolver: Arc<SniResolver>,
}

fn site() -> Site {
    let dir = TempDir::new();
    let ca = Ca::new("tandem test ca");
    let ca_file = dir.write("ca.pem", &ca.cert_pem);
    let certs = [
        ("default", vec!["default.test"]),
        ("api", vec!["api.example.test"]),
        ("apps", vec!["*.apps.example.test"]),
    ]
    .into_iter()
    .map(|(file, names)| {
        let spec = dir.write_pair(file, &ca.leaf(&names));
        load_cert(&spec, SystemTime::now()).expect("test cert loads")
    })
    .collect();
    let resolver = Arc::new(SniResolver::new(certs).expect("resolver"));
    Site {
        dir,
        ca,
        ca_file,
        resolver,
    }
}

impl Site {
    fn server(&self, min: MinVersion) -> Arc<rustls::ServerConfig> {
        server_config(
            self.resolver.clone(),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            min,
        )
    }

    /// A client trusting the test CA, through the crate's own `client_config`.
    fn trusting_client(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        client_config(&ClientTlsSpec {
            ca: Some(self.ca_file.clone()),
            verify: true,
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            client_cert: None,
        })
        .expect("client config")
    }

    /// A client that takes whatever certificate it gets, to see what the server chose for
    /// names none of its certificates cover.
    fn any_cert_client(&self) -> Arc<ClientConfig> {
        client_config(&ClientTlsSpec {
            verify: false,
            ..ClientTlsSpec::default()
        })
        .expect("client config")
    }

    /// A client trusting the test CA that speaks only `version`.
    fn client_speaking(&self, version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca.cert_pem.as_bytes()).expect("ca pem"))
            .expect("add ca");
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[version])
                .expect("version")
                .with_root_certificates(roots)
                .with_no_client_auth();
        Arc::new(config)
    }
}

#[test]
fn sni_picks_exact_then_wildcard_then_default() {
    let site = site();
    let server = site.server(MinVersion::Tls12);
    let trusting = site.trusting_client(&[]);
    for (sni, served) in [
        ("api.example.test", "api.example.test"),
        ("API.Example.TEST", "api.example.test"),
        ("x.apps.example.test", "*.apps.example.test"),
        ("default.test", "default.test"),
    ] {
        let done = handshake(trusting.clone(), server.clone(), sni)
            .unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(done.served_name(), served, "for SNI {sni}");
        assert_eq!(
            done.server.server_name(),
            Some(sni.to_ascii_lowercase().as_str())
        );
    }

    // Names no certificate covers get the default, which a verifying client then refuses.
    let any = site.any_cert_client();
    for sni in ["a.b.apps.example.test", "apps.example.test", "unknown.test"] {
        let done = handshake(any.clone(), server.clone(), sni).expect("handshake");
        assert_eq!(done.served_name(), "default.test", "for SNI {sni}");
        let err = handshake(trusting.clone(), server.clone(), sni).err();
        assert!(
            matches!(err, Some(rustls::Error::InvalidCertificate(_))),
            "{sni}: {err:?}"
        );
    }

    // Clients connecting to an IP address send no SNI at all.
    let done = handshake(any, server, "127.0.0.1").expect("handshake");
    assert_eq!(done.server.server_name(), None);
    assert_eq!(done.served_name(), "default.test");
}

#[test]
fn alpn_follows_the_server_preference() {
    let site = site();
    let server = site.server(MinVersion::Tls12);
    /// What the client offers, and what should be agreed on.
    type Case = (&'static [&'static [u8]], Option<&'static [u8]>);
    let cases: [Case; 4] = [
        (&[b"http/1.1", b"h2"], Some(b"h2")),
        (&[b"h2"], Some(b"h2")),
        (&[b"http/1.1"], Some(b"http/1.1")),
        (&[], None),
    ];
    for (offered, expected) in cases {
        let done = handshake(
            site.trusting_client(offered),
            server.clone(),
            "api.example.test",
        )
        .expect("handshake");
        assert_eq!(done.client.alpn_protocol(), expected);
        assert_eq!(done.server.alpn_protocol(), expected);
    }
}

#[test]
fn tls12_and_tls13_both_negotiate() {
    let site = site();
    let server = site.server(MinVersion::Tls12);
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let done = handshake(
            site.client_speaking(version),
            server.clone(),
            "api.example.test",
        )
        .expect("handshake");
        assert_eq!(done.client.protocol_version(), Some(expected));
        assert_eq!(done.served_name(), "api.example.test");
    }
    // The crate's own client config offers both and gets 1.3.
    let done = handshake(site.trusting_client(&[]), server, "api.example.test").unwrap();
    assert_eq!(
        done.client.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn min_version_13_refuses_a_tls12_only_client() {
    let site = site();
    let server = site.server(MinVersion::Tls13);
    let err = handshake(
        site.client_speaking(&rustls::version::TLS12),
        server.clone(),
        "api.example.test",
    )
    .err();
    assert!(
        matches!(err, Some(rustls::Error::PeerIncompatible(_))),
        "{err:?}"
    );
    let done = handshake(
        site.client_speaking(&rustls::version::TLS13),
        server,
        "api.example.test",
    )
    .expect("TLS 1.3 still works");
    assert_eq!(
        done.client.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn replace_takes_effect_for_new_handshakes() {
    let site = site();
    let server = site.server(MinVersion::Tls12);
    let client = site.trusting_client(&[]);
    let before = handshake(client.clone(), server.clone(), "api.example.test").unwrap();
    assert_eq!(before.served_name(), "api.example.test");

    // The new set: a fresh default and an Ed25519 certificate for the API name.
    let ed = site.ca.leaf_with(
        &["api.example.test", "v2.example.test"],
        &rcgen::PKCS_ED25519,
        |_| {},
    );
    let new_default = site
        .dir
        .write_pair("new-default", &site.ca.leaf(&["new.test"]));
    let ed = site.dir.write_pair("ed", &ed);
    let certs = [new_default, ed]
        .iter()
        .map(|spec| load_cert(spec, SystemTime::now()).unwrap())
        .collect();
    site.resolver.replace(certs).expect("replace");

    let after = handshake(client.clone(), server.clone(), "v2.example.test").unwrap();
    assert_eq!(after.served_name(), "api.example.test");
    let chain = after.client.peer_certificates().unwrap();
    assert_ne!(
        chain[0],
        before.client.peer_certificates().unwrap()[0],
        "a different certificate for the same name"
    );
    let any = site.any_cert_client();
    let fallback = handshake(any, server.clone(), "x.apps.example.test").unwrap();
    assert_eq!(fallback.served_name(), "new.test");

    // An empty set is refused and the current one stays.
    assert!(matches!(
        site.resolver.replace(Vec::new()),
        Err(crate::TlsError::NoCertificates)
    ));
    let still = handshake(client, server, "api.example.test").unwrap();
    assert_eq!(still.served_name(), "api.example.test");
    assert_eq!(
        site.resolver.names(),
        [
            vec!["new.test".to_string()],
            vec![
                "api.example.test".to_string(),
                "v2.example.test".to_string()
            ]
        ]
    );
}

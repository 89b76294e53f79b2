//! The rustls client config for TLS to backends (re-encryption, HTTPS health checks).

use crate::cert::{read_pem_certs, FileKind};
use crate::{load_cert, CertSpec, TlsError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{ring, CryptoProvider};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// How to talk TLS to a pool's backends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsSpec {
    /// PEM bundle of trusted CAs; `None` trusts the system's roots.
    pub ca: Option<std::path::PathBuf>,
    /// `false` accepts any certificate for any name (tests and labs only; logged as a
    /// warning each time a config is built). `ca` is then not read.
    pub verify: bool,
    /// ALPN protocols offered, in preference order; empty offers none.
    pub alpn: Vec<Vec<u8>>,
    /// A certificate to present when a backend asks for one (mTLS); checked like a
    /// listener's certificate.
    pub client_cert: Option<CertSpec>,
}

/// Builds the client config: ring provider, TLS 1.2 and 1.3, roots from `spec.ca` or the
/// system store (rustls-native-certs: on Debian, `/etc/ssl/certs`). The name to verify and
/// send as SNI is the caller's, given per connection (see [`server_name`]).
pub fn client_config(spec: &ClientTlsSpec) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if spec.verify {
        let roots = match &spec.ca {
            Some(path) => roots_from_file(path)?,
            None => roots_from_system(rustls_native_certs::load_native_certs())?,
        };
        builder.with_root_certificates(roots)
    } else {
        tracing::warn!(
            "TLS to backends with verify = false: ANY certificate is accepted, so the traffic \
             can be intercepted; use this for tests only"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
    };
    let mut config = match &spec.client_cert {
        Some(cert) => {
            let loaded = load_cert(cert, SystemTime::now())?;
            builder.with_client_cert_resolver(Arc::new(FixedClientCert(loaded.key)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = spec.alpn.clone();
    Ok(Arc::new(config))
}

/// Parses a host as the TLS layer needs it: an IP address (brackets allowed, as in URLs) or a
/// DNS name. A trailing dot is dropped: certificates never carry it.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let bare = bare.strip_suffix('.').unwrap_or(bare);
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::BadServerName {
        name: host.to_string(),
    })
}

/// Every parsable certificate in a CA bundle. One bad certificate among good ones is logged
/// and skipped (system-style bundles often carry odd old roots); none usable is an error.
fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = read_pem_certs(path, FileKind::Ca)?;
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if ignored > 0 {
        tracing::warn!(file = %path.display(), ignored, "unusable certificates in CA file skipped");
    }
    if added == 0 {
        return Err(TlsError::NoRoots {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

/// The system's roots. Errors reading parts of the store are tolerated as long as some roots
/// loaded; with none, the error lists what went wrong, since an empty store is usually a
/// missing ca-certificates package or a bad `SSL_CERT_FILE`/`SSL_CERT_DIR`.
pub(crate) fn roots_from_system(
    found: rustls_native_certs::CertificateResult,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = if found.errors.is_empty() {
            String::new()
        } else {
            let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
            format!(" ({})", errors.join("; "))
        };
        return Err(TlsError::NoSystemRoots { detail });
    }
    for err in &found.errors {
        tracing::warn!(error = %err, "part of the system certificate store could not be read");
    }
    tracing::debug!(added, ignored, "system root certificates loaded");
    Ok(roots)
}

/// The `verify = false` verifier: trusts any chain for any name, but still checks the
/// handshake signature against the presented certificate, so the peer must at least hold
/// the key of the certificate it sends.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Presents the one configured client certificate, if its key can sign with a scheme the
/// server accepts; otherwise none, and the server decides whether that is fatal.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(sigschemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

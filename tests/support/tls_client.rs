//! A TLS client for lab tests: connects from inside a namespace, verifies the server's
//! certificate against a given root, and sends one HTTP/1.1 GET.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tandem_tls::rustls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::netns::Lab;

/// A rustls client config (ring) trusting only the PEM certificates in `ca_pem`.
pub fn config_trusting(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a usable root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// Connects from `ns` to `addr`, completes a verified handshake for `name` (SNI and the
/// name checked), and returns the stream.
pub async fn connect(
    lab: &Lab,
    ns: &str,
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let s = lab.socket_in(ns, socket2::Type::STREAM);
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let socket = tokio::net::TcpSocket::from_std_stream(s.into());
    let tcp = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let server_name = rustls_pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| format!("{name}: {e}"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {addr} as {name}: {e}"))
}

/// One GET over a verified TLS connection; the whole answer (head and body) as text.
pub async fn get(
    lab: &Lab,
    ns: &str,
    addr: SocketAddr,
    name: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
    limit: Duration,
) -> Result<String, String> {
    let attempt = async {
        let mut tls = connect(lab, ns, addr, name, config).await?;
        let request = format!("GET {path} HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        // A server that closes without close_notify still gave its answer.
        let _ = tls.read_to_end(&mut out).await;
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| format!("no answer from {addr} within {limit:?}"))?
}

/// The leaf certificate (DER) a verified handshake got.
pub fn peer_leaf(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default()
}

/// One keep-alive GET on an open connection; the response head and its
/// `content-length` body.
pub async fn get_on(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    name: &str,
    path: &str,
    limit: Duration,
) -> Result<String, String> {
    let exchange = async {
        let request = format!("GET {path} HTTP/1.1\r\nhost: {name}\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return Ok(String::from_utf8_lossy(&buf[..end + 4 + length]).into_owned());
                }
            }
            let n = tls.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!(
                    "connection closed mid-answer: {}",
                    String::from_utf8_lossy(&buf)
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
}

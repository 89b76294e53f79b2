//! One probe of one backend: a TCP connect, or an HTTP/1.1 GET with status and body checks.
//! Results are `Err(reason)` with a short reason for the log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// TLS for HTTPS checks: the pool's client config and the name to send as SNI.
#[derive(Clone, Debug)]
pub struct CheckTls {
    pub config: Arc<tandem_tls::rustls::ClientConfig>,
    /// SNI and verified name; None uses the backend's IP address.
    pub server_name: Option<tandem_tls::rustls::pki_types::ServerName<'static>>,
}

/// Most of a check response we read; enough for a status page, bounded against a flood.
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub enum ProbeSpec {
    Tcp {
        address: SocketAddr,
        timeout: Duration,
    },
    Http {
        address: SocketAddr,
        timeout: Duration,
        path: String,
        host: String,
        expect_status: (u16, u16),
        expect_body: Option<String>,
        /// HTTPS when present.
        tls: Option<CheckTls>,
    },
}

/// Runs one probe within its timeout.
pub async fn probe(spec: &ProbeSpec) -> Result<(), String> {
    let (address, timeout) = match spec {
        ProbeSpec::Tcp { address, timeout }
        | ProbeSpec::Http {
            address, timeout, ..
        } => (*address, *timeout),
    };
    match tokio::time::timeout(timeout, probe_inner(spec, address)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer from {address} within {}ms",
            timeout.as_millis()
        )),
    }
}

async fn probe_inner(spec: &ProbeSpec, address: SocketAddr) -> Result<(), String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect to {address}: {e}"))?;
    let ProbeSpec::Http { tls, .. } = spec else {
        return Ok(());
    };
    match tls {
        None => http_exchange(stream, spec, address).await,
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let name = tls.server_name.clone().unwrap_or_else(|| {
                tandem_tls::rustls::pki_types::ServerName::IpAddress(address.ip().into())
            });
            let stream = connector
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS handshake with {address}: {e}"))?;
            http_exchange(stream, spec, address).await
        }
    }
}

async fn http_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    spec: &ProbeSpec,
    address: SocketAddr,
) -> Result<(), String> {
    let ProbeSpec::Http {
        path,
        host,
        expect_status,
        expect_body,
        ..
    } = spec
    else {
        return Ok(());
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tandem-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send to {address}: {e}"))?;
    let mut response = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // Servers often close TLS without close_notify; what we read is still the answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => 0,
            Err(e) => return Err(format!("read from {address}: {e}")),
        };
        if n == 0 {
            break;
        }
        let room = MAX_RESPONSE - response.len();
        response.extend_from_slice(&chunk[..n.min(room)]);
        if response.len() >= MAX_RESPONSE {
            break;
        }
    }
    check_response(&response, *expect_status, expect_body.as_deref())
}

/// Judges a raw HTTP response: status in range, and the body holds the expected text.
pub(crate) fn check_response(
    raw: &[u8],
    (low, high): (u16, u16),
    expect_body: Option<&str>,
) -> Result<(), String> {
    let line_end = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or("no HTTP status line in the answer")?;
    let line = std::str::from_utf8(&raw[..line_end]).map_err(|_| "status line is not text")?;
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 answer: {line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    if !(low..=high).contains(&status) {
        return Err(format!("status {status}, expected {low}-{high}"));
    }
    if let Some(needle) = expect_body {
        let body_start = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or(raw.len());
        let body = &raw[body_start..];
        let found =
            !needle.is_empty() && body.windows(needle.len()).any(|w| w == needle.as_bytes());
        if !found && !needle.is_empty() {
            return Err(format!("body does not contain {needle:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_response;

    #[test]
    fn judges_status_and_body() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nall ok\n";
        assert!(check_response(ok, (200, 399), None).is_ok());
        assert!(check_response(ok, (200, 399), Some("all ok")).is_ok());
        assert!(check_response(ok, (200, 399), Some("broken"))
            .unwrap_err()
            .contains("does not contain"));
        assert!(check_response(ok, (201, 299), None)
            .unwrap_err()
            .contains("status 200"));
        let bad = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert!(check_response(bad, (200, 399), None).is_err());
        assert!(check_response(b"SSH-2.0-OpenSSH\r\n", (200, 399), None).is_err());
        assert!(check_response(b"", (200, 399), None).is_err());
        assert!(check_response(b"HTTP/1.1 abc\r\n\r\n", (200, 399), None).is_err());
    }
}

//! Real HTTP clients for the tests: a hyper HTTP/1.1 client that can bind to a chosen
//! 127.0.0.x source address and keep its connection alive, raw exchanges, and the
//! parsed [`Reply`] they (and [`super::curl`]) return.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// A response as a client saw it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The backend that answered (its `x-backend` header), None for tandem's own answers.
    pub fn backend(&self) -> Option<&str> {
        self.header("x-backend")
    }
}

/// Parses "HTTP/x status ...\r\nheaders\r\n\r\nbody". Interim 1xx heads are skipped.
pub fn parse_http_response(raw: &[u8]) -> Option<Reply> {
    let mut rest = raw;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..end]).ok()?;
        let body = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return Some(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
}

/// A client HTTP/1.1 connection (hyper) that can be reused for several requests.
pub struct HttpConn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpConn {
    /// Connects to `target`, from `local` (e.g. 127.0.0.2) when given.
    pub async fn open(target: SocketAddr, local: Option<IpAddr>) -> std::io::Result<HttpConn> {
        let tcp = crate::connect_from(target, local).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpConn {
            sender,
            host: target.to_string(),
        })
    }

    /// Sends one request (Host defaults to the target address) and reads the whole reply.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut builder = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            builder = builder.header("host", self.host.as_str());
        }
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        let req = builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(std::io::Error::other)?;
        let exchange = async {
            self.sender.ready().await.map_err(std::io::Error::other)?;
            let resp = self
                .sender
                .send_request(req)
                .await
                .map_err(std::io::Error::other)?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(Reply {
                status: parts.status.as_u16(),
                headers: header_pairs(&parts.headers),
                body: String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            })
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| std::io::Error::other("no reply within 5 s"))?
    }
}

/// One request on a new connection (from `local` when given).
pub async fn request_from(
    target: SocketAddr,
    local: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut conn = HttpConn::open(target, local).await?;
    conn.send(method, path, headers, body).await
}

/// GET on a new connection; panics on a transport error.
pub async fn http_get(target: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request_from(target, None, "GET", path, headers, b"")
        .await
        .unwrap_or_else(|e| panic!("GET {path} via {target}: {e}"))
}

/// GET from a chosen source address on a new connection; panics on a transport error.
pub async fn http_get_from(target: SocketAddr, local: IpAddr, path: &str) -> Reply {
    request_from(target, Some(local), "GET", path, &[], b"")
        .await
        .unwrap_or_else(|e| panic!("GET {path} via {target} from {local}: {e}"))
}

/// Writes `bytes` on a raw TCP connection and reads until the peer closes (or `limit`).
/// Returns what was read and whether the peer closed within `limit`.
pub async fn raw_exchange(target: SocketAddr, bytes: &[u8], limit: Duration) -> (Vec<u8>, bool) {
    use tokio::io::AsyncWriteExt;
    let mut tcp = TcpStream::connect(target).await.expect("connecting");
    tcp.write_all(bytes).await.expect("writing");
    read_to_close(&mut tcp, limit).await
}

/// Reads until EOF (or error) within `limit`; returns what came and whether EOF came.
pub async fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// Headers as (lower-case name, value) pairs in the order received.
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_string(), value)
        })
        .collect()
}

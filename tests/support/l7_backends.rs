//! HTTP backends and clients for the L7 policy tests (routing, balancing, persistence,
//! retries, limits, access rules): hyper HTTP/1.1 servers on loopback that name themselves,
//! and real clients — curl, and a hyper HTTP/1.1 client that can bind to a chosen
//! 127.0.0.x source address and keep its connection alive.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One request as a backend saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    name: String,
    status: AtomicU16,
    requests: AtomicU64,
    connections: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

/// An HTTP/1.1 backend answering every request with its configured status (200 by
/// default), an `x-backend: <name>` header and the body `<name>`. It reads the whole
/// request body first and records every request. `kill` stops it at once: the listening
/// socket closes (new connections are refused) and so do its open keep-alive connections.
pub struct HttpBackend {
    pub name: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl HttpBackend {
    pub async fn start(name: &str) -> HttpBackend {
        Self::start_with_status(name, 200).await
    }

    pub async fn start_with_status(name: &str, status: u16) -> HttpBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a test HTTP backend on 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            status: AtomicU16::new(status),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, shared.clone(), stop.clone()));
        HttpBackend {
            name: name.to_string(),
            addr,
            shared,
            stop,
        }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Requests seen with this method.
    pub fn count_method(&self, method: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }

    /// From now on, answer with this status.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Stops listening and closes every open connection (a crashed server).
    pub fn kill(&self) {
        self.stop.cancel();
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, shared.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body_len = match body.collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => 0,
    };
    let seen = Seen {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_len,
    };
    shared
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(seen);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let status = shared.status.load(Ordering::SeqCst);
    let resp = Response::builder()
        .status(status)
        .header("x-backend", shared.name.as_str())
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(shared.name.clone())))
        .expect("a valid response");
    Ok(resp)
}

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

/// Runs curl (`-sS -i`, 5 s cap, no proxy from the environment) with `args` and parses the
/// last response it printed. Panics when curl itself fails (connection refused, timeout).
pub async fn curl(args: &[&str]) -> Reply {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "5", "--noproxy", "*"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_http_response(&out.stdout)
        .unwrap_or_else(|| panic!("curl {args:?}: unparsable output {:?}", out.stdout))
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
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(target).await.expect("connecting");
    tcp.write_all(bytes).await.expect("writing");
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

/// Backend config lines for `pool` (ids are the backend names).
pub fn pool_toml(name: &str, algorithm: &str, backends: &[&HttpBackend], extra: &str) -> String {
    let mut t = format!("\n[[pool]]\nname = \"{name}\"\nalgorithm = \"{algorithm}\"\n{extra}\n");
    for b in backends {
        t.push_str(&format!(
            "[[pool.backend]]\nid = \"{}\"\naddress = \"{}\"\n",
            b.name, b.addr
        ));
    }
    t
}

/// An HTTP listener on 127.0.0.1:`port` (`pool` may be empty: routes only).
pub fn http_listener_toml(name: &str, port: u16, pool: &str, extra: &str) -> String {
    let pool_line = if pool.is_empty() {
        String::new()
    } else {
        format!("pool = \"{pool}\"\n")
    };
    format!(
        "\n[[listener]]\nname = \"{name}\"\nprotocol = \"http\"\nbind = \"127.0.0.1:{port}\"\n{pool_line}{extra}\n"
    )
}

/// The `[node]` table the L7 tests start with.
pub const NODE_TOML: &str = "[node]\nid = \"test\"\ndrain_timeout = \"1s\"\nadmin_socket = \"\"\n";

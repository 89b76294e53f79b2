//! L7 test fixtures: a throwaway PKI written to a scratch directory (rcgen), small hyper
//! backends (plain h1/h2c or TLS) that echo what they received, a hand-made WebSocket echo
//! backend, and curl run as a child process with a deadline. Loopback only.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tandem_tls::rustls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------
// Scratch directory and PKI

/// A fresh directory under the system temp dir, removed on drop (also when a test fails).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tandem-l7-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

// ---------------------------------------------------------------------------------------
// HTTP backends

/// One request as a backend received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body_len: usize,
}

impl Seen {
    /// The header's value as text ("" when absent); several values are joined with ", ".
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A hyper backend on 127.0.0.1 speaking HTTP/1.1 and h2c (or both over TLS). Paths:
/// - `/status/<code>`: answers with that status;
/// - `/slow/<ms>`: answers 200 after that long;
/// - `/hop`: answers with hop-by-hop headers of its own (`Connection: x-backend-hop`);
/// - `/stream`: streams three chunks, then trailers `grpc-status: 0`;
/// - `/trailers`: the same with `Trailer: x-checksum` and trailer `x-checksum: c0ffee`;
/// - `/big/<bytes>`: that many bytes of `x`, streamed in 64 KiB chunks (large responses);
/// - `/health`: "ok";
/// - anything else: echoes `<name>\n<METHOD> <path?query> <version>\n` and one `name: value` line
///   per header received.
pub struct HttpBackend {
    pub name: String,
    pub addr: SocketAddr,
    connections: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl HttpBackend {
    pub async fn start(name: &str) -> HttpBackend {
        Self::serve(name, None).await
    }

    pub async fn start_tls(name: &str, tls: Arc<rustls::ServerConfig>) -> HttpBackend {
        Self::serve(name, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn serve(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> HttpBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (n, count, log) = (name.to_string(), connections.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (n, log, tls) = (n.clone(), log.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve_conn(tcp, n, log).await,
                        Some(acceptor) => {
                            if let Ok(Ok(stream)) =
                                tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp))
                                    .await
                            {
                                serve_conn(stream, n, log).await
                            }
                        }
                    }
                });
            }
        });
        HttpBackend {
            name: name.to_string(),
            addr,
            connections,
            seen,
            task,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests received for `path`.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_conn<S>(io: S, name: String, log: Arc<Mutex<Vec<Seen>>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let (name, log) = (name.clone(), log.clone());
        async move { Ok::<_, Infallible>(backend_answer(req, &name, &log).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

type BackendBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(text: impl Into<Bytes>) -> BackendBody {
    Full::new(text.into()).boxed()
}

async fn backend_answer(
    req: Request<Incoming>,
    name: &str,
    log: &Mutex<Vec<Seen>>,
) -> Response<BackendBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body_len: body.len(),
    });
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = Response::new(full(format!("{name} {}\n", status.as_u16())));
        *resp.status_mut() = status;
        return resp;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms = ms.parse::<u64>().unwrap_or(0).min(10_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Response::new(full(format!("{name} slow\n")));
    }
    if let Some(n) = path.strip_prefix("/big/") {
        let left = n.parse::<usize>().unwrap_or(0);
        let mut resp = Response::new(Repeated { left }.boxed());
        resp.headers_mut()
            .insert("content-length", HeaderValue::from(left as u64));
        return resp;
    }
    match path.as_str() {
        "/health" => Response::new(full("ok\n")),
        "/hop" => {
            let mut resp = Response::new(full(format!("{name} hop\n")));
            let h = resp.headers_mut();
            h.insert("connection", HeaderValue::from_static("x-backend-hop"));
            h.insert("x-backend-hop", HeaderValue::from_static("secret"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("x-backend-normal", HeaderValue::from_static("yes"));
            resp
        }
        "/stream" => streamed(&[("grpc-status", "0"), ("grpc-message", "all-good")], None),
        // HTTP/1.1 sends trailers only when the response declares them in `Trailer`.
        "/trailers" => streamed(&[("x-checksum", "c0ffee")], Some("x-checksum")),
        _ => {
            let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut text = format!("{name}\n{} {target} {:?}\n", parts.method, parts.version);
            for (k, v) in &parts.headers {
                text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("<binary>")));
            }
            Response::new(full(text))
        }
    }
}

/// A response streamed in three chunks 20 ms apart, then `trailers`; `declare` is put in a
/// `Trailer` header.
fn streamed(
    trailers: &[(&'static str, &'static str)],
    declare: Option<&'static str>,
) -> Response<BackendBody> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut map = HeaderMap::new();
    for (k, v) in trailers {
        map.insert(*k, HeaderValue::from_static(v));
    }
    tokio::spawn(async move {
        for chunk in ["one ", "two ", "three"] {
            if tx.send(Frame::data(Bytes::from(chunk))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tx.send(Frame::trailers(map)).await;
    });
    let mut resp = Response::new(ChannelBody(rx).boxed());
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    if let Some(name) = declare {
        h.insert("trailer", HeaderValue::from_static(name));
    }
    resp
}

/// `left` bytes of `x` in 64 KiB frames, made without allocating per frame.
struct Repeated {
    left: usize,
}

static XS: [u8; 64 * 1024] = [b'x'; 64 * 1024];

impl Body for Repeated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let n = this.left.min(XS.len());
        this.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&XS[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

/// A response body fed frame by frame from a channel (streaming, then trailers).
struct ChannelBody(tokio::sync::mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut().0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// The value of `name:` in an echo body ("" when absent).
pub fn echo_header(echo: &str, name: &str) -> String {
    let prefix = format!("{}: ", name.to_ascii_lowercase());
    echo.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// WebSocket

/// The RFC 6455 accept value for a `Sec-WebSocket-Key`.
pub fn websocket_accept(key: &str) -> String {
    let mut input = key.trim().as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha1(&input))
}

/// A raw-TCP WebSocket backend: reads the upgrade request, answers 101 with the accept
/// value, then echoes every byte (frames included) until the client closes. Records the
/// request heads it received.
pub struct WsBackend {
    pub addr: SocketAddr,
    pub heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl WsBackend {
    pub async fn start() -> WsBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind ws backend");
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let log = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let Some((head, rest)) = read_head(&mut tcp, Duration::from_secs(5)).await
                    else {
                        return;
                    };
                    log.lock().unwrap().push(head.clone());
                    let key = head_value(&head, "sec-websocket-key").unwrap_or_default();
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                        websocket_accept(&key)
                    );
                    if tcp.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    if !rest.is_empty() && tcp.write_all(&rest).await.is_err() {
                        return;
                    }
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if tcp.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tcp.shutdown().await;
                });
            }
        });
        WsBackend { addr, heads, task }
    }
}

impl Drop for WsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads an HTTP head (up to the blank line) within `limit`; returns it as text and any
/// bytes read past it. None on EOF, timeout or a head over 64 KiB.
pub async fn read_head(stream: &mut TcpStream, limit: Duration) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = buf[end + 4..].to_vec();
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                return Some((head, rest));
            }
            if buf.len() > 64 * 1024 {
                return None;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}

/// A header's value in a raw head (case-insensitive name), trimmed.
pub fn head_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// SHA-1 (FIPS 180-4), only for the WebSocket accept value.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// curl

/// What a curl run gave.
#[derive(Debug)]
pub struct CurlOutput {
    /// curl's exit code (-1 if it was killed).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs curl with `args`, ignoring ~/.curlrc and proxy variables, bounded by `--max-time 10`
/// and a 15 s deadline on the process.
pub async fn curl(args: &[&str]) -> CurlOutput {
    let started = Instant::now();
    let child = tokio::process::Command::new("curl")
        .arg("-q")
        .args([
            "--silent",
            "--show-error",
            "--noproxy",
            "*",
            "--max-time",
            "10",
        ])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("curl is installed (.ci/run --deps-only)");
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("curl finished within 15 s")
        .expect("curl ran");
    CurlOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A path as TOML literal string text (single quotes: no escapes needed for temp paths).
pub fn toml_path(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Config text: one HTTP listener "front" on 127.0.0.1:`port` in front of pool "p".
/// `listener_tables` comes right after the listener's keys (e.g. `[listener.tls]`), and
/// `pool_extra` after the pool's name (keys first, then tables such as `[pool.http]`).
pub fn http_config(
    port: u16,
    listener_tables: &str,
    pool_extra: &str,
    backends: &[(&str, SocketAddr)],
) -> String {
    let mut t = format!(
        "[node]\nid = \"l7\"\ndrain_timeout = \"1s\"\n\n[[listener]]\nname = \"front\"\nprotocol = \"http\"\nbind = \"127.0.0.1:{port}\"\npool = \"p\"\n{listener_tables}\n\n[[pool]]\nname = \"p\"\n{pool_extra}\n"
    );
    for (id, addr) in backends {
        t.push_str(&format!(
            "\n[[pool.backend]]\nid = \"{id}\"\naddress = \"{addr}\"\n"
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_accept_matches_rfc_6455_example() {
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}

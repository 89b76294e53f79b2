//! Response compression end to end: a real node in front of a backend with large text,
//! chunked JSON, small, image, pre-encoded and no-transform bodies; curl as the client
//! (raw Accept-Encoding headers and `--compressed`), over HTTP/1.1 and h2c. Compressed
//! bodies are decoded with `gzip -d`, `zstd -d` or curl's own br decoder and compared with
//! the backend's bytes.

use super::url;

use tandem_tests::http_kit::*;
use tandem_tests::*;

/// A response as curl wrote it: status, headers (lower-case names) and the body bytes.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs curl with `args`, the headers and body into files (the body may be binary).
async fn fetch(dir: &TempDir, args: &[&str]) -> Raw {
    let (head, body) = (dir.path("head"), dir.path("body"));
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "--noproxy", "*", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(&head).unwrap();
    // The last head (interim 1xx ones first).
    let last = head
        .split("\r\n\r\n")
        .filter(|h| !h.trim().is_empty())
        .last()
        .unwrap()
        .to_string();
    let mut lines = last.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Raw {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// Decodes `data` with a command-line decompressor (`gzip -dc`, `zstd -dc`).
fn decode(tool: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new(tool)
        .args(["-dc"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{tool} -dc failed");
    out.stdout
}

fn node(content: &HttpBackend, port: u16, compression: &str, routes: &str) -> String {
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml(
        "front",
        port,
        "content",
        &format!("{compression}\n{routes}"),
    );
    toml += &pool_toml("content", "", &[content], "");
    toml
}

#[tokio::test]
async fn compresses_with_the_negotiated_encoding_and_decodes_to_the_original() {
    let content = HttpBackend::content().await;
    let port = free_port();
    let node = start_node(&node(&content, port, "compression = {}", ""));
    let dir = TempDir::new();
    let text = big_text();
    let u = url(port, "/text");

    for (accept, encoding, tool) in [
        ("gzip", "gzip", "gzip"),
        ("zstd", "zstd", "zstd"),
        ("gzip;q=1, br;q=0.5", "gzip", "gzip"),
        ("br;q=0, *", "zstd", "zstd"),
        ("x-gzip, identity;q=0", "gzip", "gzip"),
    ] {
        let r = fetch(&dir, &["-H", &format!("Accept-Encoding: {accept}"), &u]).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-encoding"),
            Some(encoding),
            "for {accept:?}"
        );
        assert_eq!(r.header("content-length"), None);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            r.header("etag"),
            Some("W/\"v1\""),
            "a strong ETag is weakened"
        );
        assert_eq!(r.header("accept-ranges"), None);
        assert!(
            r.body.len() < text.len() / 2,
            "{accept:?}: {} bytes",
            r.body.len()
        );
        assert!(
            decode(tool, &r.body) == text,
            "{accept:?}: decodes to the original"
        );
    }

    // br, decoded by curl; and curl's own Accept-Encoding (deflate, gzip, br, zstd): the
    // server's order (br first) decides between equal q-values.
    for args in [
        vec!["-H", "Accept-Encoding: br", "--compressed"],
        vec!["--compressed"],
    ] {
        let mut args = args.clone();
        args.push(&u);
        let r = fetch(&dir, &args).await;
        assert_eq!(r.header("content-encoding"), Some("br"), "{args:?}");
        assert!(r.body == text, "{args:?}: br decodes to the original");
    }

    // Chunked JSON from the backend (no length known): compressed as it streams.
    let json = big_json();
    let r = fetch(&dir, &["-H", "Accept-Encoding: gzip", &url(port, "/json")]).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(decode("gzip", &r.body) == json);

    // HTTP/2 (h2c): no chunked framing, same encodings.
    for (accept, encoding) in [("zstd", "zstd"), ("gzip", "gzip")] {
        let r = fetch(
            &dir,
            &[
                "--http2-prior-knowledge",
                "-H",
                &format!("Accept-Encoding: {accept}"),
                &u,
            ],
        )
        .await;
        assert_eq!(r.header("content-encoding"), Some(encoding));
        assert_eq!(r.header("content-length"), None);
        assert!(decode(encoding, &r.body) == text, "h2c {accept}");
    }
    let r = fetch(
        &dir,
        &[
            "--http2-prior-knowledge",
            "--compressed",
            &url(port, "/json"),
        ],
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert!(r.body == json, "h2c br decodes to the original");

    // The counters: responses by encoding, bytes before and after.
    let m = tandemd::metrics::Snapshot::gather(&node).await.encode();
    let value = |series: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from /metrics"))
    };
    let on = |labels: &str| format!("{{listener=\"front\",{labels}}}");
    let count = |a: &str| {
        value(&format!(
            "tandem_http_compressed_responses_total{}",
            on(&format!("algorithm=\"{a}\""))
        ))
    };
    assert_eq!(count("gzip"), 5.0);
    assert_eq!(count("zstd"), 3.0);
    assert_eq!(count("br"), 3.0);
    let bytes_in = value(&format!(
        "tandem_http_compressed_bytes_total{}",
        on("stage=\"in\"")
    ));
    let bytes_out = value(&format!(
        "tandem_http_compressed_bytes_total{}",
        on("stage=\"out\"")
    ));
    let expected_in = 9 * text.len() + 2 * json.len();
    assert_eq!(bytes_in, expected_in as f64);
    assert!(
        bytes_out > 0.0 && bytes_out < bytes_in / 2.0,
        "{bytes_out} of {bytes_in}"
    );
}

#[tokio::test]
async fn leaves_alone_what_must_not_be_compressed() {
    let content = HttpBackend::content().await;
    let port = free_port();
    let routes = r#"
[[listener.route]]
path_prefix = "/raw"
pool = "content"
rewrite = { replace_prefix = "/" }
compression = { enabled = false }

[[listener.route]]
path_prefix = "/only-gzip"
pool = "content"
rewrite = { replace_prefix = "/" }
compression = { algorithms = ["gzip"], min_size = 100 }
"#;
    let _node = start_node(&node(
        &content,
        port,
        "compression = { algorithms = [\"zstd\", \"gzip\"], content_types = [\"text/*\", \"application/json\"] }",
        routes,
    ));
    let dir = TempDir::new();
    let text = big_text();
    let any = ["-H", "Accept-Encoding: gzip, br, zstd"];

    for (path, why) in [
        ("/small", "a body under min_size"),
        ("/image", "a content type not in the list"),
        ("/no-transform", "Cache-Control: no-transform"),
        ("/raw/text", "a route with enabled = false"),
    ] {
        let r = fetch(&dir, &[any[0], any[1], &url(port, path)]).await;
        assert_eq!(r.status, 200, "{why}");
        assert_eq!(r.header("content-encoding"), None, "{why}");
        assert!(r.header("content-length").is_some(), "{why}");
        assert_eq!(r.header("vary"), None, "{why}");
    }
    let r = fetch(&dir, &[any[0], any[1], &url(port, "/encoded")]).await;
    assert_eq!(
        r.header("content-encoding"),
        Some("x-custom"),
        "already encoded"
    );
    assert!(r.body == text, "passed on as it is");

    // No Accept-Encoding, or nothing acceptable: identity.
    for accept in [
        None,
        Some("identity"),
        Some("br"),
        Some("gzip;q=0, zstd;q=0"),
    ] {
        let mut args = vec![];
        let h;
        if let Some(a) = accept {
            h = format!("Accept-Encoding: {a}");
            args.extend(["-H", h.as_str()]);
        }
        let u = url(port, "/text");
        args.push(&u);
        let r = fetch(&dir, &args).await;
        assert_eq!(r.header("content-encoding"), None, "{accept:?}");
        assert_eq!(r.header("etag"), Some("\"v1\""), "{accept:?}");
        assert!(r.body == text);
    }

    // A Range request: the backend's 206 slice, untouched.
    let r = fetch(
        &dir,
        &[
            any[0],
            any[1],
            "-H",
            "Range: bytes=0-99",
            &url(port, "/text"),
        ],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body == text[..100]);

    // HEAD: the head of the identity response.
    let r = fetch(&dir, &["-I", any[0], any[1], &url(port, "/text")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(
        r.header("content-length"),
        Some(text.len().to_string().as_str())
    );

    // The route's own policy: gzip only, from 100 bytes.
    let r = fetch(&dir, &[any[0], any[1], &url(port, "/only-gzip/small")]).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(decode("gzip", &r.body) == text[..200]);
    // The listener's: zstd first.
    let r = fetch(&dir, &[any[0], any[1], &url(port, "/text")]).await;
    assert_eq!(r.header("content-encoding"), Some("zstd"));
}

#[test]
fn check_config_names_the_key_of_a_bad_compression_setting() {
    let dir = TempDir::new();
    let compression = "{ algorithms = [\"gzip\", \"deflate\", \"gzip\"], min_size = 5000000000, content_types = [\"text\", \"*/json\"], level = { gzip = 12 } }";
    let api = Route::to("p")
        .path_prefix("/api")
        .key("compression", "{ content_types = [] }");
    let front = Listener::http("front", free_port())
        .pool("p")
        .key("compression", compression)
        .route(api);
    let text = Config::test_node()
        .listener(front)
        .pool(Pool::new("p").backend("a", "127.0.0.1:9"))
        .to_toml();
    let file = dir.write("bad-compression.toml", text);
    let report = check_config_refusal(&file);
    for words in [
        "listener[0].compression.algorithms[1]: unknown encoding \"deflate\"",
        "listener[0].compression.algorithms[2]: \"gzip\" is listed twice",
        "listener[0].compression.min_size: 5000000000 bytes is more than 1 GiB",
        "listener[0].compression.content_types[0]: \"text\" is not a media type pattern",
        "listener[0].compression.content_types[1]: \"*/json\" is not a media type pattern",
        "listener[0].compression.level.gzip: must be between 1 and 9",
        "listener[0].route[0].compression.content_types: give at least one media type",
    ] {
        assert!(report.contains(words), "{words:?} missing from:\n{report}");
    }
}

/// The body is compressed as it streams: when the backend pauses half way, the client
/// already has the compressed first half (the encoder flushes when its input stalls), and
/// the whole decodes to the original once the backend finishes.
#[tokio::test]
async fn compresses_as_the_body_streams() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let content = HttpBackend::content().await;
    let port = free_port();
    let _node = start_node(&node(
        &content,
        port,
        "compression = { algorithms = [\"gzip\"] }",
        "",
    ));
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(
        b"GET /slow HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    // Read until the head and the first chunk of body have arrived, the backend held.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let head_end = loop {
        let mut buf = [0u8; 16384];
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .expect("compressed bytes before the backend finished")
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            // The head, then at least one chunk of more than a gzip header.
            let body = &got[i + 4..];
            if body.len() > 200 {
                break i + 4;
            }
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    content.finish_slow();
    tcp.read_to_end(&mut got).await.unwrap();
    // De-chunk, then decode.
    let mut body = Vec::new();
    let mut rest = &got[head_end..];
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                .unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    assert!(decode("gzip", &body) == big_text());
}

//! The read-only status listener (`[node.status]`) of a running tandemd, read by real
//! clients: headless Chromium (Debian package `chromium`) renders the HTML page and must
//! show a backend going down; the JSON and metrics answer on the same port; nothing there
//! can change the node; the read-only token is enforced. The test also writes screenshots
//! (desktop and phone width); with TANDEM_DOCS_SCREENSHOTS=1 they go to docs/.

use http::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tandem_tests::admin::{exchange, json, Daemon};
use tandem_tests::http_kit::{curl_output, TestCa};
use tandem_tests::TempDir;
use tandem_tests::*;
use tokio::net::TcpStream;

/// Chromium from Debian (`apt-get install chromium`; .ci/run installs it).
fn chromium() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join("chromium");
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("chromium is missing: this test renders the status page in it; run `apt-get install chromium` (.ci/run installs it)");
}

/// Runs headless Chromium with `args` on `url`; returns its stdout.
async fn chromium_run(args: &[&str], url: &str) -> String {
    let mut command = tokio::process::Command::new(chromium());
    command
        // Root in CI: Chromium refuses to run as root with its sandbox.
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--no-first-run", "--disable-extensions"])
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("chromium finishes within 60 s")
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium {args:?} {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM Chromium built from the page.
async fn rendered(url: &str) -> String {
    chromium_run(&["--dump-dom"], url).await
}

/// GET `path` on the status listener: status, content type and body.
async fn get(
    addr: std::net::SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let stream = TcpStream::connect(addr)
        .await
        .expect("the status listener accepts");
    let (status, h, body) = exchange(stream, method, path, headers, None)
        .await
        .expect("the status listener answers");
    let ctype = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ctype, String::from_utf8_lossy(&body).into_owned())
}

/// One table row of the rendered page, by its id.
fn row<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr id=\"{id}\""))
        .unwrap_or_else(|| panic!("no row {id} in the page:\n{dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

fn config(
    port: u16,
    status_port: u16,
    backends: &[(&str, std::net::SocketAddr, u32)],
    token: Option<&Path>,
) -> String {
    let check = "[pool.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 2";
    let token = token.map_or(String::new(), |t| format!("token_file = {}", toml_path(t)));
    let pool = backends.iter().fold(
        Pool::new("p").algorithm("round_robin").raw(check),
        |pool, (id, addr, weight)| pool.weighted(id, addr, *weight),
    );
    Config::test_node()
        .drain_timeout("2s")
        .node_tables(&format!(
            "[node.status]\nlisten = \"127.0.0.1:{status_port}\"\n{token}"
        ))
        .listener(Listener::tcp("front", port).pool("p"))
        .pool(pool)
        .to_toml()
}

/// Where screenshots go: docs/ when asked (to refresh the docs), else a scratch dir.
fn screenshot_dir(scratch: &TempDir) -> PathBuf {
    if std::env::var_os("TANDEM_DOCS_SCREENSHOTS").is_some() {
        repo_root().join("docs")
    } else {
        scratch.path("")
    }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is no PNG",
        path.display()
    );
    assert!(
        bytes.len() > 10_000,
        "{}: {} bytes, an empty page?",
        path.display(),
        bytes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_chromium_shows_a_backend_going_down() {
    let b1 = NameBackend::start("b1").await;
    let b2 = NameBackend::start("b2").await;
    let (port, status_port) = (free_port(), free_port());
    let daemon = Daemon::start(&config(
        port,
        status_port,
        &[("b1", b1.addr, 1), ("b2", b2.addr, 3)],
        None,
    ))
    .await;
    let status: std::net::SocketAddr = ([127, 0, 0, 1], status_port).into();
    assert!(
        wait_listening(status, Duration::from_secs(10)).await,
        "{}",
        daemon.log()
    );
    let proxy: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..8 {
        assert!(which_backend(proxy).await.is_some());
    }
    let url = format!("http://{status}/");

    // Everything up: both backends as rows with their health, weight and picks.
    let dom = rendered(&url).await;
    assert!(dom.contains("<title>tandem test: status</title>"), "{dom}");
    let r2 = row(&dom, "backend-p-b2");
    assert!(r2.contains("class=\"ok\""), "{r2}");
    assert!(r2.contains(">up<"), "{r2}");
    assert!(r2.contains("<td class=\"n\">3</td>"), "the weight: {r2}");
    assert!(row(&dom, "listener-front").contains("127.0.0.1:"), "{dom}");
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "it refreshes itself"
    );
    assert!(dom.contains("name=\"viewport\""), "phone-readable");
    assert!(!dom.contains("<script"), "no script at all");
    let dir = TempDir::new();
    let shots = screenshot_dir(&dir);

    // b2 dies; the health check marks it down, and the page says so.
    b2.kill();
    let mut down = false;
    for _ in 0..100 {
        let (_, _, body) = get(status, Method::GET, "/status", &[]).await;
        let s = json(body.as_bytes());
        if s["pools"][0]["backends"][1]["health"] == "down" {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(down, "b2 is never reported down; log:\n{}", daemon.log());
    let dom = rendered(&url).await;
    let r2 = row(&dom, "backend-p-b2");
    assert!(r2.contains("class=\"bad\""), "{r2}");
    assert!(r2.contains(">down<"), "{r2}");
    assert!(row(&dom, "backend-p-b1").contains(">up<"), "{dom}");
    assert!(dom.contains("1/2 up"), "the pool's summary: {dom}");
    let events = &dom[dom.find("id=\"events\"").expect("an events section")..];
    assert!(events.contains("backend p/b2"), "{events}");

    // Screenshots for the docs: a desktop and a phone-sized window.
    for (name, size) in [
        ("status-page.png", "1280,900"),
        ("status-page-phone.png", "390,844"),
    ] {
        let file = shots.join(name);
        let arg = format!("--screenshot={}", file.display());
        chromium_run(&[&arg, &format!("--window-size={size}")], &url).await;
        assert_png(&file);
    }
    drop(daemon);
}

#[tokio::test]
async fn the_status_listener_is_read_only_and_honours_its_token() {
    let b1 = NameBackend::start("b1").await;
    let (port, status_port) = (free_port(), free_port());
    let dir = TempDir::new();
    let token = dir.write("status.token", "r3ad-only\n");
    let daemon = Daemon::start(&config(
        port,
        status_port,
        &[("b1", b1.addr, 1)],
        Some(&token),
    ))
    .await;
    let status: std::net::SocketAddr = ([127, 0, 0, 1], status_port).into();
    assert!(wait_listening(status, Duration::from_secs(10)).await);

    // No token, a wrong one: 401. The header or the query (for browsers): 200.
    let (code, _, body) = get(status, Method::GET, "/status", &[]).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let (code, _, _) = get(
        status,
        Method::GET,
        "/",
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let bearer = [("authorization", "Bearer r3ad-only")];
    let (code, ctype, body) = get(status, Method::GET, "/status", &bearer).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ctype, "application/json");
    let s = json(body.as_bytes());
    assert_eq!(s["node"], "test");
    assert_eq!(s["pools"][0]["backends"][0]["id"], "b1");
    assert_eq!(s["listeners"][0]["name"], "front");
    let (code, ctype, page) = get(status, Method::GET, "/?token=r3ad-only", &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(page.contains("backend-p-b1"), "{page}");
    let (code, ctype, metrics) = get(status, Method::GET, "/metrics", &bearer).await;
    assert_eq!(code, StatusCode::OK);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(metrics.contains("tandem_backend_up"), "{metrics}");

    // Nothing here writes: the admin API's paths do not exist, other methods are refused,
    // and the backend is still enabled afterwards.
    let (code, _, _) = get(
        status,
        Method::POST,
        "/v1/pools/p/backends/b1/drain",
        &bearer,
    )
    .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, _, _) = get(
        status,
        Method::GET,
        "/v1/pools/p/backends/b1/drain",
        &bearer,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(daemon.backend("p", "b1").await["state"], "enabled");
}

/// A status token equal to the admin token would make the read-only one a write token.
#[test]
fn check_config_refuses_the_admin_token_as_status_token() {
    let dir = TempDir::new();
    let token = dir.write("admin.token", "s3cret\n");
    let text = config(
        free_port(),
        free_port(),
        &[("b1", "127.0.0.1:9".parse().unwrap(), 1)],
        Some(&token),
    )
    .replacen(
        "admin_socket = \"\"\n",
        &format!(
            "admin_socket = \"\"\nadmin_tcp = \"127.0.0.1:1\"\nadmin_token_file = \"{}\"\n",
            token.display()
        ),
        1,
    );
    let path = dir.write("tandem.toml", text);
    let out = Command::new(tandemd_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node.status.token_file: is node.admin_token_file"),
        "{err}"
    );
}

/// `[node.status.tls]`: the page over HTTPS with the configured certificate, checked by
/// curl against the test CA (and refused without it); plain HTTP gets no page; a renewed
/// certificate is served without a restart; check-config names a missing key file.
#[tokio::test]
async fn the_status_listener_serves_https_and_picks_up_a_renewed_certificate() {
    let b1 = NameBackend::start("b1").await;
    let (port, status_port) = (free_port(), free_port());
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "status");
    let leaf = ca.leaf(&dir, "status", "status.test", &["status.test"]);
    let tls = format!(
        "\n[node.status.tls]\ncert = {}\nkey = {}\n",
        toml_path(&leaf.cert),
        toml_path(&leaf.key)
    );
    let listen = format!("listen = \"127.0.0.1:{status_port}\"\n");
    let text = config(port, status_port, &[("b1", b1.addr, 1)], None).replacen(
        &listen,
        &format!("{listen}{tls}"),
        1,
    );
    let daemon = Daemon::start(&text).await;
    let status: std::net::SocketAddr = ([127, 0, 0, 1], status_port).into();
    assert!(wait_listening(status, Duration::from_secs(10)).await);

    let resolve = format!("status.test:{status_port}:127.0.0.1");
    let https = |path: &str| format!("https://status.test:{status_port}{path}");
    let trusting = |ca: &Path, path: &str| {
        let (ca, url, resolve) = (ca.display().to_string(), https(path), resolve.clone());
        async move { curl_output(&["--cacert", &ca, "--resolve", &resolve, &url]).await }
    };
    let out = trusting(&ca.path, "/status").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        json(out.stdout.as_bytes())["pools"][0]["backends"][0]["id"],
        "b1"
    );
    let out = trusting(&ca.path, "/metrics").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("tandem_tls_certificate_expiry_timestamp_seconds{listener=\"node.status\""),
        "{}",
        out.stdout
    );
    // Without the test CA the certificate is not trusted (curl 60): TLS is really checked.
    let out = curl_output(&["--resolve", &resolve, &https("/status")]).await;
    assert_eq!(out.code, 60, "{out:?}");
    // Plain HTTP to the HTTPS port gets no page.
    let out = curl_output(&[&format!("http://127.0.0.1:{status_port}/status")]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("b1"), "{out:?}");

    // Renewed under the same file names, by another CA: served on the next connection.
    let renewed_ca = TestCa::new(&dir, "renewed");
    renewed_ca.leaf(&dir, "status", "status.test", &["status.test"]);
    let mut served = false;
    for _ in 0..50 {
        if trusting(&renewed_ca.path, "/status").await.code == 0 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "the renewed certificate is served; log:\n{}",
        daemon.log()
    );
    assert_eq!(
        trusting(&ca.path, "/status").await.code,
        60,
        "the old one is gone"
    );
    assert!(daemon.log_contains("certificate loaded again").await);

    // check-config names the key path of a missing file.
    let broken = text.replace(&toml_path(&leaf.key), &toml_path(&dir.path("missing.key")));
    let path = dir.write("broken.toml", broken);
    let out = Command::new(tandemd_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node.status.tls"), "{err}");
}

//! The L7 plane with TLS: h2 and HTTP/1.1 by ALPN on one listener, certificate choice by
//! SNI, TLS to backends (bridging) with verification, HTTPS health checks, and the
//! certificate checks of `tandemd check-config`. Certificates are made at test time by a
//! throwaway CA (rcgen) in a scratch directory; clients are curl; loopback only.

use std::path::Path;
use std::time::Duration;
use tandem_balance::Health;
use tandem_tests::http_kit::*;
use tandem_tests::*;

/// `[listener.tls]` serving `certs` in order (the first is the default).
fn listener_tls(certs: &[&CertFiles]) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|c| {
            format!(
                "{{ cert = {}, key = {} }}",
                toml_path(&c.cert),
                toml_path(&c.key)
            )
        })
        .collect();
    format!("[listener.tls]\ncertificates = [{}]\n", list.join(", "))
}

/// `[pool.http]` with TLS to the backends, trusting `ca`, verifying `name`.
fn pool_tls(ca: &Path, name: &str, protocol: &str) -> String {
    format!(
        "[pool.http]\nprotocol = \"{protocol}\"\ntls = {{ ca = {}, server_name = \"{name}\" }}\n",
        toml_path(ca)
    )
}

/// curl to `https://<name>:<port><path>` resolved to 127.0.0.1, trusting `ca`.
async fn curl_tls(name: &str, port: u16, path: &str, ca: &Path, extra: &[&str]) -> CurlOutput {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}{path}");
    let ca = ca.display().to_string();
    let mut args = vec!["--resolve", &resolve, "--cacert", &ca];
    args.extend_from_slice(extra);
    args.push(&url);
    curl_output(&args).await
}

#[tokio::test]
async fn h2_and_http1_over_tls_by_alpn() {
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "alpn");
    let cert = ca.leaf(&dir, "www", "www-cert", &["www.example.test"]);
    let b = HttpBackend::echo("b1").await;
    let port = free_port();
    let node = start_node(&http_config(
        port,
        &listener_tls(&[&cert]),
        "",
        &[("b1", b.addr)],
    ));

    let out = curl_tls(
        "www.example.test",
        port,
        "/h2",
        &ca.path,
        &["--http2", "-v", "-w", "\n%{http_version}"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("ALPN: server accepted h2"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.trim_end().ends_with("\n2"), "{}", out.stdout);
    assert!(out.stdout.contains("GET /h2 HTTP/1.1"), "{}", out.stdout);

    // The same listener speaks HTTP/1.1 to a client that offers only that.
    let out = curl_tls(
        "www.example.test",
        port,
        "/h1",
        &ca.path,
        &["--http1.1", "-v", "-w", "\n%{http_version}"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("ALPN: server accepted http/1.1"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.trim_end().ends_with("\n1.1"), "{}", out.stdout);

    for path in ["/h2", "/h1"] {
        let seen = &b.seen_at(path)[0];
        assert_eq!(seen.header_text("x-forwarded-proto"), "https", "{path}");
        assert_eq!(
            seen.header_text("x-forwarded-host"),
            format!("www.example.test:{port}")
        );
    }

    // A listener offering only http/1.1, with TLS 1.3 at least.
    let strict = free_port();
    let tables = format!(
        "{}min_version = \"1.3\"\nalpn = [\"http/1.1\"]\n",
        listener_tls(&[&cert])
    );
    let strict_node = start_node(&http_config(strict, &tables, "", &[("b1", b.addr)]));
    let out = curl_tls(
        "www.example.test",
        strict,
        "/strict",
        &ca.path,
        &["--http2", "-w", "\n%{http_version}"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.trim_end().ends_with("\n1.1"), "{}", out.stdout);
    let out = curl_tls(
        "www.example.test",
        strict,
        "/old-tls",
        &ca.path,
        &["--tls-max", "1.2"],
    )
    .await;
    assert_eq!(out.code, 35, "TLS 1.2 is refused: {out:?}");
    assert!(b.seen_at("/old-tls").is_empty());
    let stats = strict_node.http().listener("front").unwrap().stats;
    assert!(
        eventually(Duration::from_secs(2), || stats
            .tls_handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1)
        .await,
        "the refused handshake is counted"
    );
    strict_node.shutdown_within(Duration::from_secs(1)).await;
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn sni_picks_the_certificate_by_name() {
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "sni");
    let default = ca.leaf(&dir, "default", "default-cert", &["default.example.test"]);
    let api = ca.leaf(&dir, "api", "api-cert", &["api.example.test"]);
    let apps = ca.leaf(&dir, "apps", "apps-cert", &["*.apps.example.test"]);
    let b = HttpBackend::echo("b1").await;
    let port = free_port();
    let node = start_node(&http_config(
        port,
        &listener_tls(&[&default, &api, &apps]),
        "",
        &[("b1", b.addr)],
    ));

    // Verified against the test CA under the name asked for: a wrong certificate fails.
    for (name, cn) in [
        ("default.example.test", "default-cert"),
        ("api.example.test", "api-cert"),
        ("shop.apps.example.test", "apps-cert"),
        ("API.Example.Test", "api-cert"),
    ] {
        let out = curl_tls(
            name,
            port,
            "/",
            &ca.path,
            &["-o", "/dev/null", "-w", "%{certs}"],
        )
        .await;
        assert_eq!(out.code, 0, "{name}: {out:?}");
        let certs = out.stdout.replace(' ', "");
        assert!(
            certs.contains(&format!("CN={cn}")),
            "{name} got:\n{}",
            out.stdout
        );
    }
    // Names no certificate covers get the default, which then fails verification...
    for name in [
        "other.example.test",
        "deep.shop.apps.example.test",
        "apps.example.test",
    ] {
        let out = curl_tls(name, port, "/", &ca.path, &["-o", "/dev/null"]).await;
        assert_eq!(out.code, 60, "{name}: verification must fail: {out:?}");
        let out = curl_tls(
            name,
            port,
            "/",
            &ca.path,
            &["-k", "-o", "/dev/null", "-w", "%{certs}"],
        )
        .await;
        assert_eq!(out.code, 0, "{name}: {out:?}");
        assert!(
            out.stdout.replace(' ', "").contains("CN=default-cert"),
            "{name} falls back to the default:\n{}",
            out.stdout
        );
    }
    // ...and so does a client that sends no SNI (connecting to an IP).
    let url = format!("https://127.0.0.1:{port}/");
    let out = curl_output(&["-k", "-o", "/dev/null", "-w", "%{certs}", &url]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.replace(' ', "").contains("CN=default-cert"),
        "{}",
        out.stdout
    );

    // Each certificate's expiry is a gauge, read from its file at scrape time: an expired
    // file (here written over the api one) shows its past date, for alerts.
    let expiry = |text: &str, cert: &Path| -> Option<f64> {
        let label = format!("cert=\"{}\"", cert.display());
        text.lines()
            .find(|l| {
                l.starts_with("tandem_tls_certificate_expiry_timestamp_seconds{")
                    && l.contains(&label)
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let text = tandemd::metrics::render(&node).await;
    for c in [&default, &api, &apps] {
        let at = expiry(&text, &c.cert).unwrap_or_else(|| panic!("{}:\n{text}", c.cert.display()));
        assert!(at > now + 365.0 * 86_400.0, "{}: {at}", c.cert.display());
    }
    let expired = ca.expired_leaf(&dir, "expired", &["api.example.test"]);
    std::fs::copy(&expired.cert, &api.cert).unwrap();
    let text = tandemd::metrics::render(&node).await;
    assert_eq!(
        expiry(&text, &api.cert),
        Some(946_684_800.0),
        "2000-01-01:\n{text}"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn tls_bridging_to_a_backend_verifies_its_certificate() {
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "backend");
    let other_ca = TestCa::new(&dir, "other");
    let cert = ca.leaf(
        &dir,
        "backend",
        "backend-cert",
        &["backend.test", "127.0.0.1"],
    );
    let b = HttpBackend::echo_tls("tls1", backend_tls_config(&cert, &["h2", "http/1.1"])).await;
    let start = |pool_extra: String| {
        let port = free_port();
        (
            port,
            start_node(&http_config(port, "", &pool_extra, &[("tls1", b.addr)])),
        )
    };
    let (good, good_node) = start(pool_tls(&ca.path, "backend.test", "http1"));
    let (untrusted, untrusted_node) = start(pool_tls(&other_ca.path, "backend.test", "http1"));
    let (misnamed, misnamed_node) = start(pool_tls(&ca.path, "elsewhere.test", "http1"));
    let (h2, h2_node) = start(pool_tls(&ca.path, "backend.test", "http2"));
    // No server_name: the backend's IP is sent and verified (the certificate has it).
    let (by_ip, by_ip_node) = start(format!(
        "[pool.http]\ntls = {{ ca = {} }}\n",
        toml_path(&ca.path)
    ));

    let out = curl_output(&[
        "--http1.1",
        "-i",
        &format!("http://127.0.0.1:{good}/bridge"),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("HTTP/1.1 200"), "{}", out.stdout);
    assert!(
        out.stdout.contains("tls1\nGET /bridge HTTP/1.1"),
        "{}",
        out.stdout
    );
    assert_eq!(
        b.seen_at("/bridge")[0].header_text("x-forwarded-proto"),
        "http"
    );

    for (port, why) in [(untrusted, "an unknown CA"), (misnamed, "the wrong name")] {
        let out = curl_output(&[
            "--http1.1",
            "-i",
            &format!("http://127.0.0.1:{port}/refused"),
        ])
        .await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stdout.starts_with("HTTP/1.1 502"),
            "a certificate from {why} is refused:\n{}",
            out.stdout
        );
        assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);
    }
    assert!(
        b.seen_at("/refused").is_empty(),
        "no request went over an unverified connection"
    );

    // HTTP/2 to the backend over TLS, chosen by ALPN.
    let out = curl_output(&["--http1.1", &format!("http://127.0.0.1:{h2}/over-h2")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("GET /over-h2 HTTP/2.0"),
        "{}",
        out.stdout
    );

    let out = curl_output(&["--http1.1", &format!("http://127.0.0.1:{by_ip}/by-ip")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("tls1\nGET /by-ip HTTP/1.1"),
        "{}",
        out.stdout
    );

    for node in [
        good_node,
        untrusted_node,
        misnamed_node,
        h2_node,
        by_ip_node,
    ] {
        node.shutdown_within(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn https_health_check_marks_tls_backend_up_and_plain_backend_down() {
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "check");
    let cert = ca.leaf(&dir, "backend", "backend-cert", &["backend.test"]);
    let secure = HttpBackend::echo_tls("secure", backend_tls_config(&cert, &["http/1.1"])).await;
    let plain = HttpBackend::echo("plain").await;
    let port = free_port();
    let pool = format!(
        "panic_threshold = 0.0\n\
         [pool.health_check]\nkind = \"https\"\ninterval = \"150ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 2\npath = \"/health\"\n\
         [pool.passive]\nconsecutive_failures = 0\n{}",
        pool_tls(&ca.path, "backend.test", "http1")
    );
    let node = start_node(&http_config(
        port,
        "",
        &pool,
        &[("secure", secure.addr), ("plain", plain.addr)],
    ));
    assert!(
        eventually(Duration::from_secs(5), || health_of(&node, "plain")
            == Health::Down)
        .await,
        "the plain backend fails HTTPS checks"
    );
    assert!(
        eventually(Duration::from_secs(5), || secure.seen_at("/health").len()
            >= 3)
        .await,
        "the TLS backend is checked over HTTPS"
    );
    assert_eq!(health_of(&node, "secure"), Health::Up);
    let checks = secure.seen_at("/health");
    assert_eq!(checks[0].header_text("user-agent"), "tandem-health");
    assert!(
        plain.seen_at("/health").is_empty(),
        "no HTTP request reached it"
    );

    for _ in 0..4 {
        let out = curl_output(&["--http1.1", &format!("http://127.0.0.1:{port}/who")]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.starts_with("secure\n"), "{}", out.stdout);
    }
    assert!(plain.seen_at("/who").is_empty());
    node.shutdown_within(Duration::from_secs(1)).await;
}

/// Runs `tandemd check-config` on a config serving `cert`/`key` on an HTTPS listener.
fn check_config(dir: &TempDir, file: &str, cert: &Path, key: &Path) -> (i32, String, String) {
    let tls = format!(
        "[listener.tls]\ncertificates = [{{ cert = {}, key = {} }}]",
        toml_path(cert),
        toml_path(key)
    );
    let config = Config::shared()
        .listener(Listener::http("front", free_port()).pool("p").tables(&tls))
        .pool(Pool::new("p").backend("a", "127.0.0.1:9"))
        .to_toml();
    let path = dir.write(file, config);
    let out = std::process::Command::new(tandemd_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run tandemd check-config");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_reports_certificate_problems() {
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "check-config");
    let good = ca.leaf(&dir, "good", "good-cert", &["good.example.test"]);
    let other = ca.leaf(&dir, "other", "other-cert", &["other.example.test"]);
    let expired = ca.expired_leaf(&dir, "expired", &["old.example.test"]);
    let missing = dir.path("missing.pem");

    let (code, stdout, stderr) = check_config(&dir, "good.toml", &good.cert, &good.key);
    assert_eq!(code, 0, "a good certificate passes: {stdout}{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");

    let cases = [
        (
            "missing.toml",
            &missing,
            &good.key,
            format!("cannot read certificate file {}", missing.display()),
        ),
        (
            "mismatch.toml",
            &good.cert,
            &other.key,
            format!(
                "the key in {} does not match the certificate in {}",
                other.key.display(),
                good.cert.display()
            ),
        ),
        (
            "expired.toml",
            &expired.cert,
            &expired.key,
            format!(
                "certificate {} expired on 2000-01-01",
                expired.cert.display()
            ),
        ),
    ];
    for (file, cert, key, expect) in cases {
        let (code, stdout, stderr) = check_config(&dir, file, cert, key);
        assert_eq!(code, 1, "{file}: exit 1: {stdout}{stderr}");
        assert!(
            stderr.contains(&expect),
            "{file}: expected {expect:?} in:\n{stderr}"
        );
        let config_path = dir.path(file).display().to_string();
        assert!(
            stderr.lines().all(|l| l.starts_with(&config_path)),
            "{file}: every line names the config file:\n{stderr}"
        );
        assert!(stderr.contains("listener[0].tls.certificates"), "{stderr}");
    }
}

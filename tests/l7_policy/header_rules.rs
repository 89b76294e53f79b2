//! Header rules, path rewrites and HSTS end to end: a real node in front of backends that
//! record the headers and path they received, clients curl and hyper. Listener rules run
//! before route rules; response rules reach tandem's own answers too; HSTS and the TLS
//! variables only exist over TLS; check-config names the key of a bad rule.

use super::{addr, url};
use tandem_tests::http_kit::*;
use tandem_tests::TempDir;
use tandem_tests::*;

/// Every value of `name` the backend saw in its last request, in order.
fn values(seen: &Seen, name: &str) -> Vec<String> {
    seen.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

fn last(b: &HttpBackend) -> Seen {
    b.seen().pop().expect("the backend saw a request")
}

#[tokio::test]
async fn request_and_response_rules_run_listener_first_then_route() {
    let (api, web) = (
        HttpBackend::start("api").await,
        HttpBackend::start("web").await,
    );
    let port = free_port();
    let listener = r#"
[listener.headers.request]
remove = ["X-Debug"]
set = { "X-Layer" = "listener", "X-Internal" = "yes", "X-Client" = "{client_ip}", "X-Scheme" = "{scheme}", "X-Host" = "{host} {hostname}", "X-Sni" = "{tls_sni}" }
add = { "X-Trace" = "listener-{request_id}" }
[listener.headers.response]
remove = ["X-Backend-Secret"]
set = { "X-Served-By" = "tandem for {hostname}", "X-Layer" = "listener" }

[[listener.route]]
path_prefix = "/api"
pool = "api"
[listener.route.headers.request]
remove = ["X-Internal"]
set = { "X-Layer" = "route" }
add = { "X-Trace" = "route" }
[listener.route.headers.response]
set = { "X-Layer" = "route" }
add = { "X-Route" = "api {request_id}" }

[[listener.route]]
path_prefix = "/old"
respond = { status = 410, body = "gone\n" }
headers = { response = { set = { "Cache-Control" = "max-age=60" } } }
"#;
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("front", port, "web", listener);
    toml += &pool_toml("api", "round_robin", &[&api], "");
    toml += &pool_toml("web", "round_robin", &[&web], "");
    let _node = start_node(&toml);
    let front = addr(port);

    let headers = [
        ("Host", "WWW.Example.test:8080"),
        ("X-Request-Id", "req-42"),
        ("X-Debug", "1"),
        ("X-Sni", "spoofed"),
        ("X-Trace", "client"),
    ];
    let reply = http_get(front, "/api/users", &headers).await;
    assert_eq!(reply.backend(), Some("api"));
    let seen = last(&api);
    assert_eq!(seen.header("x-debug"), None, "removed by the listener");
    assert_eq!(
        seen.header("x-internal"),
        None,
        "set by the listener, removed by the route"
    );
    assert_eq!(
        seen.header("x-layer"),
        Some("route"),
        "the route's set runs last"
    );
    assert_eq!(
        values(&seen, "x-trace"),
        ["client", "listener-req-42", "route"]
    );
    assert_eq!(seen.header("x-client"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-scheme"), Some("http"));
    assert_eq!(
        seen.header("x-host"),
        Some("WWW.Example.test:8080 www.example.test")
    );
    assert_eq!(
        seen.header("x-sni"),
        None,
        "an empty {{tls_sni}} removes what the client sent"
    );
    assert_eq!(reply.header("x-layer"), Some("route"));
    assert_eq!(reply.header("x-route"), Some("api req-42"));
    assert_eq!(
        reply.header("x-served-by"),
        Some("tandem for www.example.test")
    );

    // The default pool: the listener's rules only.
    let reply = http_get(front, "/page", &[("X-Request-Id", "req-43")]).await;
    assert_eq!(reply.backend(), Some("web"));
    let seen = last(&web);
    assert_eq!(seen.header("x-layer"), Some("listener"));
    assert_eq!(seen.header("x-internal"), Some("yes"));
    assert_eq!(values(&seen, "x-trace"), ["listener-req-43"]);
    assert_eq!(reply.header("x-layer"), Some("listener"));
    assert_eq!(reply.header("x-route"), None);

    // tandem's own answers: a fixed response gets the listener's and its route's rules...
    let reply = http_get(front, "/old/thing", &[]).await;
    assert_eq!(reply.status, 410);
    assert_eq!(reply.header("cache-control"), Some("max-age=60"));
    assert_eq!(reply.header("x-layer"), Some("listener"));
    assert!(reply.header("x-served-by").is_some());
    // ...and so does an error before any route (a refused Host).
    let reply = http_get(front, "/", &[("Host", "a,b")]).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("x-layer"), Some("listener"));
}

#[tokio::test]
async fn path_rewrites_strip_or_replace_the_prefix_and_keep_the_query() {
    let b = HttpBackend::start("b").await;
    let port = free_port();
    let routes = r#"
[[listener.route]]
path_prefix = "/api/"
pool = "p"
rewrite = { replace_prefix = "/v2/" }

[[listener.route]]
path_prefix = "/static"
pool = "p"
rewrite = { strip_prefix = true }
"#;
    let toml = Config::test_node()
        .listener(Listener::http("front", port).pool("p").raw(routes))
        .pool(Pool::of("p", &[&b]).algorithm("round_robin"))
        .to_toml();
    let _node = start_node(&toml);

    let cases = [
        ("/api/users?id=3&sort=name", "/v2/users?id=3&sort=name"),
        ("/api/", "/v2/"),
        ("/static/css/site.css?v=7", "/css/site.css?v=7"),
        ("/static", "/"),
        ("/static?x=1", "/?x=1"),
        ("/staticky", "/staticky"), // segment-aware: not under /static
        ("/other?q=1", "/other?q=1"),
    ];
    for (sent, want) in cases {
        let reply = curl(&[&url(port, sent)]).await;
        assert_eq!(reply.status, 200, "{sent}");
        assert_eq!(last(&b).uri, want, "{sent}");
    }
    // The same over h2c: the backend (HTTP/1.1) gets the rewritten path.
    let reply = curl(&["--http2-prior-knowledge", &url(port, "/api/x?y=1")]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(last(&b).uri, "/v2/x?y=1");
}

/// `[listener.tls]` with one certificate.
fn listener_tls(cert: &CertFiles) -> String {
    format!(
        "[listener.tls]\ncertificates = [{{ cert = {}, key = {} }}]\n",
        toml_path(&cert.cert),
        toml_path(&cert.key)
    )
}

#[tokio::test]
async fn hsts_and_tls_variables_exist_only_over_tls() {
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "hsts");
    let cert = ca.leaf(&dir, "www", "www", &["www.example.test"]);
    let b = HttpBackend::start("b").await;
    let (tls_port, plain_port) = (free_port(), free_port());
    let rules = r#"
[listener.headers.request]
set = { "X-Sni" = "{tls_sni}", "X-Tls" = "{tls_version}", "X-Scheme" = "{scheme}" }
[[listener.route]]
path_prefix = "/fixed"
respond = { status = 200, body = "fixed\n" }
"#;
    let tls_listener = format!(
        "hsts = {{ max_age = \"365d\", include_subdomains = true }}\n{rules}{}",
        listener_tls(&cert)
    );
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("secure", tls_port, "p", &tls_listener);
    toml += &http_listener_toml("plain", plain_port, "p", rules);
    toml += &pool_toml("p", "round_robin", &[&b], "");
    let _node = start_node(&toml);

    let resolve = format!("www.example.test:{tls_port}:127.0.0.1");
    let ca_path = ca.path.display().to_string();
    let https = |path: &str| format!("https://www.example.test:{tls_port}{path}");
    for version in ["--tlsv1.3", "--tls-max"] {
        let mut args = vec!["--resolve", &resolve, "--cacert", &ca_path];
        if version == "--tls-max" {
            args.extend(["--tls-max", "1.2"]);
        } else {
            args.push(version);
        }
        let page = https("/page");
        args.push(&page);
        let reply = curl(&args).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains")
        );
        let seen = last(&b);
        assert_eq!(seen.header("x-sni"), Some("www.example.test"));
        assert_eq!(seen.header("x-scheme"), Some("https"));
        let want = if version == "--tls-max" {
            "TLSv1.2"
        } else {
            "TLSv1.3"
        };
        assert_eq!(seen.header("x-tls"), Some(want));
    }
    // tandem's own answers over TLS carry it too.
    let fixed = https("/fixed");
    let reply = curl(&["--resolve", &resolve, "--cacert", &ca_path, &fixed]).await;
    assert_eq!(reply.body, "fixed\n");
    assert!(reply.header("strict-transport-security").is_some());

    // Plain HTTP: no HSTS, and the TLS variables are empty (a client's value is removed).
    let reply = http_get(
        addr(plain_port),
        "/page",
        &[("X-Sni", "spoofed"), ("X-Tls", "TLSv9")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("strict-transport-security"), None);
    let seen = last(&b);
    assert_eq!(seen.header("x-sni"), None);
    assert_eq!(seen.header("x-tls"), None);
    assert_eq!(seen.header("x-scheme"), Some("http"));
}

#[test]
fn check_config_names_the_key_of_a_bad_rule() {
    let dir = TempDir::new();
    let api = Route::to("p")
        .path_prefix("/api")
        .key("rewrite", "{ replace_prefix = \"v2\" }");
    let front = Listener::http("front", free_port())
        .pool("p")
        .key("hsts", "\"max-age=60\"")
        .tables("[listener.headers.request]\nset = { \"X-Client\" = \"{client}\" }\nremove = [\"Transfer-Encoding\"]")
        .route(api);
    let text = Config::test_node()
        .listener(front)
        .pool(Pool::new("p").backend("a", "127.0.0.1:9"))
        .to_toml();
    let file = dir.write("bad-headers.toml", text);
    let report = check_config_refusal(&file);
    for words in [
        "listener[0].headers.request.set.X-Client: value \"{client}\" unknown variable {client}",
        "listener[0].headers.request.remove[0]: \"Transfer-Encoding\" is a hop-by-hop",
        "listener[0].hsts: sent only over TLS",
        "listener[0].route[0].rewrite.replace_prefix: \"v2\" must be a path",
    ] {
        assert!(report.contains(words), "{words:?} missing from:\n{report}");
    }
}

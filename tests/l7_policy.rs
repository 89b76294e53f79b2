//! The L7 plane end to end, policy side: routing (hosts, paths, headers, methods, first
//! match, default, 404, redirects, fixed answers), balancing per request (round robin,
//! header/cookie/URI hashing), cookie persistence, source-IP affinity, access rules and the
//! JSON access log; header rules, path rewrites and HSTS (`l7_policy/header_rules.rs`);
//! response compression (`l7_policy/compression.rs`).
//! Real hyper backends and real clients (curl, hyper) on 127.0.0.x.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tandem_balance::AdminState;
use tandem_tests::http_kit::*;
use tandem_tests::*;

#[path = "l7_policy/access.rs"]
mod access;
#[path = "l7_policy/compression.rs"]
mod compression;
#[path = "l7_policy/header_rules.rs"]
mod header_rules;
#[path = "l7_policy/ipv6.rs"]
mod ipv6;
#[path = "l7_policy/limits.rs"]
mod limits;
#[path = "l7_policy/sticky_replication.rs"]
mod sticky_replication;

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// 16 lowercase hex digits: tandem's persistence cookie value.
fn is_token(v: &str) -> bool {
    v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The value of cookie `name` in a Set-Cookie header value.
fn cookie_value<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    set_cookie
        .split(';')
        .next()?
        .trim()
        .strip_prefix(name)?
        .strip_prefix('=')
}

#[tokio::test]
async fn routes_by_host_path_header_and_method_first_match_wins() {
    let names = [
        "www", "wild", "api", "canary", "del", "first", "second", "dflt", "only",
    ];
    let mut b = BTreeMap::new();
    for n in names {
        b.insert(n, HttpBackend::start(n).await);
    }
    let (port, bare_port) = (free_port(), free_port());
    let routes = [
        Route::answering()
            .hosts(&["secure.example.test"])
            .redirect("https://{host}{uri}", 308),
        Route::answering()
            .path_prefix("/ping")
            .respond(418, "short and stout\n"),
        Route::to("www").hosts(&["www.example.test"]),
        Route::to("wild").hosts(&["*.example.test"]),
        Route::to("api").path_prefix("/api"),
        Route::to("canary").header("X-Canary", "1"),
        Route::to("del").methods(&["DELETE", "PUT"]),
        Route::to("first").path_prefix("/first"),
        Route::to("second").path_prefix("/first/inner"),
    ];
    let front = routes
        .into_iter()
        .fold(Listener::http("front", port).pool("dflt"), Listener::route);
    let bare = Listener::http("bare", bare_port).route(Route::to("only").path_prefix("/only"));
    let mut config = Config::test_node().listener(front).listener(bare);
    for n in names {
        config = config.pool(Pool::of(n, &[&b[n]]).algorithm("round_robin"));
    }
    let toml = config.to_toml();
    let node = start_node(&toml);

    // (Host header, method, path, extra header, expected backend)
    let cases: &[(&str, &str, &str, Option<&str>, &str)] = &[
        ("www.example.test", "GET", "/", None, "www"),
        ("WWW.Example.TEST:8080", "GET", "/", None, "www"), // case and port ignored
        ("www.example.test.", "GET", "/", None, "www"),     // trailing dot
        ("a.example.test", "GET", "/", None, "wild"),
        ("a.b.example.test", "GET", "/", None, "wild"),
        ("x.example.test:81", "GET", "/", None, "wild"),
        ("example.test", "GET", "/", None, "dflt"), // "*.d" does not match the apex
        ("badexample.test", "GET", "/", None, "dflt"),
        ("other.test", "GET", "/api", None, "api"),
        ("other.test", "GET", "/api/users?id=3", None, "api"),
        ("other.test", "GET", "/api?x=1", None, "api"),
        ("other.test", "GET", "/apiv2", None, "dflt"), // segment-aware prefix
        ("other.test", "GET", "/ap", None, "dflt"),
        ("other.test", "GET", "/x", Some("X-Canary: 1"), "canary"),
        ("other.test", "GET", "/x", Some("x-canary: 2"), "dflt"),
        ("other.test", "DELETE", "/thing", None, "del"),
        ("other.test", "PUT", "/thing", None, "del"),
        ("other.test", "GET", "/thing", None, "dflt"),
        // First match wins: a host route before a path route, and a shorter prefix before
        // a longer one listed after it.
        ("www.example.test", "GET", "/api/users", None, "www"),
        ("other.test", "DELETE", "/api/x", None, "api"),
        ("other.test", "GET", "/first/inner/x", None, "first"),
        ("other.test", "GET", "/x", None, "dflt"),
    ];
    for (host, method, path, header, want) in cases {
        let host_header = format!("Host: {host}");
        let target = url(port, path);
        let mut args = vec!["-X", method, "-H", host_header.as_str()];
        if let Some(h) = header {
            args.extend(["-H", h]);
        }
        args.push(target.as_str());
        let r = curl(&args).await;
        assert_eq!(r.status, 200, "{method} {host}{path}: {r:?}");
        assert_eq!(
            r.backend(),
            Some(*want),
            "{method} {host}{path} {header:?} went to the wrong pool: {r:?}"
        );
        assert_eq!(r.body, *want);
    }
    // Each backend saw exactly the requests routed to it, with the original path.
    assert_eq!(b["first"].requests(), 1);
    assert_eq!(b["first"].seen()[0].uri, "/first/inner/x");
    assert_eq!(
        b["second"].requests(),
        0,
        "the later, longer prefix never wins"
    );
    assert_eq!(b["api"].seen()[1].uri, "/api/users?id=3");

    // Redirect: {host} and {uri} (path and query) filled in; no backend involved.
    let before: u64 = b.values().map(|x| x.requests()).sum();
    let r = curl(&[
        "-H",
        "Host: secure.example.test",
        &url(port, "/a/b?c=d&e=f"),
    ])
    .await;
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("https://secure.example.test/a/b?c=d&e=f")
    );
    assert_eq!(r.backend(), None);
    // Fixed response: status, body and the default content type.
    let r = curl(&["-H", "Host: www.example.test", &url(port, "/ping/x")]).await;
    assert_eq!(r.status, 418);
    assert_eq!(r.body, "short and stout\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.backend(), None);
    let after: u64 = b.values().map(|x| x.requests()).sum();
    assert_eq!(
        before, after,
        "redirects and fixed answers reach no backend"
    );

    // No route and no default pool: 404 from tandem itself.
    let r = curl(&[&url(bare_port, "/other")]).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.backend(), None);
    assert!(r.body.contains("no route"), "{r:?}");
    let r = curl(&[&url(bare_port, "/only/x")]).await;
    assert_eq!((r.status, r.backend()), (200, Some("only")));

    let front = node.http().listener("front").unwrap().stats;
    assert_eq!(
        front.requests.load(Ordering::Relaxed),
        cases.len() as u64 + 2
    );
    assert_eq!(front.responses_3xx.load(Ordering::Relaxed), 1);
    assert_eq!(front.responses_4xx.load(Ordering::Relaxed), 1);
    let bare = node.http().listener("bare").unwrap().stats;
    assert_eq!(bare.responses_4xx.load(Ordering::Relaxed), 1);
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn balancing_is_per_request_round_robin_and_hash_keys() {
    let (b1, b2, b3) = (
        HttpBackend::start("b1").await,
        HttpBackend::start("b2").await,
        HttpBackend::start("b3").await,
    );
    let all = [&b1, &b2, &b3];
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("rr", ports[0], "rr", "");
    toml += &http_listener_toml("hdr", ports[1], "hdr", "");
    toml += &http_listener_toml("ck", ports[2], "ck", "");
    toml += &http_listener_toml("uri", ports[3], "uri", "");
    toml += &pool_toml("rr", "round_robin", &all, "");
    toml += &pool_toml(
        "hdr",
        "hash",
        &all,
        "[pool.http]\nhash_key = { header = \"x-user\" }\n",
    );
    toml += &pool_toml(
        "ck",
        "hash",
        &all,
        "[pool.http]\nhash_key = { cookie = \"sid\" }\n",
    );
    toml += &pool_toml(
        "uri",
        "hash",
        &all,
        "[pool.http]\nhash_key = { uri = true }\n",
    );
    let node = start_node(&toml);

    // Round robin, per request, even on one keep-alive connection: b1 b2 b3 b1 b2 b3 ...
    let mut conn = HttpConn::open(addr(ports[0]), None).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..30 {
        let r = conn.send("GET", "/", &[], b"").await.unwrap();
        assert_eq!(r.status, 200);
        order.push(r.backend().unwrap().to_string());
    }
    let first: BTreeSet<&String> = order[..3].iter().collect();
    assert_eq!(
        first.len(),
        3,
        "the first three requests cover every backend: {order:?}"
    );
    for (i, name) in order.iter().enumerate() {
        assert_eq!(name, &order[i % 3], "strict rotation: {order:?}");
    }
    // New connections continue the same rotation.
    for i in 0..6 {
        let r = http_get(addr(ports[0]), "/", &[]).await;
        assert_eq!(r.backend().unwrap(), order[(30 + i) % 3]);
    }
    assert_eq!(
        (b1.requests(), b2.requests(), b3.requests()),
        (12, 12, 12),
        "36 requests, 12 each"
    );

    // Hash on a header: a user always lands on the same backend; users spread.
    let mut by_user = BTreeMap::new();
    for u in 0..24 {
        let user = format!("user-{u}");
        let mut seen = BTreeSet::new();
        for _ in 0..4 {
            let r = http_get(addr(ports[1]), "/", &[("x-user", &user)]).await;
            seen.insert(r.backend().unwrap().to_string());
        }
        assert_eq!(seen.len(), 1, "{user} moved between backends: {seen:?}");
        by_user.insert(user, seen.into_iter().next().unwrap());
    }
    let spread: BTreeSet<&String> = by_user.values().collect();
    assert_eq!(spread.len(), 3, "24 users reach every backend: {by_user:?}");
    // Without the header the request is still served.
    assert_eq!(http_get(addr(ports[1]), "/", &[]).await.status, 200);

    // Hash on a cookie, among other cookies.
    let mut by_sid = BTreeMap::new();
    for s in 0..24 {
        let cookie = format!("theme=dark; sid=s{s}; lang=en");
        let mut seen = BTreeSet::new();
        for _ in 0..4 {
            let r = http_get(addr(ports[2]), "/", &[("cookie", &cookie)]).await;
            seen.insert(r.backend().unwrap().to_string());
        }
        assert_eq!(seen.len(), 1, "sid s{s} moved: {seen:?}");
        by_sid.insert(s, seen.into_iter().next().unwrap());
    }
    assert_eq!(
        by_sid.values().collect::<BTreeSet<_>>().len(),
        3,
        "{by_sid:?}"
    );
    // The other cookies do not matter: the same sid with different neighbours sticks.
    let alone = http_get(addr(ports[2]), "/", &[("cookie", "sid=s5")]).await;
    assert_eq!(alone.backend().unwrap(), by_sid[&5]);

    // Hash on the URI (path and query).
    let mut by_uri = BTreeMap::new();
    for i in 0..24 {
        let path = format!("/item/{i}?v=1");
        let mut seen = BTreeSet::new();
        for _ in 0..3 {
            let r = http_get(addr(ports[3]), &path, &[]).await;
            seen.insert(r.backend().unwrap().to_string());
        }
        assert_eq!(seen.len(), 1, "{path} moved: {seen:?}");
        by_uri.insert(path, seen.into_iter().next().unwrap());
    }
    assert_eq!(
        by_uri.values().collect::<BTreeSet<_>>().len(),
        3,
        "{by_uri:?}"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn cookie_persistence_sticks_and_moves_when_the_backend_goes() {
    let (b1, b2, b3) = (
        HttpBackend::start("c1").await,
        HttpBackend::start("c2").await,
        HttpBackend::start("c3").await,
    );
    let all = [&b1, &b2, &b3];
    let (port, plain_port) = (free_port(), free_port());
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("app", port, "app", "");
    toml += &http_listener_toml("plain", plain_port, "plain", "");
    toml += &pool_toml(
        "app",
        "round_robin",
        &all,
        "[pool.http]\nsticky = { kind = \"cookie\", name = \"SRV\", same_site = \"strict\", max_age = \"90m\" }\n",
    );
    toml += &pool_toml(
        "plain",
        "round_robin",
        &all,
        "[pool.http]\nsticky = { kind = \"cookie\" }\n",
    );
    let node = start_node(&toml);
    let front = addr(port);

    // First visit: the cookie names the backend; plain HTTP, so no Secure.
    let r = curl(&[&url(port, "/")]).await;
    assert_eq!(r.status, 200);
    let owner = r.backend().unwrap().to_string();
    let set = r.all("set-cookie");
    assert_eq!(set.len(), 1, "{r:?}");
    let v1 = cookie_value(set[0], "SRV").expect("SRV cookie").to_string();
    assert!(is_token(&v1), "{}", set[0]);
    assert_eq!(
        set[0],
        format!("SRV={v1}; Path=/; HttpOnly; SameSite=Strict; Max-Age=5400")
    );
    assert!(!set[0].contains("Secure"));

    // With the cookie: the same backend 20 times, and no new cookie.
    let cookie = format!("SRV={v1}");
    for _ in 0..20 {
        let r = http_get(front, "/", &[("cookie", &cookie)]).await;
        assert_eq!(r.backend(), Some(owner.as_str()));
        assert!(r.all("set-cookie").is_empty(), "{r:?}");
    }
    // Without it, round robin goes on as usual.
    let spread: BTreeSet<String> = {
        let mut s = BTreeSet::new();
        for _ in 0..3 {
            s.insert(
                http_get(front, "/", &[])
                    .await
                    .backend()
                    .unwrap()
                    .to_string(),
            );
        }
        s
    };
    assert_eq!(spread.len(), 3);
    // A forged or foreign value falls back to balancing and gets a real cookie.
    let r = http_get(front, "/", &[("cookie", "SRV=zzzz")]).await;
    assert_eq!(r.status, 200);
    let fixed = r.all("set-cookie");
    assert_eq!(fixed.len(), 1);
    assert!(is_token(cookie_value(fixed[0], "SRV").unwrap()));

    // The backend is disabled: re-balanced, and the cookie rewritten to the new one.
    let pool = node.plane().pool("app").unwrap().clone();
    assert!(pool.set_admin(&owner, AdminState::Disabled));
    let r = http_get(front, "/", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200);
    let moved_to = r.backend().unwrap().to_string();
    assert_ne!(moved_to, owner);
    let set = r.all("set-cookie");
    assert_eq!(set.len(), 1, "{r:?}");
    let v2 = cookie_value(set[0], "SRV").unwrap().to_string();
    assert!(is_token(&v2) && v2 != v1, "{} vs {v1}", set[0]);
    let cookie2 = format!("SRV={v2}");
    for _ in 0..5 {
        let r = http_get(front, "/", &[("cookie", &cookie2)]).await;
        assert_eq!(r.backend(), Some(moved_to.as_str()));
        assert!(r.all("set-cookie").is_empty());
    }
    // Enabled again: the old cookie leads back to it.
    assert!(pool.set_admin(&owner, AdminState::Enabled));
    let r = http_get(front, "/", &[("cookie", &cookie)]).await;
    assert_eq!(r.backend(), Some(owner.as_str()));
    assert!(r.all("set-cookie").is_empty());

    // The backend dies (refuses connections): the request is retried elsewhere and the
    // cookie rewritten.
    let victim = all.iter().find(|b| b.name == moved_to).unwrap();
    victim.kill();
    for _ in 0..3 {
        let r = http_get(front, "/", &[("cookie", &cookie2)]).await;
        assert_eq!(r.status, 200, "{r:?}");
        let now_on = r.backend().unwrap();
        assert_ne!(now_on, moved_to);
        let set = r.all("set-cookie");
        assert_eq!(set.len(), 1, "{r:?}");
        let v3 = cookie_value(set[0], "SRV").unwrap();
        assert!(is_token(v3) && v3 != v2);
        // The new cookie sticks to the survivor.
        let cookie3 = format!("SRV={v3}");
        let again = http_get(front, "/", &[("cookie", &cookie3)]).await;
        assert_eq!(again.backend(), Some(now_on));
        assert!(again.all("set-cookie").is_empty());
    }

    // Defaults: name TANDEM_BACKEND, a session cookie, no SameSite.
    let r = curl(&[&url(plain_port, "/")]).await;
    let set = r.all("set-cookie");
    assert_eq!(set.len(), 1, "{r:?}");
    let v = cookie_value(set[0], "TANDEM_BACKEND").expect("default name");
    assert_eq!(set[0], format!("TANDEM_BACKEND={v}; Path=/; HttpOnly"));
    node.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn source_ip_affinity_keeps_each_client_on_its_backend() {
    let (b1, b2, b3) = (
        HttpBackend::start("s1").await,
        HttpBackend::start("s2").await,
        HttpBackend::start("s3").await,
    );
    let port = free_port();
    let mut toml = NODE_TOML.to_string();
    toml += &http_listener_toml("legacy", port, "legacy", "");
    toml += &pool_toml(
        "legacy",
        "round_robin",
        &[&b1, &b2, &b3],
        "[pool.http]\nsticky = { kind = \"source_ip\", ttl = \"1m\" }\n",
    );
    let node = start_node(&toml);
    let front = addr(port);

    let mut owner = BTreeMap::new();
    for last in 2..=7u8 {
        let first = http_get_from(front, ip(last), "/").await;
        let b = first.backend().unwrap().to_string();
        // New connections (new source ports) from the same address keep the backend.
        for _ in 0..5 {
            let r = http_get_from(front, ip(last), "/").await;
            assert_eq!(r.backend(), Some(b.as_str()), "127.0.0.{last} moved");
        }
        // And so does a keep-alive connection.
        let mut conn = HttpConn::open(front, Some(ip(last))).await.unwrap();
        for _ in 0..3 {
            let r = conn.send("GET", "/x", &[], b"").await.unwrap();
            assert_eq!(r.backend(), Some(b.as_str()));
        }
        owner.insert(last, b);
    }
    // New clients are balanced round robin: 6 addresses, 2 per backend.
    let mut per_backend: BTreeMap<&String, usize> = BTreeMap::new();
    for b in owner.values() {
        *per_backend.entry(b).or_default() += 1;
    }
    assert_eq!(
        per_backend.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{owner:?}"
    );
    // The sticky backend goes away: the client is re-balanced and stays on the new one.
    let pool = node.plane().pool("legacy").unwrap().clone();
    assert!(pool.set_admin(&owner[&2], AdminState::Disabled));
    let moved = http_get_from(front, ip(2), "/")
        .await
        .backend()
        .unwrap()
        .to_string();
    assert_ne!(moved, owner[&2]);
    for _ in 0..3 {
        let r = http_get_from(front, ip(2), "/").await;
        assert_eq!(r.backend(), Some(moved.as_str()));
    }
    node.shutdown_within(Duration::from_secs(1)).await;
}

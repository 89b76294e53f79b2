//! IPv6 on the HTTP plane: a `[::]` listener made dual-stack with `ipv6_only = false` sees
//! IPv4 clients as IPv4 (not `::ffff:` addresses) in X-Forwarded-For, Forwarded and the
//! header variables; IPv6 clients get RFC 7239's bracketed, quoted `for=`; the default
//! (`ipv6_only` true) turns IPv4 clients away; check-config explains the two keys.

use std::net::{Ipv6Addr, SocketAddr};

use tandem_tests::http_kit::*;
use tandem_tests::TempDir;
use tandem_tests::*;

/// An HTTP listener that writes `Forwarded`; `extra` is raw TOML after its keys.
fn listener(name: &str, bind: String, pool: &str, extra: &str) -> Listener {
    Listener::http(name, bind)
        .pool(pool)
        .raw(extra)
        .tables("[listener.http.forwarded]\nforwarded = true")
}

#[tokio::test]
async fn dual_stack_listeners_see_ipv4_clients_as_ipv4() {
    let web = HttpBackend::start("web").await;
    let (dual, v6_only) = (free_port(), free_port());
    let dual_stack =
        "ipv6_only = false\n[listener.headers.request]\nset = { \"X-Client\" = \"{client_ip}\" }";
    let toml = Config::test_node()
        .listener(listener("dual", format!("[::]:{dual}"), "web", dual_stack))
        .listener(listener("v6", format!("[::]:{v6_only}"), "web", ""))
        .pool(Pool::of("web", &[&web]).algorithm("round_robin"))
        .to_toml();
    let _node = start_node(&toml);

    let reply = http_get(SocketAddr::from(([127, 0, 0, 1], dual)), "/", &[]).await;
    assert_eq!(reply.status, 200);
    let seen = web.seen().pop().expect("the backend saw the request");
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-client"), Some("127.0.0.1"));
    let forwarded = seen.header("forwarded").unwrap_or_default().to_string();
    assert!(forwarded.starts_with("for=127.0.0.1;"), "{forwarded}");

    let reply = http_get(SocketAddr::from((Ipv6Addr::LOCALHOST, dual)), "/", &[]).await;
    assert_eq!(reply.status, 200);
    let seen = web.seen().pop().expect("the backend saw the request");
    assert_eq!(seen.header("x-forwarded-for"), Some("::1"));
    assert_eq!(seen.header("x-client"), Some("::1"));
    let forwarded = seen.header("forwarded").unwrap_or_default().to_string();
    assert!(forwarded.starts_with("for=\"[::1]\";"), "{forwarded}");

    // ipv6_only (the default): IPv6 clients only.
    let reply = http_get(SocketAddr::from((Ipv6Addr::LOCALHOST, v6_only)), "/", &[]).await;
    assert_eq!(reply.status, 200);
    let v4 = tokio::net::TcpStream::connect(("127.0.0.1", v6_only)).await;
    assert!(v4.is_err(), "an IPv4 client reached an IPv6-only listener");
}

#[test]
fn check_config_explains_the_ipv6_keys() {
    let dir = TempDir::new();
    let v4 = format!("127.0.0.1:{}", free_port());
    let v6 = format!("[::]:{}", free_port());
    let text = Config::test_node()
        .listener(listener("v4", v4, "p", "ipv6_only = false"))
        .listener(listener("v6", v6, "p", "client_ipv6_prefix = 129"))
        .pool(Pool::new("p").backend("a", "[::1]:9"))
        .to_toml();
    let file = dir.write("ipv6.toml", text);
    let report = check_config_refusal(&file);
    for words in [
        "listener[0].ipv6_only: applies to listeners bound to an IPv6 address",
        "listener[1].client_ipv6_prefix: must be between 1 and 128",
    ] {
        assert!(report.contains(words), "{words:?} missing from:\n{report}");
    }
}

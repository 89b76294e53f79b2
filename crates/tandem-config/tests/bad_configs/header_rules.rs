//! Header rules, path rewrites and HSTS in the table of broken configs.

use super::{assert_all_refused, GOOD};
use tandem_config::parse;

/// Header rules, rewrites and HSTS: each mistake is refused at its key path, and a
/// config using every kind of rule parses and survives a round trip through TOML.
#[test]
fn header_rule_mistakes_are_refused_with_their_key_path() {
    let http = GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"http\"\n");
    let listener = |tables: &str| {
        http.replace(
            "protocol = \"http\"\n",
            &format!("protocol = \"http\"\n{tables}"),
        )
    };
    let route = |keys: &str| {
        listener(&format!(
            "[[listener.route]]\npath_prefix = \"/api\"\npool = \"web\"\n{keys}"
        ))
    };
    let cases = [
        (
            listener("[listener.headers.request]\nset = { \"X Bad\" = \"1\" }\n"),
            "listener[0].headers.request.set.X Bad",
            "is not a header name",
        ),
        (
            listener("[listener.headers.request]\nset = { \"X-Client\" = \"{client_addr}\" }\n"),
            "listener[0].headers.request.set.X-Client",
            "unknown variable {client_addr}",
        ),
        (
            listener("[listener.headers.response]\nadd = { \"X-Oops\" = \"{host\" }\n"),
            "listener[0].headers.response.add.X-Oops",
            "without its '}'",
        ),
        (
            listener("[listener.headers.response]\nset = { \"X-Tab\" = \"a\\u0001b\" }\n"),
            "listener[0].headers.response.set.X-Tab",
            "visible ASCII",
        ),
        (
            listener("[listener.headers.request]\nremove = [\"Connection\"]\n"),
            "listener[0].headers.request.remove[0]",
            "hop-by-hop or framing header",
        ),
        (
            listener("[listener.headers.response]\nset = { \"Content-Length\" = \"0\" }\n"),
            "listener[0].headers.response.set.Content-Length",
            "hop-by-hop or framing header",
        ),
        (
            listener("[listener.headers.request]\nadd = { \"Transfer-Encoding\" = \"gzip\" }\n"),
            "listener[0].headers.request.add.Transfer-Encoding",
            "hop-by-hop or framing header",
        ),
        (
            listener("[listener.headers.request]\nset = { Host = \"backend.internal\" }\n"),
            "listener[0].headers.request.set.Host",
            "routed authority",
        ),
        (
            listener("[listener.headers.request]\nset = { \"X-A\" = \"1\", \"x-a\" = \"2\" }\n"),
            "listener[0].headers.request.set.x-a",
            "given twice",
        ),
        (
            listener("hsts = \"max-age=60\"\n"),
            "listener[0].hsts",
            "sent only over TLS",
        ),
        (
            listener("hsts = \"includeSubDomains\"\n"),
            "listener[0].hsts",
            "not a Strict-Transport-Security value",
        ),
        (
            listener("hsts = { max_age = \"30d\", preload = true }\n"),
            "listener[0].hsts.preload",
            "needs include_subdomains = true",
        ),
        (
            listener("hsts = { maxage = \"1d\" }\n"),
            "listener[0].hsts.maxage",
            "unknown field `maxage`",
        ),
        (
            listener("hsts = { max_age = \"1y\" }\n"),
            "listener[0].hsts.max_age",
            "unknown unit \"y\"",
        ),
        (
            listener("hsts = 31536000\n"),
            "listener[0].hsts",
            "such as \"max-age=31536000\"",
        ),
        (
            route("rewrite = { replace_prefix = \"v2\" }\n"),
            "listener[0].route[0].rewrite.replace_prefix",
            "must be a path",
        ),
        (
            route("rewrite = { strip_prefix = true, replace_prefix = \"/v2\" }\n"),
            "listener[0].route[0].rewrite",
            "give one of",
        ),
        (
            listener("[[listener.route]]\npool = \"web\"\nrewrite = { strip_prefix = true }\n"),
            "listener[0].route[0].rewrite",
            "needs the route's path_prefix",
        ),
        (
            listener("[[listener.route]]\npath_prefix = \"/old\"\nrespond = { status = 410 }\nheaders = { request = { set = { \"X-A\" = \"1\" } } }\n"),
            "listener[0].route[0].headers.request",
            "only for routes with a pool",
        ),
        (
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nhsts = \"max-age=60\"\n"),
            "listener[0].hsts",
            "only for protocol = \"http\" listeners",
        ),
    ];
    assert_all_refused(cases);

    let good = route(
        "rewrite = { replace_prefix = \"/v2/\" }\nheaders = { request = { add = { \"X-Route\" = \"api\" } } }\n",
    );
    let good = good.replace(
        "protocol = \"http\"\n",
        "protocol = \"http\"\nhsts = { max_age = \"365d\", include_subdomains = true }\n[listener.tls]\ncertificates = [{ cert = \"/etc/tandem/tls/a.pem\", key = \"/etc/tandem/tls/a.key\" }]\n[listener.headers.request]\nset = { \"X-Client\" = \"{client_ip}:{client_port} {{{scheme}}}\" }\nremove = [\"X-Debug\"]\n[listener.headers.response]\nset = { \"X-Request-Id\" = \"{request_id}\" }\n",
    );
    let cfg = parse(&good, "headers.toml").unwrap_or_else(|e| panic!("{e}"));
    let l = &cfg.cluster.listeners[0];
    assert_eq!(l.headers.request.remove, ["X-Debug"]);
    let hsts = l.hsts.as_ref().map(tandem_config::http::Hsts::header_value);
    assert_eq!(hsts.as_deref(), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(
        l.routes[0]
            .rewrite
            .as_ref()
            .and_then(|r| r.replace_prefix.as_deref()),
        Some("/v2/")
    );
    let again =
        parse(&tandem_config::to_toml(&cfg), "again.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.cluster.listeners[0], *l);
}

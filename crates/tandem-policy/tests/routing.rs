//! Route tables: hosts, path prefixes, headers, methods, order, default.

use tandem_policy::{HostPattern, RequestView, RouteMatch, RouteTable};

type Hdrs<'a> = [(&'a str, &'a str)];

fn req<'a>(
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    headers: &'a Hdrs<'a>,
) -> RequestView<'a, Hdrs<'a>> {
    RequestView {
        method,
        host,
        path,
        headers,
    }
}

fn get<'a>(host: Option<&'a str>, path: &'a str) -> RequestView<'a, Hdrs<'a>> {
    req("GET", host, path, &[])
}

fn hosts(patterns: &[&str]) -> RouteMatch {
    RouteMatch {
        hosts: patterns
            .iter()
            .map(|p| HostPattern::parse(p).unwrap())
            .collect(),
        ..RouteMatch::default()
    }
}

fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path_prefix: Some(p.into()),
        ..RouteMatch::default()
    }
}

#[test]
fn exact_host_ignores_port_case_and_trailing_dot() {
    let t = RouteTable::new(vec![(hosts(&["example.com"]), "ex")], None);
    for h in [
        "example.com",
        "Example.COM:8080",
        "example.com.",
        "EXAMPLE.com.:443",
    ] {
        assert_eq!(t.find(&get(Some(h), "/")), Some(&"ex"), "{h}");
    }
    for h in ["www.example.com", "example.org", "example.com.evil", ""] {
        assert_eq!(t.find(&get(Some(h), "/")), None, "{h}");
    }
    // A route that names hosts needs a Host header.
    assert_eq!(t.find(&get(None, "/")), None);
}

#[test]
fn wildcard_host_matches_any_subdomain_depth_but_not_the_apex() {
    let t = RouteTable::new(
        vec![
            (hosts(&["*.example.com"]), "sub"),
            (hosts(&["example.com", "[::1]"]), "apex"),
        ],
        None,
    );
    assert_eq!(t.find(&get(Some("API.example.com:443"), "/")), Some(&"sub"));
    assert_eq!(t.find(&get(Some("a.b.example.com"), "/")), Some(&"sub"));
    assert_eq!(t.find(&get(Some("example.com:80"), "/")), Some(&"apex"));
    assert_eq!(t.find(&get(Some("[0::1]:8443"), "/")), Some(&"apex"));
    assert_eq!(t.find(&get(Some("notexample.com"), "/")), None);
}

#[test]
fn path_prefix_respects_segments() {
    let t = RouteTable::new(
        vec![(prefix("/api"), "api"), (prefix("/static/"), "static")],
        Some("default"),
    );
    let find = |p| *t.find(&get(None, p)).unwrap();
    assert_eq!(find("/api"), "api");
    assert_eq!(find("/api/"), "api");
    assert_eq!(find("/api/v1/users"), "api");
    assert_eq!(find("/apiv2"), "default");
    assert_eq!(find("/ap"), "default");
    assert_eq!(find("/static/app.js"), "static");
    // A prefix ending in '/' does not match the bare directory.
    assert_eq!(find("/static"), "default");
    // Judged after normalisation, like nginx.
    assert_eq!(find("//api//x"), "api");
    assert_eq!(find("/x/../api/y"), "api");
    assert_eq!(find("/%61pi"), "api");
}

#[test]
fn header_and_method_conditions() {
    let tenant = RouteMatch {
        header: Some(("X-Tenant".into(), "blue".into())),
        methods: vec!["get".into(), "HEAD".into()],
        ..RouteMatch::default()
    };
    let t = RouteTable::new(vec![(tenant, "blue")], Some("other"));
    let h: &Hdrs = &[("x-tenant", "blue")];
    assert_eq!(t.find(&req("GET", None, "/", h)), Some(&"blue"));
    assert_eq!(t.find(&req("HEAD", None, "/", h)), Some(&"blue"));
    assert_eq!(t.find(&req("POST", None, "/", h)), Some(&"other"));
    // Methods are case-sensitive on the wire.
    assert_eq!(t.find(&req("get", None, "/", h)), Some(&"other"));
    // Values are exact.
    assert_eq!(
        t.find(&req("GET", None, "/", &[("x-tenant", "Blue")])),
        Some(&"other")
    );
    assert_eq!(t.find(&req("GET", None, "/", &[])), Some(&"other"));
}

#[test]
fn all_conditions_must_hold_and_first_match_wins() {
    let both = RouteMatch {
        path_prefix: Some("/api".into()),
        ..hosts(&["example.com"])
    };
    let t = RouteTable::new(
        vec![
            (both, 0),
            (prefix("/api"), 1),
            (RouteMatch::default(), 2),
            (prefix("/x"), 3),
        ],
        Some(9),
    );
    assert_eq!(t.len(), 4);
    assert_eq!(t.find(&get(Some("example.com"), "/api/a")), Some(&0));
    assert_eq!(t.find(&get(Some("other.com"), "/api/a")), Some(&1));
    assert_eq!(t.find(&get(Some("example.com"), "/b")), Some(&2));
    // The catch-all shadows route 3 and the default.
    assert_eq!(t.find(&get(None, "/x")), Some(&2));
    assert_eq!(t.find_index(&get(None, "/x")), Some(2));
}

#[test]
fn default_answers_when_nothing_matches() {
    let t = RouteTable::new(vec![(prefix("/a"), 1)], Some(0));
    assert_eq!(t.find(&get(None, "/b")), Some(&0));
    assert_eq!(t.find_index(&get(None, "/b")), None);
    let none: RouteTable<i32> = RouteTable::new(vec![], None);
    assert!(none.is_empty());
    assert_eq!(none.find(&get(Some("a"), "/")), None);
    let only_default = RouteTable::new(vec![], Some("d"));
    assert_eq!(only_default.find(&get(None, "*")), Some(&"d"));
}

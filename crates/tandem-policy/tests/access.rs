//! Access rules: CIDRs, methods, paths, regexes, AND, order, default.

use std::net::IpAddr;

use regex::Regex;
use tandem_policy::{AccessRule, AccessRules, RequestView, RuleAction, Verdict};

type Hdrs<'a> = [(&'a str, &'a str)];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rule(action: RuleAction) -> AccessRule {
    AccessRule {
        action,
        client_cidrs: vec![],
        methods: vec![],
        path_prefix: None,
        path_regex: None,
        header_regex: None,
    }
}

fn deny_from(cidrs: &[&str]) -> AccessRule {
    AccessRule {
        client_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        ..rule(RuleAction::Deny)
    }
}

fn eval(rules: &AccessRules, client: &str, method: &str, path: &str, headers: &Hdrs) -> Verdict {
    let req = RequestView {
        method,
        host: None,
        path,
        headers,
    };
    rules.evaluate(ip(client), &req)
}

const DENY0: Verdict = Verdict::Deny { rule: 0 };

#[test]
fn cidrs_v4_v6_and_mapped() {
    let rules = AccessRules::new(vec![deny_from(&["10.0.0.0/8", "2001:db8::/32"])]);
    let e = |c| eval(&rules, c, "GET", "/", &[]);
    assert_eq!(e("10.1.2.3"), DENY0);
    assert_eq!(e("::ffff:10.1.2.3"), DENY0);
    assert_eq!(e("2001:db8::5"), DENY0);
    assert_eq!(e("11.0.0.1"), Verdict::Allow);
    assert_eq!(e("2001:db9::1"), Verdict::Allow);
    assert_eq!(e("::ffff:11.0.0.1"), Verdict::Allow);

    // A mapped net matches plain IPv4 clients, and host bits are ignored.
    let rules = AccessRules::new(vec![deny_from(&[
        "::ffff:192.168.0.0/112",
        "172.16.5.9/12",
    ])]);
    assert_eq!(eval(&rules, "192.168.4.4", "GET", "/", &[]), DENY0);
    assert_eq!(eval(&rules, "::ffff:192.168.4.4", "GET", "/", &[]), DENY0);
    assert_eq!(eval(&rules, "172.31.0.1", "GET", "/", &[]), DENY0);
    assert_eq!(eval(&rules, "192.169.0.1", "GET", "/", &[]), Verdict::Allow);
}

#[test]
fn regexes_on_path_and_headers() {
    let rules = AccessRules::new(vec![
        AccessRule {
            path_regex: Some(Regex::new(r"\.(env|git)(/|$)").unwrap()),
            ..rule(RuleAction::Deny)
        },
        AccessRule {
            header_regex: Some(("User-Agent".into(), Regex::new("(?i)sqlmap|nikto").unwrap())),
            ..rule(RuleAction::Deny)
        },
    ]);
    let e = |path, h: &Hdrs| eval(&rules, "10.0.0.1", "GET", path, h);
    assert_eq!(e("/app/.env", &[]), DENY0);
    assert_eq!(e("/.git/config", &[]), DENY0);
    assert_eq!(e("/%2egit/config", &[]), DENY0);
    assert_eq!(e("/environment", &[]), Verdict::Allow);
    assert_eq!(
        e("/", &[("user-agent", "SQLMap/1.7")]),
        Verdict::Deny { rule: 1 }
    );
    assert_eq!(e("/", &[("user-agent", "curl/8")]), Verdict::Allow);
    // A missing header does not match the header condition.
    assert_eq!(e("/", &[]), Verdict::Allow);
}

#[test]
fn conditions_are_anded() {
    let admin_from_outside = AccessRule {
        client_cidrs: vec!["0.0.0.0/0".parse().unwrap()],
        methods: vec!["post".into()],
        path_prefix: Some("/admin".into()),
        ..rule(RuleAction::Deny)
    };
    let rules = AccessRules::new(vec![admin_from_outside]);
    let e = |client, method, path| eval(&rules, client, method, path, &[]);
    assert_eq!(e("203.0.113.8", "POST", "/admin/users"), DENY0);
    assert_eq!(e("203.0.113.8", "GET", "/admin/users"), Verdict::Allow);
    assert_eq!(e("203.0.113.8", "POST", "/administrator"), Verdict::Allow);
    assert_eq!(e("2001:db8::1", "POST", "/admin"), Verdict::Allow);
    // Path tricks are normalised away before matching.
    assert_eq!(e("203.0.113.8", "POST", "//admin"), DENY0);
    assert_eq!(e("203.0.113.8", "POST", "/public/../admin/x"), DENY0);
}

#[test]
fn first_match_wins_and_no_match_allows() {
    let allow_office = AccessRule {
        client_cidrs: vec!["192.0.2.0/24".parse().unwrap()],
        path_prefix: Some("/internal".into()),
        ..rule(RuleAction::Allow)
    };
    let deny_internal = AccessRule {
        path_prefix: Some("/internal".into()),
        ..rule(RuleAction::Deny)
    };
    let rules = AccessRules::new(vec![allow_office, deny_internal]);
    assert_eq!(rules.len(), 2);
    assert_eq!(
        eval(&rules, "192.0.2.7", "GET", "/internal/x", &[]),
        Verdict::Allow
    );
    assert_eq!(
        eval(&rules, "198.51.100.1", "GET", "/internal/x", &[]),
        Verdict::Deny { rule: 1 }
    );
    assert_eq!(
        eval(&rules, "198.51.100.1", "GET", "/public", &[]),
        Verdict::Allow
    );
    assert_eq!(
        eval(&AccessRules::new(vec![]), "10.0.0.1", "GET", "/", &[]),
        Verdict::Allow
    );
    // A rule without conditions is a catch-all.
    let deny_all = AccessRules::new(vec![rule(RuleAction::Deny)]);
    assert_eq!(eval(&deny_all, "::1", "DELETE", "/x", &[]), DENY0);
}

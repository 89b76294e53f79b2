//! Validation of the L7 keys: listener TLS, HTTP settings, routes and access rules, and
//! the HTTP side of pools. Certificate files are checked by `tandemd check-config` (it
//! reads them); this module checks only the text.

use crate::compression::validate_compression;
use crate::error::Problem;
use crate::http::{HashKey, Sticky};
use crate::model::{Algorithm, CheckKind, ClusterConfig, Listener, Pool, Protocol};
use crate::validate::Problems;
use crate::validate_headers::{validate_header_rules, validate_hsts, validate_rewrite};

/// More worker threads than this per listener is a typo, not a machine.
const MAX_WORKERS: u32 = 1024;

pub(crate) fn validate_http(cfg: &ClusterConfig) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    for (i, l) in cfg.listeners.iter().enumerate() {
        let at = format!("listener[{i}]");
        if l.protocol == Protocol::Http {
            validate_http_listener(&mut p, &at, l, cfg);
        } else {
            for (key, present) in [
                ("tls", l.tls.is_some()),
                ("http", l.http.is_some()),
                ("route", !l.routes.is_empty()),
                ("rule", !l.rules.is_empty()),
                ("headers", !l.headers.is_empty()),
                ("hsts", l.hsts.is_some()),
                ("compression", l.compression.is_some()),
            ] {
                if present {
                    p.add(
                        format!("{at}.{key}"),
                        "only for protocol = \"http\" listeners",
                    );
                }
            }
        }
    }
    for (i, pool) in cfg.pools.iter().enumerate() {
        validate_pool_http(&mut p, &format!("pool[{i}]"), pool);
    }
    p.0
}

fn validate_http_listener(p: &mut Problems, at: &str, l: &Listener, cfg: &ClusterConfig) {
    if let Some(tls) = &l.tls {
        if tls.certificates.is_empty() && tls.acme.is_none() {
            p.add(
                format!("{at}.tls.certificates"),
                "at least one certificate is needed (or [listener.tls.acme]); the first is the default",
            );
        }
        if let Some(acme) = &tls.acme {
            crate::acme::validate_acme(p, &format!("{at}.tls.acme"), acme);
        }
        if !matches!(tls.min_version.as_str(), "1.2" | "1.3") {
            p.add(
                format!("{at}.tls.min_version"),
                "must be \"1.2\" or \"1.3\"",
            );
        }
        for (j, proto) in tls.alpn.iter().enumerate() {
            if !matches!(proto.as_str(), "h2" | "http/1.1") {
                p.add(
                    format!("{at}.tls.alpn[{j}]"),
                    format!("{proto:?}: tandem speaks \"h2\" and \"http/1.1\""),
                );
            }
        }
    }
    if let Some(h) = &l.http {
        for (key, d) in [
            ("header_timeout", h.header_timeout),
            ("keepalive_timeout", h.keepalive_timeout),
            ("request_timeout", h.request_timeout),
            ("send_timeout", h.send_timeout),
        ] {
            if d.get().is_zero() {
                p.add(format!("{at}.http.{key}"), "must be more than 0s");
            }
        }
        if !(1024..=1024 * 1024).contains(&h.max_header_bytes) {
            p.add(
                format!("{at}.http.max_header_bytes"),
                "must be between 1024 and 1048576",
            );
        }
        if !(1..=1000).contains(&h.max_headers) {
            p.add(
                format!("{at}.http.max_headers"),
                "must be between 1 and 1000",
            );
        }
        if let Some(r) = &h.rate_limit {
            if !(r.requests_per_second > 0.0 && r.requests_per_second.is_finite()) || r.burst == 0 {
                p.add(
                    format!("{at}.http.rate_limit"),
                    "requests_per_second must be more than 0 and burst at least 1",
                );
            }
            if r.max_clients == 0 {
                p.add(
                    format!("{at}.http.rate_limit.max_clients"),
                    "must be at least 1",
                );
            }
        }
        if let Some(w) = h.workers {
            if !(1..=MAX_WORKERS).contains(&w) {
                p.add(
                    format!("{at}.http.workers"),
                    format!("must be between 1 and {MAX_WORKERS} (leave it out for one per CPU)"),
                );
            }
        }
        if !matches!(h.access_log_format.as_str(), "text" | "json" | "combined") {
            p.add(
                format!("{at}.http.access_log_format"),
                "must be \"text\", \"json\" or \"combined\"",
            );
        }
    }
    validate_header_rules(p, &format!("{at}.headers"), &l.headers, true);
    if let Some(hsts) = &l.hsts {
        validate_hsts(p, at, hsts, l.tls.is_some());
    }
    if let Some(c) = &l.compression {
        validate_compression(p, at, c);
    }
    for (j, r) in l.routes.iter().enumerate() {
        let rat = format!("{at}.route[{j}]");
        if let Some(c) = &r.compression {
            validate_compression(p, &rat, c);
            if r.pool.is_none() {
                p.add(format!("{rat}.compression"), "only for routes with a pool");
            }
        }
        validate_header_rules(p, &format!("{rat}.headers"), &r.headers, r.pool.is_some());
        if let Some(rewrite) = &r.rewrite {
            validate_rewrite(p, &rat, r, rewrite);
        }
        let actions = [r.pool.is_some(), r.redirect.is_some(), r.respond.is_some()];
        if actions.iter().filter(|a| **a).count() != 1 {
            p.add(rat.clone(), "give exactly one of pool, redirect or respond");
        }
        if let Some(pool) = &r.pool {
            if !cfg.pools.iter().any(|x| &x.name == pool) {
                p.add(format!("{rat}.pool"), format!("no pool named {pool:?}"));
            }
        }
        for (k, host) in r.hosts.iter().enumerate() {
            if !valid_host_pattern(host) {
                p.add(
                    format!("{rat}.hosts[{k}]"),
                    format!("{host:?} is not a host name or \"*.domain\" pattern"),
                );
            }
        }
        if let Some(prefix) = &r.path_prefix {
            if !prefix.starts_with('/') {
                p.add(format!("{rat}.path_prefix"), "must start with /");
            }
        }
        if let Some(h) = &r.header {
            if !is_token(&h.name) {
                p.add(
                    format!("{rat}.header.name"),
                    format!("{:?} is not a header name", h.name),
                );
            }
        }
        for (k, m) in r.methods.iter().enumerate() {
            if !is_method(m) {
                p.add(
                    format!("{rat}.methods[{k}]"),
                    format!("{m:?} is not an upper-case method such as \"GET\""),
                );
            }
        }
        if let Some(redirect) = &r.redirect {
            if ![301, 302, 303, 307, 308].contains(&redirect.status) {
                p.add(
                    format!("{rat}.redirect.status"),
                    "must be 301, 302, 303, 307 or 308",
                );
            }
            if redirect.location.is_empty() {
                p.add(format!("{rat}.redirect.location"), "must not be empty");
            }
        }
        if let Some(resp) = &r.respond {
            if !(100..=599).contains(&resp.status) {
                p.add(
                    format!("{rat}.respond.status"),
                    "must be between 100 and 599",
                );
            }
        }
    }
    for (j, rule) in l.rules.iter().enumerate() {
        let rat = format!("{at}.rule[{j}]");
        if !matches!(rule.action.as_str(), "allow" | "deny") {
            p.add(format!("{rat}.action"), "must be \"allow\" or \"deny\"");
        }
        if rule
            .path_prefix
            .as_ref()
            .is_some_and(|p| !p.starts_with('/'))
        {
            p.add(format!("{rat}.path_prefix"), "must start with /");
        }
        for (k, cidr) in rule.client_cidrs.iter().enumerate() {
            if !valid_cidr(cidr) {
                p.add(
                    format!("{rat}.client_cidrs[{k}]"),
                    format!("{cidr:?} is not an address or CIDR such as \"192.0.2.0/24\""),
                );
            }
        }
        for (k, m) in rule.methods.iter().enumerate() {
            if !is_method(m) {
                p.add(
                    format!("{rat}.methods[{k}]"),
                    format!("{m:?} is not an upper-case method"),
                );
            }
        }
        if let Some(re) = &rule.path_regex {
            if let Err(e) = regex::Regex::new(re) {
                p.add(format!("{rat}.path_regex"), format!("bad regex: {e}"));
            }
        }
        if let Some(h) = &rule.header {
            if !is_token(&h.name) {
                p.add(
                    format!("{rat}.header.name"),
                    format!("{:?} is not a header name", h.name),
                );
            }
            if let Err(e) = regex::Regex::new(&h.regex) {
                p.add(format!("{rat}.header.regex"), format!("bad regex: {e}"));
            }
        }
    }
}

fn validate_pool_http(p: &mut Problems, at: &str, pool: &Pool) {
    let Some(h) = &pool.http else {
        if pool.algorithm == Algorithm::Hash {
            p.add(
                format!("{at}.http.hash_key"),
                "algorithm = \"hash\" needs [pool.http] hash_key",
            );
        }
        if pool
            .health_check
            .as_ref()
            .is_some_and(|c| c.kind == CheckKind::Https)
        {
            p.add(
                format!("{at}.health_check.kind"),
                "\"https\" checks need [pool.http.tls]",
            );
        }
        return;
    };
    if !matches!(h.protocol.as_str(), "http1" | "http2") {
        p.add(
            format!("{at}.http.protocol"),
            "must be \"http1\" or \"http2\"",
        );
    }
    for (key, d) in [
        ("connect_timeout", h.connect_timeout),
        ("response_timeout", h.response_timeout),
        ("idle_timeout", h.idle_timeout),
    ] {
        if d.get().is_zero() {
            p.add(format!("{at}.http.{key}"), "must be more than 0s");
        }
    }
    match (&h.hash_key, pool.algorithm) {
        (None, Algorithm::Hash) => p.add(
            format!("{at}.http.hash_key"),
            "algorithm = \"hash\" needs a hash_key",
        ),
        (Some(_), a) if a != Algorithm::Hash => p.add(
            format!("{at}.http.hash_key"),
            "only used with algorithm = \"hash\"",
        ),
        (Some(HashKey::Header(n)) | Some(HashKey::Cookie(n)), _) if !is_token(n) => p.add(
            format!("{at}.http.hash_key"),
            format!("{n:?} is not a header or cookie name"),
        ),
        (Some(HashKey::Uri(false)), _) => p.add(
            format!("{at}.http.hash_key"),
            "uri = false hashes nothing; write { uri = true }",
        ),
        _ => {}
    }
    match &h.sticky {
        Some(Sticky::Cookie {
            name,
            same_site,
            max_age,
        }) => {
            if !is_token(name) {
                p.add(
                    format!("{at}.http.sticky.name"),
                    format!("{name:?} is not a cookie name"),
                );
            }
            if let Some(s) = same_site {
                if !matches!(s.as_str(), "strict" | "lax" | "none") {
                    p.add(
                        format!("{at}.http.sticky.same_site"),
                        "must be \"strict\", \"lax\" or \"none\"",
                    );
                }
            }
            if max_age.is_some_and(|d| d.get().is_zero()) {
                p.add(
                    format!("{at}.http.sticky.max_age"),
                    "must be more than 0s (leave it out for a session cookie)",
                );
            }
        }
        Some(Sticky::SourceIp { ttl, max_entries }) if ttl.get().is_zero() || *max_entries == 0 => {
            p.add(
                format!("{at}.http.sticky"),
                "ttl must be more than 0s and max_entries at least 1",
            );
        }
        Some(Sticky::SourceIp { .. }) | None => {}
    }
    if h.retry.attempts > 5 {
        p.add(format!("{at}.http.retry.attempts"), "must be at most 5");
    }
    for (k, s) in h.retry.on_status.iter().enumerate() {
        if !(400..=599).contains(s) {
            p.add(
                format!("{at}.http.retry.on_status[{k}]"),
                "must be a 4xx or 5xx status",
            );
        }
    }
    if h.retry.budget_percent > 100 {
        p.add(
            format!("{at}.http.retry.budget_percent"),
            "must be between 0 and 100",
        );
    }
    let o = &h.outlier;
    if !(0.0..=1.0).contains(&o.max_ejected_share) {
        p.add(
            format!("{at}.http.outlier.max_ejected_share"),
            "must be between 0.0 and 1.0",
        );
    }
    if o.consecutive_5xx > 0
        && (o.base_ejection.get().is_zero() || o.max_ejection < o.base_ejection)
    {
        p.add(
            format!("{at}.http.outlier"),
            "base_ejection must be more than 0s and at most max_ejection",
        );
    }
    if let Some(tls) = &h.tls {
        if tls
            .server_name
            .as_ref()
            .is_some_and(|n| !valid_host_pattern(n) || n.starts_with('*'))
        {
            p.add(format!("{at}.http.tls.server_name"), "must be a host name");
        }
    }
    if pool
        .health_check
        .as_ref()
        .is_some_and(|c| c.kind == CheckKind::Https)
        && h.tls.is_none()
    {
        p.add(
            format!("{at}.health_check.kind"),
            "\"https\" checks need [pool.http.tls]",
        );
    }
}

/// RFC 7230 token characters (header and cookie names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_method(s: &str) -> bool {
    !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn valid_host_pattern(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn valid_cidr(text: &str) -> bool {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u8>().ok()),
        None => (text, None),
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len.is_none_or(|l| l <= 32),
        Ok(std::net::IpAddr::V6(_)) => len.is_none_or(|l| l <= 128),
        Err(_) => false,
    }
}

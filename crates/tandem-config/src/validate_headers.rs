//! Validation of header rules, path rewrites and HSTS (see `header_rules`): names that are
//! header names, values that are header values with known `{variables}`, and no rule on a
//! header that tandem itself manages per hop or per message.

use crate::header_rules::{parse_template, HeaderOps, HeaderRules, Hsts, Rewrite};
use crate::http::Route;
use crate::validate::Problems;

/// Headers that describe one connection or frame one message. tandem writes them for each
/// hop itself (RFC 9110 7.6.1, RFC 9112 6): a rule on them would break the framing or be
/// silently undone, so check-config refuses it.
const MANAGED: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// One HSTS `max-age` of a year: what hstspreload.org asks of a preloaded site.
const PRELOAD_MIN_AGE_SECS: u64 = 31_536_000;

/// `at` is the key path of the rules, e.g. `listener[0].headers`; `forwards` is false for
/// a route that answers itself (redirect, respond): it has no request to rewrite.
pub(crate) fn validate_header_rules(
    p: &mut Problems,
    at: &str,
    rules: &HeaderRules,
    forwards: bool,
) {
    if !forwards && !rules.request.is_empty() {
        p.add(
            format!("{at}.request"),
            "only for routes with a pool: this route answers itself and sends no request",
        );
    }
    validate_ops(
        p,
        &format!("{at}.request"),
        &rules.request,
        Direction::Request,
    );
    validate_ops(
        p,
        &format!("{at}.response"),
        &rules.response,
        Direction::Response,
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

fn validate_ops(p: &mut Problems, at: &str, ops: &HeaderOps, dir: Direction) {
    for (k, name) in ops.remove.iter().enumerate() {
        check_name(p, &format!("{at}.remove[{k}]"), name, dir);
    }
    for (verb, map) in [("set", &ops.set), ("add", &ops.add)] {
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in map {
            let path = format!("{at}.{verb}.{name}");
            check_name(p, &path, name, dir);
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                p.add(
                    &path,
                    format!("{name:?} is given twice (header names ignore case)"),
                );
            }
            seen.push(lower);
            if let Err(e) = parse_template(value) {
                p.add(&path, format!("value {value:?} {e}"));
            }
        }
    }
}

fn check_name(p: &mut Problems, path: &str, name: &str, dir: Direction) {
    if !is_token(name) {
        p.add(path, format!("{name:?} is not a header name"));
        return;
    }
    let lower = name.to_ascii_lowercase();
    if MANAGED.contains(&lower.as_str()) {
        p.add(
            path,
            format!(
                "{name:?} is a hop-by-hop or framing header that tandem writes for each hop; rules cannot change it"
            ),
        );
    } else if dir == Direction::Request && lower == "host" {
        p.add(
            path,
            "\"Host\" is sent as the request's routed authority (what routing and access rules saw); rules cannot change it",
        );
    }
}

/// A route's `rewrite`: it needs the route's `path_prefix` (what it strips or replaces)
/// and a pool (something to send the path to).
pub(crate) fn validate_rewrite(p: &mut Problems, at: &str, route: &Route, rewrite: &Rewrite) {
    let at = format!("{at}.rewrite");
    if route.path_prefix.is_none() {
        p.add(
            &at,
            "needs the route's path_prefix: it is what is stripped or replaced",
        );
    }
    if route.pool.is_none() {
        p.add(&at, "only for routes with a pool");
    }
    match (&rewrite.replace_prefix, rewrite.strip_prefix) {
        (Some(_), true) | (None, false) => {
            p.add(
                &at,
                "give one of strip_prefix = true or replace_prefix = \"/...\"",
            );
        }
        (Some(to), false) => {
            let fine = to.starts_with('/')
                && to
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#'));
            if !fine {
                p.add(
                    format!("{at}.replace_prefix"),
                    format!("{to:?} must be a path: start with /, visible ASCII, no ? or #"),
                );
            }
        }
        (None, true) => {}
    }
}

/// `hsts` on a listener: only where TLS is (browsers ignore it over plain HTTP), with a
/// max-age, and with what preloading requires.
pub(crate) fn validate_hsts(p: &mut Problems, at: &str, hsts: &Hsts, tls: bool) {
    let at = format!("{at}.hsts");
    if !tls {
        p.add(
            &at,
            "sent only over TLS, and this listener has no [listener.tls] (browsers ignore it over http)",
        );
    }
    match hsts {
        Hsts::Text(text) => {
            let value = text.trim();
            let max_age = value.split(';').map(str::trim).any(|d| {
                d.to_ascii_lowercase()
                    .strip_prefix("max-age=")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            });
            if !max_age || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                p.add(
                    &at,
                    format!("{value:?} is not a Strict-Transport-Security value such as \"max-age=31536000; includeSubDomains\""),
                );
            }
        }
        Hsts::Parts(parts) => {
            if parts.preload
                && (!parts.include_subdomains
                    || parts.max_age.get().as_secs() < PRELOAD_MIN_AGE_SECS)
            {
                p.add(
                    format!("{at}.preload"),
                    "needs include_subdomains = true and max_age of at least \"365d\" (hstspreload.org)",
                );
            }
        }
    }
}

/// RFC 9110 token characters (header names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

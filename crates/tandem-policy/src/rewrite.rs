//! Path rewrites of a route: the route's path prefix stripped or replaced before the
//! request goes to the backend, the query string kept as it was.

use crate::path::{normalize_path, path_has_prefix};

/// Replaces `prefix` (a route's `path_prefix`) with `replacement` ("" strips it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixRewrite {
    prefix: String,
    replacement: String,
}

impl PrefixRewrite {
    pub fn new(prefix: &str, replacement: &str) -> Self {
        PrefixRewrite {
            prefix: prefix.to_string(),
            replacement: replacement.to_string(),
        }
    }

    /// The path and query the backend sees; None when the path is not under the prefix
    /// (then the request goes as it came). The path as sent is used when it carries the
    /// prefix, else its normalised form: routing matched that one, so "//api/x" and
    /// "/%61pi/x" are rewritten like "/api/x" rather than slipping through unchanged.
    pub fn apply(&self, path_and_query: &str) -> Option<String> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let normalized;
        let path = if path_has_prefix(path, &self.prefix) {
            path
        } else {
            normalized = normalize_path(path);
            if !path_has_prefix(&normalized, &self.prefix) {
                return None;
            }
            &normalized
        };
        let rest = &path[self.prefix.len()..];
        let mut out = String::with_capacity(self.replacement.len() + path_and_query.len());
        out.push_str(&self.replacement);
        // Exactly one '/' where the replacement meets the rest of the path.
        match (out.ends_with('/'), rest.strip_prefix('/')) {
            (true, Some(tail)) => out.push_str(tail),
            (false, None) if !rest.is_empty() => {
                out.push('/');
                out.push_str(rest);
            }
            _ => out.push_str(rest),
        }
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_and_replaces_keeping_the_query() {
        let cases = [
            ("/api", "", "/api/users?id=3", Some("/users?id=3")),
            ("/api", "", "/api", Some("/")),
            ("/api", "", "/api?x=1", Some("/?x=1")),
            ("/api/", "", "/api/users", Some("/users")),
            ("/api/", "/v2/", "/api/users?a=b&c", Some("/v2/users?a=b&c")),
            ("/api/", "/v2", "/api/users", Some("/v2/users")),
            ("/api", "/v2", "/api/users", Some("/v2/users")),
            ("/api", "/v2/", "/api/users", Some("/v2/users")),
            ("/api", "/v2", "/api", Some("/v2")),
            ("/", "/app/", "/x?y", Some("/app/x?y")),
            ("/api", "/v2", "//api/x", Some("/v2/x")),
            ("/api", "/v2", "/%61pi/x", Some("/v2/x")),
            ("/api", "/v2", "/other", None),
        ];
        for (prefix, replacement, path, want) in cases {
            let got = PrefixRewrite::new(prefix, replacement).apply(path);
            assert_eq!(
                got.as_deref(),
                want,
                "{prefix} -> {replacement:?} on {path}"
            );
        }
    }
}

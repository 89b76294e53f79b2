//! Path normalisation and prefix matching, shared by routing and access
//! rules so both see a request the same way.

use std::borrow::Cow;

/// Whether `path` falls under `prefix`, segment by segment: "/api" matches
/// "/api", "/api/" and "/api/users" but not "/apiv2" (unlike nginx's plain
/// string prefix, which surprises people and lets "/admin" rules miss
/// "/admin2" only by accident). A prefix ending in '/' ("/api/") is a plain
/// string prefix, so it matches "/api/x" but not "/api". A '?' also ends
/// the prefix, in case a caller passes a path with its query. The empty
/// prefix matches everything.
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix.is_empty() || path == prefix {
        return true;
    }
    path.starts_with(prefix)
        && (prefix.ends_with('/') || matches!(path.as_bytes()[prefix.len()], b'/' | b'?'))
}

/// The path as routing and access rules judge it, following RFC 3986
/// §6.2.2: percent-escapes of unreserved characters are decoded ("%61dmin"
/// → "admin"), "." and ".." segments are resolved (".." never climbs above
/// "/"), and runs of '/' collapse to one (as nginx's merge_slashes).
/// Escapes of reserved characters ("%2F") stay, since decoding them would
/// change the meaning. Without this, "/public/../admin" or "//admin" would
/// slip past a rule on "/admin" and still reach /admin on most backends.
/// Paths not starting with '/' ("*" of OPTIONS) are returned unchanged.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let needs_work =
        path.contains('%') || path.contains("//") || path.split('/').any(|s| s == "." || s == "..");
    if !path.starts_with('/') || !needs_work {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    // Whether the result ends in '/' (a directory).
    let mut trailing = false;
    for seg in decoded.split('/').skip(1) {
        trailing = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Decode "%XX" where XX encodes an unreserved character (ALPHA, DIGIT,
/// '-', '.', '_', '~'); keep every other byte as it was.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| path.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.bytes().all(|h| h.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        match decoded {
            Some(b) => {
                out.push_str(&path[start..i]);
                out.push(char::from(b));
                i += 3;
                start = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&path[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_segment_aware() {
        assert!(path_has_prefix("/api", "/api"));
        assert!(path_has_prefix("/api/", "/api"));
        assert!(path_has_prefix("/api/users", "/api"));
        assert!(path_has_prefix("/api?x=1", "/api"));
        assert!(!path_has_prefix("/apiv2", "/api"));
        assert!(!path_has_prefix("/ap", "/api"));
        assert!(path_has_prefix("/api/x", "/api/"));
        assert!(!path_has_prefix("/api", "/api/"));
        assert!(path_has_prefix("/anything", "/"));
        assert!(path_has_prefix("*", ""));
    }

    #[test]
    fn normalises_dots_slashes_and_unreserved_escapes() {
        let n = |p| normalize_path(p).into_owned();
        assert_eq!(n("/a/b"), "/a/b");
        assert!(matches!(normalize_path("/a/b/"), Cow::Borrowed(_)));
        assert_eq!(n("//admin"), "/admin");
        assert_eq!(n("/public/../admin"), "/admin");
        assert_eq!(n("/a/./b/"), "/a/b/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/b/."), "/a/b/");
        assert_eq!(n("/../../etc"), "/etc");
        assert_eq!(n("/.."), "/");
        assert_eq!(n("/%61dmin"), "/admin");
        assert_eq!(n("/%2e%2E/admin"), "/admin");
        assert_eq!(n("/a%2Fb"), "/a%2Fb");
        assert_eq!(n("/a%zz%4"), "/a%zz%4");
        assert_eq!(n("/%+6a"), "/%+6a");
        assert_eq!(n("/caf%C3%A9/é"), "/caf%C3%A9/é");
        assert_eq!(n("*"), "*");
    }
}

//! The one authority of a request (RFC 9112 3.2, RFC 9113 8.3.1), chosen and checked
//! once: routing, access rules, logs and the Host sent upstream all use it, so no two of
//! them can read different hosts from one request.
//!
//! - More than one Host field: refused (RFC 9112 3.2: MUST answer 400).
//! - A Host or target authority that is not `host[:port]`: refused (userinfo, lists,
//!   paths, empty values, bad ports never reach a host matcher).
//! - HTTP/1.1 without Host: refused (RFC 9112 3.2).
//! - An absolute-form target (HTTP/1) or `:authority` (HTTP/2) wins over Host; when both
//!   are present they must agree (ASCII case aside), as HAProxy requires.

use std::net::Ipv6Addr;

/// How the request arrived: what decides whether Host is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.0: Host is optional.
    Http10,
    /// HTTP/1.1: Host is required.
    Http11,
    /// HTTP/2 or later: `:authority` is the target's authority; Host is optional.
    Http2,
}

/// Where the request's authority came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthoritySource {
    /// The Host header.
    Host,
    /// The request target (absolute form or CONNECT) or HTTP/2 `:authority`.
    Target,
    /// Neither (HTTP/1.0 without Host, HTTP/2 without either).
    None,
}

/// Why a request's authority is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("Host is not a valid host[:port]")]
    InvalidHost,
    #[error("the request target's authority is not a valid host[:port]")]
    InvalidTarget,
    #[error("the request target's authority and Host differ")]
    Mismatch,
}

impl AuthorityError {
    /// A short stable name, for counters' labels and logs.
    pub fn reason(self) -> &'static str {
        match self {
            AuthorityError::DuplicateHost => "duplicate_host",
            AuthorityError::MissingHost => "missing_host",
            AuthorityError::InvalidHost => "invalid_host",
            AuthorityError::InvalidTarget => "invalid_target",
            AuthorityError::Mismatch => "host_mismatch",
        }
    }
}

/// Chooses the request's authority from its Host header values (all of them, raw) and
/// its target's authority (absolute form, CONNECT, or HTTP/2 `:authority`), and checks it.
pub fn request_authority<'a>(
    framing: Framing,
    mut hosts: impl Iterator<Item = &'a [u8]>,
    target: Option<&str>,
) -> Result<AuthoritySource, AuthorityError> {
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::DuplicateHost);
    }
    let host = match host {
        Some(h) => Some(
            std::str::from_utf8(h)
                .ok()
                .filter(|h| valid_authority(h))
                .ok_or(AuthorityError::InvalidHost)?,
        ),
        None => None,
    };
    if let Some(t) = target {
        if !valid_authority(t) {
            return Err(AuthorityError::InvalidTarget);
        }
    }
    match (host, target) {
        (Some(h), Some(t)) if !h.eq_ignore_ascii_case(t) => Err(AuthorityError::Mismatch),
        (None, _) if framing == Framing::Http11 => Err(AuthorityError::MissingHost),
        (_, Some(_)) => Ok(AuthoritySource::Target),
        (Some(_), None) => Ok(AuthoritySource::Host),
        (None, None) => Ok(AuthoritySource::None),
    }
}

/// Whether `text` is `host[:port]`: a registered name of letters, digits, '-', '.', '_'
/// and '~' (RFC 3986 unreserved; no percent-encoding, no sub-delimiters), an IPv4 address
/// (a name by this grammar) or a bracketed IPv6 address; the port 1 to 5 digits, at most
/// 65535. No userinfo, no path, no list, nothing empty.
pub fn valid_authority(text: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (ip.parse::<Ipv6Addr>().is_ok(), port)
    } else {
        let (name, port) = match text.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (text, None),
        };
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        (ok, port)
    };
    host_ok
        && port.is_none_or(|p| {
            (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= 65535)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        framing: Framing,
        hosts: &[&str],
        target: Option<&str>,
    ) -> Result<AuthoritySource, AuthorityError> {
        request_authority(framing, hosts.iter().map(|h| h.as_bytes()), target)
    }

    #[test]
    fn valid_and_invalid_authorities() {
        for ok in [
            "ok.example",
            "OK.example:8080",
            "10.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "svc_1.internal",
            "a",
            "a:65535",
        ] {
            assert!(valid_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "x@blocked.example",
            "blocked.example,ok.example",
            "blocked.example/x",
            "a b",
            "a:",
            ":80",
            "a:65536",
            "a:123456",
            "a:8x",
            "a:80:80",
            "[::1",
            "[::1]x",
            "[zz]",
            "::1",
            "a%2eb",
            "a\tb",
            "é.example",
        ] {
            assert!(!valid_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn one_host_required_in_http11_and_never_two() {
        assert_eq!(
            check(Framing::Http11, &["ok.example"], None),
            Ok(AuthoritySource::Host)
        );
        assert_eq!(
            check(Framing::Http11, &["ok.example", "blocked.example"], None),
            Err(AuthorityError::DuplicateHost)
        );
        assert_eq!(
            check(Framing::Http11, &["ok.example", "ok.example"], None),
            Err(AuthorityError::DuplicateHost)
        );
        assert_eq!(
            check(Framing::Http11, &[], None),
            Err(AuthorityError::MissingHost)
        );
        assert_eq!(check(Framing::Http10, &[], None), Ok(AuthoritySource::None));
        assert_eq!(
            check(Framing::Http11, &["x@blocked.example"], None),
            Err(AuthorityError::InvalidHost)
        );
        assert_eq!(
            check(Framing::Http2, &["a,b"], Some("a")),
            Err(AuthorityError::InvalidHost)
        );
    }

    #[test]
    fn the_target_wins_and_must_agree_with_host() {
        assert_eq!(
            check(Framing::Http11, &["ok.example"], Some("OK.example")),
            Ok(AuthoritySource::Target)
        );
        assert_eq!(
            check(Framing::Http11, &["ok.example"], Some("blocked.example")),
            Err(AuthorityError::Mismatch)
        );
        assert_eq!(
            check(Framing::Http11, &[], Some("ok.example")),
            Err(AuthorityError::MissingHost)
        );
        assert_eq!(
            check(Framing::Http11, &["ok.example"], Some("u@ok.example")),
            Err(AuthorityError::InvalidTarget)
        );
        assert_eq!(
            check(Framing::Http2, &[], Some("ok.example")),
            Ok(AuthoritySource::Target)
        );
        assert_eq!(
            check(Framing::Http2, &["blocked.example"], Some("ok.example")),
            Err(AuthorityError::Mismatch)
        );
        assert_eq!(check(Framing::Http2, &[], None), Ok(AuthoritySource::None));
        assert_eq!(
            check(Framing::Http2, &["ok.example"], None),
            Ok(AuthoritySource::Host)
        );
    }
}

//! Host matching: normalising the Host header and host patterns.

use std::net::Ipv6Addr;

use crate::PolicyError;

/// A host a route applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// The whole host, normalised like [`normalize_host`].
    Exact(String),
    /// "*.example.com", stored as "example.com": one or more labels before
    /// ".example.com", at any depth ("a.example.com", "a.b.example.com"),
    /// but not "example.com" itself — the nginx and Envoy semantics, so
    /// configurations carry over. List "example.com" separately to match
    /// the apex as well.
    Suffix(String),
}

impl HostPattern {
    /// Parse "example.com", "*.example.com", "10.0.0.1" or "[2001:db8::1]"
    /// (a bare IPv6 address is accepted too). Case and one trailing dot are
    /// ignored. Ports, other wildcards and "*" alone are errors: an empty
    /// host list already means "any host", and silently accepting
    /// "foo.*.com" would never match anything.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PolicyError::EmptyHost);
        }
        if let Some(rest) = text.strip_prefix("*.") {
            if rest.contains('*') {
                return Err(PolicyError::BadWildcard(text.into()));
            }
            return Ok(HostPattern::Suffix(check_name(text, rest)?));
        }
        if text.contains('*') {
            return Err(PolicyError::BadWildcard(text.into()));
        }
        if let Some(inner) = text.strip_prefix('[') {
            return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
                Some(Ok(ip)) => Ok(HostPattern::Exact(format!("[{ip}]"))),
                _ => Err(PolicyError::HostWithPort(text.into())),
            };
        }
        if let Ok(ip) = text.parse::<Ipv6Addr>() {
            return Ok(HostPattern::Exact(format!("[{ip}]")));
        }
        if text.contains(':') {
            return Err(PolicyError::HostWithPort(text.into()));
        }
        Ok(HostPattern::Exact(check_name(text, text)?))
    }

    /// Whether a host, already through [`normalize_host`], matches.
    pub fn matches(&self, host_without_port_lowercase: &str) -> bool {
        let host = host_without_port_lowercase;
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Suffix(domain) => {
                // At least one character before ".domain".
                host.len() > domain.len() + 1
                    && host.ends_with(domain.as_str())
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            }
        }
    }
}

/// Lowercase `name` without its trailing dot, after checking it is a
/// sequence of non-empty labels of letters, digits, '-' and '_' ('_' is
/// not valid in host names but common in internal service names).
fn check_name(pattern: &str, name: &str) -> Result<String, PolicyError> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(PolicyError::BadHostChar {
            pattern: pattern.into(),
            found,
        });
    }
    if name.split('.').any(str::is_empty) {
        return Err(PolicyError::EmptyLabel(pattern.into()));
    }
    Ok(name)
}

/// Normalise a Host header for matching: strip ":port" (also after an
/// IPv6 literal, "[::1]:80" → "[::1]"), trailing dots, surrounding
/// whitespace, and lowercase. IPv6 literals come out bracketed and in
/// canonical form ("[0:0::1]" → "[::1]"), so patterns and headers agree
/// however the address was spelled. A bare IPv6 address (not valid in a
/// Host header, but seen) is treated as having no port.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.split(']').next().unwrap_or(inner);
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => format!("[{ip}]"),
            Err(_) => format!("[{}]", inner.to_ascii_lowercase()),
        };
    }
    if let Ok(ip) = host.parse::<Ipv6Addr>() {
        return format!("[{ip}]");
    }
    let name = match host.split_once(':') {
        Some((name, _port)) => name,
        None => host,
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_ports_case_and_dots() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("example.com.:443"), "example.com");
        assert_eq!(normalize_host("10.0.0.1:80"), "10.0.0.1");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("[0:0::1]"), "[::1]");
        assert_eq!(normalize_host("[2001:DB8::A]:443"), "[2001:db8::a]");
        assert_eq!(normalize_host("2001:db8::a"), "[2001:db8::a]");
        assert_eq!(normalize_host(""), "");
    }

    #[test]
    fn parses_patterns() {
        let p = |t| HostPattern::parse(t);
        assert_eq!(
            p("Example.com."),
            Ok(HostPattern::Exact("example.com".into()))
        );
        assert_eq!(
            p("*.Example.com"),
            Ok(HostPattern::Suffix("example.com".into()))
        );
        assert_eq!(p("[::1]"), Ok(HostPattern::Exact("[::1]".into())));
        assert_eq!(p("::1"), Ok(HostPattern::Exact("[::1]".into())));
        assert_eq!(p("10.0.0.1"), Ok(HostPattern::Exact("10.0.0.1".into())));
        assert_eq!(p(" "), Err(PolicyError::EmptyHost));
        assert!(matches!(p("*"), Err(PolicyError::BadWildcard(_))));
        assert!(matches!(p("a.*.com"), Err(PolicyError::BadWildcard(_))));
        assert!(matches!(p("*.*.com"), Err(PolicyError::BadWildcard(_))));
        assert!(matches!(
            p("*example.com"),
            Err(PolicyError::BadWildcard(_))
        ));
        assert!(matches!(
            p("example.com:80"),
            Err(PolicyError::HostWithPort(_))
        ));
        assert!(matches!(p("[::1]:80"), Err(PolicyError::HostWithPort(_))));
        assert!(matches!(
            p("a b.com"),
            Err(PolicyError::BadHostChar { found: ' ', .. })
        ));
        assert!(matches!(p("a..com"), Err(PolicyError::EmptyLabel(_))));
        assert!(matches!(p(".example.com"), Err(PolicyError::EmptyLabel(_))));
    }

    #[test]
    fn suffix_needs_a_label_before_the_domain() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches(".example.com"));
        assert!(!p.matches("badexample.com"));
        assert!(!p.matches("a.example.com.evil"));
    }
}

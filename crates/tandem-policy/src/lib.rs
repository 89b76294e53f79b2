//! Request policy for tandem's L7 plane: routing, access rules, rate
//! limits, connection limits, retry budgets, cookie persistence and sticky
//! tables.
//!
//! Pure like `tandem-balance`: no I/O, no clock reads (every time is a
//! `Duration` since an arbitrary origin, passed in by the caller), no global
//! randomness, and only ordered collections, so that the same inputs give
//! the same state on every node — which the sticky table relies on to be
//! replicated. The HTTP plane owns the sockets, the clock and the locking.

mod access;
mod authority;
mod conns;
mod cookie;
mod host;
mod path;
mod rate;
mod retry;
mod rewrite;
mod route;
mod sticky;

pub use access::{AccessRule, AccessRules, RuleAction, Verdict};
pub use authority::{request_authority, valid_authority, AuthorityError, AuthoritySource, Framing};
pub use conns::ClientConnections;
pub use cookie::{
    backend_for_cookie, find_cookie, persistence_value, set_cookie, valid_cookie_name, SameSite,
};
pub use host::{normalize_host, HostPattern};
pub use path::{normalize_path, path_has_prefix};
pub use rate::RateLimiter;
pub use retry::RetryBudget;
pub use rewrite::PrefixRewrite;
pub use route::{RouteMatch, RouteTable};
pub use sticky::{StickyEntry, StickyTable};

/// Header lookup, so this crate needs no HTTP library. Names are compared
/// case-insensitively; callers of `get` pass them in lowercase. When a
/// header occurs more than once, implementations return the first value.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

/// A plain list of (name, value) pairs, handy for tests and small callers.
impl<N: AsRef<str>, V: AsRef<str>> Headers for [(N, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<N: AsRef<str>, V: AsRef<str>> Headers for Vec<(N, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        Headers::get(self.as_slice(), name)
    }
}

/// What routing and access rules look at.
#[derive(Debug)]
pub struct RequestView<'a, H: Headers + ?Sized> {
    pub method: &'a str,
    /// The Host header (or :authority) as sent: may carry ":port", any case.
    pub host: Option<&'a str>,
    /// Path only, no query. Matched after [`normalize_path`].
    pub path: &'a str,
    pub headers: &'a H,
}

// Manual impls: a derive would require `H: Clone`, but only a reference is held.
impl<H: Headers + ?Sized> Clone for RequestView<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<H: Headers + ?Sized> Copy for RequestView<'_, H> {}

/// Configuration errors; the config crate turns them into messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("empty host pattern")]
    EmptyHost,
    #[error("host pattern {0:?}: a wildcard is only allowed as a leading \"*.\" (\"*.example.com\"); to match any host, give no host patterns")]
    BadWildcard(String),
    #[error("host pattern {0:?}: host patterns match the host without its port")]
    HostWithPort(String),
    #[error("host pattern {pattern:?}: invalid character {found:?} (letters, digits, '-', '_' and '.' between non-empty labels)")]
    BadHostChar { pattern: String, found: char },
    #[error("host pattern {0:?}: empty label")]
    EmptyLabel(String),
}

// Who a client is (tandem-balance's, shared with the L4 plane's source-IP hashing).
pub use tandem_balance::{canonical_ip, client_key};

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn header_lists_compare_names_case_insensitively() {
        let h = vec![("X-Tenant", "a"), ("x-tenant", "b")];
        assert_eq!(h.get("x-tenant"), Some("a"));
        assert_eq!(Headers::get(&h[..], "accept"), None);
    }

    #[test]
    fn mapped_addresses_are_v4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
        // ::1 is IPv4-compatible, not mapped: stays IPv6 loopback.
        let lo: IpAddr = "::1".parse().unwrap();
        assert_eq!(canonical_ip(lo), lo);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = ip("2001:db8:1:2:aaaa::1");
        let b = ip("2001:db8:1:2:ffff:1:2:3");
        let other = ip("2001:db8:1:3::1");
        assert_eq!(client_key(a, 64), ip("2001:db8:1:2::"));
        assert_eq!(client_key(a, 64), client_key(b, 64));
        assert_ne!(client_key(a, 64), client_key(other, 64));
        assert_eq!(client_key(a, 128), a);
        assert_eq!(client_key(a, 48), client_key(other, 48));
        assert_eq!(client_key(a, 0), ip("::"));
        // IPv4, mapped or not, is never masked.
        assert_eq!(client_key(ip("::ffff:10.1.2.3"), 64), ip("10.1.2.3"));
        assert_eq!(client_key(ip("10.1.2.3"), 8), ip("10.1.2.3"));
    }
}

//! Routing: the first route whose conditions all hold wins.

use crate::host::{normalize_host, HostPattern};
use crate::path::{normalize_path, path_has_prefix};
use crate::{Headers, RequestView};

/// Conditions of one route; all given ones must hold.
#[derive(Clone, Debug, Default)]
pub struct RouteMatch {
    /// Any of these; empty = any host (including no Host header at all).
    pub hosts: Vec<HostPattern>,
    /// Segment-aware prefix of the normalised path, see [`path_has_prefix`].
    pub path_prefix: Option<String>,
    /// (lowercase name, exact value): the first value of that header must
    /// equal the value byte for byte.
    pub header: Option<(String, String)>,
    /// Any of these (uppercase); empty = any method.
    pub methods: Vec<String>,
}

/// Routes in order plus an optional default.
#[derive(Clone, Debug)]
pub struct RouteTable<T> {
    routes: Vec<(RouteMatch, T)>,
    default: Option<T>,
}

impl RouteMatch {
    /// Header names compare case-insensitively and methods are matched in
    /// uppercase, so normalise once here rather than on every request.
    fn normalized(mut self) -> Self {
        if let Some((name, _)) = &mut self.header {
            name.make_ascii_lowercase();
        }
        for m in &mut self.methods {
            m.make_ascii_uppercase();
        }
        self
    }

    /// `host` is already normalised, `path` already through `normalize_path`.
    fn matches<H: Headers + ?Sized>(
        &self,
        req: &RequestView<'_, H>,
        host: Option<&str>,
        path: &str,
    ) -> bool {
        let host_ok =
            self.hosts.is_empty() || host.is_some_and(|h| self.hosts.iter().any(|p| p.matches(h)));
        // Methods are case-sensitive tokens (RFC 9110 §9.1): "get" is not GET.
        let method_ok = self.methods.is_empty() || self.methods.iter().any(|m| m == req.method);
        let path_ok = self
            .path_prefix
            .as_deref()
            .is_none_or(|prefix| path_has_prefix(path, prefix));
        let header_ok = self
            .header
            .as_ref()
            .is_none_or(|(name, value)| req.headers.get(name) == Some(value.as_str()));
        host_ok && method_ok && path_ok && header_ok
    }
}

impl<T> RouteTable<T> {
    /// Routes are tried in the given order; `default` answers when none
    /// matches. Method names are uppercased and header names lowercased.
    pub fn new(routes: Vec<(RouteMatch, T)>, default: Option<T>) -> Self {
        let routes = routes
            .into_iter()
            .map(|(m, t)| (m.normalized(), t))
            .collect();
        RouteTable { routes, default }
    }

    /// The target of the first matching route, else the default.
    pub fn find<H: Headers + ?Sized>(&self, req: &RequestView<'_, H>) -> Option<&T> {
        self.find_index(req)
            .map(|i| &self.routes[i].1)
            .or(self.default.as_ref())
    }

    /// Index of the first matching route (not counting the default), for
    /// logs and metrics.
    pub fn find_index<H: Headers + ?Sized>(&self, req: &RequestView<'_, H>) -> Option<usize> {
        let host = req.host.map(normalize_host);
        let path = normalize_path(req.path);
        self.routes
            .iter()
            .position(|(m, _)| m.matches(req, host.as_deref(), &path))
    }

    /// Number of routes, not counting the default.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn default_target(&self) -> Option<&T> {
        self.default.as_ref()
    }
}

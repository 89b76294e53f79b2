//! The one builder for tandemd config text in tests: typed for what tests vary (node,
//! cluster, listeners, routes, pools, backends), with raw TOML for the rest (a listener's
//! `[listener.tls]`, a pool's `[pool.health_check]`, ...), which goes where TOML needs it:
//! a section's raw keys after its typed keys, its raw tables after those.
//!
//! ```ignore
//! let toml = Config::test_node()
//!     .listener(Listener::http("front", port).pool("p").route(Route::to("api").path_prefix("/api")))
//!     .pool(Pool::new("p").backend("a", a.addr))
//!     .to_toml();
//! ```

use std::fmt::{Display, Write};
use std::net::SocketAddr;
use std::path::Path;

/// `s` as a TOML basic string (quoted; `"`, `\` and line breaks escaped).
pub fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path as TOML literal string text (single quotes: no escapes needed for temp paths).
pub fn toml_path(p: &Path) -> String {
    format!("'{}'", p.display())
}

fn list(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|s| quoted(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A whole config: top-level keys (`version`), `[node]` (with `[node.cluster]`), then
/// listeners, then pools, then raw text for anything else.
#[derive(Clone, Debug)]
pub struct Config {
    top_keys: Vec<String>,
    node_keys: Vec<String>,
    node_tables: String,
    cluster: Option<Cluster>,
    listeners: Vec<Listener>,
    pools: Vec<Pool>,
    raw: String,
}

impl Config {
    /// `[node]` with this id and nothing else (the defaults, the default admin socket too).
    pub fn new(id: &str) -> Config {
        Config {
            top_keys: Vec::new(),
            node_keys: vec![format!("id = {}", quoted(id))],
            node_tables: String::new(),
            cluster: None,
            listeners: Vec::new(),
            pools: Vec::new(),
            raw: String::new(),
        }
    }

    /// No `[node]`: the part of a config a cluster replicates (`tandemctl config apply`).
    pub fn shared() -> Config {
        Config {
            node_keys: Vec::new(),
            ..Config::new("")
        }
    }

    /// [`Config::test_node`] as cluster member "n1", its Raft state in `<dir>/data`.
    pub fn cluster_node(dir: &Path, cluster: Cluster) -> Config {
        Config::test_node()
            .node_key("id", "\"n1\"")
            .node_key("data_dir", &toml_path(&dir.join("data")))
            .cluster(cluster)
    }

    /// `version = N` (a replicated config's version).
    pub fn version(mut self, version: u64) -> Config {
        self.top_keys.push(format!("version = {version}"));
        self
    }

    /// The node most tests start: id "test", drain 1 s, no admin socket.
    pub fn test_node() -> Config {
        Config::new("test").drain_timeout("1s").admin_socket("")
    }

    pub fn drain_timeout(self, duration: &str) -> Config {
        self.node_key("drain_timeout", &quoted(duration))
    }

    /// The admin socket path ("" for none).
    pub fn admin_socket(self, path: &str) -> Config {
        self.node_key("admin_socket", &quoted(path))
    }

    /// `key = value` in `[node]` (an earlier value is replaced where it stood); `value`
    /// is TOML text (quote strings with [`quoted`]).
    pub fn node_key(mut self, key: &str, value: &str) -> Config {
        let prefix = format!("{key} = ");
        let line = format!("{prefix}{value}");
        match self.node_keys.iter_mut().find(|k| k.starts_with(&prefix)) {
            Some(earlier) => *earlier = line,
            None => self.node_keys.push(line),
        }
        self
    }

    /// Raw `[node.*]` tables (e.g. `[node.vrrp]`), after `[node.cluster]`.
    pub fn node_tables(mut self, toml: &str) -> Config {
        self.node_tables.push_str(toml);
        self.node_tables.push('\n');
        self
    }

    pub fn cluster(mut self, cluster: Cluster) -> Config {
        self.cluster = Some(cluster);
        self
    }

    pub fn listener(mut self, listener: Listener) -> Config {
        self.listeners.push(listener);
        self
    }

    pub fn pool(mut self, pool: Pool) -> Config {
        self.pools.push(pool);
        self
    }

    /// Raw TOML after everything else (top-level sections the builder has no type for).
    pub fn raw(mut self, toml: &str) -> Config {
        self.raw.push_str(toml);
        self.raw.push('\n');
        self
    }

    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        for key in &self.top_keys {
            let _ = writeln!(t, "{key}");
        }
        if !self.node_keys.is_empty() {
            t.push_str("\n[node]\n");
        }
        for key in &self.node_keys {
            let _ = writeln!(t, "{key}");
        }
        if let Some(cluster) = &self.cluster {
            cluster.write(&mut t);
        }
        t.push_str(&self.node_tables);
        for listener in &self.listeners {
            listener.write(&mut t);
        }
        for pool in &self.pools {
            pool.write(&mut t);
        }
        t.push_str(&self.raw);
        t
    }
}

/// `[node.cluster]`.
#[derive(Clone, Debug)]
pub struct Cluster {
    keys: Vec<String>,
    hosts: Vec<(String, String)>,
}

impl Cluster {
    pub fn new(raft_id: u64, listen: impl Display, cert_dir: &Path) -> Cluster {
        Cluster {
            keys: vec![
                format!("raft_id = {raft_id}"),
                format!("listen = {}", quoted(&listen.to_string())),
                format!("cert_dir = {}", toml_path(cert_dir)),
            ],
            hosts: Vec::new(),
        }
    }

    /// A one-node cluster: raft id 1 ("n1" on 127.0.0.1) bootstrapping, listening on
    /// 127.0.0.1:`port`, its certificates in `<dir>/pki`.
    pub fn single(dir: &Path, port: u16) -> Cluster {
        Cluster::new(1, format!("127.0.0.1:{port}"), &dir.join("pki"))
            .bootstrap(true)
            .host("n1", "127.0.0.1")
    }

    pub fn bootstrap(self, bootstrap: bool) -> Cluster {
        self.key("bootstrap", &bootstrap.to_string())
    }

    /// A member's host (what its certificate names), by node id.
    pub fn host(mut self, node_id: &str, host: impl Display) -> Cluster {
        self.hosts.push((node_id.to_string(), host.to_string()));
        self
    }

    /// `key = value`; `value` is TOML text.
    pub fn key(mut self, key: &str, value: &str) -> Cluster {
        self.keys.push(format!("{key} = {value}"));
        self
    }

    fn write(&self, t: &mut String) {
        t.push_str("\n[node.cluster]\n");
        for key in &self.keys {
            let _ = writeln!(t, "{key}");
        }
        if !self.hosts.is_empty() {
            let hosts: Vec<String> = self
                .hosts
                .iter()
                .map(|(id, host)| format!("{id} = {}", quoted(host)))
                .collect();
            let _ = writeln!(t, "hosts = {{ {} }}", hosts.join(", "));
        }
    }
}

/// One `[[listener]]` with its routes.
#[derive(Clone, Debug)]
pub struct Listener {
    keys: Vec<String>,
    raw_keys: String,
    routes: Vec<Route>,
}

impl Listener {
    /// A listener on `bind` (an address, or a port on 127.0.0.1), with no protocol key
    /// (TCP, the default).
    pub fn tcp(name: &str, bind: impl Bind) -> Listener {
        Listener {
            keys: vec![
                format!("name = {}", quoted(name)),
                format!("bind = {}", quoted(&bind.address())),
            ],
            raw_keys: String::new(),
            routes: Vec::new(),
        }
    }

    pub fn http(name: &str, bind: impl Bind) -> Listener {
        Self::tcp(name, bind).key("protocol", "\"http\"")
    }

    pub fn udp(name: &str, bind: impl Bind) -> Listener {
        Self::tcp(name, bind).key("protocol", "\"udp\"")
    }

    /// The default pool (without one, only routes decide).
    pub fn pool(self, pool: &str) -> Listener {
        let pool = quoted(pool);
        self.key("pool", &pool)
    }

    /// `key = value`; `value` is TOML text.
    pub fn key(mut self, key: &str, value: &str) -> Listener {
        self.keys.push(format!("{key} = {value}"));
        self
    }

    /// Raw text right after the keys: more keys, then `[listener.*]` tables.
    pub fn raw(mut self, toml: &str) -> Listener {
        self.raw_keys.push_str(toml);
        self.raw_keys.push('\n');
        self
    }

    /// Raw `[listener.*]` tables (e.g. `[listener.tls]`).
    pub fn tables(self, toml: &str) -> Listener {
        self.raw(toml)
    }

    pub fn route(mut self, route: Route) -> Listener {
        self.routes.push(route);
        self
    }

    fn write(&self, t: &mut String) {
        t.push_str("\n[[listener]]\n");
        for key in &self.keys {
            let _ = writeln!(t, "{key}");
        }
        t.push_str(&self.raw_keys);
        for route in &self.routes {
            t.push_str("\n[[listener.route]]\n");
            for key in &route.keys {
                let _ = writeln!(t, "{key}");
            }
        }
    }
}

/// Where a listener binds: a port (on 127.0.0.1) or a full address.
pub trait Bind {
    fn address(&self) -> String;
}

impl Bind for u16 {
    fn address(&self) -> String {
        format!("127.0.0.1:{self}")
    }
}

impl Bind for SocketAddr {
    fn address(&self) -> String {
        self.to_string()
    }
}

impl Bind for &str {
    fn address(&self) -> String {
        self.to_string()
    }
}

impl Bind for String {
    fn address(&self) -> String {
        self.clone()
    }
}

/// One `[[listener.route]]`: its matches and what it does.
#[derive(Clone, Debug, Default)]
pub struct Route {
    keys: Vec<String>,
}

impl Route {
    /// A route to `pool` (add matches).
    pub fn to(pool: &str) -> Route {
        Route::default().key("pool", &quoted(pool))
    }

    /// A route answering itself (add `respond`/`redirect` and matches).
    pub fn answering() -> Route {
        Route::default()
    }

    pub fn hosts(self, hosts: &[&str]) -> Route {
        self.key("hosts", &list(hosts))
    }

    pub fn path_prefix(self, prefix: &str) -> Route {
        self.key("path_prefix", &quoted(prefix))
    }

    pub fn methods(self, methods: &[&str]) -> Route {
        self.key("methods", &list(methods))
    }

    /// Matches a request header with this value.
    pub fn header(self, name: &str, value: &str) -> Route {
        let table = format!("{{ name = {}, value = {} }}", quoted(name), quoted(value));
        self.key("header", &table)
    }

    pub fn respond(self, status: u16, body: &str) -> Route {
        let table = format!("{{ status = {status}, body = {} }}", quoted(body));
        self.key("respond", &table)
    }

    pub fn redirect(self, location: &str, status: u16) -> Route {
        let table = format!("{{ location = {}, status = {status} }}", quoted(location));
        self.key("redirect", &table)
    }

    /// `key = value`; `value` is TOML text.
    pub fn key(mut self, key: &str, value: &str) -> Route {
        self.keys.push(format!("{key} = {value}"));
        self
    }
}

/// One `[[pool]]` with its backends.
#[derive(Clone, Debug)]
pub struct Pool {
    keys: Vec<String>,
    raw: String,
    backends: Vec<String>,
}

impl Pool {
    pub fn new(name: &str) -> Pool {
        Pool {
            keys: vec![format!("name = {}", quoted(name))],
            raw: String::new(),
            backends: Vec::new(),
        }
    }

    /// A pool of test backends, their names as ids.
    pub fn of(name: &str, backends: &[&crate::http_kit::HttpBackend]) -> Pool {
        backends
            .iter()
            .fold(Pool::new(name), |pool, b| pool.backend(&b.name, b.addr))
    }

    pub fn algorithm(self, algorithm: &str) -> Pool {
        self.key("algorithm", &quoted(algorithm))
    }

    /// `key = value`; `value` is TOML text.
    pub fn key(mut self, key: &str, value: &str) -> Pool {
        self.keys.push(format!("{key} = {value}"));
        self
    }

    /// Raw text right after the keys: more keys, then `[pool.*]` tables.
    pub fn raw(mut self, toml: &str) -> Pool {
        self.raw.push_str(toml);
        self.raw.push('\n');
        self
    }

    pub fn backend(self, id: &str, address: impl Display) -> Pool {
        self.backend_with(id, address, "")
    }

    pub fn weighted(self, id: &str, address: impl Display, weight: u32) -> Pool {
        self.backend_with(id, address, &format!("weight = {weight}\n"))
    }

    /// A backend with raw keys of its own (e.g. `weight = 2\nbackup = true`).
    pub fn backend_with(mut self, id: &str, address: impl Display, keys: &str) -> Pool {
        self.backends.push(format!(
            "\n[[pool.backend]]\nid = {}\naddress = {}\n{keys}",
            quoted(id),
            quoted(&address.to_string())
        ));
        self
    }

    fn write(&self, t: &mut String) {
        t.push_str("\n[[pool]]\n");
        for key in &self.keys {
            let _ = writeln!(t, "{key}");
        }
        t.push_str(&self.raw);
        for backend in &self.backends {
            t.push_str(backend);
        }
    }
}

/// The `[node]` table the L7 tests start with ([`Config::test_node`] as text).
pub const NODE_TOML: &str = "[node]\nid = \"test\"\ndrain_timeout = \"1s\"\nadmin_socket = \"\"\n";

/// Config text for one TCP listener "front" on `port` in front of pool "p" (`backends`:
/// id, address, weight). `extra_listener` and `extra_pool` are raw TOML for each.
pub fn tcp_config(
    port: u16,
    algorithm: &str,
    backends: &[(&str, SocketAddr, u32)],
    extra_listener: &str,
    extra_pool: &str,
) -> String {
    let mut pool = Pool::new("p").algorithm(algorithm).raw(extra_pool);
    for (id, addr, weight) in backends {
        pool = pool.weighted(id, addr, *weight);
    }
    Config::test_node()
        .drain_timeout("2s")
        .listener(Listener::tcp("front", port).pool("p").raw(extra_listener))
        .pool(pool)
        .to_toml()
}

/// Config text: one HTTP listener "front" on 127.0.0.1:`port` in front of pool "p".
/// `listener_tables` comes right after the listener's keys (e.g. `[listener.tls]`), and
/// `pool_extra` after the pool's name (keys first, then tables such as `[pool.http]`).
pub fn http_config(
    port: u16,
    listener_tables: &str,
    pool_extra: &str,
    backends: &[(&str, SocketAddr)],
) -> String {
    let mut pool = Pool::new("p").raw(pool_extra);
    for (id, addr) in backends {
        pool = pool.backend(id, addr);
    }
    Config::new("l7")
        .drain_timeout("1s")
        .listener(Listener::http("front", port).pool("p").raw(listener_tables))
        .pool(pool)
        .to_toml()
}

/// A `[[pool]]` section of `backends` (ids are the backend names); `algorithm` "" leaves
/// the default.
pub fn pool_toml(
    name: &str,
    algorithm: &str,
    backends: &[&crate::http_kit::HttpBackend],
    extra: &str,
) -> String {
    let mut pool = Pool::of(name, backends).raw(extra);
    if !algorithm.is_empty() {
        pool = pool.algorithm(algorithm);
    }
    let mut t = String::new();
    pool.write(&mut t);
    t
}

/// An HTTP listener section on 127.0.0.1:`port` (`pool` may be empty: routes only);
/// `extra` is raw TOML after its keys.
pub fn http_listener_toml(name: &str, port: u16, pool: &str, extra: &str) -> String {
    let mut listener = Listener::http(name, port).raw(extra);
    if !pool.is_empty() {
        listener = listener.pool(pool);
    }
    let mut t = String::new();
    listener.write(&mut t);
    t
}

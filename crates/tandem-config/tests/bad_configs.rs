//! A table of broken configs: each must be refused with the key path and a telling message.

use tandem_config::parse;

#[path = "bad_configs/compression.rs"]
mod compression;
#[path = "bad_configs/header_rules.rs"]
mod header_rules;

const GOOD: &str = r#"
[node]
id = "lb1"

[[listener]]
name = "web"
bind = "127.0.0.1:8080"
pool = "web"

[[pool]]
name = "web"
[[pool.backend]]
id = "a"
address = "127.0.0.1:9001"
[[pool.backend]]
id = "b"
address = "127.0.0.1:9002"
"#;

#[test]
fn backends_may_be_dns_names_and_srv_names() {
    let text = GOOD
        .replace("127.0.0.1:9001", "app.internal:9001")
        .replace("127.0.0.1:9002", "_http._tcp.api.internal");
    let cfg = parse(&text, "good.toml").expect("names are valid backend addresses");
    let backends = &cfg.cluster.pools[0].backends;
    assert_eq!(backends[0].address.dns_name(), Some("app.internal"));
    assert_eq!(backends[0].address.port(), Some(9001));
    assert_eq!(
        backends[1].address.dns_name(),
        Some("_http._tcp.api.internal")
    );
    assert_eq!(backends[1].address.port(), None);
    assert_eq!(cfg.node.dns, tandem_config::dns::NodeDns::default());
}

#[test]
fn the_good_base_config_parses() {
    let cfg = parse(GOOD, "good.toml").expect("base config is valid");
    assert_eq!(cfg.node.id, "lb1");
    assert_eq!(cfg.cluster.version, 1);
    assert_eq!(cfg.cluster.pools[0].backends.len(), 2);
    assert_eq!(cfg.cluster.listeners[0].max_connections, 10_000);
}

/// Keys that apply on a TCP listener, and max_connections on every protocol, are kept;
/// the replicated log's own reading ignores keys that do not apply (older versions wrote
/// them for every listener), so replaying it never refuses what it once accepted.
#[test]
fn applicable_keys_pass_and_the_replicated_reading_is_lenient() {
    let tcp = GOOD.replace(
        "pool = \"web\"\n",
        "pool = \"web\"\nconnect_timeout = \"5s\"\nconnect_attempts = 2\nbacklog = 10\n",
    );
    parse(&tcp, "tcp.toml").expect("TCP keys on a TCP listener");
    let http = GOOD.replace(
        "pool = \"web\"\n",
        "pool = \"web\"\nprotocol = \"http\"\nmax_connections = 5\nbacklog = 10\n",
    );
    let cfg = parse(&http, "http.toml").expect("max_connections and backlog on http");
    assert_eq!(cfg.cluster.listeners[0].max_connections, 5);
    let old = http.replace("max_connections = 5\n", "connect_timeout = \"3s\"\n");
    assert!(parse(&old, "old.toml").is_err());
    let replayed = tandem_config::parse_replicated(&old, "log").expect("lenient");
    // ...and drops the key, so later checks of the running config do not trip on it.
    assert_eq!(replayed.cluster.listeners[0].connect_timeout, None);
    assert!(tandem_config::validate_config(&replayed).is_empty());
    // What to_toml writes (the replicated form) carries no such key.
    let text = tandem_config::to_toml(&cfg);
    assert!(!text.contains("connect_timeout"), "{text}");
    parse(&text, "again.toml").expect("to_toml output parses");
}

/// (what, config text, expected key path, expected words in the message)
fn cases() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "unknown top-level key",
            format!("colour = 1\n{GOOD}"),
            "colour",
            "unknown field `colour`",
        ),
        (
            "unknown key in a backend",
            GOOD.replace("id = \"a\"", "id = \"a\"\nwieght = 3"),
            "pool[0].backend[0].wieght",
            "unknown field `wieght`",
        ),
        (
            "bad address",
            GOOD.replace("127.0.0.1:9001", "127.0.0.1:99999"),
            "pool[0].backend[0].address",
            "port \"99999\" is not a number from 0 to 65535",
        ),
        (
            "bad backend host name",
            GOOD.replace("127.0.0.1:9001", "app_1.internal:80"),
            "pool[0].backend[0].address",
            "may hold only letters, digits and inner hyphens",
        ),
        (
            "node.dns bounds the wrong way round",
            GOOD.replace("id = \"lb1\"\n", "id = \"lb1\"\n[node.dns]\nmin_ttl = \"1m\"\nmax_ttl = \"10s\"\n"),
            "node.dns.max_ttl",
            "must be at least node.dns.min_ttl",
        ),
        (
            "backend name without a port",
            GOOD.replace("127.0.0.1:9001", "app.internal"),
            "pool[0].backend[0].address",
            "has no port; expected IP:port, [IPv6]:port, host:port",
        ),
        (
            "hostname instead of address",
            GOOD.replace("127.0.0.1:8080", "localhost:8080"),
            "listener[0].bind",
            "invalid socket address",
        ),
        (
            "duplicate backend id",
            GOOD.replace("id = \"b\"", "id = \"a\""),
            "pool[0].backend[1].id",
            "duplicate backend id \"a\"",
        ),
        (
            "every weight 0",
            GOOD.replace("address = \"127.0.0.1:9001\"", "address = \"127.0.0.1:9001\"\nweight = 0")
                .replace("address = \"127.0.0.1:9002\"", "address = \"127.0.0.1:9002\"\nweight = 0"),
            "pool[0].backend",
            "every backend has weight 0",
        ),
        (
            "pool that no listener uses",
            format!("{GOOD}\n[[pool]]\nname = \"spare\"\n[[pool.backend]]\nid = \"x\"\naddress = \"127.0.0.1:9100\"\n"),
            "pool[1].name",
            "not used by any listener",
        ),
        (
            "listener names a missing pool",
            GOOD.replace("pool = \"web\"", "pool = \"api\""),
            "listener[0].pool",
            "no pool named \"api\"",
        ),
        (
            "duration without unit",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nidle_timeout = \"30\"\n"),
            "listener[0].idle_timeout",
            "missing unit",
        ),
        (
            "integer duration",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nconnect_timeout = 5\n"),
            "listener[0].connect_timeout",
            "duration string",
        ),
        (
            "connect_timeout on an http listener",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"http\"\nconnect_timeout = \"5s\"\n"),
            "listener[0].connect_timeout",
            "does not apply to a http listener: not used by http listeners; set [pool.http] connect_timeout",
        ),
        (
            "connect_attempts on an http listener",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"http\"\nconnect_attempts = 2\n"),
            "listener[0].connect_attempts",
            "[pool.http.retry]",
        ),
        (
            "idle_timeout on an http listener",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"http\"\nidle_timeout = \"1m\"\n"),
            "listener[0].idle_timeout",
            "keepalive_timeout",
        ),
        (
            "connect_timeout on a udp listener",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"udp\"\nconnect_timeout = \"5s\"\n"),
            "listener[0].connect_timeout",
            "does not apply to a udp listener",
        ),
        (
            "backlog on a udp listener",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"udp\"\nbacklog = 10\n"),
            "listener[0].backlog",
            "no listen backlog",
        ),
        (
            "unknown algorithm",
            GOOD.replace("name = \"web\"\n[[pool.backend]]", "name = \"web\"\nalgorithm = \"fastest\"\n[[pool.backend]]"),
            "pool[0].algorithm",
            "unknown variant `fastest`",
        ),
        (
            "maglev size not prime",
            GOOD.replace("name = \"web\"\n[[pool.backend]]", "name = \"web\"\nmaglev_table_size = 65536\n[[pool.backend]]"),
            "pool[0].maglev_table_size",
            "not a prime",
        ),
        (
            "panic threshold out of range",
            GOOD.replace("name = \"web\"\n[[pool.backend]]", "name = \"web\"\npanic_threshold = 1.5\n[[pool.backend]]"),
            "pool[0].panic_threshold",
            "between 0.0 and 1.0",
        ),
        (
            "duplicate listener bind",
            format!("{GOOD}\n[[listener]]\nname = \"web2\"\nbind = \"127.0.0.1:8080\"\npool = \"web\"\n"),
            "listener[1].bind",
            "already used",
        ),
        (
            "PROXY protocol on UDP",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"udp\"\nproxy_protocol = \"v2\"\n"),
            "listener[0].proxy_protocol",
            "TCP listeners only",
        ),
        (
            "check timeout longer than interval",
            GOOD.replace("name = \"web\"\n[[pool.backend]]", "name = \"web\"\n[pool.health_check]\ninterval = \"1s\"\ntimeout = \"2s\"\n[[pool.backend]]"),
            "pool[0].health_check.timeout",
            "longer than the interval",
        ),
        (
            "bad expected status",
            GOOD.replace("name = \"web\"\n[[pool.backend]]", "name = \"web\"\n[pool.health_check]\nkind = \"http\"\nexpect_status = \"2xx\"\n[[pool.backend]]"),
            "pool[0].health_check.expect_status",
            "not a status or range",
        ),
        (
            "rise of zero",
            GOOD.replace("name = \"web\"\n[[pool.backend]]", "name = \"web\"\n[pool.health_check]\nrise = 0\n[[pool.backend]]"),
            "pool[0].health_check.rise",
            "between 1 and 100",
        ),
        (
            "pool without backends",
            GOOD.split("[[pool.backend]]").next().unwrap().to_string(),
            "pool[0]",
            "missing field `backend`",
        ),
        (
            "no listener at all",
            "[[pool]]\nname = \"p\"\n[[pool.backend]]\nid = \"a\"\naddress = \"127.0.0.1:1\"\n".to_string(),
            "listener",
            "no listener defined",
        ),
        (
            "bad name characters",
            GOOD.replace("id = \"lb1\"", "id = \"lb 1\""),
            "node.id",
            "not a valid name",
        ),
        (
            "TOML syntax error",
            GOOD.replace("[[pool]]", "[[pool]"),
            "",
            "",
        ),
        (
            "max connections zero",
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nmax_connections = 0\n"),
            "listener[0].max_connections",
            "at least 1",
        ),
        (
            "admin API on TCP without a token",
            GOOD.replace("id = \"lb1\"", "id = \"lb1\"\nadmin_tcp = \"127.0.0.1:9900\""),
            "node.admin_tcp",
            "needs node.admin_token_file",
        ),
        (
            "status TLS older than 1.2",
            GOOD.replace(
                "id = \"lb1\"",
                "id = \"lb1\"\n[node.status]\nlisten = \"127.0.0.1:8404\"\n[node.status.tls]\n\
                 cert = \"s.pem\"\nkey = \"s.key\"\nmin_version = \"1.1\"",
            ),
            "node.status.tls.min_version",
            "must be \"1.2\" or \"1.3\"",
        ),
        (
            "status TLS with a misspelt key",
            GOOD.replace(
                "id = \"lb1\"",
                "id = \"lb1\"\n[node.status]\nlisten = \"127.0.0.1:8404\"\n[node.status.tls]\n\
                 cert = \"s.pem\"\nkey = \"s.key\"\ncertfile = \"x\"",
            ),
            "node.status.tls.certfile",
            "unknown field `certfile`",
        ),
    ]
}

#[test]
fn every_bad_config_is_refused_with_its_key_path() {
    let mut failures = Vec::new();
    for (what, text, path, words) in cases() {
        let err = match parse(&text, "bad.toml") {
            Ok(_) => {
                failures.push(format!("{what}: accepted, but must be refused"));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        if !shown.starts_with("bad.toml") {
            failures.push(format!("{what}: message must name the file: {shown}"));
        }
        if !err
            .problems
            .iter()
            .any(|p| p.path == path && p.message.contains(words))
        {
            failures.push(format!(
                "{what}: expected path {path:?} with {words:?}, got: {shown}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn syntax_errors_carry_a_line_number() {
    let text = GOOD.replace("[[pool]]", "[[pool]");
    let err = parse(&text, "bad.toml").unwrap_err();
    let line = err.problems[0].line.expect("a line number");
    assert_eq!(text.lines().nth(line - 1).unwrap(), "[[pool]");
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = GOOD
        .replace("id = \"b\"", "id = \"a\"")
        .replace("pool = \"web\"\n", "pool = \"web\"\nconnect_attempts = 0\n");
    let err = parse(&text, "bad.toml").unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
}

#[test]
fn a_config_survives_a_round_trip_through_toml() {
    let cfg = parse(GOOD, "good.toml").unwrap();
    let text = tandem_config::to_toml(&cfg);
    assert_eq!(parse(&text, "again.toml").unwrap(), cfg);
}

const VRRP: &str = r#"
[node]
id = "lb1"
[node.vrrp]
interface = "eth1"
[[node.vrrp.instance]]
group = "front"
priority = 150
[[node.vrrp.instance.track]]
kind = "pool"
pool = "web"
weight = -60

[[vip_group]]
name = "front"
vrid = 51
addresses = ["198.51.100.100/24"]
advert_interval = "100ms"
"#;

#[test]
fn a_vrrp_config_parses_with_defaults() {
    let text = format!("{VRRP}{}", GOOD.replace("[node]\nid = \"lb1\"\n", ""));
    let cfg = parse(&text, "vrrp.toml").unwrap_or_else(|e| panic!("{e}"));
    let v = cfg.node.vrrp.as_ref().unwrap();
    assert_eq!(v.garp_count, 5);
    assert_eq!(v.instances[0].priority, 150);
    assert!(cfg.cluster.vip_groups[0].preempt);
    assert_eq!(
        tandem_config::vrrp::parse_vip("198.51.100.100/24"),
        Some(("198.51.100.100".parse().unwrap(), 24))
    );
}

#[test]
fn an_ipv6_vip_group_parses_beside_an_ipv4_one_with_the_same_vrid() {
    use tandem_config::vrrp::parse_vip;
    assert_eq!(
        parse_vip("2001:db8::100"),
        Some(("2001:db8::100".parse().unwrap(), 128))
    );
    assert_eq!(
        parse_vip("2001:db8::100/64"),
        Some(("2001:db8::100".parse().unwrap(), 64))
    );
    assert_eq!(parse_vip("ff02::12"), None, "multicast");
    assert_eq!(parse_vip("::"), None, "unspecified");
    let text = format!("{VRRP}{}", GOOD.replace("[node]\nid = \"lb1\"\n", ""))
        .replace(
            "interface = \"eth1\"",
            "interface = \"eth1\"\nunicast_peers = [\"198.51.100.12\", \"fe80::2\"]",
        )
        + "\n[[vip_group]]\nname = \"front6\"\nvrid = 51\naddresses = [\"2001:db8::100/64\"]\n\n[[node.vrrp.instance]]\ngroup = \"front6\"\npriority = 150\n";
    let cfg = parse(&text, "v6.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.cluster.vip_groups.len(), 2);
    assert_eq!(cfg.node.vrrp.unwrap().unicast_peers.len(), 2);
}

#[test]
fn a_dual_stack_vip_group_holds_an_ipv4_and_an_ipv6_address() {
    let text = format!("{VRRP}{}", GOOD.replace("[node]\nid = \"lb1\"\n", "")).replace(
        "addresses = [\"198.51.100.100/24\"]",
        "addresses = [\"198.51.100.100/24\", \"2001:db8::100/64\"]",
    );
    let cfg = parse(&text, "dual.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.cluster.vip_groups[0].addresses.len(), 2);
}

#[test]
fn bad_vrrp_configs_are_refused_with_their_key_path() {
    let base = format!("{VRRP}{}", GOOD.replace("[node]\nid = \"lb1\"\n", ""));
    let cases = [
        (
            base.replace("vrid = 51", "vrid = 0"),
            "vip_group[0].vrid",
            "between 1 and 255",
        ),
        (
            base.replace("vrid = 51", "vrid = 256"),
            "vip_group[0].vrid",
            "invalid value",
        ),
        (
            base.replace("198.51.100.100/24", "198.51.100.300"),
            "vip_group[0].addresses[0]",
            "not a unicast address",
        ),
        (
            // A dual-stack group's IPv6 instance uses vrid 51 in the IPv6 space too.
            base.replace(
                "198.51.100.100/24\"",
                "198.51.100.100/24\", \"2001:db8::100\"",
            ) + "\n[[vip_group]]\nname = \"front6\"\nvrid = 51\naddresses = [\"2001:db8::101/64\"]\n",
            "vip_group[1].vrid",
            "used by another vip_group with IPv6 addresses",
        ),
        (
            base.replace("198.51.100.100/24", "2001:db8::100/129"),
            "vip_group[0].addresses[0]",
            "not a unicast address",
        ),
        (
            base.replace(
                "interface = \"eth1\"",
                "interface = \"eth1\"\nunicast_peers = [\"2001:db8::12\"]",
            ),
            "node.vrrp.unicast_peers[0]",
            "not link-local",
        ),
        (
            base.replace("\"100ms\"", "\"105ms\""),
            "vip_group[0].advert_interval",
            "steps of 10ms",
        ),
        (
            base.replace("group = \"front\"", "group = \"back\""),
            "node.vrrp.instance[0].group",
            "no vip_group named \"back\"",
        ),
        (
            base.replace("priority = 150", "priority = 0"),
            "node.vrrp.instance[0].priority",
            "reserved",
        ),
        (
            base.replace("pool = \"web\"\nweight", "pool = \"nope\"\nweight"),
            "node.vrrp.instance[0].track[0].pool",
            "no pool named",
        ),
        (
            base.replace("weight = -60", "weight = 0"),
            "node.vrrp.instance[0].track[0].weight",
            "not 0",
        ),
        (
            base.replace(
                "interface = \"eth1\"",
                "interface = \"a-very-long-interface-name\"",
            ),
            "node.vrrp.interface",
            "not a valid interface",
        ),
        (
            base.replace("kind = \"pool\"", "kind = \"magic\""),
            "node.vrrp.instance[0].track[0].kind",
            "unknown variant `magic`",
        ),
        (
            base.replace("priority = 150", "priority = 255").replace(
                "interface = \"eth1\"",
                "interface = \"eth1\"\nfencing = \"raft\"",
            ),
            "node.vrrp.instance[0].priority",
            "cannot be fenced",
        ),
    ];
    assert_all_refused(cases);
    // Unfenced, an owner is fine (keepalived semantics).
    let owner = base.replace("priority = 150", "priority = 255");
    parse(&owner, "owner.toml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn l7_mistakes_are_refused_with_their_key_path() {
    let http = GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"http\"\n");
    let cases = [
        (
            format!("{http}\n[[listener]]\nname = \"raw\"\nbind = \"127.0.0.1:8080\"\npool = \"web\"\n"),
            "listener[1].bind",
            "already used by another TCP or HTTP listener",
        ),
        (
            http.replace("name = \"web\"\n[[pool.backend]]", "name = \"web\"\nalgorithm = \"hash\"\n[pool.http]\nhash_key = { uri = false }\n[[pool.backend]]"),
            "pool[0].http.hash_key",
            "uri = false hashes nothing",
        ),
        (
            http.replace("protocol = \"http\"\n", "protocol = \"http\"\n[[listener.rule]]\naction = \"deny\"\npath_prefix = \"admin\"\n"),
            "listener[0].rule[0].path_prefix",
            "must start with /",
        ),
        (
            http.replace("name = \"web\"\n[[pool.backend]]", "name = \"web\"\n[pool.http]\ntls = { verify = false }\n[pool.health_check]\nkind = \"https\"\nexpect_status = \"2xx\"\n[[pool.backend]]"),
            "pool[0].health_check.expect_status",
            "not a status or range",
        ),
        (
            http.replace("protocol = \"http\"\n", "protocol = \"http\"\n[listener.http]\nsend_timeout = \"0s\"\n"),
            "listener[0].http.send_timeout",
            "must be more than 0s",
        ),
        (
            http.replace("protocol = \"http\"\n", "protocol = \"http\"\n[listener.http]\nworkers = 0\n"),
            "listener[0].http.workers",
            "must be between 1 and 1024",
        ),
        (
            http.replace("protocol = \"http\"\n", "protocol = \"http\"\n[listener.http]\nworkers = 5000\n"),
            "listener[0].http.workers",
            "must be between 1 and 1024",
        ),
    ];
    assert_all_refused(cases);
    // The send timeout's default: 30 s, as documented in docs/config.md.
    let defaults = parse(&http, "http.toml").unwrap_or_else(|e| panic!("{e}"));
    let settings = defaults.cluster.listeners[0]
        .http
        .clone()
        .unwrap_or_default();
    assert_eq!(
        settings.send_timeout.get(),
        std::time::Duration::from_secs(30)
    );
    // In range, the key parses and is kept.
    let two = http.replace(
        "protocol = \"http\"\n",
        "protocol = \"http\"\n[listener.http]\nworkers = 2\n",
    );
    let cfg = parse(&two, "workers.toml").unwrap_or_else(|e| panic!("{e}"));
    let workers = cfg.cluster.listeners[0]
        .http
        .as_ref()
        .and_then(|h| h.workers);
    assert_eq!(workers, Some(2));
}

/// Each (config text, key path, words) must be refused with a problem at that key path
/// whose message holds those words; reports every miss at once.
fn assert_all_refused(cases: impl IntoIterator<Item = (String, &'static str, &'static str)>) {
    let mut failures = Vec::new();
    for (text, path, words) in cases {
        match parse(&text, "bad.toml") {
            Ok(_) => failures.push(format!("{path}: accepted")),
            Err(e) => {
                if !e
                    .problems
                    .iter()
                    .any(|p| p.path == path && p.message.contains(words))
                {
                    failures.push(format!("{path} / {words}: got {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

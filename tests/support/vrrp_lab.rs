//! Helpers for VRRP drills: tandemd nodes (and keepalived peers) in a [`Lab`], each node
//! with a listener on :7000 that answers with the node's name, so a client can see which
//! node holds the VIP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::netns::Lab;
use crate::NameBackend;

pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
/// The IPv6 VIP of [`NodeSpec::ipv6`] labs (after [`Lab::enable_ipv6`]).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x100);
pub const VRID: u8 = 51;
/// The port of the per-node "who am I" listener reached through the VIP.
pub const PORT: u16 = 7000;

pub fn vip_addr() -> SocketAddr {
    SocketAddr::from((VIP, PORT))
}

pub fn vip6_addr() -> SocketAddr {
    SocketAddr::from((VIP6, PORT))
}

/// Per-test scratch directory (configs, logs), removed on success by the OS tmp cleaner;
/// kept on failure for reading.
pub fn scratch(lab: &Lab) -> PathBuf {
    let dir = std::env::temp_dir().join(&lab.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub priority: u8,
    pub advert_interval: &'static str,
    pub preempt: bool,
    pub unicast: bool,
    /// An IPv6 instance: the VIP is [`VIP6`], unicast peers are link-local, the "who"
    /// listener binds `[::]`.
    pub ipv6: bool,
    /// Extra lines in `[node.vrrp]`.
    pub extra_node: String,
    /// Extra lines after the instance (e.g. `[[node.vrrp.instance.track]]` tables).
    pub extra_instance: String,
}

impl NodeSpec {
    pub fn new(priority: u8, advert_interval: &'static str) -> Self {
        NodeSpec {
            priority,
            advert_interval,
            preempt: true,
            unicast: false,
            ipv6: false,
            extra_node: String::new(),
            extra_instance: String::new(),
        }
    }
}

/// The admin socket of node `i`: in the lab's scratch dir (the filesystem is shared by
/// every namespace, so the test reaches each node's API from outside).
pub fn admin_socket(lab: &Lab, i: usize) -> PathBuf {
    scratch(lab).join(format!("n{}.sock", i + 1))
}

/// tandemd config for node `i` of the lab.
pub fn tandem_config(lab: &Lab, i: usize, spec: &NodeSpec) -> String {
    let peers: Vec<String> = if spec.unicast {
        lab.nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| {
                if spec.ipv6 {
                    format!("\"{}\"", lab.link_local(n))
                } else {
                    format!("\"{}\"", n.ip)
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    format!(
        r#"[node]
id = "n{n}"
drain_timeout = "1s"
admin_socket = "{admin_socket}"

[node.vrrp]
interface = "eth0"
unicast_peers = [{peers}]
garp_refresh = "2s"
{extra}

[[node.vrrp.instance]]
group = "front"
priority = {prio}
{extra_instance}

[[vip_group]]
name = "front"
vrid = {VRID}
addresses = ["{vip}"]
advert_interval = "{interval}"
preempt = {preempt}

[[listener]]
name = "who"
bind = "{bind}:{PORT}"
pool = "local"

[[pool]]
name = "local"
[[pool.backend]]
id = "self"
address = "127.0.0.1:{backend}"
"#,
        n = i + 1,
        admin_socket = admin_socket(lab, i).display(),
        peers = peers.join(", "),
        extra = spec.extra_node,
        extra_instance = spec.extra_instance,
        prio = spec.priority,
        interval = spec.advert_interval,
        preempt = spec.preempt,
        backend = PORT + 1,
        vip = if spec.ipv6 {
            format!("{VIP6}/64")
        } else {
            format!("{VIP}/24")
        },
        bind = if spec.ipv6 { "[::]" } else { "0.0.0.0" },
    )
}

/// Starts the "who am I" backend inside node `i`'s namespace (answers `n<i+1>`).
pub fn start_who_backend(lab: &Lab, i: usize) -> NameBackend {
    let listener = lab.listen_in(
        &lab.nodes[i].ns,
        SocketAddr::from(([127, 0, 0, 1], PORT + 1)),
    );
    NameBackend::from_listener(&format!("n{}", i + 1), listener)
}

/// Starts tandemd on node `i`; returns the lab's child index.
pub fn start_tandem(lab: &mut Lab, i: usize, spec: &NodeSpec) -> usize {
    let dir = scratch(lab);
    let config = dir.join(format!("n{}.toml", i + 1));
    std::fs::write(&config, tandem_config(lab, i, spec)).unwrap();
    let log = dir.join(format!("n{}.log", i + 1));
    let ns = lab.nodes[i].ns.clone();
    let bin = crate::tandemd_bin();
    std::env::set_var("RUST_LOG", "info,tandem_vrrp=debug");
    lab.spawn(
        &ns,
        bin.to_str().unwrap(),
        &["run", "--config", config.to_str().unwrap()],
        Some(&log),
    )
}

/// The log of node `i` (tandemd), for assertions and failure messages.
pub fn node_log(lab: &Lab, i: usize) -> String {
    std::fs::read_to_string(scratch(lab).join(format!("n{}.log", i + 1))).unwrap_or_default()
}

/// Polls every 10 ms until exactly `expected` hold the VIP, or `limit` passes. Returns the
/// time it took.
pub async fn wait_holders(lab: &Lab, expected: &[usize], limit: Duration) -> Option<Duration> {
    wait_holders_of(lab, VIP.into(), expected, limit).await
}

/// [`wait_holders`] for any VIP.
pub async fn wait_holders_of(
    lab: &Lab,
    vip: IpAddr,
    expected: &[usize],
    limit: Duration,
) -> Option<Duration> {
    crate::wait_until(limit, Duration::from_millis(10), || {
        lab.holders(vip) == expected
    })
    .await
}

/// Polls every 10 ms until node `i` is among the holders of `vip` (others may still hold
/// it, e.g. a killed node's copy until its lifetime runs out). Returns the time it took.
pub async fn wait_holder_includes(
    lab: &Lab,
    vip: impl Into<IpAddr>,
    i: usize,
    limit: Duration,
) -> Option<Duration> {
    let vip = vip.into();
    let holds = || lab.holders(vip).contains(&i);
    crate::wait_until(limit, Duration::from_millis(10), holds).await
}

/// Polls the client's neighbour entry for `vip` (without sending to it) every 20 ms until
/// it is `mac`.
pub async fn wait_client_neighbour(
    lab: &Lab,
    vip: impl Into<IpAddr>,
    mac: &str,
    limit: Duration,
) -> bool {
    let vip = vip.into();
    let moved = || lab.client_neighbour(vip).as_deref() == Some(mac);
    crate::wait_until(limit, Duration::from_millis(20), moved)
        .await
        .is_some()
}

/// Polls from the client every 20 ms until the node named `name` answers through the VIP.
pub async fn wait_client_reaches(lab: &Lab, name: &str, limit: Duration) -> Option<Duration> {
    wait_client_reaches_at(lab, vip_addr(), name, limit).await
}

/// [`wait_client_reaches`] through any VIP address.
pub async fn wait_client_reaches_at(
    lab: &Lab,
    addr: SocketAddr,
    name: &str,
    limit: Duration,
) -> Option<Duration> {
    let reaches = || async move {
        let answer = lab.client_ask(addr, Duration::from_millis(200)).await;
        answer.as_deref() == Some(name)
    };
    crate::wait_until_async(limit, Duration::from_millis(20), reaches).await
}

/// keepalived (Debian's) as a VRRPv3 peer on node `i`; returns the lab's child index.
pub fn start_keepalived(
    lab: &mut Lab,
    i: usize,
    priority: u8,
    advert_int: &str,
    preempt: bool,
) -> usize {
    keepalived_with(lab, i, priority, advert_int, preempt, false)
}

/// keepalived with an IPv6 instance (`native_ipv6`, [`VIP6`]) on node `i`.
pub fn start_keepalived6(lab: &mut Lab, i: usize, priority: u8, advert_int: &str) -> usize {
    keepalived_with(lab, i, priority, advert_int, true, true)
}

fn keepalived_with(
    lab: &mut Lab,
    i: usize,
    priority: u8,
    advert_int: &str,
    preempt: bool,
    ipv6: bool,
) -> usize {
    let dir = scratch(lab);
    let (native, vip) = if ipv6 {
        ("    native_ipv6\n", format!("{VIP6}/64"))
    } else {
        ("", format!("{VIP}/24"))
    };
    let conf = dir.join(format!("keepalived-n{}.conf", i + 1));
    let nopreempt = if preempt { "" } else { "    nopreempt\n" };
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n    router_id n{n}\n    vrrp_version 3\n    vrrp_garp_master_delay 5\n    script_user root\n}}\n\
             vrrp_instance front {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {VRID}\n    priority {priority}\n    advert_int {advert_int}\n{native}{nopreempt}    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n",
            n = i + 1
        ),
    )
    .unwrap();
    let log = dir.join(format!("keepalived-n{}.log", i + 1));
    let ns = lab.nodes[i].ns.clone();
    let pid = |name: &str| {
        dir.join(format!("{name}-n{}.pid", i + 1))
            .to_string_lossy()
            .into_owned()
    };
    let args = [
        "--dont-fork".to_string(),
        "--log-console".to_string(),
        "--log-detail".to_string(),
        "--vrrp".to_string(),
        "--use-file".to_string(),
        conf.to_string_lossy().into_owned(),
        "--pid".to_string(),
        pid("keepalived"),
        "--vrrp_pid".to_string(),
        pid("vrrp"),
        "--checkers_pid".to_string(),
        pid("checkers"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn(&ns, "keepalived", &args, Some(&log))
}

pub fn keepalived_log(lab: &Lab, i: usize) -> String {
    std::fs::read_to_string(scratch(lab).join(format!("keepalived-n{}.log", i + 1)))
        .unwrap_or_default()
}

/// Waits until node `i` alone holds the VIP and keeps it for `stable`.
pub async fn wait_stable_holder(lab: &Lab, i: usize, stable: Duration, limit: Duration) -> bool {
    wait_stable_holder_of(lab, VIP.into(), i, stable, limit).await
}

/// [`wait_stable_holder`] for any VIP.
pub async fn wait_stable_holder_of(
    lab: &Lab,
    vip: IpAddr,
    i: usize,
    stable: Duration,
    limit: Duration,
) -> bool {
    let start = tokio::time::Instant::now();
    let mut since: Option<tokio::time::Instant> = None;
    while start.elapsed() < limit {
        if lab.holders(vip) == [i] {
            let s = *since.get_or_insert_with(tokio::time::Instant::now);
            if s.elapsed() >= stable {
                return true;
            }
        } else {
            since = None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

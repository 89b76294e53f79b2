//! A network-namespace lab for cluster drills: a bridge in a "hub" namespace, N node
//! namespaces and a client namespace joined to it by veth pairs, addresses from
//! 198.51.100.0/24 (and 2001:db8:51::/64 after [`Lab::enable_ipv6`]). Every name carries a unique prefix so tests run in parallel; `Drop`
//! kills what the lab started (by PID) and deletes every namespace, on failure too.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): without it, `Lab::new` fails with a clear
//! message. It never skips.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::Child;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Labs of one test binary run one at a time: on 2 cores, parallel drills would measure
/// the machine's load rather than failover.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One host of the lab: its namespace, its interface `eth0`, address and MAC.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// The veth end in the hub, for partitions.
    pub hub_port: String,
}

impl Host {
    /// The host's IPv6 address after [`Lab::enable_ipv6`]: 2001:db8:51::N where N is the
    /// last octet of its IPv4 address (node i: ::11+i, the client ::50, in decimal).
    pub fn ip6(&self) -> Ipv6Addr {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x51,
            0,
            0,
            0,
            0,
            u16::from(self.ip.octets()[3]),
        )
    }
}

pub struct Lab {
    pub prefix: String,
    pub hub: String,
    pub nodes: Vec<Host>,
    pub client: Host,
    children: Vec<Child>,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// Runs a command and panics with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (install iproute2 and nftables: .ci/run --deps-only)")
        });
    if !out.status.success() {
        panic!(
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test, loudly, when it cannot create namespaces (not root, no CAP_SYS_ADMIN).
pub fn require_root() {
    let euid = nix::unistd::geteuid();
    assert!(
        euid.is_root(),
        "this test builds network namespaces and needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); \
         run scripts/test as root (CI does). It does not skip."
    );
}

impl Lab {
    /// `nodes` nodes at 198.51.100.11, .12, ...; the client at 198.51.100.50.
    pub fn new(nodes: usize) -> Lab {
        require_root();
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("tl{}x{id}", std::process::id());
        let hub = format!("{prefix}-hub");
        let mut lab = Lab {
            prefix: prefix.clone(),
            hub: hub.clone(),
            nodes: Vec::new(),
            client: Host {
                ns: String::new(),
                ip: Ipv4Addr::UNSPECIFIED,
                mac: String::new(),
                hub_port: String::new(),
            },
            children: Vec::new(),
            _turn: turn,
        };
        run("ip", &["netns", "add", &hub]);
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        run("ip", &["-n", &hub, "link", "set", "br0", "up"]);
        for i in 0..nodes {
            let host = lab.add_host(
                &format!("n{}", i + 1),
                Ipv4Addr::new(198, 51, 100, 11 + i as u8),
                1 + i as u8,
            );
            lab.nodes.push(host);
        }
        lab.client = lab.add_host("client", Ipv4Addr::new(198, 51, 100, 50), 0x50);
        lab
    }

    fn add_host(&mut self, name: &str, ip: Ipv4Addr, mac_last: u8) -> Host {
        let ns = format!("{}-{name}", self.prefix);
        let port = format!("v{name}");
        let mac = format!("02:00:00:00:00:{mac_last:02x}");
        run("ip", &["netns", "add", &ns]);
        run(
            "ip",
            &[
                "-n", &self.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ],
        );
        run(
            "ip",
            &["-n", &self.hub, "link", "set", &port, "master", "br0", "up"],
        );
        run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        run("ip", &["-n", &ns, "link", "set", "eth0", "address", &mac]);
        run(
            "ip",
            &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        Host {
            ns,
            ip,
            mac,
            hub_port: port,
        }
    }

    /// Starts a program inside a namespace; the lab kills it (by PID) when dropped.
    /// Returns its index for `child`.
    pub fn spawn(
        &mut self,
        ns: &str,
        program: &str,
        args: &[&str],
        log: Option<&std::path::Path>,
    ) -> usize {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null());
        match log {
            Some(path) => {
                let f = File::create(path).expect("log file");
                cmd.stdout(f.try_clone().unwrap()).stderr(f);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        // `ip netns exec` execs the program: the PID we get is the program's own.
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} in {ns}: {e}"));
        self.children.push(Child(child));
        self.children.len() - 1
    }

    pub fn child(&mut self, index: usize) -> &mut Child {
        &mut self.children[index]
    }

    /// IPv4 addresses on a host's eth0 (e.g. to see who holds the VIP).
    pub fn addresses(&self, host: &Host) -> Vec<Ipv4Addr> {
        let out = run(
            "ip",
            &["-n", &host.ns, "-4", "-o", "addr", "show", "dev", "eth0"],
        );
        out.lines()
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
            .filter_map(|cidr| cidr.split('/').next()?.parse().ok())
            .collect()
    }

    /// IPv4 and IPv6 addresses on a host's eth0, with the kernel's flags for each
    /// (`tentative`, `nodad`, `dynamic`...).
    pub fn addresses_with_flags(&self, host: &Host) -> Vec<(IpAddr, String)> {
        let out = run("ip", &["-n", &host.ns, "-o", "addr", "show", "dev", "eth0"]);
        out.lines()
            .filter_map(|l| {
                let mut words = l
                    .split_whitespace()
                    .skip_while(|w| *w != "inet" && *w != "inet6");
                words.next()?;
                let ip = words.next()?.split('/').next()?.parse().ok()?;
                Some((ip, words.collect::<Vec<_>>().join(" ")))
            })
            .collect()
    }

    /// Gives every host an IPv6 address from 2001:db8:51::/64 (node i: ::11+i, the client
    /// ::50, as for IPv4) and waits until each link-local address has finished duplicate
    /// address detection (IPv6 adverts leave from it).
    pub fn enable_ipv6(&self) {
        for host in self.nodes.iter().chain(std::iter::once(&self.client)) {
            let ip = host.ip6();
            run(
                "ip",
                &[
                    "-n",
                    &host.ns,
                    "addr",
                    "add",
                    &format!("{ip}/64"),
                    "dev",
                    "eth0",
                    "nodad",
                ],
            );
        }
        let start = std::time::Instant::now();
        for host in self.nodes.iter().chain(std::iter::once(&self.client)) {
            loop {
                let ready = self.addresses_with_flags(host).iter().any(|(ip, flags)| {
                    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] == 0xfe80)
                        && !flags.contains("tentative")
                });
                if ready {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{}: no usable IPv6 link-local address after 10 s (is IPv6 disabled?): {:?}",
                    host.ns,
                    self.addresses_with_flags(host)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A host's IPv6 link-local address (after [`Lab::enable_ipv6`]).
    pub fn link_local(&self, host: &Host) -> Ipv6Addr {
        self.addresses_with_flags(host)
            .into_iter()
            .find_map(|(ip, _)| match ip {
                IpAddr::V6(v6) if v6.segments()[0] == 0xfe80 => Some(v6),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{} has no link-local address", host.ns))
    }

    /// The `valid_lft` the kernel reports for `ip` on a host, in seconds (None: absent or forever).
    pub fn valid_lifetime(&self, host: &Host, ip: impl Into<IpAddr>) -> Option<u64> {
        let ip: IpAddr = ip.into();
        let out = run("ip", &["-n", &host.ns, "addr", "show", "dev", "eth0"]);
        let family = if ip.is_ipv6() { "inet6" } else { "inet" };
        let mut lines = out.lines();
        while let Some(line) = lines.next() {
            if line.contains(&format!("{family} {ip}/")) {
                let next = lines.next()?;
                let v = next
                    .split_whitespace()
                    .skip_while(|w| *w != "valid_lft")
                    .nth(1)?;
                return v.trim_end_matches("sec").parse().ok();
            }
        }
        None
    }

    /// Hosts (by index into `nodes`) that hold `ip` now.
    pub fn holders(&self, ip: impl Into<IpAddr>) -> Vec<usize> {
        let ip: IpAddr = ip.into();
        (0..self.nodes.len())
            .filter(|i| {
                self.addresses_with_flags(&self.nodes[*i])
                    .iter()
                    .any(|(held, _)| *held == ip)
            })
            .collect()
    }

    /// The MAC the client's neighbour table has for `ip`, if any.
    pub fn client_neighbour(&self, ip: impl Into<IpAddr>) -> Option<String> {
        let ip: IpAddr = ip.into();
        let out = run(
            "ip",
            &["-n", &self.client.ns, "neigh", "show", &ip.to_string()],
        );
        out.split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .map(str::to_string)
    }

    /// Drops VRRP (protocol 112) between the nodes, in both directions, at the bridge.
    pub fn partition_vrrp(&self) {
        let script = "table bridge lab {\n chain forward_filter {\n  type filter hook forward priority 0; policy accept;\n  ip protocol 112 drop\n  ip6 nexthdr 112 drop\n }\n}\n";
        nft_in(&self.hub, script);
    }

    /// Cuts a node off the bridge entirely (all traffic, both ways).
    pub fn isolate(&self, node: usize) {
        let port = &self.nodes[node].hub_port;
        let script = format!(
            "table bridge iso{node} {{\n chain forward_filter {{\n  type filter hook forward priority 0; policy accept;\n  iifname \"{port}\" drop\n  oifname \"{port}\" drop\n }}\n}}\n"
        );
        nft_in(&self.hub, &script);
    }

    /// Removes every partition.
    pub fn heal(&self) {
        run(
            "ip",
            &["netns", "exec", &self.hub, "nft", "flush", "ruleset"],
        );
    }

    /// A socket created inside a namespace (it stays there whatever thread uses it).
    pub fn socket_in(&self, ns: &str, kind: socket2::Type) -> socket2::Socket {
        self.socket_in_domain(ns, kind, socket2::Domain::IPV4)
    }

    /// [`Lab::socket_in`] for a given address family.
    pub fn socket_in_domain(
        &self,
        ns: &str,
        kind: socket2::Type,
        domain: socket2::Domain,
    ) -> socket2::Socket {
        let path = format!("/var/run/netns/{ns}");
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns into the lab namespace");
                let proto = if kind == socket2::Type::STREAM {
                    socket2::Protocol::TCP
                } else {
                    socket2::Protocol::UDP
                };
                socket2::Socket::new(domain, kind, Some(proto)).expect("socket in namespace")
            })
            .join()
            .expect("namespace thread")
        })
    }

    /// A TCP listener inside a namespace, for tokio.
    pub fn listen_in(&self, ns: &str, addr: SocketAddr) -> tokio::net::TcpListener {
        let s = self.socket_in_domain(
            ns,
            socket2::Type::STREAM,
            socket2::Domain::for_address(addr),
        );
        s.set_reuse_address(true).unwrap();
        s.bind(&addr.into())
            .unwrap_or_else(|e| panic!("bind {addr} in {ns}: {e}"));
        s.listen(128).unwrap();
        s.set_nonblocking(true).unwrap();
        tokio::net::TcpListener::from_std(s.into()).unwrap()
    }

    /// Connects from the client namespace to `addr` and reads one line, within `limit`.
    pub async fn client_ask(&self, addr: SocketAddr, limit: Duration) -> Option<String> {
        let s = self.socket_in_domain(
            &self.client.ns,
            socket2::Type::STREAM,
            socket2::Domain::for_address(addr),
        );
        s.set_nonblocking(true).ok()?;
        let socket = tokio::net::TcpSocket::from_std_stream(s.into());
        let attempt = async {
            let mut stream = socket.connect(addr).await.ok()?;
            crate::read_line(&mut stream, limit).await
        };
        tokio::time::timeout(limit, attempt).await.ok().flatten()
    }
}

/// Loads an nftables script inside a namespace.
pub fn nft_in(ns: &str, script: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft (install nftables: .ci/run --deps-only)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Children first (Child's Drop kills by PID), then the namespaces.
        self.children.clear();
        for host in self.nodes.iter().chain(std::iter::once(&self.client)) {
            if !host.ns.is_empty() {
                let _ = Command::new("ip").args(["netns", "del", &host.ns]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.hub])
            .status();
    }
}

//! A real DNS server for the DNS-backend tests: dnsmasq (Debian's dnsmasq-base) inside a
//! lab namespace, authoritative for `.test` (NXDOMAIN for unknown names), answering A
//! records from a hosts file it re-reads on SIGHUP, and SRV records from its command line
//! (changed by a restart). Every answer has TTL 1 s. The lab kills it by PID when dropped.

use nix::sys::signal::Signal;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::netns::Lab;
use crate::TempDir;

pub struct Dnsmasq {
    pub ns: String,
    pub listen: Ipv4Addr,
    hosts: PathBuf,
    srv: Vec<String>,
    dir: TempDir,
    /// The lab's index of the running dnsmasq (None while stopped).
    child: Option<usize>,
    starts: u32,
}

impl Dnsmasq {
    /// Starts dnsmasq on `listen`:53 in `ns` with `hosts` ("IP name" lines) and SRV
    /// records ("_http._tcp.name,target,port,priority,weight", dnsmasq's --srv-host).
    pub async fn start(
        lab: &mut Lab,
        ns: &str,
        listen: Ipv4Addr,
        hosts: &str,
        srv: &[&str],
    ) -> Dnsmasq {
        let dir = TempDir::new();
        let hosts_path = dir.write("hosts", hosts);
        let mut d = Dnsmasq {
            ns: ns.to_string(),
            listen,
            hosts: hosts_path,
            srv: srv.iter().map(|s| s.to_string()).collect(),
            dir,
            child: None,
            starts: 0,
        };
        d.spawn(lab).await;
        d
    }

    async fn spawn(&mut self, lab: &mut Lab) {
        self.starts += 1;
        let log = self.dir.path(&format!("dnsmasq-{}.log", self.starts));
        let mut args = vec![
            "--keep-in-foreground".to_string(),
            "--log-facility=-".to_string(),
            "--log-queries".to_string(),
            "--no-resolv".to_string(),
            "--no-hosts".to_string(),
            "--user=root".to_string(),
            format!("--pid-file={}", self.dir.path("dnsmasq.pid").display()),
            format!("--addn-hosts={}", self.hosts.display()),
            format!("--listen-address={}", self.listen),
            "--bind-interfaces".to_string(),
            "--local=/test/".to_string(),
            "--local-ttl=1".to_string(),
        ];
        args.extend(self.srv.iter().map(|s| format!("--srv-host={s}")));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let index = lab.spawn(&self.ns, "dnsmasq", &refs, Some(&log));
        self.child = Some(index);
        // Up when it answers on port 53 (TCP: dnsmasq serves both).
        let addr = std::net::SocketAddr::from((self.listen, 53));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let s = lab.socket_in(&self.ns, socket2::Type::STREAM);
            if s.connect_timeout(&addr.into(), Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = lab.child(index).0.try_wait() {
                panic!(
                    "dnsmasq exited ({status}): {} (install it: .ci/run --deps-only)",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "dnsmasq does not answer on {addr}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replaces the A records and has dnsmasq re-read them (SIGHUP).
    pub fn set_hosts(&self, lab: &mut Lab, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        let index = self.child.expect("dnsmasq is running");
        lab.child(index).signal(Signal::SIGHUP);
    }

    /// Stops dnsmasq (SIGTERM by PID, then waits): names stop resolving.
    pub async fn stop(&mut self, lab: &mut Lab) {
        if let Some(index) = self.child.take() {
            let child = lab.child(index);
            child.signal(Signal::SIGTERM);
            assert!(
                child.wait_for_exit(Duration::from_secs(5)).await.is_some(),
                "dnsmasq did not stop on SIGTERM"
            );
        }
    }

    /// Starts it again, with new A and SRV records.
    pub async fn restart(&mut self, lab: &mut Lab, hosts: &str, srv: &[&str]) {
        self.stop(lab).await;
        std::fs::write(&self.hosts, hosts).unwrap();
        self.srv = srv.iter().map(|s| s.to_string()).collect();
        self.spawn(lab).await;
    }
}

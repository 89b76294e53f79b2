//! A real ACME server for the ACME tests: Pebble (Debian's `pebble`, Let's Encrypt's test
//! server) inside a lab namespace, with an HTTPS certificate the test makes for its
//! address (its CA is what tandem is told to trust, `[listener.tls.acme] ca`), resolving
//! the names it validates through a DNS server the test runs (`-dnsserver`). Challenges
//! are checked at once (PEBBLE_VA_NOSLEEP) and every nonce is accepted
//! (PEBBLE_WFE_NONCEREJECT=0) so a run does not depend on Pebble's random rejections.
//! The lab kills it by PID when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::netns::Lab;

pub const ACME_PORT: u16 = 14000;
pub const MANAGEMENT_PORT: u16 = 15000;

pub struct Pebble {
    pub ns: String,
    pub ip: Ipv4Addr,
    /// PEM of the CA that signed Pebble's own HTTPS certificate.
    pub https_ca: PathBuf,
    pub log: PathBuf,
    /// The lab's index of the running Pebble (None while stopped).
    child: Option<usize>,
    dir: PathBuf,
    dns: SocketAddr,
    http_port: u16,
    /// Pebble's own random wait (0 to 15 s) before each validation, left on to keep an
    /// order in flight long enough to fail a node over during it.
    pub va_sleeps: bool,
}

impl Pebble {
    /// Starts Pebble in `ns` on `ip`, validating HTTP-01 on `http_port` of the address
    /// `dns` answers for each name.
    pub async fn start(
        lab: &mut Lab,
        dir: &std::path::Path,
        ns: &str,
        ip: Ipv4Addr,
        dns: SocketAddr,
        http_port: u16,
    ) -> Pebble {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tandem test: Pebble's HTTPS CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![ip.to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let https_ca = dir.join("pebble-https-ca.pem");
        std::fs::write(&https_ca, ca.pem()).unwrap();
        std::fs::write(dir.join("pebble-cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();
        let mut p = Pebble {
            ns: ns.to_string(),
            ip,
            https_ca,
            log: dir.join("pebble.log"),
            child: None,
            dir: dir.to_path_buf(),
            dns,
            http_port,
            va_sleeps: false,
        };
        p.spawn(lab).await;
        p
    }

    pub fn directory(&self) -> String {
        format!("https://{}:{ACME_PORT}/dir", self.ip)
    }

    async fn spawn(&mut self, lab: &mut Lab) {
        let config = self.dir.join("pebble-config.json");
        let json = serde_json::json!({
            "pebble": {
                "listenAddress": format!("{}:{ACME_PORT}", self.ip),
                "managementListenAddress": format!("{}:{MANAGEMENT_PORT}", self.ip),
                "certificate": self.dir.join("pebble-cert.pem"),
                "privateKey": self.dir.join("pebble-key.pem"),
                "httpPort": self.http_port,
                "tlsPort": 5001,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(&config, json.to_string()).unwrap();
        if self.va_sleeps {
            std::env::remove_var("PEBBLE_VA_NOSLEEP");
        } else {
            std::env::set_var("PEBBLE_VA_NOSLEEP", "1");
        }
        std::env::set_var("PEBBLE_WFE_NONCEREJECT", "0");
        let dns = self.dns.to_string();
        let index = lab.spawn(
            &self.ns,
            "pebble",
            &["-config", config.to_str().unwrap(), "-dnsserver", &dns],
            Some(&self.log),
        );
        self.child = Some(index);
        let addr = SocketAddr::from((self.ip, ACME_PORT));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let s = lab.socket_in(&self.ns, socket2::Type::STREAM);
            if s.connect_timeout(&addr.into(), Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = lab.child(index).0.try_wait() {
                panic!(
                    "pebble exited ({status}): {} (install it: .ci/run --deps-only)",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pebble does not listen on {addr}: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The root Pebble issues under (regenerated at every start), from its management
    /// endpoint: what a client trusts to accept the certificates it issued.
    pub async fn issuing_root(&self, lab: &Lab) -> String {
        let addr = SocketAddr::from((self.ip, MANAGEMENT_PORT));
        let tls = crate::tls_client::config_trusting(&std::fs::read(&self.https_ca).unwrap());
        let body = crate::tls_client::get(
            lab,
            &self.ns,
            addr,
            &self.ip.to_string(),
            "/roots/0",
            tls,
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|e| panic!("GET https://{addr}/roots/0: {e}"));
        let begin = body
            .find("-----BEGIN CERTIFICATE-----")
            .unwrap_or_else(|| panic!("no certificate in Pebble's /roots/0 answer: {body}"));
        let end =
            body.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
        body[begin..end].to_string() + "\n"
    }

    /// Restarts Pebble with its random validation waits on (a new root: fetch it again).
    pub async fn restart_with_va_sleeps(&mut self, lab: &mut Lab) {
        self.stop(lab).await;
        self.va_sleeps = true;
        self.spawn(lab).await;
    }

    /// Stops Pebble (SIGTERM by PID, then waits): the ACME server becomes unreachable.
    pub async fn stop(&mut self, lab: &mut Lab) {
        if let Some(index) = self.child.take() {
            let child = lab.child(index);
            child.signal(nix::sys::signal::Signal::SIGTERM);
            assert!(
                child.wait_for_exit(Duration::from_secs(5)).await.is_some(),
                "pebble did not stop on SIGTERM"
            );
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

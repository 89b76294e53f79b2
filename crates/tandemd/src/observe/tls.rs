//! HTTPS for the status listener (`[node.status.tls]`): one certificate, loaded and checked
//! with tandem-tls like a listener's, and loaded again when its files change, so a renewed
//! certificate is served without a restart (the status listener is not part of a reload).

use anyhow::Context;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tandem_config::StatusTls;
use tandem_tls::{CertSpec, SniResolver};
use tokio_rustls::TlsAcceptor;

/// The status listener's TLS acceptor and where its certificate comes from.
pub(super) struct StatusCert {
    spec: CertSpec,
    resolver: Arc<SniResolver>,
    acceptor: TlsAcceptor,
    /// The files' modification times when last loaded (or last tried).
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl StatusCert {
    /// Loads the certificate now: a bad file stops start-up, with the key path in the error.
    pub fn load(config: &StatusTls) -> anyhow::Result<StatusCert> {
        let spec = CertSpec::new(&config.cert, &config.key);
        let seen = file_times(&spec);
        let cert = tandem_tls::load_cert(&spec, SystemTime::now())
            .with_context(|| format!("node.status.tls: {}", spec.cert.display()))?;
        let resolver = Arc::new(SniResolver::new(vec![cert]).context("node.status.tls")?);
        let min = config
            .min_version
            .parse()
            .context("node.status.tls.min_version")?;
        // HTTP/1.1 only: the status listener serves one small page per request.
        let server = tandem_tls::server_config(resolver.clone(), vec![b"http/1.1".to_vec()], min);
        Ok(StatusCert {
            spec,
            resolver,
            acceptor: TlsAcceptor::from(server),
            seen: Mutex::new(seen),
        })
    }

    /// The acceptor for the next connection, after loading the certificate again if its
    /// files changed. A changed file that does not load keeps the old certificate (logged).
    pub fn acceptor(&self) -> TlsAcceptor {
        let now = file_times(&self.spec);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen != now {
            *seen = now;
            match tandem_tls::load_cert(&self.spec, SystemTime::now())
                .and_then(|cert| self.resolver.replace(vec![cert]))
            {
                Ok(()) => tracing::info!(cert = %self.spec.cert.display(),
                    "status listener: certificate loaded again (its files changed)"),
                Err(e) => tracing::warn!(cert = %self.spec.cert.display(), error = %e,
                    "status listener: the changed certificate does not load; still serving the previous one"),
            }
        }
        self.acceptor.clone()
    }
}

fn file_times(spec: &CertSpec) -> (Option<SystemTime>, Option<SystemTime>) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(&spec.cert), modified(&spec.key))
}

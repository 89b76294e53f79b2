//! Choosing the certificate for a connection from the name the client asked for (SNI).

use crate::cert::normalise;
use crate::{LoadedCert, TlsError};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Picks a certificate by SNI: an exact name first, then a wildcard, else the default (the
/// first certificate given). Matching is case-insensitive and ignores a trailing dot.
///
/// A wildcard `*.example.com` covers exactly one more label, as browsers apply it:
/// `a.example.com` yes, `a.b.example.com` and `example.com` no. When two certificates claim
/// the same name the earlier one wins, so config order decides and is predictable.
///
/// The table sits behind an [`ArcSwap`] so a config reload can [`replace`](Self::replace) it
/// while connections are being accepted: a handshake in progress keeps the table it loaded,
/// established connections never look again, and new handshakes see the new set. Lookups
/// take no lock.
pub struct SniResolver {
    table: ArcSwap<Table>,
}

/// One immutable generation of the name → certificate map.
struct Table {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`: `*.example.com` is stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    /// The names of each certificate in order, only for `Debug` and logs.
    names: Vec<Vec<String>>,
}

impl SniResolver {
    /// Fails with [`TlsError::NoCertificates`] when `certs` is empty: there would be nothing
    /// to answer a client without SNI with.
    pub fn new(certs: Vec<LoadedCert>) -> Result<Self, TlsError> {
        Ok(Self {
            table: ArcSwap::from_pointee(Table::build(certs)?),
        })
    }

    /// Swaps in a new certificate set (config reload). On error the old set stays in place.
    pub fn replace(&self, certs: Vec<LoadedCert>) -> Result<(), TlsError> {
        self.table.store(Arc::new(Table::build(certs)?));
        Ok(())
    }

    /// The certificate to present for this SNI (`None`: the client sent none, as clients
    /// connecting to an IP address do).
    pub fn choose(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        self.table.load().choose(sni)
    }

    /// The names of every certificate in the current set, in config order (for logs and the
    /// admin side).
    pub fn names(&self) -> Vec<Vec<String>> {
        self.table.load().names.clone()
    }
}

impl Table {
    fn build(certs: Vec<LoadedCert>) -> Result<Self, TlsError> {
        let default = certs.first().ok_or(TlsError::NoCertificates)?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut names = Vec::with_capacity(certs.len());
        for cert in certs {
            for name in &cert.names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent),
                    None => (&mut exact, name.as_str()),
                };
                if map.contains_key(key) {
                    tracing::debug!(
                        name = %name,
                        cert = %cert.spec.cert.display(),
                        "name already served by an earlier certificate; the earlier one wins"
                    );
                } else {
                    map.insert(key.to_string(), cert.key.clone());
                }
            }
            names.push(cert.names);
        }
        Ok(Self {
            exact,
            wildcard,
            default,
            names,
        })
    }

    fn choose(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(sni) = sni else {
            return self.default.clone();
        };
        let name = normalise(sni);
        if let Some(key) = self.exact.get(&name) {
            return key.clone();
        }
        if let Some((label, parent)) = name.split_once('.') {
            if !label.is_empty() {
                if let Some(key) = self.wildcard.get(parent) {
                    return key.clone();
                }
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(client_hello.server_name()))
    }
}

/// Names only: the derived form would dump every certificate's DER into the log.
impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("certificates", &self.table.load().names)
            .finish()
    }
}

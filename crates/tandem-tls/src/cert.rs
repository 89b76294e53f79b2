//! Loading one certificate chain and its private key, with the checks an operator wants to
//! hear about before a listener goes live: the files are readable PEM, the key belongs to the
//! leaf, and the leaf is valid right now.
//!
//! The same code backs `tandemd check-config` ([`check_certs`]), a config reload and start-up
//! ([`load_cert`]), so a config that checks clean is one that loads.

use crate::TlsError;
use rustls::crypto::ring;
use rustls::sign::CertifiedKey;
use rustls::InconsistentKeys;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::time::ASN1Time;

/// Where one certificate lives: a PEM chain (leaf first) and a PEM private key. Both may name
/// the same file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSpec {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertSpec {
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// One certificate chain + key that passed every check in [`load_cert`].
#[derive(Clone, Debug)]
pub struct LoadedCert {
    /// The names SNI is matched against: the leaf's DNS subject alternative names, lowercased
    /// (wildcards kept as `*.example.com`); the subject CN only when there is no DNS SAN,
    /// for old certificates that predate SANs.
    pub names: Vec<String>,
    /// Start of the leaf's validity (renewal schedules count the lifetime from it).
    pub not_before: SystemTime,
    /// End of the leaf's validity, so the caller can warn about certificates about to expire.
    pub not_after: SystemTime,
    /// What rustls serves: the whole chain from the file (leaf first) and the signing key.
    pub key: Arc<CertifiedKey>,
    /// Where it came from, for log lines and reload diffs.
    pub spec: CertSpec,
}

/// Loads and checks one certificate: both files readable, PEM, the key is of a type ring can
/// sign with and matches the leaf's public key, and `not_before <= now <= not_after` on the
/// leaf. `now` is a parameter so tests (and a "will this still be valid tomorrow" check) can
/// move the clock. Intermediates are served as found and not checked: the client judges the
/// chain.
pub fn load_cert(spec: &CertSpec, now: SystemTime) -> Result<LoadedCert, TlsError> {
    inspect(spec, now).map_err(|mut problems| problems.remove(0))
}

/// When the leaf certificate in the PEM file at `path` expires, read from the file as it
/// is now (for the expiry gauge: it must still answer once the certificate has expired,
/// when [`load_cert`] refuses it).
pub fn leaf_not_after(path: &Path) -> Result<SystemTime, TlsError> {
    let chain = read_chain(path)?;
    let leaf = LeafInfo::parse(path, &chain[0])?;
    Ok(system_time(leaf.not_after))
}

/// For check-config: loads every spec and returns every problem found, in order, rather than
/// stopping at the first, so one run lists everything to fix. Empty means all load.
///
/// A single spec can report more than one problem (say, expired *and* the wrong key).
pub fn check_certs(specs: &[CertSpec], now: SystemTime) -> Vec<TlsError> {
    specs
        .iter()
        .filter_map(|spec| inspect(spec, now).err())
        .flatten()
        .collect()
}

/// A certificate held in memory rather than in files (an ACME certificate from the
/// replicated state): the same checks as [`load_cert`]. `label` stands for the file paths
/// in messages and in [`LoadedCert::spec`].
pub fn cert_from_pem(
    label: &str,
    chain_pem: &[u8],
    key_pem: &[u8],
    now: SystemTime,
) -> Result<LoadedCert, TlsError> {
    let spec = CertSpec::new(label, label);
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileKind::Cert.pem_error(&spec.cert, e))?;
    if chain.is_empty() {
        return Err(FileKind::Cert.empty(&spec.cert));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| FileKind::Key.pem_error(&spec.key, e))?;
    let leaf = LeafInfo::parse(&spec.cert, &chain[0])?;
    leaf.check_validity(&spec.cert, now)?;
    let key = certified_key(&spec, chain, key_der)?;
    Ok(LoadedCert {
        names: leaf.names,
        not_before: system_time(leaf.not_before),
        not_after: system_time(leaf.not_after),
        key: Arc::new(key),
        spec,
    })
}

/// The checks behind [`load_cert`] and [`check_certs`]. On failure the list is never empty.
fn inspect(spec: &CertSpec, now: SystemTime) -> Result<LoadedCert, Vec<TlsError>> {
    // Read both files before giving up so an operator with two broken paths hears of both.
    let (chain, key_der) = match (read_chain(&spec.cert), read_key(&spec.key)) {
        (Ok(chain), Ok(key)) => (chain, key),
        (chain, key) => return Err(chain.err().into_iter().chain(key.err()).collect()),
    };
    let leaf = LeafInfo::parse(&spec.cert, &chain[0]).map_err(|e| vec![e])?;

    let mut problems = Vec::new();
    if let Err(e) = leaf.check_validity(&spec.cert, now) {
        problems.push(e);
    }
    match certified_key(spec, chain, key_der) {
        Ok(key) if problems.is_empty() => Ok(LoadedCert {
            names: leaf.names,
            not_before: system_time(leaf.not_before),
            not_after: system_time(leaf.not_after),
            key: Arc::new(key),
            spec: spec.clone(),
        }),
        Ok(_) => Err(problems),
        Err(e) => {
            problems.push(e);
            Err(problems)
        }
    }
}

/// Which kind of file is being read, so PEM and I/O errors get the right message.
#[derive(Clone, Copy)]
pub(crate) enum FileKind {
    Cert,
    Key,
    Ca,
}

impl FileKind {
    fn read_error(self, path: &Path, err: io::Error) -> TlsError {
        let path = path.to_path_buf();
        match self {
            FileKind::Cert => TlsError::ReadCert { path, err },
            FileKind::Key => TlsError::ReadKey { path, err },
            FileKind::Ca => TlsError::ReadCa { path, err },
        }
    }

    fn empty(self, path: &Path) -> TlsError {
        let path = path.to_path_buf();
        match self {
            FileKind::Cert => TlsError::NoCert { path },
            FileKind::Key => TlsError::NoKey { path },
            FileKind::Ca => TlsError::NoRoots { path },
        }
    }

    pub(crate) fn pem_error(self, path: &Path, err: pem::Error) -> TlsError {
        match err {
            pem::Error::Io(err) => self.read_error(path, err),
            pem::Error::NoItemsFound => self.empty(path),
            other => TlsError::BadPem {
                path: path.to_path_buf(),
                detail: other.to_string(),
            },
        }
    }
}

/// Every `CERTIFICATE` block in a PEM file, in file order; other blocks are skipped.
pub(crate) fn read_pem_certs(
    path: &Path,
    kind: FileKind,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| kind.pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| kind.pem_error(path, e))?;
    if certs.is_empty() {
        return Err(kind.empty(path));
    }
    Ok(certs)
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_pem_certs(path, FileKind::Cert)
}

/// The first private key block (PKCS#8, PKCS#1 or SEC1) in the file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| FileKind::Key.pem_error(path, e))
}

/// Parses the key with ring and checks it against the leaf by comparing public keys
/// (`CertifiedKey::keys_match`), so a key/cert mix-up fails here and not in a client's
/// handshake.
fn certified_key(
    spec: &CertSpec,
    chain: Vec<CertificateDer<'static>>,
    key_der: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    let signing_key = ring::default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::UnsupportedKey {
            path: spec.key.clone(),
            detail: e.to_string(),
        })?;
    let key = CertifiedKey::new(chain, signing_key);
    match key.keys_match() {
        Ok(()) => Ok(key),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: spec.cert.clone(),
                key: spec.key.clone(),
            })
        }
        // The key cannot report its public half; every ring key can, but should a key type
        // ever not, refusing it would be worse than not cross-checking it.
        Err(rustls::Error::InconsistentKeys(_)) => Ok(key),
        Err(e) => Err(TlsError::BadCert {
            path: spec.cert.clone(),
            detail: e.to_string(),
        }),
    }
}

/// What the checks need from the leaf, pulled out once.
struct LeafInfo {
    names: Vec<String>,
    not_before: i64,
    not_after: i64,
    not_before_text: String,
    not_after_text: String,
}

impl LeafInfo {
    fn parse(path: &Path, der: &CertificateDer<'_>) -> Result<Self, TlsError> {
        let bad = |detail: String| TlsError::BadCert {
            path: path.to_path_buf(),
            detail,
        };
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| bad(format!("subject alternative names: {e}")))?;
        let mut names: Vec<String> = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(normalise(dns)),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            let cn = cert.subject().iter_common_name().next();
            names.extend(cn.and_then(|cn| cn.as_str().ok()).map(normalise));
        }
        let validity = cert.validity();
        Ok(Self {
            names,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            not_before_text: utc_text(&validity.not_before),
            not_after_text: utc_text(&validity.not_after),
        })
    }

    fn check_validity(&self, path: &Path, now: SystemTime) -> Result<(), TlsError> {
        let now = unix_secs(now);
        if now < self.not_before {
            return Err(TlsError::NotYetValid {
                path: path.to_path_buf(),
                when: self.not_before_text.clone(),
            });
        }
        if now > self.not_after {
            return Err(TlsError::Expired {
                path: path.to_path_buf(),
                when: self.not_after_text.clone(),
            });
        }
        Ok(())
    }
}

/// Lowercase without a trailing dot: the form SNI lookups use.
pub(crate) fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// "2024-01-01 00:00:00 UTC": unambiguous, unlike x509-parser's own `Jan  1 ... +00:00`.
fn utc_text(t: &ASN1Time) -> String {
    let dt = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Never panics: on a platform whose SystemTime cannot hold the date (a year-9999 `not_after`
/// is common in home-made certificates) it saturates to a date that is still far away.
fn system_time(secs: i64) -> SystemTime {
    let delta = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH
            .checked_add(delta)
            .unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)))
    } else {
        UNIX_EPOCH.checked_sub(delta).unwrap_or(UNIX_EPOCH)
    }
}

//! The ACME state of a node without `[node.cluster]`: in memory, with the ACME accounts
//! and the issued certificates also kept in files under `<data_dir>/acme/` so a restart
//! serves the stored certificate without a new order.
//!
//! - `<data_dir>/acme/` is created mode 0700; every file in it is 0600 (the account
//!   credentials and certificate keys are private keys).
//! - `<name>.crt` (PEM chain, leaf first) and `<name>.key` (PEM PKCS#8 key), `<name>` the
//!   certificate's name (its domains, sorted, comma-separated); `accounts.json` maps each
//!   directory URL to instant-acme's account credentials.
//! - Every file is written to a temporary file in the same directory, synced, then renamed
//!   over the old one: a crash leaves the old file or the new one, never half of one. The
//!   key is renamed before the certificate; a crash between the two leaves a pair that does
//!   not match, refused at the next start, which then orders afresh.
//!
//! HTTP-01 challenge answers stay in memory: they only matter while an order runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use tandem_cluster::state::acme::{AcmeCertificate, AcmeCommand, AcmeState};
use tandem_cluster::state::Outcome;
use tokio::sync::watch;

const ACCOUNTS: &str = "accounts.json";

pub struct LocalStore {
    dir: PathBuf,
    state: watch::Sender<AcmeState>,
    /// One write at a time: apply, persist, publish.
    writing: Mutex<()>,
}

impl LocalStore {
    /// The store in `dir`, with what an earlier run left there. Nothing is created until
    /// the first write; files that do not load are logged and left alone (the
    /// certificate is then ordered again).
    pub fn open(dir: PathBuf) -> LocalStore {
        let state = load(&dir);
        if !state.certificates.is_empty() {
            tracing::info!(dir = %dir.display(), certificates = ?state.certificates.keys().collect::<Vec<_>>(),
                "ACME: certificates loaded from the local store");
        }
        LocalStore {
            dir,
            state: watch::Sender::new(state),
            writing: Mutex::new(()),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<AcmeState> {
        self.state.subscribe()
    }

    pub fn challenges(&self) -> BTreeMap<String, String> {
        self.state.borrow().challenges.clone()
    }

    /// Applies one change: accounts and certificates reach the files before the state
    /// (a change that cannot be written is refused, with the path and the error).
    pub fn apply(&self, command: &AcmeCommand) -> Result<Outcome, String> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.state.borrow().clone();
        let outcome = next.apply(command);
        if outcome != Outcome::AcmeApplied {
            return Ok(outcome);
        }
        match command {
            AcmeCommand::Account { .. } => {
                let json = serde_json::to_vec_pretty(&next.accounts)
                    .map_err(|e| format!("encoding the ACME accounts: {e}"))?;
                self.write_file(ACCOUNTS, &json)?;
            }
            AcmeCommand::Certificate { name, certificate } => {
                self.write_file(&format!("{name}.key"), certificate.key_pem.as_bytes())?;
                self.write_file(&format!("{name}.crt"), certificate.chain_pem.as_bytes())?;
            }
            AcmeCommand::Challenge { .. } | AcmeCommand::ClearChallenges { .. } => {}
        }
        self.state.send_replace(next);
        Ok(outcome)
    }

    /// Writes `name` in the store's directory atomically, mode 0600.
    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        ensure_dir(&self.dir)?;
        let path = self.dir.join(name);
        let temp = self.dir.join(format!(".{name}.tmp"));
        let context = |what: &str, e: std::io::Error| format!("{what} {}: {e}", temp.display());
        let _ = std::fs::remove_file(&temp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| context("creating", e))?;
        f.write_all(bytes).map_err(|e| context("writing", e))?;
        f.sync_all().map_err(|e| context("syncing", e))?;
        drop(f);
        std::fs::rename(&temp, &path)
            .map_err(|e| format!("renaming {} to {}: {e}", temp.display(), path.display()))?;
        // The rename itself survives a crash once the directory is synced.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Creates the store's directory 0700 (and its parents as the umask says); an existing
/// one is narrowed to 0700.
fn ensure_dir(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            format!(
                "creating the ACME store {}: {e} (node.data_dir must be writable by tandemd)",
                dir.display()
            )
        })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("making {} private (0700): {e}", dir.display()))
}

fn load(dir: &Path) -> AcmeState {
    let mut state = AcmeState::default();
    match std::fs::read(dir.join(ACCOUNTS)) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(accounts) => state.accounts = accounts,
            Err(e) => tracing::warn!(file = %dir.join(ACCOUNTS).display(), error = %e,
                "ACME accounts file does not decode; a new account will be registered"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %dir.join(ACCOUNTS).display(), error = %e,
            "ACME accounts file unreadable; a new account will be registered"),
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return state;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".crt") else {
            continue;
        };
        match load_certificate(dir, name) {
            Ok(cert) => {
                state.certificates.insert(name.to_string(), cert);
            }
            Err(e) => tracing::warn!(certificate = %name, error = %e,
                "stored ACME certificate not used; it will be ordered again"),
        }
    }
    state
}

fn load_certificate(dir: &Path, name: &str) -> Result<AcmeCertificate, String> {
    let read = |file: String| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
    };
    let chain_pem = read(format!("{name}.crt"))?;
    let key_pem = read(format!("{name}.key"))?;
    let loaded = tandem_tls::cert_from_pem(
        &format!("stored acme certificate {name}"),
        chain_pem.as_bytes(),
        key_pem.as_bytes(),
        SystemTime::now(),
    )
    .map_err(|e| e.to_string())?;
    Ok(AcmeCertificate {
        chain_pem,
        key_pem,
        not_before_ms: super::wall_ms(loaded.not_before),
        not_after_ms: super::wall_ms(loaded.not_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(domains: &[&str]) -> AcmeCertificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            domains.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let loaded = tandem_tls::cert_from_pem(
            "test",
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            SystemTime::now(),
        )
        .unwrap();
        AcmeCertificate {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_before_ms: super::super::wall_ms(loaded.not_before),
            not_after_ms: super::super::wall_ms(loaded.not_after),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn certificates_and_accounts_are_private_files_loaded_at_the_next_open() {
        let root = std::env::temp_dir().join(format!("tandem-acme-local-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("acme");
        let store = LocalStore::open(dir.clone());
        assert!(!dir.exists(), "nothing is created before the first write");
        let cert = issued(&["a.test"]);
        let put = AcmeCommand::Certificate {
            name: "a.test".into(),
            certificate: cert.clone(),
        };
        assert_eq!(store.apply(&put), Ok(Outcome::AcmeApplied));
        store
            .apply(&AcmeCommand::Account {
                directory: "https://acme.test/dir".into(),
                credentials: "{}".into(),
            })
            .unwrap();
        store
            .apply(&AcmeCommand::Challenge {
                token: "t".into(),
                key_authorization: "t.k".into(),
            })
            .unwrap();
        assert_eq!(mode(&dir), 0o700);
        for f in ["a.test.crt", "a.test.key", ACCOUNTS] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");

        let again = LocalStore::open(dir.clone());
        let state = again.subscribe().borrow().clone();
        assert_eq!(state.certificates.get("a.test"), Some(&cert));
        assert_eq!(state.accounts.len(), 1);
        assert!(state.challenges.is_empty(), "challenges are not stored");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_unwritable_store_refuses_the_change_and_keeps_the_state() {
        let store = LocalStore::open(PathBuf::from("/proc/tandem-no-such-dir/acme"));
        let put = AcmeCommand::Certificate {
            name: "a.test".into(),
            certificate: issued(&["a.test"]),
        };
        let e = store.apply(&put).unwrap_err();
        assert!(e.contains("/proc/tandem-no-such-dir/acme"), "{e}");
        assert!(store.subscribe().borrow().certificates.is_empty());
    }
}

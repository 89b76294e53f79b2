//! ACME on the L7 plane: the HTTP-01 challenge answers every plain-HTTP listener gives at
//! `/.well-known/acme-challenge/<token>`, and the ACME certificates HTTPS listeners serve.
//! Both arrive from outside (the cluster's replicated state, or a single node's own
//! order) through [`crate::HttpPlane`]; the plane swaps them in without touching sockets.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tandem_tls::LoadedCert;

/// The path prefix RFC 8555 section 8.3 puts challenge tokens under.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Challenge answers and certificates shared by every listener of a plane.
#[derive(Default)]
pub struct AcmeStore {
    /// token → key authorization. Read on every request to the challenge path: lock-free.
    challenges: ArcSwap<HashMap<String, String>>,
    /// Certificate name (`Acme::name()`) → the certificate in force.
    pub(crate) certificates: Mutex<HashMap<String, LoadedCert>>,
}

impl AcmeStore {
    /// Replaces the whole set of challenge answers.
    pub fn set_challenges(&self, answers: HashMap<String, String>) {
        self.challenges.store(Arc::new(answers));
    }

    /// The key authorization for a request path, if it asks for a known token.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        self.challenges.load().get(token).cloned()
    }

    /// The certificate in force for `name`.
    pub fn certificate(&self, name: &str) -> Option<LoadedCert> {
        crate::runtime::lock(&self.certificates).get(name).cloned()
    }
}

/// What an HTTPS listener with `[listener.tls.acme]` serves before its first certificate
/// arrives: a self-signed one for its domains, so handshakes complete (and clients see
/// an untrusted certificate, not a reset) while the order runs.
pub(crate) fn placeholder(domains: &[String]) -> Result<LoadedCert, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("placeholder key: {e}"))?;
    let params = rcgen::CertificateParams::new(domains.to_vec())
        .map_err(|e| format!("placeholder certificate for {domains:?}: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("placeholder certificate for {domains:?}: {e}"))?;
    tandem_tls::cert_from_pem(
        "acme placeholder",
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        std::time::SystemTime::now(),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_known_tokens_under_the_challenge_path() {
        let store = AcmeStore::default();
        store.set_challenges(HashMap::from([(
            "tok".to_string(),
            "tok.print".to_string(),
        )]));
        assert_eq!(
            store.answer("/.well-known/acme-challenge/tok").as_deref(),
            Some("tok.print")
        );
        assert_eq!(store.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(store.answer("/tok"), None);
    }

    #[test]
    fn the_placeholder_covers_the_domains() {
        let cert = placeholder(&["a.test".into(), "b.test".into()]).unwrap();
        assert_eq!(cert.names, vec!["a.test", "b.test"]);
    }
}

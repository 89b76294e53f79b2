//! `[listener.tls.acme]`: certificates obtained from an ACME server (RFC 8555) with the
//! HTTP-01 challenge. In a cluster the Raft leader orders each certificate once and the
//! replicated state carries the challenge answers, the certificate and its key to every
//! node; see docs/http.md, "ACME certificates".

use crate::duration::HumanDuration;
use crate::validate::Problems;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// DNS names the certificate covers (the first is its subject). No wildcards: HTTP-01
    /// cannot prove them.
    pub domains: Vec<String>,
    /// The ACME directory URL, e.g. Let's Encrypt's
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory: String,
    /// Account contacts, `mailto:` URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<String>,
    /// Extra PEM root CA trusted for the ACME server's own HTTPS (a test CA such as
    /// Pebble's); the system roots are trusted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Renew this long before expiry; unset: once two thirds of the lifetime have passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<HumanDuration>,
}

impl Acme {
    /// The certificate's name in the replicated state: its domains, lowercased, sorted,
    /// comma-separated. Listeners asking for the same domains share one certificate.
    pub fn name(&self) -> String {
        let mut domains: Vec<String> = self
            .domains
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        domains.sort();
        domains.dedup();
        domains.join(",")
    }
}

pub(crate) fn validate_acme(p: &mut Problems, at: &str, acme: &Acme) {
    if acme.domains.is_empty() {
        p.add(format!("{at}.domains"), "name at least one domain");
    }
    for (i, d) in acme.domains.iter().enumerate() {
        if let Err(why) = check_domain(d) {
            p.add(format!("{at}.domains[{i}]"), format!("{d:?}: {why}"));
        }
    }
    if !(acme.directory.starts_with("https://") && acme.directory.len() > "https://".len()) {
        p.add(
            format!("{at}.directory"),
            format!(
                "{:?}: must be the ACME server's https:// directory URL \
                 (e.g. https://acme-v02.api.letsencrypt.org/directory)",
                acme.directory
            ),
        );
    }
    for (i, c) in acme.contact.iter().enumerate() {
        if !c.starts_with("mailto:") || c.len() == "mailto:".len() {
            p.add(
                format!("{at}.contact[{i}]"),
                format!("{c:?}: must be a mailto: URL, e.g. \"mailto:ops@example.com\""),
            );
        }
    }
    if let Some(before) = acme.renew_before {
        if before.get().is_zero() {
            p.add(
                format!("{at}.renew_before"),
                "must be more than 0s (leave it out to renew at two thirds of the lifetime)",
            );
        }
    }
}

fn check_domain(d: &str) -> Result<(), &'static str> {
    if d.starts_with("*.") {
        return Err("wildcards need the DNS-01 challenge; tandem answers HTTP-01 only");
    }
    let d = d.trim_end_matches('.');
    if d.is_empty() || d.len() > 253 {
        return Err("not a DNS name");
    }
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Err("an IP address; ACME certificates here are for DNS names");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !d.split('.').all(label_ok) {
        return Err("not a DNS name (letters, digits and '-' in dot-separated labels)");
    }
    Ok(())
}

/// Problems as check-config prints them, for this module's tests.
#[cfg(test)]
fn problems(acme: &Acme) -> Vec<crate::error::Problem> {
    let mut p = Problems(Vec::new());
    validate_acme(&mut p, "listener[0].tls.acme", acme);
    p.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Acme {
        Acme {
            domains: vec!["www.example.com".into(), "Example.com.".into()],
            directory: "https://acme.example/dir".into(),
            contact: vec!["mailto:ops@example.com".into()],
            ca: None,
            renew_before: None,
        }
    }

    #[test]
    fn a_good_section_passes_and_names_its_domains_canonically() {
        assert!(problems(&good()).is_empty());
        assert_eq!(good().name(), "example.com,www.example.com");
    }

    #[test]
    fn mistakes_are_named_by_key_path() {
        let bad = Acme {
            domains: vec!["*.example.com".into(), "a..b".into(), "192.0.2.1".into()],
            directory: "http://acme.example/dir".into(),
            contact: vec!["ops@example.com".into()],
            ca: None,
            renew_before: Some(HumanDuration::from_secs(0)),
        };
        let text: Vec<String> = problems(&bad)
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        let keys = [
            "listener[0].tls.acme.domains[0]",
            "listener[0].tls.acme.domains[1]",
            "listener[0].tls.acme.domains[2]",
            "listener[0].tls.acme.directory",
            "listener[0].tls.acme.contact[0]",
            "listener[0].tls.acme.renew_before",
        ];
        assert_eq!(text.len(), keys.len(), "{text:#?}");
        for (line, key) in text.iter().zip(keys) {
            assert!(line.starts_with(key), "{line} should start with {key}");
        }
        assert!(text[0].contains("DNS-01"), "{}", text[0]);
        let empty = Acme {
            domains: vec![],
            ..good()
        };
        let text: Vec<String> = problems(&empty)
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        assert_eq!(text.len(), 1);
        assert!(text[0].starts_with("listener[0].tls.acme.domains"));
    }
}

//! ACME in the replicated state: the HTTP-01 challenge answers of orders in flight (so
//! whichever node the ACME server reaches answers them), the ACME account per directory
//! (so a new leader reuses it rather than registering again), and the issued certificates
//! with their private keys (so every node serves them).
//!
//! The private key travels in the Raft log and snapshots: over the cluster's mutual-TLS
//! transport between nodes, and at rest in each node's Raft store (data_dir/raft.redb, mode 0600).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::Outcome;

/// An issued certificate as replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeCertificate {
    /// PEM chain, leaf first, as the ACME server sent it.
    pub chain_pem: String,
    /// PEM private key (PKCS#8) the order's CSR was made with.
    pub key_pem: String,
    /// The leaf's validity (milliseconds since the UNIX epoch), read by the proposer.
    pub not_before_ms: u64,
    pub not_after_ms: u64,
}

/// ACME changes. Variants are only ever added at the end (postcard encodes the index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcmeCommand {
    /// Publish the answer to an HTTP-01 challenge: `GET
    /// /.well-known/acme-challenge/<token>` answers `key_authorization` on every node.
    Challenge {
        token: String,
        key_authorization: String,
    },
    /// Withdraw challenge answers (the order finished or failed).
    ClearChallenges { tokens: Vec<String> },
    /// The account registered at a directory URL: instant-acme's credentials as JSON
    /// (they hold the account's private key).
    Account {
        directory: String,
        credentials: String,
    },
    /// A certificate issued for `name` (the config's `Acme::name()`), replacing the one
    /// before. An older certificate than the stored one is refused, so a deposed leader's
    /// late proposal cannot roll a renewal back.
    Certificate {
        name: String,
        certificate: AcmeCertificate,
    },
}

/// The ACME part of the state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeState {
    pub challenges: BTreeMap<String, String>,
    pub accounts: BTreeMap<String, String>,
    pub certificates: BTreeMap<String, AcmeCertificate>,
}

impl AcmeState {
    pub fn apply(&mut self, command: &AcmeCommand) -> Outcome {
        match command {
            AcmeCommand::Challenge {
                token,
                key_authorization,
            } => {
                self.challenges
                    .insert(token.clone(), key_authorization.clone());
            }
            AcmeCommand::ClearChallenges { tokens } => {
                for token in tokens {
                    self.challenges.remove(token);
                }
            }
            AcmeCommand::Account {
                directory,
                credentials,
            } => {
                self.accounts.insert(directory.clone(), credentials.clone());
            }
            AcmeCommand::Certificate { name, certificate } => {
                let stale = self
                    .certificates
                    .get(name)
                    .is_some_and(|c| c.not_after_ms > certificate.not_after_ms);
                if stale {
                    return Outcome::AcmeRefused {
                        reason: format!(
                            "certificate {name}: a newer one (expiring later) is already stored"
                        ),
                    };
                }
                self.certificates.insert(name.clone(), certificate.clone());
            }
        }
        Outcome::AcmeApplied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_after_ms: u64) -> AcmeCertificate {
        AcmeCertificate {
            chain_pem: format!("chain {not_after_ms}"),
            key_pem: "key".into(),
            not_before_ms: 0,
            not_after_ms,
        }
    }

    #[test]
    fn a_snapshot_from_before_acme_restores_with_no_acme_state() {
        use crate::state::{ClusterState, Command, LeaseCommand};
        let mut state = ClusterState::default();
        state.apply(&Command::Lease(LeaseCommand::ForceHold {
            group: "front".into(),
            node: 2,
        }));
        let bytes = state.to_snapshot();
        // An empty ACME part is three empty maps, one length byte each, at the end: what
        // an older tandem wrote is the same bytes without them.
        assert_eq!(&bytes[bytes.len() - 3..], &[0, 0, 0]);
        let old = &bytes[..bytes.len() - 3];
        assert_eq!(ClusterState::from_snapshot(old).unwrap(), state);
        // A current snapshot with ACME state round-trips.
        state.apply(&Command::Acme(AcmeCommand::Certificate {
            name: "a.test".into(),
            certificate: cert(5),
        }));
        let restored = ClusterState::from_snapshot(&state.to_snapshot()).unwrap();
        assert_eq!(restored, state);
        assert_eq!(restored.acme().certificates["a.test"].not_after_ms, 5);
    }

    #[test]
    fn challenges_come_and_go_and_an_older_certificate_is_refused() {
        let mut s = AcmeState::default();
        s.apply(&AcmeCommand::Challenge {
            token: "t1".into(),
            key_authorization: "t1.thumb".into(),
        });
        assert_eq!(s.challenges.get("t1").map(String::as_str), Some("t1.thumb"));
        s.apply(&AcmeCommand::ClearChallenges {
            tokens: vec!["t1".into()],
        });
        assert!(s.challenges.is_empty());
        let put = |s: &mut AcmeState, at| {
            s.apply(&AcmeCommand::Certificate {
                name: "a.test".into(),
                certificate: cert(at),
            })
        };
        assert_eq!(put(&mut s, 200), Outcome::AcmeApplied);
        assert!(matches!(put(&mut s, 100), Outcome::AcmeRefused { .. }));
        assert_eq!(s.certificates["a.test"].not_after_ms, 200);
        assert_eq!(put(&mut s, 300), Outcome::AcmeApplied);
        assert_eq!(s.certificates["a.test"].not_after_ms, 300);
    }
}

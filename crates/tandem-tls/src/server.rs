//! The rustls server config for TLS termination on a listener.

use crate::{SniResolver, TlsError};
use rustls::crypto::ring;
use rustls::{ServerConfig, SupportedProtocolVersion};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The oldest TLS version a listener accepts. There is no 1.0/1.1: rustls does not
/// implement them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

impl MinVersion {
    /// The versions rustls is told to speak, newest first.
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static FROM_12: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY_13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => &FROM_12,
            MinVersion::Tls13 => &ONLY_13,
        }
    }
}

/// Parses the config's spelling, `"1.2"` or `"1.3"`; `TLSv1.2`/`tls1.3` forms are accepted
/// too since that is how nginx and openssl write them and people copy from there.
impl FromStr for MinVersion {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, TlsError> {
        let lower = s.trim().to_ascii_lowercase();
        let bare = lower
            .strip_prefix("tlsv")
            .or_else(|| lower.strip_prefix("tls"))
            .unwrap_or(&lower);
        match bare {
            "1.2" => Ok(MinVersion::Tls12),
            "1.3" => Ok(MinVersion::Tls13),
            _ => Err(TlsError::BadVersion(s.to_string())),
        }
    }
}

impl fmt::Display for MinVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MinVersion::Tls12 => "1.2",
            MinVersion::Tls13 => "1.3",
        })
    }
}

/// A server config using the ring provider (never the process default, which another crate
/// might have installed differently), TLS 1.3 and, unless `min` is 1.3, TLS 1.2, no client
/// certificates, certificates from `resolver`, and `alpn` offered in preference order (the
/// server's order wins: `[b"h2", b"http/1.1"]` picks h2 whenever the client offers it).
///
/// The resolver is shared, not copied: replacing its certificates affects this config's
/// future handshakes without rebuilding the config.
pub fn server_config(
    resolver: Arc<SniResolver>,
    alpn: Vec<Vec<u8>>,
    min: MinVersion,
) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(min.versions())
        // Only fails when the provider has no cipher suite for a requested version; ring's
        // default provider has suites for both, so this is a programming error if hit.
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_version_parses_config_spellings() {
        assert_eq!("1.2".parse::<MinVersion>().unwrap(), MinVersion::Tls12);
        assert_eq!("1.3".parse::<MinVersion>().unwrap(), MinVersion::Tls13);
        assert_eq!("TLSv1.3".parse::<MinVersion>().unwrap(), MinVersion::Tls13);
        assert_eq!("tls1.2".parse::<MinVersion>().unwrap(), MinVersion::Tls12);
        let err = "1.1".parse::<MinVersion>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad TLS version \"1.1\": expected \"1.2\" or \"1.3\""
        );
        assert_eq!(MinVersion::Tls13.to_string(), "1.3");
    }
}

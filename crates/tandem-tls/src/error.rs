//! The crate's one error type.
//!
//! Every message names the file (or the host, or the version string) it is about and, where
//! there is an obvious fix, says what it is: these messages end up verbatim in
//! `tandemd check-config` output and in the log on a config reload, where an operator has to
//! act on them without reading the source.

use std::io;
use std::path::PathBuf;

/// What can go wrong loading certificates and keys or building TLS configs.
///
/// I/O errors are kept (field `err`) so callers can look at their kind, but they are not
/// exposed as `source()`: the message already includes them, and error reporters that walk
/// the source chain would otherwise print them twice.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file {}: {}", .path.display(), io_msg(.err))]
    ReadCert { path: PathBuf, err: io::Error },

    #[error("cannot read private key file {}: {}", .path.display(), io_msg(.err))]
    ReadKey { path: PathBuf, err: io::Error },

    #[error("cannot read CA file {}: {}", .path.display(), io_msg(.err))]
    ReadCa { path: PathBuf, err: io::Error },

    /// The file has a PEM block that is syntactically broken (bad base64, no END line, ...).
    #[error("{} is not valid PEM: {detail}", .path.display())]
    BadPem { path: PathBuf, detail: String },

    #[error(
        "{} holds no PEM certificate (expected a -----BEGIN CERTIFICATE----- block)",
        .path.display()
    )]
    NoCert { path: PathBuf },

    #[error(
        "{} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM; encrypted keys are not supported)",
        .path.display()
    )]
    NoKey { path: PathBuf },

    /// The leaf is there but is not a parsable X.509 certificate.
    #[error("certificate {} cannot be parsed: {detail}", .path.display())]
    BadCert { path: PathBuf, detail: String },

    #[error(
        "unsupported private key type in {}: {detail} (use an RSA, ECDSA P-256/P-384 or Ed25519 key)",
        .path.display()
    )]
    UnsupportedKey { path: PathBuf, detail: String },

    #[error(
        "the key in {} does not match the certificate in {}",
        .key.display(),
        .cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    #[error("certificate {} expired on {when}: renew it", .path.display())]
    Expired { path: PathBuf, when: String },

    #[error("certificate {} is not valid before {when}: check the clock or the certificate", .path.display())]
    NotYetValid { path: PathBuf, when: String },

    /// A CA file with no usable certificate in it.
    #[error("no trusted root certificates found in {}", .path.display())]
    NoRoots { path: PathBuf },

    /// The operating system's store gave nothing usable (`detail` lists what went wrong).
    #[error(
        "no trusted root certificates found in the system store{detail}: install the ca-certificates package or set a CA file"
    )]
    NoSystemRoots { detail: String },

    #[error("bad TLS version {0:?}: expected \"1.2\" or \"1.3\"")]
    BadVersion(String),

    #[error("no certificates given: TLS needs at least one (the first is the default)")]
    NoCertificates,

    #[error("invalid TLS server name {name:?}: expected a DNS name or an IP address")]
    BadServerName { name: String },

    /// rustls refused a configuration; not expected with the settings this crate uses.
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
}

/// `io::Error`'s Display with the "(os error N)" suffix dropped: the number helps nobody
/// reading a config error.
fn io_msg(err: &io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_the_shell() {
        let e = TlsError::ReadCert {
            path: "/etc/x.pem".into(),
            err: io::Error::from_raw_os_error(2),
        };
        assert_eq!(
            e.to_string(),
            "cannot read certificate file /etc/x.pem: No such file or directory"
        );
    }
}

//! TLS for tandem: loading and checking certificates, choosing one by SNI, and the rustls
//! configs for terminating TLS on listeners and for speaking TLS to backends.
//!
//! Everything uses rustls's ring provider, passed explicitly. Relying on a process-wide
//! default provider would make behaviour depend on which other crate installed one first
//! (or panic when none did), and ring keeps the aws-lc-rs C build out of the tree.
//!
//! `rustls` is re-exported so dependants name exactly the version these configs are built
//! with.

mod cert;
mod client;
mod error;
mod server;
mod sni;

#[cfg(test)]
mod tests;

pub use cert::{cert_from_pem, check_certs, leaf_not_after, load_cert, CertSpec, LoadedCert};
pub use client::{client_config, server_name, ClientTlsSpec};
pub use error::TlsError;
pub use rustls;
pub use server::{server_config, MinVersion};
pub use sni::SniResolver;

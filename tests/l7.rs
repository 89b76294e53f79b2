//! The L7 plane end to end, one test binary (each binary links the whole stack: link time
//! and CI disk): policy (routing, balancing, persistence, limits, access rules, header
//! rules, compression), protocols (HTTP/1.1, h2, TLS, WebSocket, trailers, the proxy's own
//! errors) and hostile clients. Each former binary is a module: `cargo test -p
//! tandem-tests --test l7 hostile::` runs one.

#[path = "l7_hostile.rs"]
mod hostile;
#[allow(dead_code)]
mod metrics_support;
#[path = "l7_policy.rs"]
mod policy;
#[path = "l7_protocols.rs"]
mod protocols;

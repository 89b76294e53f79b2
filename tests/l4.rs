//! L4 end to end: the TCP proxy (retries, half-close, timeouts, PROXY protocol), the UDP
//! proxy (flows, expiry, a bounded table), balancing and health checks over real loopback
//! backends.
//! One test binary (issue 14); each former binary is a module.

#[path = "l4/balancing.rs"]
mod balancing;
#[path = "l4/health.rs"]
mod health;
#[path = "l4/ipv6_clients.rs"]
mod ipv6_clients;
#[path = "l4/tcp.rs"]
mod tcp;
#[path = "l4/udp.rs"]
mod udp;

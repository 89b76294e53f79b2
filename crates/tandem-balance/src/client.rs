//! Who a client is, for limits, rate limits and source-IP hashing.

use std::net::{IpAddr, SocketAddr};

/// The client identity limits and hashing key on: [`canonical_ip`], and for IPv6 only its
/// first `ipv6_prefix` bits (a host usually owns a whole /64 and can rotate addresses in
/// it). 128 or more keeps the whole address.
pub fn client_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) if ipv6_prefix < 128 => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        ip => ip,
    }
}

/// The address a client is judged by: an IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`, what a dual-stack socket reports for IPv4 clients)
/// is the IPv4 address it carries, so v4 rules and limits apply to it.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// [`canonical_ip`] for a socket address (the port kept).
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

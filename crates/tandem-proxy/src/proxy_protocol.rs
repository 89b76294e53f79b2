//! PROXY protocol headers (HAProxy's spec, v1 text and v2 binary) that tell a backend the
//! real client address. Pure: addresses in, bytes out.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The v2 signature: chosen by the spec so that it can never start a valid HTTP request.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// v4-mapped IPv6 addresses (from a dual-stack socket) are written as the IPv4 they are.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// Both ends in one family: if they differ, both become IPv6 (v4-mapped).
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let (src, dst) = (canonical(src), canonical(dst));
    if src.is_ipv4() == dst.is_ipv4() {
        return (src, dst);
    }
    let widen = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    (widen(src), widen(dst))
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`
pub fn v1_header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(client, local);
    let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// The binary v2 header with command PROXY over TCP.
pub fn v2_header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(client, local);
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(v) => v,
                IpAddr::V4(v) => v.to_ipv6_mapped(),
            };
            let (s, d): (Ipv6Addr, Ipv6Addr) = (v6(s), v6(d));
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_ipv4_matches_the_spec_example() {
        let h = v1_header(a("192.0.2.1:56324"), a("198.51.100.5:443"));
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 198.51.100.5 56324 443\r\n");
    }

    #[test]
    fn v1_ipv6_and_mapped_addresses() {
        let h = v1_header(a("[2001:db8::1]:1000"), a("[2001:db8::2]:80"));
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n");
        let mapped = v1_header(a("[::ffff:192.0.2.9]:5"), a("192.0.2.10:80"));
        assert_eq!(mapped, b"PROXY TCP4 192.0.2.9 192.0.2.10 5 80\r\n");
        let mixed = v1_header(a("[2001:db8::1]:1000"), a("192.0.2.10:80"));
        assert_eq!(
            mixed,
            b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.10 1000 80\r\n"
        );
    }

    #[test]
    fn v2_ipv4_layout() {
        let h = v2_header(a("192.0.2.1:56324"), a("198.51.100.5:443"));
        assert_eq!(h.len(), 28);
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[192, 0, 2, 1]);
        assert_eq!(&h[20..24], &[198, 51, 100, 5]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 56324);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 443);
    }

    #[test]
    fn v2_ipv6_layout() {
        let h = v2_header(a("[2001:db8::1]:1000"), a("[2001:db8::2]:80"));
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(h[13], 0x21);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 36);
        assert_eq!(u16::from_be_bytes([h[48], h[49]]), 1000);
        assert_eq!(u16::from_be_bytes([h[50], h[51]]), 80);
    }
}

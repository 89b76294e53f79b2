//! Per-client connection counting, for a per-IP connection limit.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::client_key;

/// Open connections per client IP. Only clients with an open connection
/// have an entry, so memory is bounded by the open connections themselves.
#[derive(Clone, Debug, Default)]
pub struct ClientConnections {
    max_per_ip: u32,
    /// IPv6 clients count per prefix of this length (see [`client_key`]).
    ipv6_prefix: u8,
    open: BTreeMap<IpAddr, u32>,
}

impl ClientConnections {
    /// At most `max_per_ip` open connections per client; 0 = unlimited
    /// (still counted, for status output), like `max_connections` on a
    /// backend.
    pub fn new(max_per_ip: u32) -> Self {
        ClientConnections {
            max_per_ip,
            ipv6_prefix: 128,
            open: BTreeMap::new(),
        }
    }

    /// Count IPv6 clients per prefix of `bits` (one client per /64 with 64).
    pub fn with_ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// Count a new connection from `ip`; false (and nothing counted) when
    /// the client is at its limit. IPv4-mapped IPv6 counts as IPv4.
    pub fn try_open(&mut self, ip: IpAddr) -> bool {
        let n = self
            .open
            .entry(client_key(ip, self.ipv6_prefix))
            .or_insert(0);
        if self.max_per_ip != 0 && *n >= self.max_per_ip {
            return false;
        }
        *n = n.saturating_add(1);
        true
    }

    /// A connection counted by `try_open` ended. Unknown clients are
    /// ignored, so a stray close cannot underflow.
    pub fn close(&mut self, ip: IpAddr) {
        let ip = client_key(ip, self.ipv6_prefix);
        if let Some(n) = self.open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// Open connections of one client.
    pub fn open_for(&self, ip: IpAddr) -> u32 {
        self.open
            .get(&client_key(ip, self.ipv6_prefix))
            .copied()
            .unwrap_or(0)
    }

    /// Clients with at least one open connection.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_in_one_prefix_share_a_limit() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut c = ClientConnections::new(2).with_ipv6_prefix(64);
        assert!(c.try_open(ip("2001:db8:0:1::a")));
        assert!(c.try_open(ip("2001:db8:0:1::b")));
        assert!(!c.try_open(ip("2001:db8:0:1:ffff::c")), "third in the /64");
        assert!(c.try_open(ip("2001:db8:0:2::a")), "another /64");
        assert_eq!(c.open_for(ip("2001:db8:0:1::99")), 2);
        c.close(ip("2001:db8:0:1::b"));
        assert!(c.try_open(ip("2001:db8:0:1::c")));
        // Whole addresses with 128.
        let mut whole = ClientConnections::new(1).with_ipv6_prefix(128);
        assert!(whole.try_open(ip("2001:db8::a")));
        assert!(whole.try_open(ip("2001:db8::b")));
    }

    #[test]
    fn limits_per_client_and_forgets_idle_ones() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let mut c = ClientConnections::new(2);
        assert!(c.try_open(a));
        assert!(c.try_open(mapped));
        assert!(!c.try_open(a));
        assert!(c.try_open(b));
        assert_eq!((c.len(), c.open_for(a)), (2, 2));
        c.close(a);
        assert!(c.try_open(a));
        c.close(a);
        c.close(a);
        c.close(a);
        c.close(b);
        assert!(c.is_empty());
        let mut unlimited = ClientConnections::new(0);
        assert!((0..1000).all(|_| unlimited.try_open(a)));
        assert_eq!(unlimited.open_for(a), 1000);
    }
}

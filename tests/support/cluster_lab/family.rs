//! The address family a [`super::ClusterLab`] runs in: Raft links, backends, VIPs,
//! listeners and clients are all IPv4 (198.51.100.0/24) or all IPv6 (2001:db8:51::/64).
//! `DualStack` is the IPv6 lab whose "front" group also holds the IPv4 VIP (one group,
//! two VRRP instances, one lease) behind dual-stack listeners.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::netns::{Host, Lab};
use crate::vrrp_lab::{VIP, VIP6};

/// The second VIP group's ("back") address in each family.
pub const VIP2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);
pub const VIP2_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x101);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    DualStack,
}

impl Family {
    /// The "front" VIP.
    pub fn vip(self) -> IpAddr {
        match self {
            Family::V4 => VIP.into(),
            Family::V6 | Family::DualStack => VIP6.into(),
        }
    }

    /// The "front" group's addresses as a config lists them.
    pub fn front_addresses(self) -> String {
        match self {
            Family::V4 => format!("\"{VIP}/24\""),
            Family::V6 => format!("\"{VIP6}/64\""),
            Family::DualStack => format!("\"{VIP}/24\", \"{VIP6}/64\""),
        }
    }

    /// The "back" VIP.
    pub fn vip2(self) -> IpAddr {
        match self {
            Family::V4 => VIP2.into(),
            Family::V6 | Family::DualStack => VIP2_6.into(),
        }
    }

    /// The lab subnet's prefix length (VIPs are configured with it).
    pub fn prefix_len(self) -> u8 {
        match self {
            Family::V4 => 24,
            Family::V6 | Family::DualStack => 64,
        }
    }

    /// The wildcard a listener binds, as written in a config ("0.0.0.0", "[::]").
    pub fn any(self) -> &'static str {
        match self {
            Family::V4 => "0.0.0.0",
            Family::V6 | Family::DualStack => "[::]",
        }
    }

    /// A host's address in this family (IPv6: after [`Lab::enable_ipv6`]).
    pub fn host_ip(self, host: &Host) -> IpAddr {
        match self {
            Family::V4 => host.ip.into(),
            Family::V6 | Family::DualStack => host.ip6().into(),
        }
    }

    /// `host_ip` with a port, formatted as a config wants it ("[2001:db8:51::b]:7300").
    pub fn host_addr(self, host: &Host, port: u16) -> SocketAddr {
        SocketAddr::from((self.host_ip(host), port))
    }

    /// An extra client address on the lab subnet, numbered like the hosts' (`n` is the
    /// last IPv4 octet; IPv6 uses the same number as its last group).
    pub fn client_address(self, n: u8) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::new(198, 51, 100, n).into(),
            Family::V6 | Family::DualStack => {
                Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, u16::from(n)).into()
            }
        }
    }

    /// Readies a fresh lab for this family (IPv6: addresses and usable link-local ones).
    pub fn prepare(self, lab: &Lab) {
        if self != Family::V4 {
            lab.enable_ipv6();
        }
    }
}

//! Unsolicited neighbour advertisements (RFC 4861 section 7.2.6), IPv6's gratuitous ARP:
//! a new master tells the link that the VIP now lives at its MAC, with the override flag
//! so that caches replace the old entry at once.
//!
//! Built and parsed as whole Ethernet frames, as [`gratuitous_arp_frame`](super::gratuitous_arp_frame)
//! is, and laid out as keepalived 2.2.7 sends them: from the VIP itself to ff02::1 (all
//! nodes), hop limit 255, flags override only (not router, not solicited), one target
//! link-layer address option.
//!
//! ```text
//! Ethernet (14) | IPv6 header (40) | ICMPv6 type 136, code 0, checksum | R S O flags, 29
//! reserved bits | target address (16) | option type 2, length 1 (8 octets), MAC (6)
//! ```

use std::net::Ipv6Addr;

use super::vrrp6::pseudo_header_v6;
use super::{internet_checksum, WireError, ETHERNET_HEADER_LEN};

/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The all-nodes group unsolicited advertisements go to.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ICMPv6 next-header number and the neighbour advertisement type.
pub const IPPROTO_ICMPV6: u8 = 58;
pub const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;
/// Whole frame: Ethernet, IPv6 header, 32 bytes of ICMPv6.
pub const NA_FRAME_LEN: usize = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + NA_LEN;

const IPV6_HEADER_LEN: usize = 40;
const NA_LEN: usize = 32;
const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;
const OPTION_TARGET_LLADDR: u8 = 2;

/// A checked neighbour advertisement (the parts tandem sends or looks at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvertRepr {
    pub target: Ipv6Addr,
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    /// The target link-layer address option, when present.
    pub target_mac: Option<[u8; 6]>,
}

/// The Ethernet multicast address of an IPv6 multicast group (RFC 2464 section 7).
pub fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The unsolicited advertisement a new master sends for `vip`, from `mac`.
pub fn unsolicited_na_frame(mac: [u8; 6], vip: Ipv6Addr) -> [u8; NA_FRAME_LEN] {
    let mut frame = [0u8; NA_FRAME_LEN];
    frame[0..6].copy_from_slice(&multicast_mac(ALL_NODES));
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    let ip = &mut frame[ETHERNET_HEADER_LEN..];
    ip[0] = 0x60; // version 6, traffic class and flow label 0
    ip[4..6].copy_from_slice(&(NA_LEN as u16).to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = 255; // RFC 4861: receivers drop NDP messages with a lower hop limit
    ip[8..24].copy_from_slice(&vip.octets());
    ip[24..40].copy_from_slice(&ALL_NODES.octets());
    let icmp = &mut ip[IPV6_HEADER_LEN..];
    icmp[0] = ICMPV6_NEIGHBOR_ADVERT;
    icmp[4] = FLAG_OVERRIDE;
    icmp[8..24].copy_from_slice(&vip.octets());
    icmp[24] = OPTION_TARGET_LLADDR;
    icmp[25] = 1; // in units of 8 octets
    icmp[26..32].copy_from_slice(&mac);
    let checksum = internet_checksum(&[
        &pseudo_header_v6(vip, ALL_NODES, NA_LEN, IPPROTO_ICMPV6),
        &frame[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN..],
    ]);
    frame[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + 2..][..2]
        .copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// Parses an Ethernet frame carrying a neighbour advertisement: IPv6, hop limit 255,
/// ICMPv6 type 136 code 0, a correct checksum, options well formed. Returns the source
/// MAC, the IPv6 source and the advertisement.
pub fn parse_na_frame(frame: &[u8]) -> Result<([u8; 6], Ipv6Addr, NeighborAdvertRepr), WireError> {
    let bad = WireError::BadIpHeader;
    if frame.len() < ETHERNET_HEADER_LEN + IPV6_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV6 {
        return Err(bad("not an IPv6 frame"));
    }
    let mut src_mac = [0; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    let ip = &frame[ETHERNET_HEADER_LEN..];
    if ip[0] >> 4 != 6 {
        return Err(bad("IP version is not 6"));
    }
    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if ip[6] != IPPROTO_ICMPV6 {
        return Err(bad("not ICMPv6"));
    }
    if ip[7] != 255 {
        return Err(WireError::BadTtl(ip[7]));
    }
    let icmp = ip
        .get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len)
        .ok_or(WireError::Truncated)?;
    if icmp.len() < 24 {
        return Err(WireError::Truncated);
    }
    if icmp[0] != ICMPV6_NEIGHBOR_ADVERT || icmp[1] != 0 {
        return Err(bad("not a neighbour advertisement"));
    }
    let octets = |b: &[u8]| {
        let mut o = [0; 16];
        o.copy_from_slice(b);
        Ipv6Addr::from(o)
    };
    let (src, dst) = (octets(&ip[8..24]), octets(&ip[24..40]));
    let found = u16::from_be_bytes([icmp[2], icmp[3]]);
    let expected = internet_checksum(&[
        &pseudo_header_v6(src, dst, icmp.len(), IPPROTO_ICMPV6),
        &icmp[..2],
        &icmp[4..],
    ]);
    if found != expected {
        return Err(WireError::BadChecksum { expected, found });
    }
    let mut target_mac = None;
    let mut options = &icmp[24..];
    while !options.is_empty() {
        let len = usize::from(*options.get(1).ok_or(WireError::Truncated)?) * 8;
        if len == 0 {
            return Err(bad("NDP option of length 0"));
        }
        let option = options.get(..len).ok_or(WireError::Truncated)?;
        if option[0] == OPTION_TARGET_LLADDR && len == 8 {
            let mut mac = [0; 6];
            mac.copy_from_slice(&option[2..8]);
            target_mac = Some(mac);
        }
        options = &options[len..];
    }
    let flags = icmp[4];
    Ok((
        src_mac,
        src,
        NeighborAdvertRepr {
            target: octets(&icmp[8..24]),
            router: flags & FLAG_ROUTER != 0,
            solicited: flags & FLAG_SOLICITED != 0,
            override_flag: flags & FLAG_OVERRIDE != 0,
            target_mac,
        },
    ))
}

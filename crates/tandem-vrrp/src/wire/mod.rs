//! Wire formats, in the style of smoltcp's `wire`: a typed view (`*Packet<T>`) over bytes
//! with field accessors, and a parsed `*Repr` whose `parse` checks every field and whose
//! `emit` is its mirror.
//!
//! - VRRPv3 adverts (RFC 5798 section 5), the protocol we speak;
//! - VRRPv2 adverts (RFC 3768), parsed only so a mixed-version network can be reported
//!   clearly instead of as a stream of checksum errors;
//! - the IPv4 header, because Linux raw sockets deliver it in front of the payload;
//! - ARP over Ethernet, for gratuitous ARP after a takeover;
//! - VRRPv3 over IPv6 (same header, 16-byte addresses, the IPv6 pseudo-header) and
//!   unsolicited neighbour advertisements, IPv6's gratuitous ARP.
//!
//! Everything here is pure and never panics on received bytes.

mod arp;
mod ipv4;
mod ndp;
mod vrrp;
mod vrrp6;
mod vrrp_v2;

pub use arp::{
    gratuitous_arp_frame, parse_arp_frame, ArpOperation, ArpPacket, ArpRepr, ETHERNET_BROADCAST,
    ETHERNET_HEADER_LEN, ETHERTYPE_ARP,
};
pub use ipv4::{parse_ipv4, Ipv4Info, IPV4_MIN_HEADER_LEN};
pub use ndp::{
    multicast_mac, parse_na_frame, unsolicited_na_frame, NeighborAdvertRepr, ALL_NODES,
    ETHERTYPE_IPV6, ICMPV6_NEIGHBOR_ADVERT, IPPROTO_ICMPV6, NA_FRAME_LEN,
};
pub use vrrp::{VrrpPacket, VrrpRepr, VRRP_HEADER_LEN, VRRP_TYPE_ADVERTISEMENT, VRRP_VERSION};
pub use vrrp6::{is_link_local, parse_advert_v6, Ipv6Info, Vrrp6Repr, VRRP_MULTICAST_V6};
pub use vrrp_v2::{VrrpV2Repr, VRRP_V2_AUTH_LEN};

use std::fmt;
use std::net::Ipv4Addr;

/// IP protocol number of VRRP (both v2 and v3).
pub const IPPROTO_VRRP: u8 = 112;
/// The IPv4 multicast group adverts are sent to (RFC 5798 section 5.1.1.2).
pub const VRRP_MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Adverts must be sent, and received, with this TTL so they cannot come from off-link
/// (RFC 5798 section 5.1.1.3).
pub const VRRP_TTL: u8 = 255;

/// Why received bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ends before a length it declares (or before a fixed header).
    Truncated,
    /// The IPv4 header is malformed or does not carry VRRP.
    BadIpHeader(&'static str),
    /// The VRRP version nibble is neither 3 nor (where accepted) 2.
    BadVersion(u8),
    /// The VRRP type is not 1 (advertisement).
    BadType(u8),
    /// The VRID is 0, which RFC 5798 does not allow.
    BadVrid,
    /// The address count needs more bytes than the message has.
    BadAddressCount {
        /// Count from the header.
        declared: u8,
        /// How many addresses fit in the bytes received.
        room: usize,
    },
    /// The advertisement interval is 0.
    ZeroInterval,
    /// The VRRP checksum does not match the bytes.
    BadChecksum {
        /// Checksum computed over the received bytes.
        expected: u16,
        /// Checksum carried in the packet.
        found: u16,
    },
    /// The IP TTL is not 255: the packet may have been routed.
    BadTtl(u8),
    /// The Ethernet/ARP frame is malformed or not Ethernet/IPv4 ARP.
    BadArp(&'static str),
}

impl WireError {
    /// Stable short label per variant, for metric labels and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadIpHeader(_) => "bad_ip_header",
            WireError::BadVersion(_) => "bad_version",
            WireError::BadType(_) => "bad_type",
            WireError::BadVrid => "bad_vrid",
            WireError::BadAddressCount { .. } => "bad_address_count",
            WireError::ZeroInterval => "zero_interval",
            WireError::BadChecksum { .. } => "bad_checksum",
            WireError::BadTtl(_) => "bad_ttl",
            WireError::BadArp(_) => "bad_arp",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated packet"),
            WireError::BadIpHeader(why) => write!(f, "bad IPv4 header: {why}"),
            WireError::BadVersion(v) => write!(f, "VRRP version {v}, expected 3"),
            WireError::BadType(t) => write!(f, "VRRP type {t}, expected 1 (advertisement)"),
            WireError::BadVrid => f.write_str("VRID 0 is not allowed"),
            WireError::BadAddressCount { declared, room } => {
                write!(f, "address count {declared}, room for {room}")
            }
            WireError::ZeroInterval => f.write_str("advertisement interval 0"),
            WireError::BadChecksum { expected, found } => {
                write!(f, "checksum {found:#06x}, expected {expected:#06x}")
            }
            WireError::BadTtl(ttl) => write!(f, "TTL {ttl}, expected 255"),
            WireError::BadArp(why) => write!(f, "bad ARP frame: {why}"),
        }
    }
}

impl std::error::Error for WireError {}

/// A received advert: v3 is acted on, v2 is only reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advert {
    /// VRRPv3 (RFC 5798).
    V3(VrrpRepr),
    /// VRRPv2 (RFC 3768): another router speaks the old version on this VRID.
    V2(VrrpV2Repr),
}

/// Entry point for an IPv4 packet read from a raw `IPPROTO_VRRP` socket.
///
/// Checks the IPv4 header, protocol 112 and TTL 255 (RFC 5798 section 5.1.1.3: a lower TTL
/// means the advert crossed a router), then parses the payload as v3 or v2 by its version.
pub fn parse_advert(ip_packet: &[u8]) -> Result<(Ipv4Info, Advert), WireError> {
    let (info, payload) = parse_ipv4(ip_packet)?;
    if info.protocol != IPPROTO_VRRP {
        return Err(WireError::BadIpHeader("protocol is not VRRP (112)"));
    }
    if info.ttl != VRRP_TTL {
        return Err(WireError::BadTtl(info.ttl));
    }
    let packet = VrrpPacket::new_checked(payload)?;
    let advert = match packet.version() {
        VRRP_VERSION => Advert::V3(VrrpRepr::parse(&packet, info.src, info.dst)?),
        2 => Advert::V2(VrrpV2Repr::parse(&packet)?),
        other => return Err(WireError::BadVersion(other)),
    };
    Ok((info, advert))
}

/// Internet checksum (RFC 1071) over the concatenation of `chunks`.
///
/// Chunks may have odd lengths (a byte left over is paired with the next chunk's first),
/// so a pseudo-header and a packet with its checksum field skipped can be passed as parts.
pub fn internet_checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut pending: Option<u8> = None;
    for chunk in chunks {
        let mut data: &[u8] = chunk;
        if let Some(high) = pending {
            let Some((&low, rest)) = data.split_first() else {
                continue;
            };
            sum += u64::from(u16::from_be_bytes([high, low]));
            pending = None;
            data = rest;
        }
        let mut words = data.chunks_exact(2);
        for word in &mut words {
            sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            pending = Some(*last);
        }
    }
    if let Some(high) = pending {
        sum += u64::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above folded `sum` into 16 bits, so this cast is exact.
    !(sum as u16)
}

/// The 12-byte IPv4 pseudo-header VRRPv3 checksums cover (RFC 5798 section 5.2.8).
fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> [u8; 12] {
    // A VRRP message arrives in one IPv4 datagram, so its length fits in 16 bits; saturate
    // rather than panic on a caller's oversized buffer (the checksum then simply fails).
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    let mut out = [0; 12];
    out[0..4].copy_from_slice(&src.octets());
    out[4..8].copy_from_slice(&dst.octets());
    out[9] = IPPROTO_VRRP;
    out[10..12].copy_from_slice(&len.to_be_bytes());
    out
}

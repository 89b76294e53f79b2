//! The IPv4 header, read-only: a raw socket hands us the header in front of the VRRP
//! message, and the source address and TTL matter to VRRP.

use std::net::Ipv4Addr;

use super::WireError;

/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;

/// The IPv4 header fields VRRP cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Info {
    /// Source address: the sending router's primary address.
    pub src: Ipv4Addr,
    /// Destination address: normally 224.0.0.18, or a peer's address with unicast peers.
    pub dst: Ipv4Addr,
    /// Time to live; VRRP requires 255.
    pub ttl: u8,
    /// IP protocol number; 112 for VRRP.
    pub protocol: u8,
    /// Type of service / DSCP+ECN byte (keepalived sends 0xc0, network control).
    pub tos: u8,
}

/// Parses an IPv4 packet and returns its header fields and payload.
///
/// Checks version 4, IHL >= 5, that header and total length fit in `packet`, and that the
/// packet is not a fragment (Linux reassembles before raw delivery, and a fragment never
/// holds a whole VRRP message). The payload honours IHL and total length, so Ethernet
/// padding or a reused receive buffer's tail is cut off. The header checksum is not
/// checked: the kernel already did, and on some paths leaves the field unfilled.
pub fn parse_ipv4(packet: &[u8]) -> Result<(Ipv4Info, &[u8]), WireError> {
    if packet.len() < IPV4_MIN_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if packet[0] >> 4 != 4 {
        return Err(WireError::BadIpHeader("version is not 4"));
    }
    let header_len = usize::from(packet[0] & 0x0f) * 4;
    if header_len < IPV4_MIN_HEADER_LEN {
        return Err(WireError::BadIpHeader("header length below 20 bytes"));
    }
    if header_len > packet.len() {
        return Err(WireError::Truncated);
    }
    let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total_len < header_len {
        return Err(WireError::BadIpHeader("total length shorter than header"));
    }
    if total_len > packet.len() {
        return Err(WireError::Truncated);
    }
    // Flags and fragment offset: only DF (0x4000) and the reserved bit may be set.
    let frag = u16::from_be_bytes([packet[6], packet[7]]);
    if frag & 0x3fff != 0 {
        return Err(WireError::BadIpHeader("fragment"));
    }
    let info = Ipv4Info {
        src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
        dst: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
        ttl: packet[8],
        protocol: packet[9],
        tos: packet[1],
    };
    Ok((info, &packet[header_len..total_len]))
}

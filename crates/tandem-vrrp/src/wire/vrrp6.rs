//! VRRPv3 advertisement over IPv6 (RFC 5798 sections 5.1.2 and 5.2): the same 8-byte
//! header as the IPv4 flavour ([`VrrpPacket`]), then 16-byte IPv6 addresses, and a checksum
//! over the IPv6 pseudo-header (RFC 8200 section 8.1). Sent from the interface's
//! link-local address to ff02::12 with hop limit 255.
//!
//! A raw IPv6 socket delivers the VRRP message without the IPv6 header, so the caller hands
//! in what the kernel reported beside it (source, destination, hop limit): see
//! [`parse_advert_v6`].

use std::net::Ipv6Addr;

use super::vrrp::{check_v3, emit_v3_header, field};
use super::{internet_checksum, VrrpPacket, WireError, IPPROTO_VRRP, VRRP_HEADER_LEN, VRRP_TTL};

/// The IPv6 multicast group adverts are sent to (RFC 5798 section 5.1.2.2).
pub const VRRP_MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

const ADDR_LEN: usize = 16;

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// [`check_len`](Self::check_len) for IPv6: the header and `addr_count` 16-byte
    /// addresses fit in the buffer.
    pub fn check_len_v6(&self) -> Result<(), WireError> {
        let len = self.len();
        if len < VRRP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let room = (len - VRRP_HEADER_LEN) / ADDR_LEN;
        let declared = self.addr_count();
        if usize::from(declared) > room {
            return Err(WireError::BadAddressCount { declared, room });
        }
        Ok(())
    }

    /// IPv6 address number `i`.
    ///
    /// # Panics
    /// If address `i` lies beyond the buffer.
    pub fn address_v6(&self, i: usize) -> Ipv6Addr {
        let start = field::ADDRESSES + ADDR_LEN * i;
        let mut octets = [0; ADDR_LEN];
        octets.copy_from_slice(&self.as_bytes()[start..start + ADDR_LEN]);
        Ipv6Addr::from(octets)
    }

    /// The checksum the message should carry when sent from `src` to `dst` over IPv6.
    pub fn compute_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        let bytes = self.as_bytes();
        internet_checksum(&[
            &pseudo_header_v6(src, dst, bytes.len(), IPPROTO_VRRP),
            &bytes[..field::CHECKSUM.start],
            &bytes[field::CHECKSUM.end..],
        ])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VrrpPacket<T> {
    /// Sets IPv6 address number `i`.
    ///
    /// # Panics
    /// If address `i` lies beyond the buffer.
    pub fn set_address_v6(&mut self, i: usize, addr: Ipv6Addr) {
        let start = field::ADDRESSES + ADDR_LEN * i;
        self.as_bytes_mut()[start..start + ADDR_LEN].copy_from_slice(&addr.octets());
    }
}

/// A checked VRRPv3 advertisement for an IPv6 instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vrrp6Repr {
    /// Virtual router ID, 1..=255.
    pub vrid: u8,
    /// Priority; 0 means the master is giving up.
    pub priority: u8,
    /// Maximum advertisement interval in centiseconds, 1..=4095.
    pub max_advert_int: u16,
    /// The virtual addresses, at most 255 (RFC 5798: the first should be link-local;
    /// keepalived sends the configured ones as they are, and so does tandem).
    pub addresses: Vec<Ipv6Addr>,
}

impl Vrrp6Repr {
    /// Parses and checks a message received from `src` to `dst`, in the order of
    /// [`VrrpRepr::parse`](super::VrrpRepr::parse): lengths, version, type, checksum,
    /// then VRID and interval.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &VrrpPacket<&T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Vrrp6Repr, WireError> {
        packet.check_len_v6()?;
        check_v3(packet, packet.compute_checksum_v6(src, dst))?;
        let count = usize::from(packet.addr_count());
        Ok(Vrrp6Repr {
            vrid: packet.vrid(),
            priority: packet.priority(),
            max_advert_int: packet.max_advert_int(),
            addresses: (0..count).map(|i| packet.address_v6(i)).collect(),
        })
    }

    /// Bytes `emit` needs: 8 + 16 per address.
    pub fn buffer_len(&self) -> usize {
        VRRP_HEADER_LEN + ADDR_LEN * self.addresses.len()
    }

    /// Writes the advert into `packet` (exactly [`buffer_len`](Self::buffer_len) bytes)
    /// and fills the checksum for `src` -> `dst`.
    ///
    /// # Panics
    /// If the buffer is too short or there are more than 255 addresses.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut VrrpPacket<&mut T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) {
        emit_v3_header(
            packet,
            (self.vrid, self.priority, self.max_advert_int),
            self.addresses.len(),
            self.buffer_len(),
        );
        for (i, addr) in self.addresses.iter().enumerate() {
            packet.set_address_v6(i, *addr);
        }
        let checksum = packet.compute_checksum_v6(src, dst);
        packet.set_checksum(checksum);
    }

    /// The advert as a fresh buffer of exactly [`buffer_len`](Self::buffer_len) bytes.
    pub fn to_bytes(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut VrrpPacket::new_unchecked(&mut bytes[..]), src, dst);
        bytes
    }
}

/// What the kernel reports beside a message read from a raw IPv6 socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Info {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// From the IPV6_HOPLIMIT control message.
    pub hop_limit: u8,
}

/// Entry point for a message read from a raw IPv6 `IPPROTO_VRRP` socket: hop limit 255
/// (RFC 5798 section 5.1.2.3: anything lower crossed a router), a link-local source
/// (section 7.1), then the v3 message. VRRPv2 has no IPv6 flavour.
pub fn parse_advert_v6(info: Ipv6Info, payload: &[u8]) -> Result<Vrrp6Repr, WireError> {
    if info.hop_limit != VRRP_TTL {
        return Err(WireError::BadTtl(info.hop_limit));
    }
    if !is_link_local(info.src) {
        return Err(WireError::BadIpHeader("IPv6 source is not link-local"));
    }
    Vrrp6Repr::parse(&VrrpPacket::new_checked_v6(payload)?, info.src, info.dst)
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// Wraps `buffer` after [`check_len_v6`](Self::check_len_v6).
    pub fn new_checked_v6(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len_v6()?;
        Ok(packet)
    }
}

/// fe80::/10.
pub fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The 40-byte IPv6 pseudo-header upper-layer checksums cover (RFC 8200 section 8.1).
pub(super) fn pseudo_header_v6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    len: usize,
    next_header: u8,
) -> [u8; 40] {
    // Saturate rather than panic on an oversized buffer: the checksum then simply fails.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let mut out = [0; 40];
    out[0..16].copy_from_slice(&src.octets());
    out[16..32].copy_from_slice(&dst.octets());
    out[32..36].copy_from_slice(&len.to_be_bytes());
    out[39] = next_header;
    out
}

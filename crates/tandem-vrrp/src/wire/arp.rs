//! ARP over Ethernet (RFC 826), Ethernet/IPv4 only: after a takeover the new master
//! broadcasts gratuitous ARP so hosts and switches move the virtual address to its MAC.

use std::net::Ipv4Addr;

use super::WireError;

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethernet broadcast address.
pub const ETHERNET_BROADCAST: [u8; 6] = [0xff; 6];
/// Destination, source, EtherType (no 802.1Q tag).
pub const ETHERNET_HEADER_LEN: usize = 14;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;
const ARP_LEN: usize = 28;

mod field {
    use std::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    /// Code 1; gratuitous ARP uses a request, as keepalived does.
    Request,
    /// Code 2.
    Reply,
}

impl ArpOperation {
    /// The on-wire code.
    pub fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }

    /// The operation for a wire code, if known.
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(ArpOperation::Request),
            2 => Some(ArpOperation::Reply),
            _ => None,
        }
    }
}

/// A view over the 28 bytes of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn mac(bytes: &[u8]) -> [u8; 6] {
    let mut out = [0; 6];
    out.copy_from_slice(bytes);
    out
}

fn ipv4(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking its length; getters may then panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds 28 bytes (more, e.g. padding, is allowed).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds an Ethernet/IPv4 ARP packet's 28 bytes.
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < ARP_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::HTYPE])
    }

    /// Protocol type (0x0800 for IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PTYPE])
    }

    /// Hardware address length (6 for Ethernet).
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4 for IPv4).
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Raw operation code.
    pub fn operation(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::OPER])
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::SPA])
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[field::THA])
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::TPA])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the raw operation code.
    pub fn set_operation(&mut self, value: u16) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the sender hardware address.
    pub fn set_sender_mac(&mut self, value: [u8; 6]) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_ip(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&value.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_mac(&mut self, value: [u8; 6]) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value);
    }

    /// Sets the target protocol address.
    pub fn set_target_ip(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&value.octets());
    }
}

/// A checked Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub sender_mac: [u8; 6],
    /// Sender IPv4 address.
    pub sender_ip: Ipv4Addr,
    /// Target MAC.
    pub target_mac: [u8; 6],
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an ARP packet, accepting only Ethernet/IPv4 requests and replies.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<Self, WireError> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET {
            return Err(WireError::BadArp("hardware type is not Ethernet"));
        }
        if packet.protocol_type() != PTYPE_IPV4 {
            return Err(WireError::BadArp("protocol type is not IPv4"));
        }
        if packet.hardware_len() != 6 {
            return Err(WireError::BadArp("hardware address length is not 6"));
        }
        if packet.protocol_len() != 4 {
            return Err(WireError::BadArp("protocol address length is not 4"));
        }
        let operation = ArpOperation::from_code(packet.operation())
            .ok_or(WireError::BadArp("operation is neither request nor reply"))?;
        Ok(ArpRepr {
            operation,
            sender_mac: packet.sender_mac(),
            sender_ip: packet.sender_ip(),
            target_mac: packet.target_mac(),
            target_ip: packet.target_ip(),
        })
    }

    /// Bytes `emit` writes: 28.
    pub const fn buffer_len() -> usize {
        ARP_LEN
    }

    /// Writes every field of the packet.
    ///
    /// # Panics
    /// If the buffer is shorter than 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut ArpPacket<&mut T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation.code());
        packet.set_sender_mac(self.sender_mac);
        packet.set_sender_ip(self.sender_ip);
        packet.set_target_mac(self.target_mac);
        packet.set_target_ip(self.target_ip);
    }
}

/// The 42-byte Ethernet frame (no padding; the NIC pads) of a gratuitous ARP exactly as
/// keepalived sends it: broadcast from `mac`, a request with sender `mac`/`vip`, target
/// MAC broadcast and target IP `vip`.
pub fn gratuitous_arp_frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0; ETHERNET_HEADER_LEN + ARP_LEN];
    frame[0..6].copy_from_slice(&ETHERNET_BROADCAST);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        sender_mac: mac,
        sender_ip: vip,
        target_mac: ETHERNET_BROADCAST,
        target_ip: vip,
    };
    repr.emit(&mut ArpPacket::new_unchecked(
        &mut frame[ETHERNET_HEADER_LEN..],
    ));
    frame
}

/// Parses an Ethernet frame carrying ARP and returns (source MAC, destination MAC, ARP).
/// Trailing bytes (the padding to 60 bytes) are ignored; 802.1Q tags are not handled.
pub fn parse_arp_frame(frame: &[u8]) -> Result<([u8; 6], [u8; 6], ArpRepr), WireError> {
    if frame.len() < ETHERNET_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if be16(&frame[12..14]) != ETHERTYPE_ARP {
        return Err(WireError::BadArp("EtherType is not ARP"));
    }
    let packet = ArpPacket::new_checked(&frame[ETHERNET_HEADER_LEN..])?;
    let repr = ArpRepr::parse(&packet)?;
    Ok((mac(&frame[6..12]), mac(&frame[0..6]), repr))
}

//! VRRPv3 advertisement (RFC 5798 section 5.2), IPv4 flavour.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IPv4 Address(es)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The view is shared with VRRPv2, whose header has the same size and layout except that
//! bytes 4 and 5 are the authentication type and the interval in seconds.

use std::net::Ipv4Addr;

use super::{internet_checksum, pseudo_header, WireError};

/// Length of the fixed header, before the addresses.
pub const VRRP_HEADER_LEN: usize = 8;
/// The version this crate speaks.
pub const VRRP_VERSION: u8 = 3;
/// The only VRRP message type.
pub const VRRP_TYPE_ADVERTISEMENT: u8 = 1;

/// Byte offsets, shared with the v2 parser.
pub(super) mod field {
    use std::ops::Range;

    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v3: 4 reserved bits and a 12-bit interval; v2: auth type, then interval.
    pub const INTERVAL: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// A view over the bytes of a VRRP message (the IP payload).
///
/// Getters index the buffer directly: they cannot panic after [`VrrpPacket::new_checked`]
/// (header and `addr_count` addresses present), but may after `new_unchecked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// Wraps `buffer` without checking anything; getters may then panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        VrrpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len), so every getter is safe.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header and the declared number of addresses fit in the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < VRRP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let room = (len - VRRP_HEADER_LEN) / 4;
        let declared = self.addr_count();
        if usize::from(declared) > room {
            return Err(WireError::BadAddressCount { declared, room });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Length of the whole message, which is what the checksum covers.
    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// True for an empty buffer (never the case after `new_checked`).
    pub fn is_empty(&self) -> bool {
        self.buffer.as_ref().is_empty()
    }

    /// Version nibble: 3, or 2 for an RFC 3768 router.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// Type nibble: 1 (advertisement) is the only one defined.
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// Virtual router ID.
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// Priority: 255 for the address owner, 0 when the master is stepping down.
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// Number of IPv4 addresses that follow the header.
    pub fn addr_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// v3 maximum advertisement interval in centiseconds (12 bits; the 4 reserved bits
    /// above it are ignored on receive, as RFC 5798 asks).
    pub fn max_advert_int(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::INTERVAL];
        u16::from_be_bytes([b[0], b[1]]) & 0x0fff
    }

    /// Checksum as carried in the packet.
    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Address number `i`.
    ///
    /// # Panics
    /// If address `i` lies beyond the buffer.
    pub fn address(&self, i: usize) -> Ipv4Addr {
        let start = field::ADDRESSES + 4 * i;
        let b = &self.buffer.as_ref()[start..start + 4];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The `addr_count` addresses, stopping early if the buffer is shorter.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let room = self.len().saturating_sub(VRRP_HEADER_LEN) / 4;
        let count = usize::from(self.addr_count()).min(room);
        (0..count).map(|i| self.address(i))
    }

    /// The v3 checksum the message should carry: over the IPv4 pseudo-header (src, dst,
    /// zero, protocol 112, VRRP length) and the whole message with the checksum field
    /// taken as zero (RFC 5798 section 5.2.8 with the IPv4 pseudo-header, as keepalived
    /// computes it).
    pub fn compute_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let bytes = self.buffer.as_ref();
        internet_checksum(&[
            &pseudo_header(src, dst, bytes.len()),
            &bytes[..field::CHECKSUM.start],
            &bytes[field::CHECKSUM.end..],
        ])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VrrpPacket<T> {
    /// The whole message, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the version nibble, keeping the type.
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TYPE];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the type nibble, keeping the version.
    pub fn set_kind(&mut self, kind: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TYPE];
        *b = (*b & 0xf0) | (kind & 0x0f);
    }

    /// Sets the virtual router ID.
    pub fn set_vrid(&mut self, vrid: u8) {
        self.buffer.as_mut()[field::VRID] = vrid;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, priority: u8) {
        self.buffer.as_mut()[field::PRIORITY] = priority;
    }

    /// Sets the address count (without moving or checking any address).
    pub fn set_addr_count(&mut self, count: u8) {
        self.buffer.as_mut()[field::COUNT] = count;
    }

    /// Sets the 12-bit interval in centiseconds and zeroes the reserved bits.
    pub fn set_max_advert_int(&mut self, centis: u16) {
        self.buffer.as_mut()[field::INTERVAL].copy_from_slice(&(centis & 0x0fff).to_be_bytes());
    }

    /// Sets the checksum field as is.
    pub fn set_checksum(&mut self, checksum: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Sets address number `i`.
    ///
    /// # Panics
    /// If address `i` lies beyond the buffer.
    pub fn set_address(&mut self, i: usize, addr: Ipv4Addr) {
        let start = field::ADDRESSES + 4 * i;
        self.buffer.as_mut()[start..start + 4].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the v3 checksum; call after every other field is set.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let checksum = self.compute_checksum(src, dst);
        self.set_checksum(checksum);
    }
}

/// A checked VRRPv3 advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRepr {
    /// Virtual router ID, 1..=255.
    pub vrid: u8,
    /// Priority; 0 means the master is giving up.
    pub priority: u8,
    /// Maximum advertisement interval in centiseconds, 1..=4095.
    pub max_advert_int: u16,
    /// The virtual addresses, at most 255.
    pub addresses: Vec<Ipv4Addr>,
}

impl VrrpRepr {
    /// Parses and checks a v3 message received from `src` to `dst`: lengths, version 3,
    /// type 1, the checksum (before the fields it protects, so corruption is reported as
    /// such), then VRID != 0 and interval != 0.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &VrrpPacket<&T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<VrrpRepr, WireError> {
        packet.check_len()?;
        check_v3(packet, packet.compute_checksum(src, dst))?;
        Ok(VrrpRepr {
            vrid: packet.vrid(),
            priority: packet.priority(),
            max_advert_int: packet.max_advert_int(),
            addresses: packet.addresses().collect(),
        })
    }

    /// Bytes `emit` needs: 8 + 4 per address.
    pub fn buffer_len(&self) -> usize {
        VRRP_HEADER_LEN + 4 * self.addresses.len()
    }

    /// Writes the advert into `packet` and fills the checksum for `src` -> `dst`.
    ///
    /// The checksum covers the whole buffer, so give it exactly [`buffer_len`] bytes
    /// ([`to_bytes`] does). The interval is masked to 12 bits.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`] or there are more than 255 addresses.
    ///
    /// [`buffer_len`]: Self::buffer_len
    /// [`to_bytes`]: Self::to_bytes
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut VrrpPacket<&mut T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) {
        emit_v3_header(
            packet,
            (self.vrid, self.priority, self.max_advert_int),
            self.addresses.len(),
            self.buffer_len(),
        );
        for (i, addr) in self.addresses.iter().enumerate() {
            packet.set_address(i, *addr);
        }
        packet.fill_checksum(src, dst);
    }

    /// The advert as a fresh buffer of exactly [`buffer_len`](Self::buffer_len) bytes.
    pub fn to_bytes(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut VrrpPacket::new_unchecked(&mut bytes[..]), src, dst);
        bytes
    }
}

/// The checks a v3 advert of either family gets after its length, in this order: version,
/// type, the checksum (`expected`, over the family's pseudo-header; before the fields it
/// protects, so corruption is reported as such), then VRID != 0 and interval != 0.
pub(super) fn check_v3<T: AsRef<[u8]>>(
    packet: &VrrpPacket<T>,
    expected: u16,
) -> Result<(), WireError> {
    if packet.version() != VRRP_VERSION {
        return Err(WireError::BadVersion(packet.version()));
    }
    if packet.kind() != VRRP_TYPE_ADVERTISEMENT {
        return Err(WireError::BadType(packet.kind()));
    }
    if expected != packet.checksum() {
        return Err(WireError::BadChecksum {
            expected,
            found: packet.checksum(),
        });
    }
    if packet.vrid() == 0 {
        return Err(WireError::BadVrid);
    }
    if packet.max_advert_int() == 0 {
        return Err(WireError::ZeroInterval);
    }
    Ok(())
}

/// Writes a v3 header of either family: `(vrid, priority, interval)` and the address
/// count, after checking the count and the buffer length (`needed`).
///
/// # Panics
/// With more than 255 addresses or a buffer shorter than `needed`.
pub(super) fn emit_v3_header<T: AsRef<[u8]> + AsMut<[u8]>>(
    packet: &mut VrrpPacket<T>,
    (vrid, priority, max_advert_int): (u8, u8, u16),
    addresses: usize,
    needed: usize,
) {
    let count = u8::try_from(addresses).expect("a VRRP advert carries at most 255 addresses");
    assert!(
        packet.len() >= needed,
        "VRRP buffer too short for the advert"
    );
    packet.set_version(VRRP_VERSION);
    packet.set_kind(VRRP_TYPE_ADVERTISEMENT);
    packet.set_vrid(vrid);
    packet.set_priority(priority);
    packet.set_addr_count(count);
    packet.set_max_advert_int(max_advert_int);
}

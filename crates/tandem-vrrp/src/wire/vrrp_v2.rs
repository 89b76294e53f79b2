//! VRRPv2 (RFC 3768) adverts, decoded only so they can be logged and ignored with a clear
//! reason: a v2 router on the same VRID is a common misconfiguration, and reading its
//! adverts as v3 would only show checksum errors.
//!
//! Same 8-byte header as v3, except byte 4 is the authentication type and byte 5 the
//! interval in whole seconds; 8 bytes of authentication data follow the addresses. The
//! checksum covers the VRRP message only, with no pseudo-header.

use std::net::Ipv4Addr;

use super::vrrp::field;
use super::{internet_checksum, VrrpPacket, WireError, VRRP_HEADER_LEN, VRRP_TYPE_ADVERTISEMENT};

/// Length of the authentication data after the addresses.
pub const VRRP_V2_AUTH_LEN: usize = 8;

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// v2 only: authentication type (0 none, 1 simple text, 2 IP AH).
    pub fn auth_type(&self) -> u8 {
        self.as_bytes()[field::INTERVAL.start]
    }

    /// v2 only: advertisement interval in seconds.
    pub fn advert_int_secs(&self) -> u8 {
        self.as_bytes()[field::INTERVAL.start + 1]
    }

    /// The v2 checksum the message should carry: over the whole message with the checksum
    /// field taken as zero.
    pub fn compute_checksum_v2(&self) -> u16 {
        let bytes = self.as_bytes();
        internet_checksum(&[
            &bytes[..field::CHECKSUM.start],
            &bytes[field::CHECKSUM.end..],
        ])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VrrpPacket<T> {
    /// v2 only: sets the authentication type.
    pub fn set_auth_type(&mut self, auth_type: u8) {
        self.as_bytes_mut()[field::INTERVAL.start] = auth_type;
    }

    /// v2 only: sets the interval in seconds.
    pub fn set_advert_int_secs(&mut self, secs: u8) {
        self.as_bytes_mut()[field::INTERVAL.start + 1] = secs;
    }
}

/// A checked VRRPv2 advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpV2Repr {
    /// Virtual router ID, 1..=255.
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// Authentication type as sent (not acted on).
    pub auth_type: u8,
    /// Advertisement interval in seconds, at least 1.
    pub advert_int_secs: u8,
    /// The virtual addresses.
    pub addresses: Vec<Ipv4Addr>,
}

impl VrrpV2Repr {
    /// Parses and checks a v2 message: lengths, version 2, type 1, checksum, VRID != 0 and
    /// interval != 0. The authentication data is not required to be present: this parser
    /// only feeds a diagnostic, and the checksum already covers whatever was sent.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &VrrpPacket<&T>,
    ) -> Result<VrrpV2Repr, WireError> {
        packet.check_len()?;
        if packet.version() != 2 {
            return Err(WireError::BadVersion(packet.version()));
        }
        if packet.kind() != VRRP_TYPE_ADVERTISEMENT {
            return Err(WireError::BadType(packet.kind()));
        }
        let expected = packet.compute_checksum_v2();
        if expected != packet.checksum() {
            return Err(WireError::BadChecksum {
                expected,
                found: packet.checksum(),
            });
        }
        if packet.vrid() == 0 {
            return Err(WireError::BadVrid);
        }
        if packet.advert_int_secs() == 0 {
            return Err(WireError::ZeroInterval);
        }
        Ok(VrrpV2Repr {
            vrid: packet.vrid(),
            priority: packet.priority(),
            auth_type: packet.auth_type(),
            advert_int_secs: packet.advert_int_secs(),
            addresses: packet.addresses().collect(),
        })
    }

    /// Bytes `emit` needs: header, addresses and zeroed authentication data.
    pub fn buffer_len(&self) -> usize {
        VRRP_HEADER_LEN + 4 * self.addresses.len() + VRRP_V2_AUTH_LEN
    }

    /// Writes the advert (authentication data zeroed) and fills the v2 checksum over the
    /// whole buffer. Exists for tests and tools that imitate a v2 router.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len) or there are more
    /// than 255 addresses.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut VrrpPacket<&mut T>) {
        let count = u8::try_from(self.addresses.len())
            .expect("a VRRP advert carries at most 255 addresses");
        let len = self.buffer_len();
        assert!(packet.len() >= len, "VRRP buffer too short for the advert");
        packet.set_version(2);
        packet.set_kind(VRRP_TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_addr_count(count);
        packet.set_auth_type(self.auth_type);
        packet.set_advert_int_secs(self.advert_int_secs);
        for (i, addr) in self.addresses.iter().enumerate() {
            packet.set_address(i, *addr);
        }
        packet.as_bytes_mut()[len - VRRP_V2_AUTH_LEN..len].fill(0);
        let checksum = packet.compute_checksum_v2();
        packet.set_checksum(checksum);
    }

    /// The advert as a fresh buffer of exactly [`buffer_len`](Self::buffer_len) bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut VrrpPacket::new_unchecked(&mut bytes[..]));
        bytes
    }
}

//! Byte-for-byte checks against frames captured from keepalived 2.2.7, so the codec agrees
//! with the implementation we must interoperate with (and replace), not only with itself.

use std::net::Ipv4Addr;

use tandem_vrrp::wire::*;

#[path = "wire_keepalived/ipv6.rs"]
mod ipv6;

/// VRRPv3 advert, whole Ethernet frame.
const V3_FRAME: &str = "01005e000012 1ecc8e90a0d1 0800
    45c0 0020 0001 0000 ff70 b05b c633640b e0000012
    3133 9601 0064 0301 c6336464";
/// Priority-0 advert sent by the same instance when it stops (IP packet only).
const PRIO0_IP: &str = "45c0 0020 0004 0000 ff70 b058 c633640b e0000012
    31330001 00649901 c6336464";
/// VRRPv2 advert (IP packet only), 8 zero bytes of authentication data at the end.
const V2_IP: &str = "45c0 0028 0001 0000 ff70 b053 c633640b e0000012
    2133 9601 0001 1e32 c6336464 0000 0000 0000 0000";
/// Gratuitous ARP, whole Ethernet frame, no padding.
const GARP_FRAME: &str = "ffffffffffff ea8a8380a8b4 0806
    0001 0800 0604 0001 ea8a8380a8b4 c6336464 ffffffffffff c6336464";

const SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
const MAC: [u8; 6] = [0xea, 0x8a, 0x83, 0x80, 0xa8, 0xb4];

fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn v3_repr(priority: u8) -> VrrpRepr {
    VrrpRepr {
        vrid: 51,
        priority,
        max_advert_int: 100,
        addresses: vec![VIP],
    }
}

#[test]
fn v3_advert_parses_to_the_expected_repr() {
    let frame = hex(V3_FRAME);
    assert_eq!(frame.len(), 46);
    assert_eq!(&frame[0..6], &[0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    assert_eq!(&frame[12..14], &[0x08, 0x00]);

    let (info, advert) = parse_advert(&frame[14..]).unwrap();
    assert_eq!(
        info,
        Ipv4Info {
            src: SRC,
            dst: VRRP_MULTICAST_V4,
            ttl: 255,
            protocol: IPPROTO_VRRP,
            tos: 0xc0,
        }
    );
    assert_eq!(advert, Advert::V3(v3_repr(150)));
}

#[test]
fn v3_view_reads_every_field() {
    let frame = hex(V3_FRAME);
    let (_, payload) = parse_ipv4(&frame[14..]).unwrap();
    assert_eq!(payload.len(), 12);
    let packet = VrrpPacket::new_checked(payload).unwrap();
    assert_eq!(packet.version(), 3);
    assert_eq!(packet.kind(), 1);
    assert_eq!(packet.vrid(), 51);
    assert_eq!(packet.priority(), 150);
    assert_eq!(packet.addr_count(), 1);
    assert_eq!(packet.max_advert_int(), 100);
    assert_eq!(packet.checksum(), 0x0301);
    assert_eq!(packet.address(0), VIP);
    assert_eq!(packet.compute_checksum(SRC, VRRP_MULTICAST_V4), 0x0301);
    assert_eq!(packet.into_inner(), payload);
}

#[test]
fn v3_emit_reproduces_keepalived_bytes() {
    let expected = hex("31339601 00640301 c6336464");
    let repr = v3_repr(150);
    assert_eq!(repr.buffer_len(), 12);
    assert_eq!(repr.to_bytes(SRC, VRRP_MULTICAST_V4), expected);

    // Through `emit` on a dirty buffer: every byte must be overwritten.
    let mut buf = [0xaa_u8; 12];
    repr.emit(
        &mut VrrpPacket::new_unchecked(&mut buf[..]),
        SRC,
        VRRP_MULTICAST_V4,
    );
    assert_eq!(&buf[..], &expected[..]);
}

#[test]
fn priority_zero_advert_round_trips() {
    let ip = hex(PRIO0_IP);
    let (info, advert) = parse_advert(&ip).unwrap();
    assert_eq!(info.src, SRC);
    assert_eq!(advert, Advert::V3(v3_repr(0)));
    let (_, payload) = parse_ipv4(&ip).unwrap();
    assert_eq!(VrrpPacket::new_checked(payload).unwrap().checksum(), 0x9901);
    assert_eq!(
        v3_repr(0).to_bytes(SRC, VRRP_MULTICAST_V4),
        hex("31330001 00649901 c6336464")
    );
}

#[test]
fn v2_advert_is_recognised() {
    let ip = hex(V2_IP);
    assert_eq!(ip.len(), 40);
    let (info, advert) = parse_advert(&ip).unwrap();
    assert_eq!(info.src, SRC);
    assert_eq!(info.ttl, 255);
    let expected = VrrpV2Repr {
        vrid: 51,
        priority: 150,
        auth_type: 0,
        advert_int_secs: 1,
        addresses: vec![VIP],
    };
    assert_eq!(advert, Advert::V2(expected.clone()));

    let (_, payload) = parse_ipv4(&ip).unwrap();
    let packet = VrrpPacket::new_checked(payload).unwrap();
    assert_eq!(packet.compute_checksum_v2(), 0x1e32);
    // The v3 parser refuses it by version, before any checksum confusion.
    assert_eq!(
        VrrpRepr::parse(&packet, SRC, VRRP_MULTICAST_V4),
        Err(WireError::BadVersion(2))
    );
    assert_eq!(expected.buffer_len(), 20);
    assert_eq!(expected.to_bytes(), payload);
}

#[test]
fn internet_checksum_matches_keepalived_ip_headers() {
    for (packet, checksum) in [
        (&hex(V3_FRAME)[14..], 0xb05b),
        (&hex(PRIO0_IP)[..], 0xb058),
        (&hex(V2_IP)[..], 0xb053),
    ] {
        let header = &packet[..20];
        assert_eq!(internet_checksum(&[&header[..10], &header[12..]]), checksum);
        assert_eq!(
            internet_checksum(&[header]),
            0,
            "a valid header sums to zero"
        );
    }
}

#[test]
fn gratuitous_arp_matches_keepalived() {
    let expected = hex(GARP_FRAME);
    assert_eq!(expected.len(), 42);
    assert_eq!(&gratuitous_arp_frame(MAC, VIP)[..], &expected[..]);

    let (src, dst, arp) = parse_arp_frame(&expected).unwrap();
    assert_eq!(src, MAC);
    assert_eq!(dst, ETHERNET_BROADCAST);
    assert_eq!(
        arp,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: MAC,
            sender_ip: VIP,
            target_mac: [0xff; 6],
            target_ip: VIP,
        }
    );

    // Re-emitting the parsed ARP gives back the payload bytes.
    let mut buf = [0_u8; 28];
    assert_eq!(ArpRepr::buffer_len(), 28);
    arp.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    assert_eq!(&buf[..], &expected[14..]);

    // The NIC pads to 60 bytes on the wire; a captured padded frame parses the same.
    let mut padded = expected.clone();
    padded.resize(60, 0);
    assert_eq!(parse_arp_frame(&padded).unwrap(), (src, dst, arp));
}

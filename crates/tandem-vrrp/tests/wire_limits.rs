//! RFC field limits and malformed input: every check in the codec is exercised, with the
//! exact error it must report, and corrupted captures never panic.

use std::net::Ipv4Addr;

use tandem_vrrp::wire::*;

const SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const DST: Ipv4Addr = VRRP_MULTICAST_V4;
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

/// The keepalived v3 advert's IP packet (see wire_keepalived.rs).
const V3_IP: [u8; 32] = [
    0x45, 0xc0, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0xb0, 0x5b, 0xc6, 0x33, 0x64, 0x0b,
    0xe0, 0x00, 0x00, 0x12, 0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0x03, 0x01, 0xc6, 0x33, 0x64, 0x64,
];

fn repr() -> VrrpRepr {
    VrrpRepr {
        vrid: 51,
        priority: 150,
        max_advert_int: 100,
        addresses: vec![VIP],
    }
}

/// A valid v3 message, altered by `edit`, with the checksum then made right again so only
/// the edited field is wrong.
fn v3_with(edit: impl FnOnce(&mut VrrpPacket<&mut [u8]>)) -> Vec<u8> {
    let mut bytes = repr().to_bytes(SRC, DST);
    let mut packet = VrrpPacket::new_unchecked(&mut bytes[..]);
    edit(&mut packet);
    packet.fill_checksum(SRC, DST);
    bytes
}

/// An IPv4 header (no options, valid checksum) in front of `payload`.
fn ip_packet(ttl: u8, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
    let mut out = vec![
        0x45, 0xc0, total[0], total[1], 0, 1, 0, 0, ttl, protocol, 0, 0,
    ];
    out.extend_from_slice(&SRC.octets());
    out.extend_from_slice(&DST.octets());
    let checksum = internet_checksum(&[&out]).to_be_bytes();
    out[10..12].copy_from_slice(&checksum);
    out.extend_from_slice(payload);
    out
}

fn parse_v3(bytes: &[u8]) -> Result<VrrpRepr, WireError> {
    VrrpRepr::parse(&VrrpPacket::new_unchecked(bytes), SRC, DST)
}

#[test]
fn helper_builds_a_valid_advert() {
    let ip = ip_packet(255, IPPROTO_VRRP, &v3_with(|_| {}));
    assert_eq!(parse_advert(&ip).unwrap().1, Advert::V3(repr()));
}

#[test]
fn versions_other_than_3_are_rejected_and_2_goes_to_the_v2_parser() {
    for version in (0..16).filter(|v| *v != 3 && *v != 2) {
        let bytes = v3_with(|p| p.set_version(version));
        assert_eq!(parse_v3(&bytes), Err(WireError::BadVersion(version)));
        let ip = ip_packet(255, IPPROTO_VRRP, &bytes);
        assert_eq!(parse_advert(&ip), Err(WireError::BadVersion(version)));
    }
    let v2 = VrrpV2Repr {
        vrid: 7,
        priority: 100,
        auth_type: 1,
        advert_int_secs: 3,
        addresses: vec![VIP, SRC],
    };
    let (_, advert) = parse_advert(&ip_packet(255, IPPROTO_VRRP, &v2.to_bytes())).unwrap();
    assert_eq!(advert, Advert::V2(v2));
}

#[test]
fn types_other_than_advertisement_are_rejected() {
    for kind in (0..16).filter(|k| *k != 1) {
        assert_eq!(
            parse_v3(&v3_with(|p| p.set_kind(kind))),
            Err(WireError::BadType(kind))
        );
    }
}

#[test]
fn vrid_zero_is_rejected() {
    assert_eq!(
        parse_v3(&v3_with(|p| p.set_vrid(0))),
        Err(WireError::BadVrid)
    );
    let mut v2 = VrrpV2Repr {
        vrid: 0,
        priority: 1,
        auth_type: 0,
        advert_int_secs: 1,
        addresses: vec![],
    }
    .to_bytes();
    assert_eq!(
        VrrpV2Repr::parse(&VrrpPacket::new_unchecked(&v2[..])),
        Err(WireError::BadVrid)
    );
    v2[1] = 1;
    v2[5] = 0;
    let mut packet = VrrpPacket::new_unchecked(&mut v2[..]);
    let checksum = packet.compute_checksum_v2();
    packet.set_checksum(checksum);
    assert_eq!(
        VrrpV2Repr::parse(&VrrpPacket::new_unchecked(&v2[..])),
        Err(WireError::ZeroInterval)
    );
}

#[test]
fn interval_zero_is_rejected_and_reserved_bits_are_ignored() {
    assert_eq!(
        parse_v3(&v3_with(|p| p.set_max_advert_int(0))),
        Err(WireError::ZeroInterval)
    );
    // Reserved bits set over a zero interval: still zero.
    assert_eq!(
        parse_v3(&v3_with(
            |p| p.as_bytes_mut()[4..6].copy_from_slice(&[0xf0, 0])
        )),
        Err(WireError::ZeroInterval)
    );
    // Reserved bits set over interval 100: ignored on receive (RFC 5798 5.2.5).
    let bytes = v3_with(|p| p.as_bytes_mut()[4] |= 0xf0);
    assert_eq!(parse_v3(&bytes), Ok(repr()));
    // The largest interval fits; emit masks anything above 12 bits.
    let max = VrrpRepr {
        max_advert_int: 4095,
        ..repr()
    };
    assert_eq!(parse_v3(&max.to_bytes(SRC, DST)), Ok(max));
    let too_big = VrrpRepr {
        max_advert_int: 0x1000 | 100,
        ..repr()
    };
    assert_eq!(too_big.to_bytes(SRC, DST), repr().to_bytes(SRC, DST));
}

#[test]
fn address_count_larger_than_the_buffer_is_rejected() {
    for (count, room) in [(2_u8, 1_usize), (255, 1)] {
        let bytes = v3_with(|p| p.set_addr_count(count));
        let expected = WireError::BadAddressCount {
            declared: count,
            room,
        };
        assert_eq!(
            VrrpPacket::new_checked(&bytes[..]).err(),
            Some(expected.clone())
        );
        assert_eq!(parse_v3(&bytes), Err(expected.clone()));
        assert_eq!(
            parse_advert(&ip_packet(255, IPPROTO_VRRP, &bytes)),
            Err(expected)
        );
    }
    // A smaller count than the buffer holds is fine: the rest is covered by the checksum.
    let bytes = v3_with(|p| p.set_addr_count(0));
    assert!(parse_v3(&bytes).unwrap().addresses.is_empty());
}

#[test]
fn wrong_checksum_reports_expected_and_found() {
    let mut bytes = repr().to_bytes(SRC, DST);
    VrrpPacket::new_unchecked(&mut bytes[..]).set_checksum(0x1234);
    let err = parse_v3(&bytes).unwrap_err();
    assert_eq!(
        err,
        WireError::BadChecksum {
            expected: 0x0301,
            found: 0x1234
        }
    );
    assert_eq!(err.to_string(), "checksum 0x1234, expected 0x0301");
    assert_eq!(err.reason(), "bad_checksum");

    // The pseudo-header is covered: the same bytes from another source do not verify.
    let good = repr().to_bytes(SRC, DST);
    let other = Ipv4Addr::new(198, 51, 100, 12);
    let packet = VrrpPacket::new_unchecked(&good[..]);
    assert!(matches!(
        VrrpRepr::parse(&packet, other, DST),
        Err(WireError::BadChecksum { found: 0x0301, .. })
    ));
}

#[test]
fn ttl_other_than_255_is_rejected() {
    let payload = v3_with(|_| {});
    for ttl in [0, 1, 64, 128, 254] {
        assert_eq!(
            parse_advert(&ip_packet(ttl, IPPROTO_VRRP, &payload)),
            Err(WireError::BadTtl(ttl))
        );
    }
    assert_eq!(WireError::BadTtl(64).to_string(), "TTL 64, expected 255");
}

#[test]
fn other_protocols_are_rejected() {
    let err = parse_advert(&ip_packet(255, 17, &v3_with(|_| {}))).unwrap_err();
    assert_eq!(err.reason(), "bad_ip_header");
}

#[test]
fn ipv4_header_limits() {
    let good = ip_packet(255, IPPROTO_VRRP, &v3_with(|_| {}));
    let edit = |f: fn(&mut Vec<u8>)| {
        let mut p = good.clone();
        f(&mut p);
        parse_ipv4(&p).map(|(info, payload)| (info, payload.to_vec()))
    };
    assert!(matches!(
        edit(|p| p[0] = 0x65),
        Err(WireError::BadIpHeader(_))
    ));
    assert!(matches!(
        edit(|p| p[0] = 0x44),
        Err(WireError::BadIpHeader(_))
    ));
    assert!(matches!(
        edit(|p| p[3] = 19),
        Err(WireError::BadIpHeader(_))
    ));
    assert_eq!(edit(|p| p[3] = 33), Err(WireError::Truncated));
    assert_eq!(edit(|p| p[0] = 0x4f), Err(WireError::Truncated));
    // More fragments, or a non-zero offset: never a whole VRRP message.
    assert!(matches!(
        edit(|p| p[6] = 0x20),
        Err(WireError::BadIpHeader(_))
    ));
    assert!(matches!(
        edit(|p| p[7] = 0x01),
        Err(WireError::BadIpHeader(_))
    ));
    // DF and a zeroed header checksum are fine.
    assert!(edit(|p| p[6] = 0x40).is_ok());
    assert!(edit(|p| p[10..12].fill(0)).is_ok());

    // Options are skipped by IHL; bytes past the total length (padding) are dropped.
    let payload = v3_with(|_| {});
    let mut with_options = ip_packet(255, IPPROTO_VRRP, &payload);
    with_options[0] = 0x46;
    with_options[3] += 4;
    with_options.splice(20..20, [0x94, 0x04, 0x00, 0x00]);
    with_options.extend_from_slice(&[0xee; 10]);
    let (info, got) = parse_ipv4(&with_options).unwrap();
    assert_eq!((info.src, info.ttl), (SRC, 255));
    assert_eq!(got, &payload[..]);
    assert_eq!(parse_advert(&with_options).unwrap().1, Advert::V3(repr()));
}

#[test]
fn truncation_at_every_length_is_an_error() {
    for n in 0..V3_IP.len() {
        assert_eq!(
            parse_advert(&V3_IP[..n]),
            Err(WireError::Truncated),
            "n = {n}"
        );
        assert!(parse_ipv4(&V3_IP[..n]).is_err());
    }
    let vrrp = &V3_IP[20..];
    for n in 0..vrrp.len() {
        let expected = if n < 8 {
            WireError::Truncated
        } else {
            WireError::BadAddressCount {
                declared: 1,
                room: 0,
            }
        };
        assert_eq!(
            VrrpPacket::new_checked(&vrrp[..n]).err(),
            Some(expected.clone())
        );
        assert_eq!(parse_v3(&vrrp[..n]), Err(expected.clone()));
        let packet = VrrpPacket::new_unchecked(&vrrp[..n]);
        assert_eq!(VrrpV2Repr::parse(&packet), Err(expected));
    }
    // An IP packet whose total length is honest about a short VRRP message.
    for n in 0..vrrp.len() {
        let ip = ip_packet(255, IPPROTO_VRRP, &vrrp[..n]);
        assert!(parse_advert(&ip).is_err(), "n = {n}");
    }
    let garp = gratuitous_arp_frame([2, 0, 0, 0, 0, 1], VIP);
    for n in 0..garp.len() {
        assert_eq!(parse_arp_frame(&garp[..n]), Err(WireError::Truncated));
    }
    for n in 0..ArpRepr::buffer_len() {
        let packet = ArpPacket::new_unchecked(&garp[14..14 + n]);
        assert_eq!(ArpRepr::parse(&packet), Err(WireError::Truncated));
        assert_eq!(
            ArpPacket::new_checked(&garp[14..14 + n]).err(),
            Some(WireError::Truncated)
        );
    }
}

#[test]
fn every_single_byte_flip_of_the_keepalived_advert_is_handled() {
    let original = parse_advert(&V3_IP).unwrap().1;
    let masks = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff];
    for i in 0..V3_IP.len() {
        for mask in masks {
            let mut packet = V3_IP;
            packet[i] ^= mask;
            // Fields we deliberately do not check: TOS, IP id, the DF and reserved flag
            // bits, and the IP header checksum (the kernel checked it, or left it unfilled).
            let unchecked = matches!(i, 1 | 4 | 5 | 10 | 11) || (i == 6 && mask & 0x3f == 0);
            match parse_advert(&packet) {
                Ok((_, advert)) => {
                    assert!(unchecked, "flip {mask:#04x} at {i} was accepted");
                    assert_eq!(advert, original);
                }
                Err(err) => assert!(!unchecked, "flip {mask:#04x} at {i}: {err}"),
            }
        }
    }
}

#[test]
fn arp_field_limits() {
    let good = gratuitous_arp_frame([2, 0, 0, 0, 0, 1], VIP);
    let edit = |i: usize, v: u8| {
        let mut f = good;
        f[i] = v;
        parse_arp_frame(&f)
    };
    assert_eq!(
        edit(13, 0x00),
        Err(WireError::BadArp("EtherType is not ARP"))
    );
    for (i, v) in [(15, 6), (16, 0x86), (18, 8), (19, 16), (21, 3), (21, 0)] {
        assert!(matches!(edit(i, v), Err(WireError::BadArp(_))), "byte {i}");
    }
    let (_, _, reply) = edit(21, 2).unwrap();
    assert_eq!(reply.operation, ArpOperation::Reply);
}

#[test]
fn every_error_has_a_label_and_a_message() {
    let cases = [
        (WireError::Truncated, "truncated"),
        (WireError::BadIpHeader("x"), "bad_ip_header"),
        (WireError::BadVersion(4), "bad_version"),
        (WireError::BadType(2), "bad_type"),
        (WireError::BadVrid, "bad_vrid"),
        (
            WireError::BadAddressCount {
                declared: 3,
                room: 1,
            },
            "bad_address_count",
        ),
        (WireError::ZeroInterval, "zero_interval"),
        (
            WireError::BadChecksum {
                expected: 1,
                found: 2,
            },
            "bad_checksum",
        ),
        (WireError::BadTtl(1), "bad_ttl"),
        (WireError::BadArp("x"), "bad_arp"),
    ];
    for (err, label) in cases {
        assert_eq!(err.reason(), label);
        assert!(!err.to_string().is_empty());
        let _: &dyn std::error::Error = &err;
    }
}

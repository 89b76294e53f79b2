//! Property tests: emit and parse are mirrors for every valid repr, and no byte string
//! makes a parser panic (the receive path runs on whatever the LAN sends).

use std::net::Ipv4Addr;

use proptest::prelude::*;
use tandem_vrrp::wire::*;

#[path = "wire_proptest/ipv6.rs"]
mod ipv6;

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn vrrp_repr() -> impl Strategy<Value = VrrpRepr> {
    (
        1..=255_u8,
        any::<u8>(),
        1..=4095_u16,
        prop::collection::vec(ipv4(), 0..=20),
    )
        .prop_map(|(vrid, priority, max_advert_int, addresses)| VrrpRepr {
            vrid,
            priority,
            max_advert_int,
            addresses,
        })
}

fn vrrp_v2_repr() -> impl Strategy<Value = VrrpV2Repr> {
    (
        1..=255_u8,
        any::<u8>(),
        any::<u8>(),
        1..=255_u8,
        prop::collection::vec(ipv4(), 0..=20),
    )
        .prop_map(
            |(vrid, priority, auth_type, advert_int_secs, addresses)| VrrpV2Repr {
                vrid,
                priority,
                auth_type,
                advert_int_secs,
                addresses,
            },
        )
}

fn arp_repr() -> impl Strategy<Value = ArpRepr> {
    (
        any::<bool>(),
        any::<[u8; 6]>(),
        ipv4(),
        any::<[u8; 6]>(),
        ipv4(),
    )
        .prop_map(
            |(request, sender_mac, sender_ip, target_mac, target_ip)| ArpRepr {
                operation: if request {
                    ArpOperation::Request
                } else {
                    ArpOperation::Reply
                },
                sender_mac,
                sender_ip,
                target_mac,
                target_ip,
            },
        )
}

/// An IPv4 header with TTL 255 and protocol VRRP in front of `payload`.
fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
    let mut out = vec![
        0x45,
        0xc0,
        total[0],
        total[1],
        0,
        0,
        0x40,
        0,
        255,
        IPPROTO_VRRP,
        0,
        0,
    ];
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(payload);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn vrrp_v3_round_trips(repr in vrrp_repr(), src in ipv4(), dst in ipv4()) {
        let bytes = repr.to_bytes(src, dst);
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        prop_assert_eq!(bytes.len(), 8 + 4 * repr.addresses.len());

        let packet = VrrpPacket::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(VrrpRepr::parse(&packet, src, dst), Ok(repr.clone()));

        // The right checksum: pseudo-header plus message sums to zero (RFC 1071).
        let len = u16::try_from(bytes.len()).unwrap().to_be_bytes();
        let pseudo = [&src.octets()[..], &dst.octets()[..], &[0, IPPROTO_VRRP, len[0], len[1]]];
        prop_assert_eq!(internet_checksum(&[pseudo[0], pseudo[1], pseudo[2], &bytes]), 0);

        let (info, advert) = parse_advert(&ip_packet(src, dst, &bytes)).unwrap();
        prop_assert_eq!((info.src, info.dst), (src, dst));
        prop_assert_eq!(advert, Advert::V3(repr));
    }

    #[test]
    fn vrrp_v2_round_trips(repr in vrrp_v2_repr(), src in ipv4(), dst in ipv4()) {
        let bytes = repr.to_bytes();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        prop_assert_eq!(internet_checksum(&[&bytes]), 0);
        let (_, advert) = parse_advert(&ip_packet(src, dst, &bytes)).unwrap();
        prop_assert_eq!(advert, Advert::V2(repr));
    }

    #[test]
    fn arp_round_trips(repr in arp_repr(), src in any::<[u8; 6]>(), dst in any::<[u8; 6]>()) {
        let mut frame = vec![0_u8; 14 + ArpRepr::buffer_len()];
        frame[0..6].copy_from_slice(&dst);
        frame[6..12].copy_from_slice(&src);
        frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        repr.emit(&mut ArpPacket::new_unchecked(&mut frame[14..]));
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&frame[14..]).unwrap()), Ok(repr));
        prop_assert_eq!(parse_arp_frame(&frame), Ok((src, dst, repr)));
    }

    #[test]
    fn gratuitous_arp_round_trips(mac in any::<[u8; 6]>(), vip in ipv4()) {
        let (src, dst, arp) = parse_arp_frame(&gratuitous_arp_frame(mac, vip)).unwrap();
        prop_assert_eq!((src, dst), (mac, ETHERNET_BROADCAST));
        prop_assert_eq!((arp.sender_mac, arp.sender_ip, arp.target_ip), (mac, vip, vip));
        prop_assert_eq!(arp.operation, ArpOperation::Request);
    }

    #[test]
    fn checksum_does_not_depend_on_how_the_bytes_are_split(
        data in prop::collection::vec(any::<u8>(), 0..=100),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..=4),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&data[start..p]);
            start = p;
        }
        chunks.push(&data[start..]);
        prop_assert_eq!(internet_checksum(&chunks), internet_checksum(&[&data]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..=200)) {
        let _ = parse_advert(&bytes);
        let _ = parse_ipv4(&bytes);
        let _ = parse_arp_frame(&bytes);
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let _ = VrrpRepr::parse(&VrrpPacket::new_unchecked(&bytes[..]), src, VRRP_MULTICAST_V4);
        let _ = VrrpV2Repr::parse(&VrrpPacket::new_unchecked(&bytes[..]));
        let _ = ArpRepr::parse(&ArpPacket::new_unchecked(&bytes[..]));
        if let Ok(packet) = VrrpPacket::new_checked(&bytes[..]) {
            // After new_checked every getter is in bounds.
            let _ = (packet.version(), packet.kind(), packet.max_advert_int(), packet.checksum());
            for i in 0..usize::from(packet.addr_count()) {
                let _ = packet.address(i);
            }
        }
    }

    /// Random bytes rarely get past the IP version check, so also feed arbitrary VRRP
    /// payloads (starting with a v2 or v3 nibble half the time) behind a valid header.
    #[test]
    fn arbitrary_payloads_behind_a_valid_header_never_panic(
        mut payload in prop::collection::vec(any::<u8>(), 0..=180),
        version in prop_oneof![Just(None), Just(Some(0x20_u8)), Just(Some(0x30_u8))],
    ) {
        if let (Some(v), Some(first)) = (version, payload.first_mut()) {
            *first = v | (*first & 0x0f);
        }
        let ip = ip_packet(Ipv4Addr::new(192, 0, 2, 1), VRRP_MULTICAST_V4, &payload);
        let _ = parse_advert(&ip);
        // Also cut short at an arbitrary point, keeping the declared length.
        let cut = payload.len() / 2;
        let _ = parse_advert(&ip[..20 + cut]);
    }
}

//! Property tests for the IPv6 codecs: emit and parse mirror each other, and no byte
//! string makes a parser panic.

use std::net::Ipv6Addr;

use proptest::prelude::*;
use tandem_vrrp::wire::*;

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn link_local() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 8]>().prop_map(|low| {
        let mut o = [0u8; 16];
        o[0] = 0xfe;
        o[1] = 0x80;
        o[8..].copy_from_slice(&low);
        Ipv6Addr::from(o)
    })
}

fn repr() -> impl Strategy<Value = Vrrp6Repr> {
    (
        1..=255_u8,
        any::<u8>(),
        1..=4095_u16,
        prop::collection::vec(ipv6(), 0..=8),
    )
        .prop_map(|(vrid, priority, max_advert_int, addresses)| Vrrp6Repr {
            vrid,
            priority,
            max_advert_int,
            addresses,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn vrrp_v6_round_trips(repr in repr(), src in link_local(), dst in ipv6()) {
        let bytes = repr.to_bytes(src, dst);
        prop_assert_eq!(bytes.len(), 8 + 16 * repr.addresses.len());
        let info = Ipv6Info { src, dst, hop_limit: 255 };
        prop_assert_eq!(parse_advert_v6(info, &bytes), Ok(repr.clone()));
        // Pseudo-header (src, dst, 32-bit length, 3 zero bytes, next header) plus the
        // message sums to zero (RFC 1071).
        let len = u32::try_from(bytes.len()).unwrap().to_be_bytes();
        let tail = [0, 0, 0, IPPROTO_VRRP];
        prop_assert_eq!(
            internet_checksum(&[&src.octets(), &dst.octets(), &len, &tail, &bytes]),
            0
        );
    }

    #[test]
    fn neighbour_advertisements_round_trip(mac in any::<[u8; 6]>(), vip in ipv6()) {
        let frame = unsolicited_na_frame(mac, vip);
        let (src_mac, src, na) = parse_na_frame(&frame).unwrap();
        prop_assert_eq!((src_mac, src, na.target, na.target_mac), (mac, vip, vip, Some(mac)));
        prop_assert!(na.override_flag && !na.router && !na.solicited);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..=200)) {
        let info = Ipv6Info {
            src: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            dst: VRRP_MULTICAST_V6,
            hop_limit: 255,
        };
        let _ = parse_advert_v6(info, &bytes);
        let _ = parse_na_frame(&bytes);
        if let Ok(packet) = VrrpPacket::new_checked_v6(&bytes[..]) {
            for i in 0..usize::from(packet.addr_count()) {
                let _ = packet.address_v6(i);
            }
        }
    }

    /// Random bytes rarely look like a neighbour advertisement: mutate a valid one.
    #[test]
    fn mutated_advertisements_never_panic(
        mac in any::<[u8; 6]>(),
        at in 0..86_usize,
        value in any::<u8>(),
        cut in 0..=86_usize,
    ) {
        let mut frame = unsolicited_na_frame(mac, Ipv6Addr::LOCALHOST).to_vec();
        frame[at] = value;
        let _ = parse_na_frame(&frame[..cut]);
        let _ = parse_na_frame(&frame);
    }
}

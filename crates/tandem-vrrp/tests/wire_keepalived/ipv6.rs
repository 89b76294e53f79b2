//! Byte-for-byte checks against IPv6 frames captured from keepalived 2.2.7 (Debian 12,
//! `vrrp_version 3`, `native_ipv6`, VRID 51, priority 150, advert_int 1, VIP
//! 2001:db8::100/64) in a namespace pair, with tcpdump on the peer's end of the veth.

use std::net::Ipv6Addr;

use tandem_vrrp::wire::*;

use super::hex;

/// VRRPv3 advert, whole Ethernet frame: from fe80::ff:fe00:a (MAC 02:00:00:00:00:0a) to
/// ff02::12, traffic class 0xc0 and a flow label (ignored on receive), hop limit 255.
const ADVERT_FRAME: &str = "333300000012 02000000000a 86dd
    6c08cbeb 0018 70 ff fe800000000000000000 00fffe00000a ff020000000000000000000000000012
    3133 9601 0064 0c86 20010db8000000000000000000000100";
/// Its priority-0 advert on SIGTERM.
const PRIO0_VRRP: &str = "3133 0001 0064 a286 20010db8000000000000000000000100";
/// The unsolicited neighbour advertisement it sends on becoming master (five of them).
const NA_FRAME: &str = "333300000001 02000000000a 86dd
    60000000 0020 3a ff 20010db8000000000000000000000100 ff020000000000000000000000000001
    8800 f723 20000000 20010db8000000000000000000000100 0201 02000000000a";

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x0a);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

fn repr(priority: u8) -> Vrrp6Repr {
    Vrrp6Repr {
        vrid: 51,
        priority,
        max_advert_int: 100,
        addresses: vec![VIP],
    }
}

fn info() -> Ipv6Info {
    Ipv6Info {
        src: SRC,
        dst: VRRP_MULTICAST_V6,
        hop_limit: 255,
    }
}

#[test]
fn keepalived_ipv6_adverts_parse_and_ours_are_identical() {
    let frame = hex(ADVERT_FRAME);
    // Ethernet (14) + IPv6 header (40): what a raw IPv6 socket hands over is the rest.
    let vrrp = &frame[54..];
    assert_eq!(frame[20], 112, "next header VRRP");
    assert_eq!(frame[21], 255, "hop limit");
    assert_eq!(parse_advert_v6(info(), vrrp), Ok(repr(150)));
    assert_eq!(repr(150).to_bytes(SRC, VRRP_MULTICAST_V6), vrrp);

    let prio0 = hex(PRIO0_VRRP);
    assert_eq!(parse_advert_v6(info(), &prio0), Ok(repr(0)));
    assert_eq!(repr(0).to_bytes(SRC, VRRP_MULTICAST_V6), prio0);
    assert_eq!(&frame[0..6], &multicast_mac(VRRP_MULTICAST_V6));
}

#[test]
fn ipv6_adverts_that_crossed_a_router_or_lie_are_refused() {
    let frame = hex(ADVERT_FRAME);
    let vrrp = &frame[54..];
    let routed = Ipv6Info {
        hop_limit: 254,
        ..info()
    };
    assert_eq!(parse_advert_v6(routed, vrrp), Err(WireError::BadTtl(254)));
    let global_source = Ipv6Info {
        src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11),
        ..info()
    };
    assert!(matches!(
        parse_advert_v6(global_source, vrrp),
        Err(WireError::BadIpHeader(_))
    ));
    // The checksum covers the pseudo-header: another source fails it.
    let other = Ipv6Info {
        src: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x99),
        ..info()
    };
    assert!(matches!(
        parse_advert_v6(other, vrrp),
        Err(WireError::BadChecksum { .. })
    ));
    let mut flipped = vrrp.to_vec();
    flipped[2] ^= 1;
    assert!(matches!(
        parse_advert_v6(info(), &flipped),
        Err(WireError::BadChecksum { .. })
    ));
    // Two addresses declared, room for one.
    let mut short = vrrp.to_vec();
    short[3] = 2;
    assert_eq!(
        parse_advert_v6(info(), &short),
        Err(WireError::BadAddressCount {
            declared: 2,
            room: 1
        })
    );
    assert_eq!(
        parse_advert_v6(info(), &vrrp[..7]),
        Err(WireError::Truncated)
    );
}

#[test]
fn our_neighbour_advertisement_is_keepalived_s_byte_for_byte() {
    let theirs = hex(NA_FRAME);
    let ours = unsolicited_na_frame(MAC, VIP);
    assert_eq!(ours.to_vec(), theirs);
    let (src_mac, src, na) = parse_na_frame(&theirs).expect("keepalived's NA parses");
    assert_eq!((src_mac, src), (MAC, VIP));
    assert_eq!(
        na,
        NeighborAdvertRepr {
            target: VIP,
            router: false,
            solicited: false,
            override_flag: true,
            target_mac: Some(MAC),
        }
    );
    let mut bad = theirs.clone();
    bad[80] ^= 0xff; // inside the option's MAC
    assert!(matches!(
        parse_na_frame(&bad),
        Err(WireError::BadChecksum { .. })
    ));
    let mut routed = theirs.clone();
    routed[21] = 64;
    assert_eq!(parse_na_frame(&routed), Err(WireError::BadTtl(64)));
    assert_eq!(parse_na_frame(&theirs[..60]), Err(WireError::Truncated));
}

//! VRRP adverts (IPv4 + VRRPv3/v2, and VRRPv3 over IPv6), ARP frames and neighbour
//! advertisements as read from raw sockets: any bytes parse or fail with an error, never
//! panic. The first byte picks the IPv6 hop limit (the kernel reports it beside the
//! payload), so the checks after it are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv6Addr;
use tandem_vrrp::wire::{
    parse_advert, parse_advert_v6, parse_arp_frame, parse_na_frame, Ipv6Info, VRRP_MULTICAST_V6,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_advert(data);
    let _ = parse_arp_frame(data);
    let _ = parse_na_frame(data);
    if let Some((&hop_limit, payload)) = data.split_first() {
        let info = Ipv6Info {
            src: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            dst: VRRP_MULTICAST_V6,
            hop_limit: hop_limit | 0xf0,
        };
        let _ = parse_advert_v6(info, payload);
    }
});

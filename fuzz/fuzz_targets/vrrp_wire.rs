//! VRRP adverts (IPv4 + VRRPv3/v2) and ARP frames as read from raw sockets: any bytes
//! parse or fail with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_vrrp::wire::{parse_advert, parse_arp_frame};

fuzz_target!(|data: &[u8]| {
    let _ = parse_advert(data);
    let _ = parse_arp_frame(data);
});

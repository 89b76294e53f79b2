//! The request authority check (Host headers, absolute-form target, :authority): never
//! panics, and whatever it accepts is a valid host[:port] a host matcher can take.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_policy::{normalize_host, request_authority, valid_authority, AuthoritySource, Framing};

fuzz_target!(|data: &[u8]| {
    // First byte: framing and how many Host values; the rest split on NUL into values.
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let framing = match head % 3 {
        0 => Framing::Http10,
        1 => Framing::Http11,
        _ => Framing::Http2,
    };
    let mut parts = rest.split(|&b| b == 0);
    let target = if head & 4 != 0 {
        parts.next().and_then(|t| std::str::from_utf8(t).ok())
    } else {
        None
    };
    let hosts: Vec<&[u8]> = parts.take(((head >> 3) % 4) as usize).collect();
    match request_authority(framing, hosts.iter().copied(), target) {
        Ok(AuthoritySource::Host) => {
            assert_eq!(hosts.len(), 1);
            let h = std::str::from_utf8(hosts[0]).expect("an accepted Host is text");
            assert!(valid_authority(h));
            let _ = normalize_host(h);
        }
        Ok(AuthoritySource::Target) => {
            let t = target.expect("a target was given");
            assert!(valid_authority(t));
            let _ = normalize_host(t);
        }
        Ok(AuthoritySource::None) => assert!(hosts.is_empty() && target.is_none()),
        Err(_) => {}
    }
});

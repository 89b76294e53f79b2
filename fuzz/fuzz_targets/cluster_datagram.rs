//! The cluster's UDP datagrams, as anyone on the network can send them: the clear header
//! parses or is refused, opening under a session key fails unless the bytes were sealed
//! with it, and what is sealed opens to the same bytes. The server's per-session window
//! never runs a counter twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_cluster::transport::datagram::{Header, Kind, Recent, Seen, SessionKey};

fuzz_target!(|data: &[u8]| {
    let key = SessionKey::from_exported(&[7u8; 40]);
    let _ = Header::parse(data);
    assert!(key.open(data).is_err(), "unsealed bytes opened: a forgery");
    let sealed = key.seal(Kind::Request, data.len() as u64 + 1, data);
    let (header, plain) = key.open(&sealed).expect("sealed bytes open");
    assert_eq!(header.kind, Kind::Request);
    assert_eq!(plain, data);
    let mut recent = Recent::default();
    let mut ran = std::collections::BTreeSet::new();
    for pair in data.chunks_exact(2) {
        let counter = u64::from(u16::from_be_bytes([pair[0], pair[1]]) % 300);
        if recent.check(counter) == Seen::New {
            assert!(ran.insert(counter), "counter {counter} ran twice");
        }
    }
});

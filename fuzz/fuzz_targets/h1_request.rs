//! A client's HTTP/1.1 request as tandem's server reads it (head, then the body by its
//! framing, chunked with trailers), fed in pieces: never panics, a head is parsed the
//! same whatever the split, never yields more body than it was given, a Content-Length
//! body is exactly its length, and a refused head is refused with a 4xx/5xx status.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tandem_h1::{parse_request_head, Decoded, HeadLimits, RequestBodyFraming};

fuzz_target!(|data: &[u8]| {
    // First byte: the read size and a small head limit or the default one.
    let Some((&ctl, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(ctl >> 1) + 1;
    let limits = HeadLimits {
        max_bytes: if ctl & 1 != 0 { 256 } else { 16 * 1024 },
        max_headers: if ctl & 1 != 0 { 4 } else { 100 },
    };
    // The whole input at once: the reference for the split reads.
    let whole = parse_request_head(&mut BytesMut::from(wire), limits);
    let mut rest = wire.chunks(step);
    let mut buf = BytesMut::new();
    let head = loop {
        match parse_request_head(&mut buf, limits) {
            Ok(Some(h)) => break h,
            Ok(None) => match rest.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return,
            },
            Err(e) => {
                assert!(e.status().is_client_error() || e.status().is_server_error());
                return;
            }
        }
    };
    if let Ok(Some(w)) = &whole {
        assert_eq!(w.parts.method, head.parts.method);
        assert_eq!(w.parts.uri, head.parts.uri);
        assert_eq!(w.parts.headers, head.parts.headers);
        assert_eq!(w.framing, head.framing);
    }
    let mut d = head.framing.decoder();
    let mut got = Vec::new();
    loop {
        match d.decode(&mut buf) {
            Ok(Decoded::Data(b)) => got.extend_from_slice(&b),
            Ok(Decoded::Trailers(_) | Decoded::End) => break,
            Ok(Decoded::NeedMore) => match rest.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return,
            },
            Err(_) => return,
        }
    }
    assert!(got.len() <= wire.len());
    match head.framing {
        RequestBodyFraming::Length(n) => assert_eq!(got.len() as u64, n),
        RequestBodyFraming::Empty => assert!(got.is_empty()),
        RequestBodyFraming::Chunked => {}
    }
});

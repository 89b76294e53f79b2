//! Properties of the codec: what the encoders write decodes to the same message in any
//! split of the bytes, and no input makes the decoders panic.

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use tandem_h1::{
    encode_request_head, parse_response_head, BodyDecoder, ChunkedEncoder, Decoded, RequestFraming,
    ResponseFraming,
};

/// Feeds `wire` to `d` in pieces of `step` bytes: the data and whether the body ended.
fn decode(d: &mut BodyDecoder, wire: &[u8], step: usize) -> (Vec<u8>, Option<HeaderMap>, bool) {
    let mut buf = BytesMut::new();
    let (mut data, mut trailers) = (Vec::new(), None);
    for piece in wire.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf).expect("valid framing") {
                Decoded::Data(b) => data.extend_from_slice(&b),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => return (data, trailers, true),
                Decoded::NeedMore => break,
            }
        }
    }
    (data, trailers, false)
}

fn header_name() -> impl Strategy<Value = HeaderName> {
    "x-[a-z0-9-]{1,12}".prop_map(|s| HeaderName::from_bytes(s.as_bytes()).unwrap())
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    "[ -~]{0,24}".prop_map(|s| HeaderValue::from_str(s.trim()).unwrap())
}

proptest! {
    #[test]
    fn chunked_bodies_round_trip(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..8),
        trailers in prop::collection::vec((header_name(), header_value()), 0..3),
        step in 1usize..64,
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            ChunkedEncoder::chunk_head(&mut wire, c.len());
            wire.extend_from_slice(c);
            wire.extend_from_slice(ChunkedEncoder::CHUNK_END);
        }
        let mut map = HeaderMap::new();
        for (n, v) in &trailers {
            map.append(n.clone(), v.clone());
        }
        ChunkedEncoder::last(&mut wire, Some(&map));
        let mut d = BodyDecoder::new(ResponseFraming::Chunked);
        let (data, got, ended) = decode(&mut d, &wire, step);
        prop_assert!(ended);
        prop_assert_eq!(data, chunks.concat());
        prop_assert_eq!(got.unwrap_or_default(), map);
    }

    #[test]
    fn length_framed_responses_round_trip(
        body in prop::collection::vec(any::<u8>(), 0..2000),
        fields in prop::collection::vec((header_name(), header_value()), 0..10),
        split in any::<prop::sample::Index>(),
        step in 1usize..512,
    ) {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        for (n, v) in &fields {
            wire.extend_from_slice(format!("{n}: ").as_bytes());
            wire.extend_from_slice(v.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        wire.extend_from_slice(&body);
        // The head arrives in two reads, cut anywhere.
        let cut = split.index(wire.len());
        let mut buf = BytesMut::from(&wire[..cut]);
        let (head, tail) = match parse_response_head(&mut buf, &Method::GET, false).unwrap() {
            Some(h) => (h, &wire[cut..]),
            None => {
                buf.extend_from_slice(&wire[cut..]);
                let h = parse_response_head(&mut buf, &Method::GET, false).unwrap().expect("complete");
                (h, &[][..])
            }
        };
        for (n, v) in &fields {
            prop_assert!(head.parts.headers.get_all(n).iter().any(|x| x == v));
        }
        prop_assert!(head.keep_alive);
        let mut d = BodyDecoder::new(head.framing);
        let mut all = buf.to_vec();
        all.extend_from_slice(tail);
        let (data, _, ended) = decode(&mut d, &all, step);
        prop_assert!(ended || body.is_empty());
        prop_assert_eq!(data, body);
    }

    #[test]
    fn request_heads_parse_back(
        path in "/[a-zA-Z0-9/._~-]{0,40}",
        fields in prop::collection::vec((header_name(), header_value()), 0..12),
        len in prop::option::of(0u64..1_000_000),
    ) {
        let mut map = HeaderMap::new();
        for (n, v) in &fields {
            map.append(n.clone(), v.clone());
        }
        let mut buf = Vec::new();
        let framing = encode_request_head(&mut buf, &Method::POST, &path, &map, len);
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut slots);
        let parsed = req.parse(&buf).unwrap();
        prop_assert_eq!(parsed, httparse::Status::Complete(buf.len()));
        prop_assert_eq!(req.method, Some("POST"));
        prop_assert_eq!(req.path, Some(path.as_str()));
        let mut back = HeaderMap::new();
        for h in req.headers.iter() {
            back.append(HeaderName::from_bytes(h.name.as_bytes()).unwrap(), HeaderValue::from_bytes(h.value).unwrap());
        }
        let framing_header = match framing {
            RequestFraming::Chunked => back.remove("transfer-encoding").map(|v| v == "chunked"),
            RequestFraming::Length(n) => back.remove("content-length").map(|v| v == n.to_string().as_str()),
            RequestFraming::Empty => back.remove("content-length").map(|v| v == "0"),
        };
        prop_assert_eq!(framing_header, Some(true));
        prop_assert_eq!(back, map);
    }

    #[test]
    fn arbitrary_bytes_never_panic(wire in prop::collection::vec(any::<u8>(), 0..400), step in 1usize..50) {
        let mut buf = BytesMut::from(&wire[..]);
        let _ = parse_response_head(&mut buf, &Method::GET, true);
        let mut d = BodyDecoder::new(ResponseFraming::Chunked);
        let mut buf = BytesMut::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf) {
                    Ok(Decoded::NeedMore) | Ok(Decoded::End) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }
}

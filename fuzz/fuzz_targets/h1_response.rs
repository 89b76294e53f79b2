//! A backend's HTTP/1.1 response as tandem-h1 reads it (head, 1xx skipped, body by its
//! framing, chunked with trailers), fed in pieces: never panics, never yields more body
//! than it was given, a Content-Length body is exactly its length, and a chunked body
//! re-encoded decodes to the same bytes.
#![no_main]

use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use tandem_h1::{
    parse_response_head, BodyDecoder, ChunkedEncoder, Decoded, H1Error, ResponseFraming,
};

/// The body's data and trailers; `Ok(None)` when the input ran out first.
fn body(
    d: &mut BodyDecoder,
    buf: &mut BytesMut,
    rest: &mut std::slice::Chunks<'_, u8>,
) -> Result<Option<(Vec<u8>, Option<http::HeaderMap>)>, H1Error> {
    let (mut data, mut trailers) = (Vec::new(), None);
    loop {
        match d.decode(buf)? {
            Decoded::Data(b) => data.extend_from_slice(&b),
            Decoded::Trailers(t) => trailers = Some(t),
            Decoded::End => return Ok(Some((data, trailers))),
            Decoded::NeedMore => match rest.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => {
                    return match d.eof()? {
                        Decoded::End => Ok(Some((data, trailers))),
                        _ => Ok(None),
                    }
                }
            },
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: the request's method, whether it asked for an upgrade, the read size.
    let Some((&ctl, wire)) = data.split_first() else {
        return;
    };
    let method = if ctl & 1 != 0 { Method::HEAD } else { Method::GET };
    let upgrade = ctl & 2 != 0;
    let step = usize::from(ctl >> 2) + 1;
    let mut rest = wire.chunks(step);
    let mut buf = BytesMut::new();
    let head = loop {
        match parse_response_head(&mut buf, &method, upgrade) {
            Ok(Some(h)) if h.informational => continue,
            Ok(Some(h)) => break h,
            Ok(None) => match rest.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return,
            },
            Err(_) => return,
        }
    };
    assert!(!head.parts.status.is_informational() || head.framing == ResponseFraming::Upgrade);
    let mut d = BodyDecoder::new(head.framing);
    let Ok(Some((got, trailers))) = body(&mut d, &mut buf, &mut rest) else {
        return;
    };
    assert!(got.len() <= wire.len());
    match head.framing {
        ResponseFraming::Length(n) => assert_eq!(got.len() as u64, n),
        ResponseFraming::Empty | ResponseFraming::Upgrade => assert!(got.is_empty()),
        ResponseFraming::Chunked => {
            let mut again = Vec::new();
            if !got.is_empty() {
                ChunkedEncoder::chunk_head(&mut again, got.len());
                again.extend_from_slice(&got);
                again.extend_from_slice(ChunkedEncoder::CHUNK_END);
            }
            ChunkedEncoder::last(&mut again, trailers.as_ref());
            let mut d = BodyDecoder::new(ResponseFraming::Chunked);
            let mut buf = BytesMut::from(&again[..]);
            let (back, _) = body(&mut d, &mut buf, &mut [].chunks(1))
                .expect("re-encoded chunks decode")
                .expect("re-encoded chunks end");
            assert_eq!(back, got);
        }
        ResponseFraming::Close => {}
    }
});

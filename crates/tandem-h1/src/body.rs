//! Response bodies cut out of the bytes read from a backend, by their framing.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

use crate::chunked::ChunkedDecoder;
use crate::{H1Error, ResponseFraming};

/// A piece of a response body.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// Trailer fields, after the last chunk; the body has ended.
    Trailers(HeaderMap),
    /// The body has ended.
    End,
    /// Read more from the backend.
    NeedMore,
}

/// The body decoder of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecoder {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
    Ended,
}

impl BodyDecoder {
    /// The decoder for a response framed as `framing`. An upgrade has no body: what
    /// follows its head belongs to the new protocol.
    pub fn new(framing: ResponseFraming) -> Self {
        match framing {
            ResponseFraming::Empty | ResponseFraming::Upgrade => BodyDecoder::Ended,
            ResponseFraming::Length(0) => BodyDecoder::Ended,
            ResponseFraming::Length(n) => BodyDecoder::Length(n),
            ResponseFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::default()),
            ResponseFraming::Close => BodyDecoder::Close,
        }
    }

    /// The next piece of the body from `buf` (taken off it).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        match self {
            BodyDecoder::Ended => Ok(Decoded::End),
            BodyDecoder::Length(remaining) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = (*remaining).min(buf.len() as u64);
                let data = buf.split_to(n as usize).freeze();
                *remaining -= n;
                if *remaining == 0 {
                    *self = BodyDecoder::Ended;
                }
                Ok(Decoded::Data(data))
            }
            BodyDecoder::Chunked(c) => {
                let d = c.decode(buf)?;
                if c.is_done() {
                    *self = BodyDecoder::Ended;
                }
                Ok(d)
            }
            BodyDecoder::Close if buf.is_empty() => Ok(Decoded::NeedMore),
            BodyDecoder::Close => Ok(Decoded::Data(buf.split().freeze())),
        }
    }

    /// The backend closed the connection (a read returned 0 bytes), with nothing left
    /// to decode: the end of a close-delimited body, an error for any other unfinished.
    pub fn eof(&mut self) -> Result<Decoded, H1Error> {
        match self {
            BodyDecoder::Ended => Ok(Decoded::End),
            BodyDecoder::Close => {
                *self = BodyDecoder::Ended;
                Ok(Decoded::End)
            }
            BodyDecoder::Length(n) => Err(H1Error::IncompleteBody(*n)),
            BodyDecoder::Chunked(_) => Err(H1Error::IncompleteBody(0)),
        }
    }

    pub fn is_ended(&self) -> bool {
        *self == BodyDecoder::Ended
    }

    /// Bytes the body still has to deliver, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length(n) => Some(*n),
            BodyDecoder::Ended => Some(0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_body_stops_at_its_length() {
        let mut d = BodyDecoder::new(ResponseFraming::Length(5));
        let mut buf = BytesMut::from(&b"hel"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"hel"))
        );
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::NeedMore);
        assert_eq!(d.remaining(), Some(2));
        buf.extend_from_slice(b"loHTTP");
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"lo"))
        );
        assert!(d.is_ended());
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"HTTP");
    }

    #[test]
    fn eof_ends_only_a_close_delimited_body() {
        let mut d = BodyDecoder::new(ResponseFraming::Close);
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"abc"))
        );
        assert_eq!(d.eof().unwrap(), Decoded::End);
        assert_eq!(
            BodyDecoder::new(ResponseFraming::Length(3))
                .eof()
                .unwrap_err(),
            H1Error::IncompleteBody(3)
        );
        assert!(BodyDecoder::new(ResponseFraming::Chunked).eof().is_err());
        assert_eq!(
            BodyDecoder::new(ResponseFraming::Empty).eof().unwrap(),
            Decoded::End
        );
    }

    #[test]
    fn no_body_framings_end_at_once() {
        for f in [
            ResponseFraming::Empty,
            ResponseFraming::Length(0),
            ResponseFraming::Upgrade,
        ] {
            let mut d = BodyDecoder::new(f);
            let mut buf = BytesMut::from(&b"rest"[..]);
            assert_eq!(d.decode(&mut buf).unwrap(), Decoded::End);
            assert_eq!(&buf[..], b"rest");
        }
    }
}

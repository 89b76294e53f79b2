//! Chunked transfer coding (RFC 9112 7.1): a decoder for response bodies, strict about
//! line endings and sizes, and the framing of request bodies of unknown length.

use bytes::{Buf, BytesMut};
use http::HeaderMap;

use crate::body::Decoded;
use crate::response::MAX_HEADERS;
use crate::H1Error;

/// Most bytes of chunk extensions on one chunk line (hyper allows 16 KiB in all).
const MAX_EXTENSION: usize = 4 * 1024;
/// Most bytes of trailer fields after the last chunk.
pub const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `digits` read so far.
    Size {
        value: u64,
        digits: u8,
    },
    /// Blanks after the size.
    SizeBlank {
        value: u64,
    },
    Extension {
        value: u64,
        len: usize,
    },
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the empty line that ends the message).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Decodes a chunked body as it arrives; data comes out without a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    trailers: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            trailers: Vec::new(),
        }
    }
}

fn bad(what: &'static str) -> H1Error {
    H1Error::Chunk(what)
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next piece of the body from `buf` (taken off it), or `NeedMore`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        loop {
            if let State::Data { remaining } = self.state {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = remaining.min(buf.len() as u64) as usize;
                let data = buf.split_to(n).freeze();
                self.state = if remaining == n as u64 {
                    State::DataCr
                } else {
                    State::Data {
                        remaining: remaining - n as u64,
                    }
                };
                return Ok(Decoded::Data(data));
            }
            if self.state == State::Done {
                return Ok(Decoded::End);
            }
            let Some(&b) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            if let Some(done) = self.step(b)? {
                return Ok(done);
            }
        }
    }

    /// One byte of framing; `Some` when the body has ended.
    fn step(&mut self, b: u8) -> Result<Option<Decoded>, H1Error> {
        self.state = match self.state {
            State::Size { value, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                    let value = value
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(d))
                        .ok_or(H1Error::ChunkSizeOverflow)?;
                    State::Size {
                        value,
                        digits: digits.saturating_add(1),
                    }
                }
                _ if digits == 0 => return Err(bad("chunk size missing")),
                b' ' | b'\t' => State::SizeBlank { value },
                b';' => State::Extension { value, len: 0 },
                b'\r' => State::SizeLf { value },
                b'\n' => return Err(bad("bare LF after a chunk size")),
                _ => return Err(bad("invalid chunk size")),
            },
            State::SizeBlank { value } => match b {
                b' ' | b'\t' => State::SizeBlank { value },
                b';' => State::Extension { value, len: 0 },
                b'\r' => State::SizeLf { value },
                _ => return Err(bad("invalid byte after a chunk size")),
            },
            State::Extension { value, len } => match b {
                b'\r' => State::SizeLf { value },
                b'\n' => return Err(bad("bare LF in a chunk extension")),
                _ if len >= MAX_EXTENSION => return Err(bad("chunk extension too long")),
                _ => State::Extension {
                    value,
                    len: len + 1,
                },
            },
            State::SizeLf { value } => match b {
                b'\n' if value == 0 => State::TrailerStart,
                b'\n' => State::Data { remaining: value },
                _ => return Err(bad("CR without LF after a chunk size")),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(bad("chunk data longer than its size")),
            },
            State::DataLf => match b {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err(bad("CR without LF after chunk data")),
            },
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                b'\n' => return Err(bad("bare LF in the trailers")),
                _ => {
                    self.push_trailer(b)?;
                    State::TrailerLine
                }
            },
            State::TrailerLine => match b {
                b'\r' => State::TrailerLf,
                b'\n' => return Err(bad("bare LF in the trailers")),
                _ => {
                    self.push_trailer(b)?;
                    State::TrailerLine
                }
            },
            State::TrailerLf => match b {
                b'\n' => {
                    self.push_trailer(b'\r')?;
                    self.push_trailer(b'\n')?;
                    State::TrailerStart
                }
                _ => return Err(bad("CR without LF in the trailers")),
            },
            State::EndLf => match b {
                b'\n' => {
                    self.state = State::Done;
                    return self.finish().map(Some);
                }
                _ => return Err(bad("CR without LF at the body's end")),
            },
            State::Data { .. } | State::Done => unreachable!("handled by decode"),
        };
        Ok(None)
    }

    fn push_trailer(&mut self, b: u8) -> Result<(), H1Error> {
        if self.trailers.len() >= MAX_TRAILERS {
            return Err(H1Error::TrailersTooLarge(MAX_TRAILERS));
        }
        self.trailers.push(b);
        Ok(())
    }

    /// The trailer fields, parsed as strictly as a head's, or the plain end.
    fn finish(&mut self) -> Result<Decoded, H1Error> {
        if self.trailers.is_empty() {
            return Ok(Decoded::End);
        }
        let mut text = std::mem::take(&mut self.trailers);
        text.extend_from_slice(b"\r\n");
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(&text, &mut slots) {
            Ok(httparse::Status::Complete((n, fields))) if n == text.len() => {
                let mut map = HeaderMap::with_capacity(fields.len());
                for f in fields {
                    let name = http::HeaderName::from_bytes(f.name.as_bytes())
                        .map_err(|_| H1Error::Trailer(f.name.to_string()))?;
                    let value = http::HeaderValue::from_bytes(f.value)
                        .map_err(|_| H1Error::Trailer(f.name.to_string()))?;
                    map.append(name, value);
                }
                Ok(Decoded::Trailers(map))
            }
            Ok(_) => Err(H1Error::Trailer("incomplete trailer section".into())),
            Err(e) => Err(H1Error::Trailer(e.to_string())),
        }
    }
}

/// The framing of a chunked request body.
pub struct ChunkedEncoder;

impl ChunkedEncoder {
    /// The line before `len` bytes of data (never 0: that is [`Self::last`]).
    pub fn chunk_head(out: &mut Vec<u8>, len: usize) {
        debug_assert!(len > 0);
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        let mut n = len;
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[n % 16];
            n /= 16;
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(&digits[i..]);
        out.extend_from_slice(b"\r\n");
    }

    /// What follows each chunk's data.
    pub const CHUNK_END: &'static [u8] = b"\r\n";

    /// The last chunk, with the request's trailers if any.
    pub fn last(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
        out.extend_from_slice(b"0\r\n");
        for (name, value) in trailers.into_iter().flatten() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes: the data, the trailers, and whether
    /// the body ended.
    pub(crate) fn decode_all(
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, bool, usize), H1Error> {
        let mut d = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let (mut data, mut trailers) = (Vec::new(), None);
        let mut fed = 0;
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            fed += piece.len();
            loop {
                match d.decode(&mut buf)? {
                    Decoded::Data(b) => data.extend_from_slice(&b),
                    Decoded::Trailers(t) => trailers = Some(t),
                    // What was not decoded: left in the buffer or not fed yet.
                    Decoded::End => {
                        return Ok((data, trailers, true, buf.len() + wire.len() - fed))
                    }
                    Decoded::NeedMore => break,
                }
            }
        }
        Ok((data, trailers, false, buf.len()))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers_in_any_split() {
        let wire = b"5;name=v\r\nhello\r\n6 \r\n world\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT";
        for step in 1..wire.len() {
            let (data, trailers, ended, left) = decode_all(wire, step).unwrap();
            assert_eq!(data, b"hello world");
            assert!(ended);
            assert_eq!(left, 4, "the next message's bytes stay in the buffer");
            let t = trailers.unwrap();
            assert_eq!(t["x-sum"], "1");
            assert_eq!(t["x-b"], "2");
        }
    }

    #[test]
    fn ends_without_trailers() {
        let (data, trailers, ended, _) = decode_all(b"A\r\n0123456789\r\n0\r\n\r\n", 3).unwrap();
        assert_eq!(data, b"0123456789");
        assert!(trailers.is_none() && ended);
    }

    #[test]
    fn incomplete_is_not_ended() {
        let (_, _, ended, _) = decode_all(b"5\r\nhel", 2).unwrap();
        assert!(!ended);
    }

    #[test]
    fn strict_framing() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"\r\n",
            b"x\r\n",
            b"5;a\nhello",
            b"0\r\nX-A: 1\n\r\n",
            b"0\r\n\n",
            b"0\r\nX-A: 1\r\n folded\r\n\r\n",
            b"0\r\nBad Name: 1\r\n\r\n",
            b"5 x\r\n",
        ] {
            assert!(
                decode_all(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunk_size_overflow_is_refused() {
        assert_eq!(
            decode_all(b"10000000000000000\r\n", 4).unwrap_err(),
            H1Error::ChunkSizeOverflow
        );
        // Leading zeros are fine.
        let (data, ..) = decode_all(b"000000000000000000001\r\na\r\n0\r\n\r\n", 4).unwrap();
        assert_eq!(data, b"a");
    }

    #[test]
    fn long_extensions_and_trailers_are_refused() {
        let mut ext = b"1;".to_vec();
        ext.extend(std::iter::repeat_n(b'a', MAX_EXTENSION + 1));
        assert!(decode_all(&ext, 1000).is_err());
        let mut tr = b"0\r\n".to_vec();
        for i in 0..2000 {
            tr.extend_from_slice(format!("x-{i}: vvvvvv\r\n").as_bytes());
        }
        assert_eq!(
            decode_all(&tr, 4096).unwrap_err(),
            H1Error::TrailersTooLarge(MAX_TRAILERS)
        );
    }

    #[test]
    fn encoder_output_decodes() {
        let mut wire = Vec::new();
        for piece in [&b"a"[..], &[7u8; 300][..], b"xyz"] {
            ChunkedEncoder::chunk_head(&mut wire, piece.len());
            wire.extend_from_slice(piece);
            wire.extend_from_slice(ChunkedEncoder::CHUNK_END);
        }
        let mut t = HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        ChunkedEncoder::last(&mut wire, Some(&t));
        assert!(wire.starts_with(b"1\r\na\r\n12c\r\n"));
        let (data, trailers, ended, _) = decode_all(&wire, 7).unwrap();
        assert_eq!(data.len(), 304);
        assert!(ended);
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
    }
}

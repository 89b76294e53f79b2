//! tandem's HTTP/1.1 codec, towards backends and towards clients, without I/O (RFC 9112).
//!
//! - [`encode_request_head`] writes a request head straight from its parts into one
//!   reusable buffer (no intermediate map), and says how the body is framed.
//! - [`parse_response_head`] parses a response head with httparse into
//!   [`http::response::Parts`], strictly (what hyper refuses, this refuses: invalid
//!   heads, obsolete line folding, bad or differing Content-Length, Content-Length with
//!   Transfer-Encoding), and decides the body's framing and whether the connection can
//!   carry another request.
//! - [`BodyDecoder`] cuts the response body out of the bytes read (Content-Length,
//!   chunked with trailers, or until the connection closes), without copying the data.
//! - [`ChunkedEncoder`] frames a request body of unknown length.
//!
//!
//! And the client side (tandem's HTTP/1.1 server):
//!
//! - [`parse_request_head`] parses a client's request head as strictly (see
//!   `server_request.rs` for what is refused), decides the body's framing and whether
//!   the client keeps the connection; the body is decoded by [`BodyDecoder`] too.
//! - [`encode_response_head`] writes a response head from its parts into one buffer and
//!   chooses its body's encoding (length, chunked by [`ChunkedEncoder`], or close).
//!
//! The drivers that move bytes between these and sockets live in tandem-http.

mod body;
mod chunked;
mod request;
mod response;
mod server_request;
mod server_response;

pub use body::{BodyDecoder, Decoded};
pub use chunked::ChunkedEncoder;
pub use request::{encode_request_head, RequestFraming};
pub use response::{parse_response_head, ParsedHead, ResponseFraming, MAX_HEADERS};
pub use server_request::{
    parse_request_head, HeadLimits, RequestBodyFraming, RequestError, RequestHead,
};
pub use server_response::{
    encode_refusal, encode_response_head, http_date, Answering, ResponseBodyEncoding,
};

/// Why a backend's response cannot be read: the backend's fault, never the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H1Error {
    #[error("invalid HTTP/1 response head: {0}")]
    Head(String),
    #[error("response head over {0} bytes")]
    HeadTooLarge(usize),
    #[error("invalid Content-Length in the response")]
    ContentLength,
    #[error("response has both Content-Length and Transfer-Encoding (ambiguous framing)")]
    LengthAndChunked,
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncodingHttp10,
    #[error("invalid chunk framing in the response body: {0}")]
    Chunk(&'static str),
    #[error("chunk size overflows")]
    ChunkSizeOverflow,
    #[error("trailers over {0} bytes")]
    TrailersTooLarge(usize),
    #[error("invalid trailer field: {0}")]
    Trailer(String),
    #[error(
        "the backend closed the connection before the body's end ({0} bytes missing or unknown)"
    )]
    IncompleteBody(u64),
    #[error("unexpected 101 Switching Protocols: the request asked for no upgrade")]
    UnexpectedUpgrade,
}

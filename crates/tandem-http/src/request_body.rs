//! Client request bodies, as the request path sees them: an HTTP/1.1 body decoded
//! straight from the client's socket by tandem's server (`server_h1`), or an HTTP/2
//! stream's body (hyper's).

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::server_h1::H1RequestBody;
use crate::upstream::BoxError;

/// A client's request body.
pub enum RequestBody {
    H1(H1RequestBody),
    H2(Incoming),
    /// No body (an HTTP/1.1 request without one).
    Empty,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            RequestBody::H1(b) => b.poll_frame(cx),
            RequestBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            RequestBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::H1(b) => b.is_end_stream(),
            RequestBody::H2(b) => b.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::H1(b) => b.size_hint(),
            RequestBody::H2(b) => b.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}

//! Response bodies that hold resources until the last byte went out: the backend lease
//! (so least-connections counts streaming responses) and the connection's in-flight mark.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Wraps a body and drops `hold` when the body is finished or dropped.
pub struct Holding<B, H> {
    inner: B,
    hold: Option<H>,
}

impl<B, H> Holding<B, H> {
    pub fn new(inner: B, hold: H) -> Self {
        Holding {
            inner,
            hold: Some(hold),
        }
    }
}

impl<B, H> Body for Holding<B, H>
where
    B: Body<Data = Bytes> + Unpin,
    H: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.hold = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An error reading the client's request body (bad chunk framing, a body cut short, the
/// client gone): the client's fault. It travels through the upstream exchange's error
/// chain, so a failed exchange can tell it from a backend failure.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub struct ClientBodyError(#[source] pub crate::upstream::BoxError);

/// Whether a failed upstream exchange failed because the client's body did.
pub fn client_body_failed<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ClientBodyError> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<ClientBodyError>() {
            return Some(found);
        }
        cause = c.source();
    }
    None
}

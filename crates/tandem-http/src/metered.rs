//! What a request actually moved, counted as the bytes flow: the request body read from
//! the client ([`CountedBody`]) and the response body handed to the client ([`Metered`]).
//! Content-Length alone cannot say this for chunked or unknown-length bodies, nor for a
//! response the client abandoned half way; so the access log line, the byte counters and
//! the request-duration histogram are all written when the response body ends.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::metrics::histogram::Histogram;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The client-side request duration histogram of one listener. The buckets are the
/// backend response-time histogram's (1 ms to 30 s), so the two can be read side by side.
#[derive(Clone, Debug)]
pub struct RequestDurations(Histogram);

impl Default for RequestDurations {
    fn default() -> Self {
        RequestDurations(Histogram::new(tandem_pool::RESPONSE_BUCKETS))
    }
}

impl RequestDurations {
    pub fn observe(&self, elapsed: Duration) {
        self.0.observe(elapsed.as_secs_f64());
    }

    /// A handle on the live histogram (clones share the counts).
    pub fn histogram(&self) -> &Histogram {
        &self.0
    }
}

/// Counts the data bytes of a request body into a tally shared with the request's end.
pub(crate) struct CountedBody<B> {
    inner: B,
    tally: Arc<AtomicU64>,
}

impl<B> CountedBody<B> {
    pub fn new(inner: B, tally: Arc<AtomicU64>) -> Self {
        CountedBody { inner, tally }
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.tally.fetch_add(data.len() as u64, Relaxed);
            }
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

/// What runs once when a response body is over, with the body bytes it sent.
pub(crate) trait BodyEnd: Unpin {
    fn body_ended(self, sent: u64);
}

/// A response body that counts the data bytes it yields and calls its [`BodyEnd`] once:
/// at the end of the stream, on an error, or when dropped early (the client went away,
/// or hyper stopped after the last byte of a known length).
pub(crate) struct Metered<B, E: BodyEnd> {
    inner: B,
    sent: u64,
    end: Option<E>,
}

impl<B, E: BodyEnd> Metered<B, E> {
    pub fn new(inner: B, end: E) -> Self {
        Metered {
            inner,
            sent: 0,
            end: Some(end),
        }
    }

    fn finish(&mut self) {
        if let Some(end) = self.end.take() {
            end.body_ended(self.sent);
        }
    }
}

impl<B, E: BodyEnd> Drop for Metered<B, E> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B, E> Body for Metered<B, E>
where
    B: Body<Data = Bytes> + Unpin,
    E: BodyEnd,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::sync::Mutex;

    struct Record(Arc<Mutex<Vec<u64>>>);

    impl BodyEnd for Record {
        fn body_ended(self, sent: u64) {
            self.0.lock().unwrap().push(sent);
        }
    }

    /// A body of several data frames with no known length, like a chunked response.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn chunks(parts: &[&'static str]) -> Chunks {
        Chunks(
            parts
                .iter()
                .map(|p| Bytes::from_static(p.as_bytes()))
                .collect(),
        )
    }

    #[tokio::test]
    async fn a_streamed_body_reports_its_bytes_once_at_the_end() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let body = Metered::new(chunks(&["abc", "defgh", ""]), Record(seen.clone()));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcdefgh");
        assert_eq!(*seen.lock().unwrap(), vec![8], "once, after the drop too");
    }

    #[tokio::test]
    async fn an_abandoned_body_reports_what_went_out_when_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut body = Metered::new(chunks(&["abcd", "efgh"]), Record(seen.clone()));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.data_ref().map(|d| d.len()), Some(4));
        assert!(seen.lock().unwrap().is_empty(), "not over yet");
        drop(body);
        assert_eq!(*seen.lock().unwrap(), vec![4]);
    }

    #[tokio::test]
    async fn a_request_body_is_tallied() {
        let tally = Arc::new(AtomicU64::new(0));
        let body = CountedBody::new(chunks(&["12345", "678"]), tally.clone());
        body.collect().await.unwrap();
        assert_eq!(tally.load(Relaxed), 8);
    }
}

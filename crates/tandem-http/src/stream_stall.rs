//! HTTP/2 streams the client gives no flow-control window (it never sends WINDOW_UPDATE,
//! or sets SETTINGS_INITIAL_WINDOW_SIZE to 0). hyper then writes nothing to the socket for
//! that stream, so the socket-level send timeout ([`crate::idle`]) never sees a blocked
//! write; the stream would hold its backend connection for as long as the client likes.
//!
//! [`WindowWatched`] wraps an HTTP/2 response body: from the start, and again each time
//! it has handed hyper a chunk, the stream waits for the client until hyper asks for the
//! next chunk (hyper polls the body only when the stream has send capacity, so with an
//! initial window of 0 it never asks at all). [`StreamStalls`] keeps, per connection,
//! since when each such stream has been waiting; the connection's task closes the
//! connection once the oldest has waited `send_timeout`.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The streams of one connection that wait for the client's window, and since when.
#[derive(Default)]
pub struct StreamStalls {
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Instant>>,
    started: Notify,
}

impl StreamStalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_began(&self, id: u64) {
        let first = {
            let mut waiting = self.lock();
            waiting.insert(id, Instant::now());
            waiting.len() == 1
        };
        if first {
            self.started.notify_one();
        }
    }

    fn wait_ended(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn oldest(&self) -> Option<Instant> {
        self.lock().values().min().copied()
    }

    /// Resolves once some stream has waited `limit` for the client to open its window.
    pub async fn stalled(&self, limit: Duration) {
        loop {
            let started = self.started.notified();
            let Some(since) = self.oldest() else {
                started.await;
                continue;
            };
            let deadline = since + limit;
            if Instant::now() >= deadline {
                return;
            }
            // Streams only join later (with later times) or leave: look again at the
            // deadline of the oldest one as it is now.
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// An HTTP/2 response body that reports to [`StreamStalls`] while hyper holds back its
/// next chunk for want of window.
pub struct WindowWatched<B> {
    inner: B,
    stalls: Arc<StreamStalls>,
    id: u64,
    waiting: bool,
}

impl<B> WindowWatched<B> {
    pub fn new(inner: B, stalls: Arc<StreamStalls>) -> Self {
        let id = stalls.next_id.fetch_add(1, Ordering::Relaxed);
        // Until hyper first asks for data, the stream waits for a window too.
        stalls.wait_began(id);
        WindowWatched {
            inner,
            stalls,
            id,
            waiting: true,
        }
    }
}

impl<B> Body for WindowWatched<B>
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
        if this.waiting {
            // hyper asks for more: the client's window let the last chunk out.
            this.waiting = false;
            this.stalls.wait_ended(this.id);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let sent_data = matches!(&polled, Poll::Ready(Some(Ok(f))) if f.data_ref().is_some_and(|d| !d.is_empty()));
        if sent_data && !this.inner.is_end_stream() {
            this.waiting = true;
            this.stalls.wait_began(this.id);
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

impl<B> Drop for WindowWatched<B> {
    fn drop(&mut self) {
        if self.waiting {
            self.stalls.wait_ended(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body of `n` ten-byte chunks, each ready at once.
    struct Chunks(usize);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let left = &mut self.get_mut().0;
            if *left == 0 {
                return Poll::Ready(None);
            }
            *left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"0123456789")))))
        }
    }

    #[tokio::test]
    async fn a_stream_not_polled_after_a_chunk_stalls_and_one_polled_again_does_not() {
        let stalls = Arc::new(StreamStalls::default());
        let mut body = WindowWatched::new(Chunks(3), stalls.clone());
        // Not asked for anything yet: waiting for a window already.
        assert!(stalls.oldest().is_some());
        // One chunk out, then hyper waits for the window.
        body.frame().await.unwrap().unwrap();
        let first = stalls.oldest().expect("waiting after a chunk");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The window opened: the next chunk is asked for; the wait starts again.
        body.frame().await.unwrap().unwrap();
        assert!(stalls.oldest().unwrap() > first);
        let limit = Duration::from_millis(200);
        let started = Instant::now();
        stalls.stalled(limit).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(2));
        drop(body);
        assert!(stalls.oldest().is_none(), "a dropped stream waits no more");
    }

    #[tokio::test]
    async fn the_last_chunk_is_no_wait() {
        let stalls = Arc::new(StreamStalls::default());
        let mut body = WindowWatched::new(Chunks(1), stalls.clone());
        body.frame().await.unwrap().unwrap();
        // Chunks(1) is not end-of-stream until polled again: hyper polls it for the end.
        assert!(body.frame().await.is_none());
        assert!(stalls.oldest().is_none());
    }
}

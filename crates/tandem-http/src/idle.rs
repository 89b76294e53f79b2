//! Keep-alive idle tracking per client connection: a connection is idle when no request is
//! in flight; after `keepalive_timeout` of idleness it is closed gracefully.
//!
//! Also the header timeout: a request head is awaited from the accept (the first request)
//! or from the first byte after a response (the next ones), and must be complete within
//! `header_timeout`, and an idle keep-alive connection is not timed as a slow head.
//! [`Watched`] reports the bytes read.
//!
//! And the send timeout: [`Watched`] also notes when a write to the client could not
//! proceed (the client's receive window and our socket buffer are full) and when one did
//! again, so a client that stops reading is found and closed, for HTTP/1 and HTTP/2 alike.

use bytes::Bytes;
use std::cell::RefCell;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

pub struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `origin` when the last request finished (or the connection began).
    idle_since_ms: AtomicU64,
    /// Milliseconds since `origin`, plus one, when the awaited request head began (0: no
    /// head is awaited). A new connection awaits its first head from the start.
    head_since: AtomicU64,
    head_started: Notify,
    /// Milliseconds since `origin`, plus one, when writes to the client last stopped
    /// proceeding (0: the last write went through).
    blocked_since: AtomicU64,
    blocked: Notify,
    /// HTTP/2 streams waiting for the client to open its flow-control window.
    pub streams: Arc<crate::stream_stall::StreamStalls>,
}

/// Marks one request in flight until dropped (with its response body).
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms
            .store(a.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_since: AtomicU64::new(1),
            head_started: Notify::new(),
            blocked_since: AtomicU64::new(0),
            blocked: Notify::new(),
            streams: Arc::default(),
        })
    }

    /// A write to the client returned Pending: the client is not reading (for now).
    fn write_blocked(&self) {
        if self.blocked_since.load(Ordering::Relaxed) == 0 {
            let now = self.origin.elapsed().as_millis() as u64 + 1;
            self.blocked_since.store(now, Ordering::Relaxed);
            self.blocked.notify_one();
        }
    }

    /// A write to the client went through: whatever stall there was is over.
    fn write_proceeded(&self) {
        if self.blocked_since.load(Ordering::Relaxed) != 0 {
            self.blocked_since.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the last write to the client could not proceed (its socket is full).
    pub fn writes_blocked(&self) -> bool {
        self.blocked_since.load(Ordering::Relaxed) != 0
    }

    /// Resolves once writes to the client have made no progress for `limit`.
    pub async fn send_stalled(&self, limit: Duration) {
        loop {
            let blocked = self.blocked.notified();
            let since = self.blocked_since.load(Ordering::Relaxed);
            if since == 0 {
                blocked.await;
                continue;
            }
            let deadline = self.origin + Duration::from_millis(since - 1) + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        // A request began: its head is complete.
        self.head_since.store(0, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Bytes came from the client: with no request in flight, they begin the next head.
    /// (Also told by the HTTP/1 loop when a pipelined head was read with the last request.)
    pub fn bytes_in(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let now = self.origin.elapsed().as_millis() as u64 + 1;
            if self
                .head_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                self.head_started.notify_one();
            }
        }
    }

    /// HTTP/2: no heads to time (streams carry headers; idleness is the keep-alive's).
    fn no_heads(&self) {
        self.head_since.store(0, Ordering::Relaxed);
    }

    /// Resolves once a request head has been awaited for `limit` without completing.
    pub async fn head_overdue(&self, limit: Duration) {
        loop {
            let started = self.head_started.notified();
            let since = self.head_since.load(Ordering::Relaxed);
            if since == 0 || self.in_flight.load(Ordering::Relaxed) > 0 {
                // No head awaited: the next one's first byte tells (`bytes_in`).
                started.await;
                continue;
            }
            let deadline = self.origin + Duration::from_millis(since - 1) + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Resolves once the connection has been idle for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let since =
                self.origin + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
            let deadline = since + limit;
            if self.in_flight.load(Ordering::Relaxed) == 0 && Instant::now() >= deadline {
                return;
            }
            // While busy, look again after another period; when idle, wake at the deadline.
            let wake = if self.in_flight.load(Ordering::Relaxed) > 0 {
                Instant::now() + limit
            } else {
                deadline
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

thread_local! {
    /// Where a connection's next bytes are read: one buffer per worker thread, not one
    /// per connection (see [`Watched::poll_read_into`]).
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; 16 * 1024].into_boxed_slice());
}

/// A client connection that reports the bytes it reads to the connection's [`Activity`].
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    /// Bytes of the HTTP/2 preface matched so far; `usize::MAX` once it is HTTP/1.
    preface: usize,
    /// Bytes already read from the client and not yet given to the reader: what was read
    /// to tell HTTP/2 from HTTP/1, or what the client sent after a request that
    /// upgraded. Served before the socket is read again.
    replay: Bytes,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched {
            inner,
            activity,
            preface: 0,
            replay: Bytes::new(),
        }
    }

    /// Puts bytes back in front of what is still to be read.
    pub fn unread(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.replay = if self.replay.is_empty() {
            bytes
        } else {
            [bytes.as_ref(), self.replay.as_ref()].concat().into()
        };
    }

    /// The bytes read and not yet given to the reader.
    pub fn pending(&self) -> &[u8] {
        &self.replay
    }
}

impl<S: AsyncRead + Unpin> Watched<S> {
    /// Waits for the client's next bytes without a buffer of the connection's own: reads
    /// into the worker thread's scratch buffer and keeps only what arrived (behind what
    /// was pending). Ready(Ok(0)): the client closed its side.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut buf = ReadBuf::new(scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let got = buf.filled();
                    let n = got.len();
                    self.replay = if self.replay.is_empty() {
                        Bytes::copy_from_slice(got)
                    } else {
                        [self.replay.as_ref(), got].concat().into()
                    };
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Reads the client's next bytes and appends them to `buf`, which grows only by what
    /// arrived (read through the worker thread's scratch buffer): a connection's buffer
    /// stays the size of its message. Ready(Ok(0)): the client closed its side.
    pub fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut bytes::BytesMut,
    ) -> Poll<std::io::Result<usize>> {
        if !self.replay.is_empty() {
            let bytes = std::mem::take(&mut self.replay);
            self.observe(&bytes);
            buf.extend_from_slice(&bytes);
            return Poll::Ready(Ok(bytes.len()));
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let mut read = ReadBuf::new(scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let got = read.filled();
                    self.observe(got);
                    buf.extend_from_slice(got);
                    Poll::Ready(Ok(got.len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    fn observe(&mut self, bytes: &[u8]) {
        if self.preface < H2_PREFACE.len() {
            let take = bytes.len().min(H2_PREFACE.len() - self.preface);
            if bytes[..take] == H2_PREFACE[self.preface..self.preface + take] {
                self.preface += take;
                if self.preface == H2_PREFACE.len() {
                    self.activity.no_heads();
                }
                return;
            }
            self.preface = usize::MAX;
        }
        if self.preface == usize::MAX {
            self.activity.bytes_in();
        }
    }
}

impl<S> Watched<S> {
    fn watch_write(&self, polled: &Poll<std::io::Result<usize>>) {
        match polled {
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.write_proceeded(),
            _ => {}
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let take = this.replay.len().min(buf.remaining());
            let bytes = this.replay.split_to(take);
            buf.put_slice(&bytes);
            this.observe(&bytes);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.observe(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch_write(&polled);
        polled
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        // TLS flushes its buffered records here: a flush that waits is a stalled reader too.
        match polled {
            Poll::Pending => this.activity.write_blocked(),
            Poll::Ready(Ok(())) => this.activity.write_proceeded(),
            Poll::Ready(Err(_)) => {}
        }
        polled
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch_write(&polled);
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

//! The client connection's shared state, and request bodies decoded straight from its
//! socket by whoever polls them (the request's task, or hyper's HTTP/2 client towards a
//! backend): no channel and no copy between the socket and the backend.

use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use tandem_h1::{BodyDecoder, Decoded, H1Error};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::idle::Watched;
use crate::upstream::BoxError;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A client connection between its loop (heads, responses) and its request's body.
pub(crate) struct Shared<S> {
    /// None once handed to an upgrade tunnel.
    pub io: Option<Watched<S>>,
    /// What was read and not yet used: the head being read, body bytes, a pipelined
    /// request. Empty (no allocation) while the connection is idle.
    pub read_buf: BytesMut,
    /// The current request's body; `Ended` between requests.
    pub decoder: BodyDecoder,
    /// The body failed (bad framing, cut short): the connection cannot carry more.
    pub failed: bool,
    /// Bytes of a `100 Continue` written so far, while one is owed (the client sent
    /// `Expect: 100-continue`) and the body has not been asked for yet.
    pub continue_sent: Option<usize>,
    /// The response head has gone out: a 100 is no longer sent.
    pub responding: bool,
}

pub(crate) type SharedConn<S> = Arc<Mutex<Shared<S>>>;

pub(crate) fn lock<S>(shared: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S> Shared<S> {
    pub fn new(io: Watched<S>) -> Self {
        Shared {
            io: Some(io),
            read_buf: BytesMut::new(),
            decoder: BodyDecoder::Ended,
            failed: false,
            continue_sent: None,
            responding: false,
        }
    }

    /// The request body was read to its end, cleanly: the next bytes are a new request.
    pub fn body_done(&self) -> bool {
        self.decoder.is_ended() && !self.failed
    }
}

/// Why a client's request body could not be read: the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("invalid chunk framing: {0}")]
    Framing(#[source] H1Error),
    #[error("the client closed the connection before the body's end")]
    CutShort,
    #[error("reading the request body: {0}")]
    Io(#[source] std::io::Error),
    #[error("the connection was closed")]
    Gone,
}

/// What a request body needs of its connection, whatever the stream's type.
trait Source: Send + Sync {
    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>;
    fn remaining(&self) -> Option<u64>;
    fn ended(&self) -> bool;
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Source for Mutex<Shared<S>> {
    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut guard = lock(self);
        let sh = &mut *guard;
        if sh.failed {
            return Poll::Ready(None);
        }
        if let Some(sent) = sh.continue_sent {
            if !sh.responding {
                if let Err(e) = ready!(poll_continue(sh, sent, cx)) {
                    return fail(sh, RequestBodyError::Io(e));
                }
            }
            sh.continue_sent = None;
        }
        loop {
            let decoded = match sh.decoder.decode(&mut sh.read_buf) {
                Ok(d) => d,
                Err(e) => return fail(sh, RequestBodyError::Framing(e)),
            };
            match decoded {
                Decoded::Data(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Decoded::Trailers(t) => return Poll::Ready(Some(Ok(Frame::trailers(t)))),
                Decoded::End => return Poll::Ready(None),
                Decoded::NeedMore => {}
            }
            let Some(io) = sh.io.as_mut() else {
                return fail(sh, RequestBodyError::Gone);
            };
            match ready!(io.poll_read_into(cx, &mut sh.read_buf)) {
                Ok(0) => return fail(sh, RequestBodyError::CutShort),
                Ok(_) => {}
                Err(e) => return fail(sh, RequestBodyError::Io(e)),
            }
        }
    }

    fn remaining(&self) -> Option<u64> {
        let sh = lock(self);
        if sh.failed {
            Some(0)
        } else {
            sh.decoder.remaining()
        }
    }

    fn ended(&self) -> bool {
        let sh = lock(self);
        sh.failed || sh.decoder.is_ended()
    }
}

/// Writes the owed `100 Continue` (from byte `sent` on) and flushes it.
fn poll_continue<S: AsyncWrite + Unpin>(
    sh: &mut Shared<S>,
    mut sent: usize,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>> {
    let Some(io) = sh.io.as_mut() else {
        return Poll::Ready(Err(std::io::ErrorKind::NotConnected.into()));
    };
    while sent < CONTINUE.len() {
        match ready!(Pin::new(&mut *io).poll_write(cx, &CONTINUE[sent..])) {
            Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                sent += n;
                sh.continue_sent = Some(sent);
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Pin::new(io).poll_flush(cx)
}

fn fail<S>(
    sh: &mut Shared<S>,
    e: RequestBodyError,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    sh.failed = true;
    sh.decoder = BodyDecoder::Ended;
    Poll::Ready(Some(Err(Box::new(e))))
}

/// An HTTP/1.1 request body with bytes to come, read from the client's connection.
pub struct H1RequestBody {
    source: Arc<dyn Source>,
}

impl H1RequestBody {
    pub(crate) fn new<S>(shared: SharedConn<S>) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        H1RequestBody { source: shared }
    }

    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.source.poll_frame(cx)
    }

    pub fn is_end_stream(&self) -> bool {
        self.source.ended()
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.source.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

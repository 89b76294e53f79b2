//! Backend response bodies. An HTTP/1.1 body is read and decoded straight from the
//! backend's socket by whoever polls it (the client's connection), and gives the
//! connection back to its pool at a clean end; an HTTP/2 body is hyper's.

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tandem_h1::{BodyDecoder, Decoded, H1Error, ResponseFraming};

use crate::upstream::{BoxError, UpstreamBody};
use crate::upstream_h1::{H1Conn, Upload};
use crate::upstream_pool::H1Pool;

/// A backend failed while sending a response body (cut short, bad framing, I/O error).
#[derive(Debug, thiserror::Error)]
pub enum ResponseBodyError {
    #[error("response body from {0}: {1}")]
    Framing(SocketAddr, #[source] H1Error),
    #[error("reading the response body from {0}: {1}")]
    Io(SocketAddr, #[source] std::io::Error),
}

/// An HTTP/1.1 response body on its connection.
pub struct H1Body {
    conn: Option<H1Conn>,
    decoder: BodyDecoder,
    addr: SocketAddr,
    /// Where the connection goes at the body's clean end; None: closed then.
    back: Option<Arc<H1Pool>>,
    /// The rest of the request body, when the backend answered before it was all sent.
    upload: Option<(Upload, Option<UpstreamBody>)>,
}

impl H1Body {
    pub(crate) fn new(
        conn: H1Conn,
        framing: ResponseFraming,
        addr: SocketAddr,
        back: Option<Arc<H1Pool>>,
        upload: Option<(Upload, Option<UpstreamBody>)>,
    ) -> Self {
        let mut body = H1Body {
            conn: Some(conn),
            decoder: BodyDecoder::new(framing),
            addr,
            back,
            upload,
        };
        if body.decoder.is_ended() {
            // No body at all (204, 304, HEAD, Content-Length: 0): it may never be polled.
            body.release();
        }
        body
    }

    /// The body has ended: the connection goes back to the pool when it may carry
    /// another request (the whole request sent, nothing unread after the body), else it
    /// closes.
    fn release(&mut self) {
        let conn = self.conn.take();
        if self.upload.take().is_some() {
            self.back = None;
        }
        if let (Some(conn), Some(pool)) = (conn, self.back.take()) {
            if conn.read_buf.is_empty() {
                pool.put(self.addr, conn);
            }
        }
    }

    fn fail(&mut self, e: ResponseBodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        self.back = None;
        self.decoder = BodyDecoder::Ended;
        Poll::Ready(Some(Err(Box::new(e))))
    }

    /// Sends more of the request body, if the backend answered before it was all sent.
    /// A failure only stops the upload (the backend may have stopped reading after an
    /// early answer); the connection is then not reused.
    fn poll_upload(&mut self, cx: &mut Context<'_>) {
        let (Some(conn), Some((up, body))) = (self.conn.as_mut(), self.upload.as_mut()) else {
            return;
        };
        match up.poll(conn, body, self.addr, cx) {
            Ok(_) if up.is_complete() => self.upload = None,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(backend = %self.addr, error = %e, "rest of the request body not sent after an early response");
                self.upload = None;
                self.back = None;
            }
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            self.poll_upload(cx);
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let decoded = match self.decoder.decode(&mut conn.read_buf) {
                Ok(d) => d,
                Err(e) => return self.fail(ResponseBodyError::Framing(self.addr, e)),
            };
            let frame = match decoded {
                Decoded::Data(data) => Frame::data(data),
                Decoded::Trailers(t) => Frame::trailers(t),
                Decoded::End => {
                    self.release();
                    return Poll::Ready(None);
                }
                Decoded::NeedMore => {
                    match ready!(conn.poll_read(cx)) {
                        Ok(0) => match self.decoder.eof() {
                            Ok(_) => {
                                // A close-delimited body: its end, and the connection's.
                                self.conn = None;
                                return Poll::Ready(None);
                            }
                            Err(e) => return self.fail(ResponseBodyError::Framing(self.addr, e)),
                        },
                        Ok(_) => continue,
                        Err(e) => return self.fail(ResponseBodyError::Io(self.addr, e)),
                    }
                }
            };
            if self.decoder.is_ended() {
                // hyper's server stops polling once a body says it has ended (a known
                // length fully read): give the connection back with the last frame.
                self.release();
            }
            return Poll::Ready(Some(Ok(frame)));
        }
    }
}

enum Inner {
    H1(H1Body),
    H2(Incoming),
    Empty,
}

/// A backend's response body; at its clean end an HTTP/1.1 connection returns to its
/// pool.
pub struct PooledBody(Inner);

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::H1(_) => "PooledBody(HTTP/1.1)",
            Inner::H2(_) => "PooledBody(HTTP/2)",
            Inner::Empty => "PooledBody(empty)",
        })
    }
}

impl PooledBody {
    pub(crate) fn h1(body: H1Body) -> Self {
        PooledBody(Inner::H1(body))
    }

    pub fn h2(body: Incoming) -> Self {
        PooledBody(Inner::H2(body))
    }

    /// No body (a 101's: what follows belongs to the upgraded stream).
    pub fn empty() -> Self {
        PooledBody(Inner::Empty)
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().0 {
            Inner::H1(b) => b.poll_frame(cx),
            Inner::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::H1(b) => b.conn.is_none() || b.decoder.is_ended(),
            Inner::H2(b) => b.is_end_stream(),
            Inner::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::H1(b) => match b.decoder.remaining() {
                Some(n) if b.conn.is_some() => SizeHint::with_exact(n),
                Some(_) => SizeHint::with_exact(0),
                None => SizeHint::default(),
            },
            Inner::H2(b) => b.size_hint(),
            Inner::Empty => SizeHint::with_exact(0),
        }
    }
}

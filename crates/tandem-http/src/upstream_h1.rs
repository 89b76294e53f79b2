//! One HTTP/1.1 exchange with a backend, driven inside the request's own task (no
//! connection task, no dispatch channel): the request head is written from the request's
//! parts with tandem-h1's encoder, the body streamed after it, and the response head read
//! at the same time, so a backend that answers before the request body is finished is
//! heard at once (the rest of the body then goes out as the response body is read).

use bytes::BytesMut;
use hyper::body::Body;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tandem_h1::{ChunkedEncoder, H1Error, ParsedHead, RequestFraming};
use tokio::io::AsyncWrite;

use crate::upstream::{BoxError, Stream, UpstreamBody};

/// Largest response head a backend may send (as hyper's buffer limit was: 16 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// What one read asks for at most; also the largest body piece handed on.
const READ_CHUNK: usize = 16 * 1024;
/// Request body bytes gathered before a write (the head and a small body go in one).
const WRITE_GATHER: usize = 16 * 1024;

/// A backend connection, between exchanges or during one.
pub struct H1Conn {
    pub io: Stream,
    /// Bytes read and not yet decoded: the response's, never a next one's.
    pub read_buf: BytesMut,
    /// The request head and the body pieces being written.
    write_buf: Vec<u8>,
}

/// Why an exchange failed, and whose fault it was.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The client's request body failed (malformed, over the limit, the client gone).
    #[error("request body: {0}")]
    ClientBody(BoxError),
    #[error("writing the request to {0}: {1}")]
    Write(SocketAddr, #[source] io::Error),
    #[error("reading the response from {0}: {1}")]
    Read(SocketAddr, #[source] io::Error),
    #[error("{0} closed the connection before a response")]
    Closed(SocketAddr),
    #[error("response from {0}: {1}")]
    Protocol(SocketAddr, #[source] H1Error),
}

/// A response head and what the exchange left of the request.
pub struct Answered {
    pub head: ParsedHead,
    /// The rest of the request body, when the backend answered before it was sent: it
    /// keeps going out while the response body is read (as hyper's client did, for
    /// backends that stream both ways); None once the whole request went out.
    pub upload: Option<Upload>,
}

/// The outcome of a failed exchange as far as a retry is concerned.
pub struct Failed {
    pub error: ExchangeError,
    /// Nothing of the request body was taken and no response byte came: the request can
    /// go again on another connection.
    pub untouched: bool,
}

impl H1Conn {
    pub fn new(io: Stream) -> Self {
        H1Conn {
            io,
            read_buf: BytesMut::new(),
            write_buf: Vec::with_capacity(512),
        }
    }

    /// The buffer the next request head is encoded into (cleared).
    pub fn head_buf(&mut self) -> &mut Vec<u8> {
        self.write_buf.clear();
        &mut self.write_buf
    }

    /// Whether an idle connection is still usable: the backend has not closed it nor
    /// sent anything unasked. Polls once without waiting.
    pub fn is_usable(&mut self) -> bool {
        if !self.read_buf.is_empty() {
            return false;
        }
        // A byte's room: anything the backend sent here makes the connection unusable.
        let mut probe = [0u8; 1];
        let mut buf = tokio::io::ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(
            tokio::io::AsyncRead::poll_read(Pin::new(&mut self.io), &mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// Reads what the backend sent into `read_buf`: `Ok(0)` when it closed.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
            self.read_buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf)
    }

    /// Writes the encoded head (`head_buf`) and `body`, framed as `framing`, while
    /// reading the response head; informational responses (1xx but 101) are skipped.
    pub async fn exchange(
        &mut self,
        addr: SocketAddr,
        body: &mut Option<UpstreamBody>,
        framing: RequestFraming,
        method: &http::Method,
        upgrade: bool,
    ) -> Result<Answered, Failed> {
        let mut x = Exchange {
            conn: self,
            addr,
            body,
            method,
            upgrade,
            up: Upload {
                framing,
                written: 0,
                body_done: false,
                body_taken: false,
                complete: false,
            },
            response_seen: false,
        };
        poll_fn(|cx| x.poll(cx)).await
    }
}

/// A request on its way out: the head and body bytes in the connection's write buffer,
/// and how far they went.
pub struct Upload {
    framing: RequestFraming,
    /// Bytes of `write_buf` already written.
    written: usize,
    /// The body's last frame is encoded in `write_buf`.
    body_done: bool,
    body_taken: bool,
    /// Everything is written and flushed.
    complete: bool,
}

struct Exchange<'a> {
    conn: &'a mut H1Conn,
    addr: SocketAddr,
    body: &'a mut Option<UpstreamBody>,
    method: &'a http::Method,
    upgrade: bool,
    up: Upload,
    response_seen: bool,
}

impl Exchange<'_> {
    fn fail(&self, error: ExchangeError) -> Failed {
        let untouched = !self.up.body_taken
            && !self.response_seen
            && !matches!(error, ExchangeError::ClientBody(_));
        Failed { error, untouched }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Answered, Failed>> {
        loop {
            let mut progress = false;
            if !self.up.complete {
                let wrote = self.up.poll(self.conn, self.body, self.addr, cx);
                progress |= wrote.map_err(|e| self.fail(e))?;
            }
            match self.poll_read_side(cx) {
                Poll::Ready(Ok(Some(head))) => {
                    let upload = (!self.up.complete).then_some(Upload { ..self.up });
                    return Poll::Ready(Ok(Answered { head, upload }));
                }
                Poll::Ready(Ok(None)) => progress = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.fail(e))),
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// `Ready(Some)`: the final response head. `Ready(None)`: bytes came, look again.
    fn poll_read_side(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<ParsedHead>, ExchangeError>> {
        while !self.conn.read_buf.is_empty() {
            let parsed =
                tandem_h1::parse_response_head(&mut self.conn.read_buf, self.method, self.upgrade);
            match parsed.map_err(|e| ExchangeError::Protocol(self.addr, e))? {
                Some(head) if head.informational => continue,
                Some(head) => return Poll::Ready(Ok(Some(head))),
                None if self.conn.read_buf.len() >= MAX_HEAD_BYTES => {
                    return Poll::Ready(Err(ExchangeError::Protocol(
                        self.addr,
                        H1Error::HeadTooLarge(MAX_HEAD_BYTES),
                    )))
                }
                None => break,
            }
        }
        match ready!(self.conn.poll_read(cx)) {
            Ok(0) => Poll::Ready(Err(ExchangeError::Closed(self.addr))),
            Ok(_) => {
                self.response_seen = true;
                Poll::Ready(Ok(None))
            }
            Err(e) => Poll::Ready(Err(ExchangeError::Read(self.addr, e))),
        }
    }
}

impl Upload {
    /// Moves the request forward; `true` when something happened.
    pub fn poll(
        &mut self,
        conn: &mut H1Conn,
        body: &mut Option<UpstreamBody>,
        addr: SocketAddr,
        cx: &mut Context<'_>,
    ) -> Result<bool, ExchangeError> {
        let mut progress = false;
        loop {
            self.gather_body(&mut conn.write_buf, body, cx, &mut progress)?;
            let buf = &conn.write_buf;
            if self.written < buf.len() {
                match Pin::new(&mut conn.io).poll_write(cx, &buf[self.written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Err(ExchangeError::Write(addr, io::ErrorKind::WriteZero.into()))
                    }
                    Poll::Ready(Ok(n)) => {
                        progress = true;
                        self.written += n;
                        if self.written == conn.write_buf.len() {
                            conn.write_buf.clear();
                            self.written = 0;
                        }
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Err(ExchangeError::Write(addr, e)),
                    Poll::Pending => return Ok(progress),
                }
            }
            if !self.body_done {
                // Waiting for the client's body.
                return Ok(progress);
            }
            return match Pin::new(&mut conn.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.complete = true;
                    Ok(true)
                }
                Poll::Ready(Err(e)) => Err(ExchangeError::Write(addr, e)),
                Poll::Pending => Ok(progress),
            };
        }
    }

    /// Encodes the body's ready frames after what waits to be written, up to a bound.
    fn gather_body(
        &mut self,
        out: &mut Vec<u8>,
        body: &mut Option<UpstreamBody>,
        cx: &mut Context<'_>,
        progress: &mut bool,
    ) -> Result<(), ExchangeError> {
        while !self.body_done && out.len() - self.written < WRITE_GATHER {
            let Some(body) = body.as_mut() else {
                self.finish_body(out, None);
                *progress = true;
                break;
            };
            if body.is_end_stream() && !self.body_taken {
                // Nothing to send (and nothing taken: the request can be sent again).
                self.finish_body(out, None);
                *progress = true;
                break;
            }
            let frame = match Pin::new(body).poll_frame(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => {
                    self.finish_body(out, None);
                    *progress = true;
                    break;
                }
                Poll::Ready(Some(Err(e))) => return Err(ExchangeError::ClientBody(e)),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            self.body_taken = true;
            *progress = true;
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => match self.framing {
                    RequestFraming::Chunked => {
                        ChunkedEncoder::chunk_head(out, data.len());
                        out.extend_from_slice(&data);
                        out.extend_from_slice(ChunkedEncoder::CHUNK_END);
                    }
                    RequestFraming::Length(_) => out.extend_from_slice(&data),
                    RequestFraming::Empty => {}
                },
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        self.finish_body(out, Some(&trailers));
                    }
                }
            }
        }
        Ok(())
    }

    fn finish_body(&mut self, out: &mut Vec<u8>, trailers: Option<&http::HeaderMap>) {
        if self.framing == RequestFraming::Chunked {
            ChunkedEncoder::last(out, trailers);
        }
        self.body_done = true;
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

//! Responses to the client: the head encoded by tandem-h1 into one buffer, the body
//! behind it (as is, or chunked), small pieces gathered so that a small response is one
//! write.

use bytes::Bytes;
use http::header::{HeaderName, TRAILER};
use hyper::body::Body;
use std::cell::Cell;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tandem_h1::{encode_response_head, http_date, Answering, ChunkedEncoder, ResponseBodyEncoding};
use tokio::io::{AsyncRead, AsyncWrite};

use super::read::{lock, Shared};
use crate::errors::ClientBody;

/// Body pieces up to this size are copied behind what is queued (one write for the head
/// and a small body); larger ones are written on their own.
const GATHER: usize = 16 * 1024;

/// How writing a response ended.
#[derive(Debug)]
pub(crate) enum Written {
    /// All of it; true: the connection may carry another request.
    Complete(bool),
    /// The body failed or the client went away: the connection is closed.
    Broken(String),
}

/// Writes the response: its head, then its body as `encode_response_head` framed it.
pub(crate) async fn respond<S>(
    shared: &Mutex<Shared<S>>,
    parts: http::response::Parts,
    mut body: ClientBody,
    answering: Answering,
    trailers_ok: bool,
) -> Written
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = Vec::with_capacity(512);
    let (encoding, keep_alive) = encode_response_head(
        &mut out,
        &parts,
        answering,
        body.size_hint().exact(),
        &today(),
    );
    // Trailer fields go to a client that asked for them (`TE: trailers`), those the
    // response announced in `Trailer` only (hyper's rule, kept).
    let announced: Vec<HeaderName> = if trailers_ok {
        parts
            .headers
            .get_all(TRAILER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect()
    } else {
        Vec::new()
    };
    drop(parts);
    if encoding == ResponseBodyEncoding::None {
        drop(body);
        return finish(shared, &mut out, keep_alive).await;
    }
    let mut left = match encoding {
        ResponseBodyEncoding::Length(n) => Some(n),
        _ => None,
    };
    loop {
        if left == Some(0) && body.is_end_stream() {
            break;
        }
        let frame = match poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // What was queued still goes out; the client sees the body cut short.
                let _ = write_out(shared, &mut out).await;
                return Written::Broken(format!("response body failed: {e}"));
            }
            None => break,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let (Ok(mut t), ResponseBodyEncoding::Chunked) =
                    (frame.into_trailers(), encoding)
                {
                    let unannounced: Vec<HeaderName> = t
                        .keys()
                        .filter(|k| !announced.contains(k))
                        .cloned()
                        .collect();
                    for name in unannounced {
                        t.remove(name);
                    }
                    ChunkedEncoder::last(&mut out, (!t.is_empty()).then_some(&t));
                    drop(body);
                    return finish(shared, &mut out, keep_alive).await;
                }
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        if let Some(n) = left.as_mut() {
            if data.len() as u64 > *n {
                let _ = write_out(shared, &mut out).await;
                return Written::Broken("response body longer than its Content-Length".into());
            }
            *n -= data.len() as u64;
        }
        let chunked = encoding == ResponseBodyEncoding::Chunked;
        if chunked {
            ChunkedEncoder::chunk_head(&mut out, data.len());
        }
        if let Err(e) = queue(shared, &mut out, data).await {
            return Written::Broken(e.to_string());
        }
        if chunked {
            out.extend_from_slice(ChunkedEncoder::CHUNK_END);
        }
        // Queued bytes go out before waiting for more of a body that has more to come.
        if !body.is_end_stream() && left != Some(0) {
            if let Err(e) = write_out(shared, &mut out).await {
                return Written::Broken(e.to_string());
            }
        }
    }
    match (encoding, left) {
        (ResponseBodyEncoding::Chunked, _) => ChunkedEncoder::last(&mut out, None),
        (ResponseBodyEncoding::Length(_), Some(n)) if n > 0 => {
            let _ = write_out(shared, &mut out).await;
            return Written::Broken(format!("response body ended {n} bytes short"));
        }
        _ => {}
    }
    drop(body);
    finish(shared, &mut out, keep_alive).await
}

async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Mutex<Shared<S>>,
    out: &mut Vec<u8>,
    keep_alive: bool,
) -> Written {
    match write_out(shared, out).await {
        Ok(()) => Written::Complete(keep_alive),
        Err(e) => Written::Broken(e.to_string()),
    }
}

/// Queues `data` behind `out`: copied when small, else written after what is queued.
async fn queue<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Mutex<Shared<S>>,
    out: &mut Vec<u8>,
    data: Bytes,
) -> std::io::Result<()> {
    if data.len() <= GATHER {
        out.extend_from_slice(&data);
        return Ok(());
    }
    write_out(shared, out).await?;
    write_all(shared, &data).await
}

/// Writes and flushes what is queued, and empties the queue.
async fn write_out<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Mutex<Shared<S>>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    let r = write_all(shared, out).await;
    out.clear();
    r?;
    poll_fn(|cx| match lock(shared).io.as_mut() {
        Some(io) => Pin::new(io).poll_flush(cx),
        None => std::task::Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
    })
    .await
}

async fn write_all<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Mutex<Shared<S>>,
    mut bytes: &[u8],
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| match lock(shared).io.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, bytes),
            None => std::task::Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        })
        .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Writes bytes of our own (a refusal) and flushes them.
pub(crate) async fn write_bytes<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Mutex<Shared<S>>,
    mut bytes: Vec<u8>,
) -> std::io::Result<()> {
    write_out(shared, &mut bytes).await
}

thread_local! {
    /// The Date value of the current second, formatted once per second per thread.
    static DATE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// Today's Date field value (RFC 9110 6.6.1).
pub(crate) fn today() -> [u8; 29] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|cell| {
        let (at, text) = cell.get();
        if at == now {
            return text;
        }
        let text = http_date(now);
        cell.set((now, text));
        text
    })
}

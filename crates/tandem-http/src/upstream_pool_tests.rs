//! The HTTP/1.1 backend driver against a scripted backend on loopback: keep-alive reuse,
//! framings, an early answer, idle connections the backend closed, and backend faults.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::upstream::{BoxError, Connector, UpstreamBody, UpstreamError};
use crate::upstream_h1::ExchangeError;
use crate::upstream_pool::H1Pool;

/// What the backend does with the n-th request (from 0) it reads.
#[derive(Clone)]
enum Reply {
    /// Writes these bytes and keeps the connection.
    Send(&'static str),
    /// Writes these bytes and closes.
    SendClose(&'static str),
    /// Answers as soon as the head is in, without reading the body, and closes.
    Early(&'static str),
}

struct Backend {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    /// Every request as read (head and body bytes).
    seen: Arc<Mutex<Vec<String>>>,
}

/// A backend that answers its requests in order with `replies` (the last repeats).
async fn backend(replies: Vec<Reply>) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (a, s) = (accepts.clone(), seen.clone());
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let (replies, seen, count) = (replies.clone(), s.clone(), count.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let reply = replies[n.min(replies.len() - 1)].clone();
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    if let Reply::Early(text) = reply {
                        seen.lock().unwrap().push(head);
                        let _ = sock.write_all(text.as_bytes()).await;
                        return;
                    }
                    // The body: a Content-Length, or chunks up to the last one.
                    let body_end = if let Some(l) = head.split("content-length: ").nth(1) {
                        let len: usize = l.split("\r\n").next().unwrap().parse().unwrap();
                        head_end + len
                    } else if head.contains("transfer-encoding: chunked") {
                        loop {
                            if let Some(i) =
                                buf[head_end..].windows(5).position(|w| w == b"0\r\n\r\n")
                            {
                                break head_end + i + 5;
                            }
                            let mut chunk = [0u8; 4096];
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                    } else {
                        head_end
                    };
                    while buf.len() < body_end {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request: Vec<u8> = buf.drain(..body_end).collect();
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&request).into_owned());
                    match reply {
                        Reply::Send(text) => {
                            if sock.write_all(text.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        Reply::SendClose(text) | Reply::Early(text) => {
                            let _ = sock.write_all(text.as_bytes()).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    Backend {
        addr,
        accepts,
        seen,
    }
}

fn pool() -> Arc<H1Pool> {
    let connector = Connector::new(Duration::from_secs(2), None);
    Arc::new(H1Pool::new(connector, 8, Duration::from_secs(30), 1))
}

fn empty() -> UpstreamBody {
    http_body_util::Empty::new().map_err(|n| match n {}).boxed()
}

fn request(method: &str, body: UpstreamBody) -> http::Request<UpstreamBody> {
    http::Request::builder()
        .method(method)
        .uri("/path?q=1")
        .header("host", "backend.test")
        .body(body)
        .unwrap()
}

/// A request body fed from a channel: its length is unknown, it ends when the sender
/// is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|d| d.map(|d| Ok(Frame::data(d))))
    }
}

async fn body_text(resp: crate::upstream::UpstreamResponse) -> (String, Option<http::HeaderMap>) {
    let collected = resp.into_body().collect().await.expect("a complete body");
    let trailers = collected.trailers().cloned();
    (
        String::from_utf8(collected.to_bytes().to_vec()).unwrap(),
        trailers,
    )
}

#[tokio::test]
async fn keep_alive_connection_carries_the_next_request() {
    let b = backend(vec![Reply::Send(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )])
    .await;
    let pool = pool();
    for _ in 0..3 {
        let resp = pool.send(b.addr, request("GET", empty())).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(body_text(resp).await.0, "ok");
    }
    assert_eq!(
        b.accepts.load(Ordering::SeqCst),
        1,
        "one connection for all three"
    );
    let seen = b.seen.lock().unwrap();
    assert_eq!(
        seen[0],
        "GET /path?q=1 HTTP/1.1\r\nhost: backend.test\r\n\r\n"
    );
}

#[tokio::test]
async fn chunked_body_with_trailers_after_an_informational_response() {
    let b = backend(vec![Reply::Send(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n",
    )])
    .await;
    let pool = pool();
    let resp = pool.send(b.addr, request("GET", empty())).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (text, trailers) = body_text(resp).await;
    assert_eq!(text, "abcde");
    assert_eq!(trailers.unwrap()["x-sum"], "5");
    // Reused afterwards: the chunked body ended cleanly.
    let resp = pool.send(b.addr, request("GET", empty())).await.unwrap();
    body_text(resp).await;
    assert_eq!(b.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn close_delimited_body_ends_with_the_connection_which_is_not_reused() {
    let b = backend(vec![Reply::SendClose(
        "HTTP/1.1 200 OK\r\n\r\nuntil the end",
    )])
    .await;
    let pool = pool();
    for _ in 0..2 {
        let resp = pool.send(b.addr, request("GET", empty())).await.unwrap();
        assert_eq!(body_text(resp).await.0, "until the end");
    }
    assert_eq!(b.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn body_of_unknown_length_is_sent_chunked_and_a_known_one_with_its_length() {
    let b = backend(vec![Reply::Send("HTTP/1.1 204 No Content\r\n\r\n")]).await;
    let pool = pool();
    let (tx, rx) = mpsc::channel(4);
    tx.send(Bytes::from_static(b"hello ")).await.unwrap();
    tx.send(Bytes::from_static(b"world")).await.unwrap();
    drop(tx);
    let resp = pool
        .send(b.addr, request("POST", BodyExt::boxed(ChannelBody(rx))))
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let full = http_body_util::Full::new(Bytes::from_static(b"0123456789"))
        .map_err(|n| match n {})
        .boxed();
    let resp = pool.send(b.addr, request("PUT", full)).await.unwrap();
    assert_eq!(resp.status(), 204);
    let seen = b.seen.lock().unwrap();
    assert!(
        seen[0]
            .ends_with("transfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"),
        "{:?}",
        seen[0]
    );
    assert!(
        seen[1].ends_with("content-length: 10\r\n\r\n0123456789"),
        "{:?}",
        seen[1]
    );
    assert_eq!(b.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_before_the_body_ends_is_returned_and_the_connection_not_reused() {
    let b = backend(vec![
        Reply::Early("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!"),
        Reply::Send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ])
    .await;
    let pool = pool();
    let (tx, rx) = mpsc::channel(4);
    tx.send(Bytes::from_static(b"part")).await.unwrap();
    // The sender stays: the body never ends.
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        pool.send(b.addr, request("POST", BodyExt::boxed(ChannelBody(rx)))),
    )
    .await
    .expect("the early answer arrives while the body is still open")
    .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(body_text(resp).await.0, "big!");
    drop(tx);
    let resp = pool.send(b.addr, request("GET", empty())).await.unwrap();
    assert_eq!(resp.status(), 200);
    body_text(resp).await;
    assert_eq!(
        b.accepts.load(Ordering::SeqCst),
        2,
        "the half-sent connection was not reused"
    );
}

#[tokio::test]
async fn an_idle_connection_the_backend_closed_is_not_used() {
    let b = backend(vec![Reply::SendClose(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )])
    .await;
    let pool = pool();
    for _ in 0..2 {
        let resp = pool.send(b.addr, request("GET", empty())).await.unwrap();
        assert_eq!(body_text(resp).await.0, "ok");
        // The backend's FIN arrives while the connection waits in the pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn backend_faults_are_exchange_errors_not_connect_errors() {
    for (reply, what) in [
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "differing lengths",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "length and chunked",
        ),
        ("HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n", "obs-fold"),
        (
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "unasked upgrade",
        ),
        ("", "closed without an answer"),
    ] {
        let b = backend(vec![Reply::SendClose(reply)]).await;
        let err = pool()
            .send(b.addr, request("GET", empty()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                UpstreamError::Exchange(ExchangeError::Protocol(..) | ExchangeError::Closed(_))
            ),
            "{what}: {err:?}"
        );
        assert!(!err.is_connect(), "{what}");
    }
}

#[tokio::test]
async fn a_body_cut_short_by_the_backend_fails_the_body() {
    for reply in [
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n",
    ] {
        let b = backend(vec![Reply::SendClose(reply)]).await;
        let resp = pool().send(b.addr, request("GET", empty())).await.unwrap();
        assert!(resp.into_body().collect().await.is_err(), "{reply:?}");
    }
}

#[tokio::test]
async fn the_clients_body_error_is_told_apart() {
    #[derive(Debug, thiserror::Error)]
    #[error("client went away")]
    struct Gone;
    struct Failing;
    impl Body for Failing {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(Some(Err(Box::new(Gone))))
        }
    }
    let b = backend(vec![Reply::Send(
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )])
    .await;
    let err = pool()
        .send(b.addr, request("POST", BodyExt::boxed(Failing)))
        .await
        .unwrap_err();
    assert!(err.as_error().is::<Gone>(), "{err:?}");
}

#[tokio::test]
async fn a_backend_answering_while_it_reads_the_body_gets_the_rest_of_it() {
    // Full duplex: the response head comes right after the request head, the response
    // body only once the whole request body has arrived.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut answered = false;
        while !buf.windows(5).any(|w| w == b"0\r\n\r\n") {
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the request body must end");
            buf.extend_from_slice(&chunk[..n]);
            if !answered && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                sock.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await
                    .unwrap();
                answered = true;
            }
        }
        sock.write_all(b"4\r\ndone\r\n0\r\n\r\n").await.unwrap();
        String::from_utf8(buf).unwrap()
    });
    let pool = pool();
    let (tx, rx) = mpsc::channel(4);
    tx.send(Bytes::from_static(b"first")).await.unwrap();
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        pool.send(addr, request("POST", BodyExt::boxed(ChannelBody(rx)))),
    )
    .await
    .expect("the head arrives before the body ends")
    .unwrap();
    assert_eq!(resp.status(), 200);
    tx.send(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    let (text, _) = tokio::time::timeout(Duration::from_secs(5), body_text(resp))
        .await
        .expect("the rest of the request body went out while the response was read");
    assert_eq!(text, "done");
    let seen = server.await.unwrap();
    assert!(
        seen.ends_with("5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_reused_connection_closed_without_an_answer_is_retried_for_idempotent_requests_only() {
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    // The second request on a connection is read and the connection closed unanswered
    // (a backend closing an idle connection just as a request arrives).
    let b = backend(vec![Reply::Send(ok), Reply::SendClose(""), Reply::Send(ok)]).await;
    let pool = pool();
    let resp = pool.send(b.addr, request("GET", empty())).await.unwrap();
    body_text(resp).await;
    let resp = pool.send(b.addr, request("GET", empty())).await.unwrap();
    assert_eq!(
        body_text(resp).await.0,
        "ok",
        "sent again on a new connection"
    );
    assert_eq!(b.accepts.load(Ordering::SeqCst), 2);

    let b = backend(vec![Reply::Send(ok), Reply::SendClose("")]).await;
    let pool = self::pool();
    let resp = pool.send(b.addr, request("POST", empty())).await.unwrap();
    body_text(resp).await;
    let err = pool
        .send(b.addr, request("POST", empty()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::Exchange(ExchangeError::Closed(_))),
        "{err:?}"
    );
    assert_eq!(
        b.accepts.load(Ordering::SeqCst),
        1,
        "a POST is not sent twice"
    );
}

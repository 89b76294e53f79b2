//! One authority per request, checked once: two Host headers, none in HTTP/1.1, a value
//! that is not `host[:port]`, or a target / `:authority` that disagrees with Host: 400.
//! The checked authority is what routing, access rules and the backend's Host see.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::Ordering;
use tandem_tests::http_kit::{echo_header, HttpBackend};
use tandem_tests::*;
use tandem_tests::{Config, Listener, Pool, Route};

use super::{addr, send_raw, status_of};

/// A listener whose route answers 403 for `blocked.example`, in front of one echoing backend that
/// speaks HTTP/1.1 to tandem.
fn config(port: u16, backend: std::net::SocketAddr) -> String {
    let blocked = Route::answering()
        .hosts(&["blocked.example"])
        .respond(403, "blocked");
    Config::test_node()
        .listener(Listener::http("front", port).pool("p").route(blocked))
        .pool(Pool::new("p").backend("echo", backend))
        .to_toml()
}

/// Sends a raw request and returns (status, body after the head).
async fn raw(port: u16, request: &str) -> (Option<u16>, String) {
    let got = send_raw(addr(port), request.as_bytes(), false).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status_of(&got), body.unwrap_or_default())
}

#[tokio::test]
async fn host_headers_are_checked_once_and_the_target_wins() {
    let b = HttpBackend::echo("echo").await;
    let port = free_port();
    let node = start_node(&config(port, b.addr));
    let close = "Connection: close\r\n";

    // The reference: a blocked host is blocked, an allowed one forwarded.
    let (s, body) = raw(
        port,
        &format!("GET / HTTP/1.1\r\nHost: blocked.example\r\n{close}\r\n"),
    )
    .await;
    assert_eq!((s, body.as_str()), (Some(403), "blocked"));
    let (s, body) = raw(
        port,
        &format!("GET /ok HTTP/1.1\r\nHost: ok.example\r\n{close}\r\n"),
    )
    .await;
    assert_eq!(s, Some(200));
    assert_eq!(echo_header(&body, "host"), "ok.example");

    let refused = [
        // Two Host lines (RFC 9112 3.2: MUST answer 400), in both orders.
        "GET /two HTTP/1.1\r\nHost: ok.example\r\nHost: blocked.example\r\n",
        "GET /two HTTP/1.1\r\nHost: blocked.example\r\nHost: ok.example\r\n",
        // Not a host[:port]: each got past the route for blocked.example before.
        "GET /bad HTTP/1.1\r\nHost: x@blocked.example\r\n",
        "GET /bad HTTP/1.1\r\nHost: blocked.example,ok.example\r\n",
        "GET /bad HTTP/1.1\r\nHost: blocked.example/x\r\n",
        "GET /bad HTTP/1.1\r\nHost: ok.example:99999\r\n",
        // HTTP/1.1 without Host.
        "GET /none HTTP/1.1\r\nX-Other: 1\r\n",
        // An absolute-form target whose authority differs from Host: the target wins,
        // and a disagreement is refused (as HAProxy does).
        "GET http://blocked.example/abs HTTP/1.1\r\nHost: ok.example\r\n",
        "GET http://ok.example/abs HTTP/1.1\r\nHost: blocked.example\r\n",
        "GET http://u@ok.example/abs HTTP/1.1\r\nHost: ok.example\r\n",
    ];
    for request in refused {
        let (s, body) = raw(port, &format!("{request}{close}\r\n")).await;
        assert_eq!(s, Some(400), "{request:?} → {body}");
    }
    assert!(
        b.seen().iter().all(|s| s.path == "/ok"),
        "no refused request reached the backend: {:?}",
        b.seen().iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    let stats = &node.http().listener("front").unwrap().stats;
    assert_eq!(stats.bad_host.load(Ordering::Relaxed), refused.len() as u64);

    // The target's authority is the request's: routed by it, and sent as Host upstream.
    let (s, body) = raw(
        port,
        &format!("GET http://OK.example:8080/abs HTTP/1.1\r\nHost: ok.example:8080\r\n{close}\r\n"),
    )
    .await;
    assert_eq!(s, Some(200), "{body}");
    assert_eq!(echo_header(&body, "host"), "OK.example:8080");
    let (s, body) = raw(
        port,
        &format!("GET http://blocked.example/abs HTTP/1.1\r\nHost: blocked.example\r\n{close}\r\n"),
    )
    .await;
    assert_eq!((s, body.as_str()), (Some(403), "blocked"));
    // HTTP/1.0 may leave Host out.
    let (s, _) = raw(port, "GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(s, Some(200));
}

/// An h2c client connection to the proxy (hyper, prior knowledge).
async fn h2c(port: u16) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr(port)).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake with the proxy");
    tokio::spawn(conn);
    sender
}

/// One h2 request with `:authority` from `uri` and an optional `host` header.
async fn h2_get(port: u16, uri: &str, host: Option<&str>) -> (u16, String) {
    let mut sender = h2c(port).await;
    let mut req = http::Request::get(uri);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let resp = sender
        .send_request(req.body(Empty::new()).unwrap())
        .await
        .expect("an h2 response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn http2_authority_wins_and_a_disagreeing_host_is_malformed() {
    let b = HttpBackend::echo("echo").await;
    let port = free_port();
    let node = start_node(&config(port, b.addr));

    let (s, body) = h2_get(port, "http://ok.example/h2", None).await;
    assert_eq!(s, 200, "{body}");
    // The HTTP/1.1 backend gets the authority as Host.
    assert_eq!(echo_header(&body, "host"), "ok.example");
    let (s, body) = h2_get(port, "http://blocked.example/h2", None).await;
    assert_eq!((s, body.as_str()), (403, "blocked"));
    // Routed by host before; now :authority wins and the disagreement is refused.
    let (s, _) = h2_get(port, "http://ok.example/h2", Some("blocked.example")).await;
    assert_eq!(s, 400);
    let (s, _) = h2_get(port, "http://blocked.example/h2", Some("ok.example")).await;
    assert_eq!(s, 400);
    let (s, _) = h2_get(port, "http://ok.example/h2", Some("x@ok.example")).await;
    assert_eq!(s, 400);
    // Agreeing ones pass.
    let (s, body) = h2_get(port, "http://ok.example/h2", Some("OK.example")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(echo_header(&body, "host"), "ok.example");
    let stats = &node.http().listener("front").unwrap().stats;
    assert_eq!(stats.bad_host.load(Ordering::Relaxed), 3);
}

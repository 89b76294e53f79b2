use super::*;
use proptest::prelude::*;

const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 16 * 1024,
    max_headers: 100,
};

fn parse(text: &str) -> Result<Option<RequestHead>, RequestError> {
    parse_request_head(&mut BytesMut::from(text.as_bytes()), LIMITS)
}

fn refused(text: &str) -> RequestError {
    parse(text).expect_err(text)
}

#[test]
fn a_complete_head_leaves_the_body_and_the_next_request_in_the_buffer() {
    let mut buf = BytesMut::from(
        &b"POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhelloGET /"[..],
    );
    let head = parse_request_head(&mut buf, LIMITS).unwrap().unwrap();
    assert_eq!(&buf[..], b"helloGET /");
    assert_eq!(head.parts.method, Method::POST);
    assert_eq!(head.parts.uri, "/a?b=c");
    assert_eq!(head.parts.version, Version::HTTP_11);
    assert_eq!(head.framing, RequestBodyFraming::Length(5));
    assert!(head.keep_alive && !head.expect_continue && !head.upgrade);
    let all: Vec<_> = head.parts.headers.get_all("x-a").iter().collect();
    assert_eq!(all, ["1", "2"]);
}

#[test]
fn a_partial_head_asks_for_more_and_keeps_the_bytes() {
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\nX-"[..]);
    assert!(parse_request_head(&mut buf, LIMITS).unwrap().is_none());
    assert_eq!(buf.len(), 27);
}

#[test]
fn framing_follows_rfc_9112() {
    let framing = |t: &str| parse(t).unwrap().unwrap().framing;
    assert_eq!(
        framing("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        RequestBodyFraming::Empty
    );
    assert_eq!(
        framing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        RequestBodyFraming::Empty
    );
    assert_eq!(
        framing("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, Chunked \r\n\r\n"),
        RequestBodyFraming::Chunked
    );
    assert_eq!(
        framing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n"),
        RequestBodyFraming::Length(7)
    );
}

#[test]
fn smuggling_shapes_are_refused() {
    use RequestError::*;
    for (text, want) in [
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", LengthAndTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", LengthAndTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", ContentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n", ContentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", ContentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n", ContentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", ContentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingHttp10),
    ] {
        assert_eq!(refused(text), want, "{text:?}");
        assert_eq!(want.status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn malformed_heads_are_refused() {
    for text in [
        // Obsolete line folding, a space before the colon, a space in the name.
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nX A: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
    ] {
        let e = refused(text);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{text:?}: {e}");
    }
    assert_eq!(refused("GET / HTTP/2.0\r\n\r\n"), RequestError::Version);
    // A missing Host is the request path's to refuse (for HTTP/1 and HTTP/2 alike).
    assert!(parse("GET / HTTP/1.1\r\n\r\n").unwrap().is_some());
}

#[test]
fn size_and_field_limits_answer_431() {
    let limits = HeadLimits {
        max_bytes: 64,
        max_headers: 3,
    };
    let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(60));
    let e = parse_request_head(&mut BytesMut::from(long.as_bytes()), limits).unwrap_err();
    assert_eq!(e, RequestError::TooLarge(64));
    // Too long before the head is even complete.
    let e = parse_request_head(&mut BytesMut::from(&long.as_bytes()[..70]), limits).unwrap_err();
    assert_eq!(e.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let many = "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
    let e = parse_request_head(&mut BytesMut::from(many.as_bytes()), limits).unwrap_err();
    assert_eq!(e, RequestError::TooManyHeaders(3));
    assert_eq!(e.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // A limit above the stack's slots works too.
    let wide = HeadLimits {
        max_bytes: 1 << 20,
        max_headers: 500,
    };
    let mut text = String::from("GET / HTTP/1.1\r\n");
    for i in 0..400 {
        text += &format!("X-{i}: {i}\r\n");
    }
    text += "\r\n";
    let head = parse_request_head(&mut BytesMut::from(text.as_bytes()), wide)
        .unwrap()
        .unwrap();
    assert_eq!(head.parts.headers.len(), 400);
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    let keep = |t: &str| parse(t).unwrap().unwrap().keep_alive;
    assert!(keep("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(!keep(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n"
    ));
    assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
    assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
}

#[test]
fn expect_upgrade_and_trailers_are_noted() {
    let h = parse("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\nTE: trailers\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.expect_continue && h.accepts_trailers);
    // No body, nothing to wait for.
    let h = parse("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!h.expect_continue);
    let h = parse("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.upgrade);
    let h = parse("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!h.upgrade);
}

#[test]
fn targets_of_every_form_parse() {
    let uri = |t: &str| parse(t).unwrap().unwrap().parts.uri;
    assert_eq!(
        uri("GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n").host(),
        Some("a.example")
    );
    assert_eq!(
        uri("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n").port_u16(),
        Some(443)
    );
    assert_eq!(uri("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), "*");
}

proptest! {
    /// Fed in any split, a head parses once, to the same request, and leaves exactly
    /// what followed it.
    #[test]
    fn any_split_parses_the_same(step in 1usize..40, body in "[a-z]{0,20}") {
        let text = format!(
            "POST /p?q=1 HTTP/1.1\r\nHost: h.example\r\nX-A: 1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let wire = text.as_bytes();
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let head = loop {
            if let Some(h) = parse_request_head(&mut buf, LIMITS).unwrap() {
                break h;
            }
            let end = (fed + step).min(wire.len());
            prop_assert!(fed < wire.len(), "never complete");
            buf.extend_from_slice(&wire[fed..end]);
            fed = end;
        };
        buf.extend_from_slice(&wire[fed..]);
        prop_assert_eq!(&buf[..], body.as_bytes());
        prop_assert_eq!(head.parts.uri.path(), "/p");
        prop_assert_eq!(head.framing, if body.is_empty() {
            RequestBodyFraming::Empty
        } else {
            RequestBodyFraming::Length(body.len() as u64)
        });
    }

    /// Arbitrary bytes never panic, and a refusal or a head never grows the buffer.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(_)) = parse_request_head(&mut buf, LIMITS) {
            prop_assert!(buf.len() < bytes.len());
        }
    }
}

use super::*;
use http::HeaderValue;

fn head(
    status: u16,
    fields: &[(&'static str, &'static str)],
    answering: Answering,
    body_len: Option<u64>,
) -> (String, ResponseBodyEncoding, bool) {
    let mut resp = http::Response::new(());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    for (n, v) in fields {
        resp.headers_mut().append(*n, HeaderValue::from_static(v));
    }
    let (parts, ()) = resp.into_parts();
    let mut buf = Vec::new();
    let (enc, keep) = encode_response_head(&mut buf, &parts, answering, body_len, b"D");
    (String::from_utf8(buf).unwrap(), enc, keep)
}

const KEEP11: Answering = Answering {
    version: Version::HTTP_11,
    head: false,
    keep_alive: true,
};

#[test]
fn a_known_length_is_written_when_the_response_has_none() {
    let (text, enc, keep) = head(200, &[("x-a", "1")], KEEP11, Some(5));
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: D\r\ncontent-length: 5\r\n\r\n"
    );
    assert_eq!((enc, keep), (ResponseBodyEncoding::Length(5), true));
}

#[test]
fn the_responses_own_length_wins_and_its_date_is_kept() {
    let (text, enc, _) = head(200, &[("content-length", "3"), ("date", "X")], KEEP11, None);
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ndate: X\r\n\r\n"
    );
    assert_eq!(enc, ResponseBodyEncoding::Length(3));
}

#[test]
fn unknown_length_is_chunked_for_http11_and_close_delimited_for_http10() {
    let (text, enc, keep) = head(
        200,
        &[("transfer-encoding", "gzip"), ("connection", "x")],
        KEEP11,
        None,
    );
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ndate: D\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    assert_eq!((enc, keep), (ResponseBodyEncoding::Chunked, true));
    let http10 = Answering {
        version: Version::HTTP_10,
        ..KEEP11
    };
    let (text, enc, keep) = head(200, &[], http10, None);
    assert_eq!(
        text,
        "HTTP/1.0 200 OK\r\ndate: D\r\nconnection: close\r\n\r\n"
    );
    assert_eq!((enc, keep), (ResponseBodyEncoding::Close, false));
    let (text, enc, keep) = head(200, &[], http10, Some(2));
    assert_eq!(
        text,
        "HTTP/1.0 200 OK\r\ndate: D\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n"
    );
    assert_eq!((enc, keep), (ResponseBodyEncoding::Length(2), true));
}

#[test]
fn bodyless_statuses_and_head_write_no_body() {
    let (text, enc, _) = head(204, &[("content-length", "0")], KEEP11, Some(0));
    assert_eq!(text, "HTTP/1.1 204 No Content\r\ndate: D\r\n\r\n");
    assert_eq!(enc, ResponseBodyEncoding::None);
    let (text, enc, _) = head(304, &[("etag", "\"a\"")], KEEP11, None);
    assert_eq!(
        text,
        "HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\ndate: D\r\n\r\n"
    );
    assert_eq!(enc, ResponseBodyEncoding::None);
    let head_req = Answering {
        head: true,
        ..KEEP11
    };
    let (text, enc, _) = head(200, &[("content-length", "10")], head_req, Some(0));
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ncontent-length: 10\r\ndate: D\r\n\r\n"
    );
    assert_eq!(enc, ResponseBodyEncoding::None);
    let (text, _, _) = head(404, &[], head_req, Some(7));
    assert_eq!(
        text,
        "HTTP/1.1 404 Not Found\r\ndate: D\r\ncontent-length: 7\r\n\r\n"
    );
}

#[test]
fn a_switch_keeps_its_connection_field_and_has_no_body() {
    let (text, enc, _) = head(
        101,
        &[("connection", "upgrade"), ("upgrade", "websocket")],
        KEEP11,
        None,
    );
    assert_eq!(
        text,
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\ndate: D\r\n\r\n"
    );
    assert_eq!(enc, ResponseBodyEncoding::None);
}

#[test]
fn a_closing_connection_says_so() {
    let closing = Answering {
        keep_alive: false,
        ..KEEP11
    };
    let (text, _, keep) = head(400, &[], closing, Some(0));
    assert_eq!(
        text,
        "HTTP/1.1 400 Bad Request\r\ndate: D\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    assert!(!keep);
}

#[test]
fn refusals_are_bare_and_close() {
    let mut buf = Vec::new();
    encode_refusal(&mut buf, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, b"D");
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\ndate: D\r\n\r\n"
    );
}

#[test]
fn dates_are_imf_fixdates() {
    assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(&http_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(&http_date(1_796_601_599), b"Sun, 06 Dec 2026 23:59:59 GMT");
}

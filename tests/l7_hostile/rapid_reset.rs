//! HTTP/2 rapid reset (CVE-2023-44487): a client that opens streams and cancels them at
//! once, faster than they are served, gets a GOAWAY with ENHANCE_YOUR_CALM and its
//! connection closed; other clients are served meanwhile. Raw frames over TCP.

use std::time::Duration;
use tandem_tests::http_kit::*;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::addr;

const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK from the static table: GET, http, `/`, and `:authority` as a literal.
fn get_headers() -> Vec<u8> {
    let authority = b"ok.example";
    let mut block = vec![0x82, 0x86, 0x84, 0x01, authority.len() as u8];
    block.extend_from_slice(authority);
    block
}

/// Reads frames until the peer closes (or 5 s pass); returns the GOAWAY error code seen,
/// if any, and whether the connection was closed.
async fn goaway_then_close(tcp: &mut TcpStream) -> (Option<u32>, bool) {
    let mut buf = Vec::new();
    let mut goaway = None;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 16384];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            // Walk the complete frames read so far.
            let mut at = 0;
            while buf.len() >= at + 9 {
                let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
                if buf.len() < at + 9 + len {
                    break;
                }
                if buf[at + 3] == 0x7 && len >= 8 {
                    let code = &buf[at + 13..at + 17];
                    goaway = Some(u32::from_be_bytes(code.try_into().unwrap()));
                }
                at += 9 + len;
            }
            buf.drain(..at);
        }
    })
    .await
    .is_ok();
    (goaway, closed)
}

#[tokio::test]
async fn rapid_reset_clients_get_goaway_and_others_are_served() {
    let b = HttpBackend::start("calm").await;
    let port = free_port();
    let toml = Config::test_node()
        .listener(Listener::http("front", port).pool("p"))
        .pool(Pool::of("p", &[&b]).algorithm("round_robin"))
        .to_toml();
    let _node = start_node(&toml);
    assert!(wait_listening(addr(port), Duration::from_secs(10)).await);

    let mut tcp = TcpStream::connect(addr(port)).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    let headers = get_headers();
    for i in 0..1000u32 {
        let stream = 2 * i + 1;
        out.extend(frame(0x1, 0x5, stream, &headers)); // END_STREAM | END_HEADERS
        out.extend(frame(0x3, 0, stream, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    // The proxy may close while this is still being written.
    let _ = tcp.write_all(&out).await;
    let (goaway, closed) = goaway_then_close(&mut tcp).await;
    assert_eq!(goaway, Some(ENHANCE_YOUR_CALM), "GOAWAY error code");
    assert!(closed, "the connection was closed");

    let r = http_get(addr(port), "/after", &[("host", "ok.example")]).await;
    assert_eq!(r.status, 200, "served after the attack: {r:?}");
}

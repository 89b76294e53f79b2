//! A [`super::Answer::Script`] connection: raw bytes, no HTTP library, for backends that
//! must misbehave in exact ways (close without saying so, answer with odd framing).

use super::backend::{Seen, Shared};
use http::Version;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads request heads (and a `Content-Length` body) and answers each with the next
/// scripted reply (the last repeats); with `close`, closes 20 ms after each answer.
pub(super) async fn serve_script<S>(mut io: S, shared: &Shared, close: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut answered = 0usize;
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let seen = parse_head(&head);
        let body_len: usize = seen
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            let mut chunk = [0u8; 4096];
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + body_len);
        shared.record(Seen { body_len, ..seen });
        let reply = {
            let script = shared.script.lock().unwrap();
            let last = script.len().checked_sub(1).expect("a script has a reply");
            script[answered.min(last)].clone()
        };
        answered += 1;
        if io.write_all(&reply).await.is_err() {
            return;
        }
        if close {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
    }
}

/// The request line and headers of a raw head.
fn parse_head(head: &str) -> Seen {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let uri = first.next().unwrap_or("/").to_string();
    let version = match first.next() {
        Some("HTTP/1.0") => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Seen {
        method,
        path: uri.split('?').next().unwrap_or_default().to_string(),
        uri,
        version,
        headers,
        body_len: 0,
    }
}

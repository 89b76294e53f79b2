//! The text access log cannot be forged: what the client chose (Host, path, request id)
//! is quoted and escaped, so each line has exactly one `status=` and one `upstream=`.

use std::time::Duration;
use tandem_tests::http_kit::HttpBackend;
use tandem_tests::TempDir;
use tandem_tests::*;
use tandem_tests::{Config, Listener, Pool};

use super::{addr, send_raw, status_of};

#[tokio::test]
async fn client_values_cannot_forge_access_log_fields() {
    let b = HttpBackend::echo("logged").await;
    let port = free_port();
    let dir = TempDir::new();
    let toml = Config::test_node()
        .listener(Listener::http("front", port).pool("p"))
        .pool(Pool::new("p").backend("logged", b.addr))
        .to_toml();
    let config = dir.write("tandem.toml", toml);
    let (_child, lines) = super::daemon(&config, "warn,access=info");
    assert!(wait_listening(addr(port), Duration::from_secs(10)).await);

    // The bytes: a Host with fields in it (now refused: not a host[:port]) and a
    // request id with fields in it (forwarded, and logged quoted).
    let forged_host = "GET /h HTTP/1.1\r\nHost: ok.example status=599 upstream=10.6.6.6:80\r\nConnection: close\r\n\r\n";
    let got = send_raw(addr(port), forged_host.as_bytes(), false).await;
    assert_eq!(status_of(&got), Some(400));
    let forged_id = "GET /id HTTP/1.1\r\nHost: ok.example\r\nX-Request-Id: forged status=598\r\nConnection: close\r\n\r\n";
    let got = send_raw(addr(port), forged_id.as_bytes(), false).await;
    assert_eq!(status_of(&got), Some(200));

    let access = || -> Vec<String> {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("access:"))
            .cloned()
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(5), || access().len() >= 2).await,
        "two access lines: {:?}",
        lines.lock().unwrap()
    );
    for line in access() {
        let fields = unquoted(&line);
        assert_eq!(fields.matches(" status=").count(), 1, "{line}");
        assert_eq!(fields.matches(" upstream=").count(), 1, "{line}");
    }
    let id_line = access()
        .into_iter()
        .find(|l| l.contains("path=\"/id\""))
        .expect("the /id line");
    assert!(
        id_line.contains("request_id=\"forged status=598\"") && id_line.contains("status=200"),
        "{id_line}"
    );
}

/// `line` without its quoted values (a `\"` inside one does not end it): what a log
/// parser splits into fields.
fn unquoted(line: &str) -> String {
    let (mut out, mut quoted, mut escaped) = (String::new(), false, false);
    for c in line.chars() {
        match (quoted, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, true, _) => escaped = false,
            (_, false, '"') => quoted = !quoted,
            (false, _, c) => out.push(c),
            _ => {}
        }
    }
    out
}

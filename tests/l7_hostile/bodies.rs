//! Request bodies the client gets wrong: 400 (or nothing when the client has gone), and
//! never a failure of the backend: no passive ejection, no backend error counted.

use std::collections::BTreeMap;
use tandem_tests::http_kit::*;
use tandem_tests::*;

use super::{addr, send_raw, status_of};
use crate::metrics_support::{Metrics, ERRORS};

const HEAD: &str = "POST /ej HTTP/1.1\r\nHost: ok.example\r\nTransfer-Encoding: chunked\r\n\r\n";

/// The attack and its relatives, each with whether the client half-closes after.
fn attacks() -> Vec<(&'static str, Vec<u8>, bool)> {
    let chunked = |body: &[u8]| [HEAD.as_bytes(), body].concat();
    let mut extension = b"5;".to_vec();
    extension.extend(std::iter::repeat_n(b'a', 1 << 20));
    extension.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let cut_short =
        b"POST /ej HTTP/1.1\r\nHost: ok.example\r\nContent-Length: 1000\r\n\r\n0123456789".to_vec();
    vec![
        (
            "bad chunk size",
            chunked(b"zz\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        (
            "bad chunk size",
            chunked(b"zz\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        (
            "bad chunk size",
            chunked(b"zz\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        ("cut short", cut_short.clone(), true),
        ("cut short", cut_short, true),
        (
            "chunk-size overflow",
            chunked(b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        ("1 MB chunk extension", chunked(&extension), false),
        ("bare-LF chunk lines", chunked(b"5\nhello\n0\n\n"), false),
        ("bare-LF chunk lines", chunked(b"5\nhello\n0\n\n"), false),
    ]
}

#[tokio::test]
async fn client_body_errors_answer_400_and_never_eject_a_backend() {
    let (b1, b2) = (
        HttpBackend::start("ej1").await,
        HttpBackend::start("ej2").await,
    );
    let port = free_port();
    // The default passive ejection (5 failures in a row), as in the issue.
    let toml = Config::test_node()
        .listener(Listener::http("front", port).pool("p"))
        .pool(Pool::of("p", &[&b1, &b2]).algorithm("round_robin"))
        .to_toml();
    let node = start_node(&toml);

    let mut answered_400 = 0;
    for (what, bytes, half_close) in attacks() {
        let got = send_raw(addr(port), &bytes, half_close).await;
        match status_of(&got) {
            Some(400) => answered_400 += 1,
            // The client may be gone by the time the answer is ready (tandem stops reading
            // a body it refused and its close can reset the unread rest).
            None => {}
            Some(other) => panic!(
                "{what}: answered {other}, not 400: {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    assert!(answered_400 >= 7, "most answered 400: {answered_400} of 9");

    let mut by_backend = BTreeMap::<String, u32>::new();
    for i in 0..10 {
        let r = http_get(
            addr(port),
            &format!("/after/{i}"),
            &[("host", "ok.example")],
        )
        .await;
        assert_eq!(r.status, 200, "GET {i} after the attack: {r:?}");
        *by_backend
            .entry(r.backend().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        by_backend,
        BTreeMap::from([("ej1".to_string(), 5), ("ej2".to_string(), 5)]),
        "no backend ejected: round robin over both"
    );

    let m = Metrics::of(&node).await;
    for b in ["ej1", "ej2"] {
        let errors: f64 = m
            .scrape
            .samples
            .iter()
            .filter(|s| s.metric == ERRORS && s.labels.get("backend") == Some(b))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum();
        assert_eq!(errors, 0.0, "no error counted against {b}:\n{}", m.text);
        assert_eq!(
            m.value("tandem_backend_ejected", &[("pool", "p"), ("backend", b)]),
            0.0
        );
    }
    assert_eq!(
        m.value(
            "tandem_http_bad_requests_total",
            &[("listener", "front"), ("reason", "client_body")]
        ),
        9.0,
        "each refused body counted:\n{}",
        m.text
    );
}

#[tokio::test]
async fn a_get_with_a_chunked_body_is_forwarded_with_its_body() {
    let b = HttpBackend::start("getbody").await;
    let port = free_port();
    let toml = Config::test_node()
        .listener(Listener::http("front", port).pool("p"))
        .pool(Pool::of("p", &[&b]).algorithm("round_robin"))
        .to_toml();
    let _node = start_node(&toml);
    // The bytes: the backend got a GET without its body, and tandem answered 200.
    let request = b"GET /g HTTP/1.1\r\nHost: ok.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let got = send_raw(addr(port), request, false).await;
    assert_eq!(
        status_of(&got),
        Some(200),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let seen = b.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].body_len),
        ("GET", 5),
        "{seen:?}"
    );
}

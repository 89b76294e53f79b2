//! At the descriptor limit a listener pauses and logs once (with the limit), instead of
//! a warning every 20 ms; it accepts again when descriptors free up.

use std::time::Duration;
use tandem_tests::http_kit::HttpBackend;
use tandem_tests::TempDir;
use tandem_tests::*;
use tandem_tests::{Config, Listener, Pool};
use tokio::net::TcpStream;

use super::addr;

#[tokio::test]
async fn at_the_descriptor_limit_the_listener_pauses_and_logs_once() {
    let b = HttpBackend::echo("fd").await;
    let port = free_port();
    let dir = TempDir::new();
    let toml = Config::test_node()
        .listener(
            Listener::http("front", port)
                .pool("p")
                .tables("[listener.http]\naccess_log = false"),
        )
        .pool(Pool::new("p").backend("fd", b.addr))
        .to_toml();
    let config = dir.write("tandem.toml", toml);
    // A low descriptor limit for tandemd alone.
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "ulimit -n 64 && exec \"$0\" run --config \"$1\""])
        .arg(tandemd_bin())
        .arg(&config);
    let (_child, lines) = super::daemon_with(command, "warn");
    assert!(wait_listening(addr(port), Duration::from_secs(10)).await);

    // Far more connections than descriptors: the accepts beyond the limit fail.
    let mut held = Vec::new();
    for _ in 0..120 {
        if let Ok(Ok(c)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr(port))).await
        {
            held.push(c);
        }
    }
    let count = |needle: &str| {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(5), || count("accept failed") >= 1).await,
        "the limit was reached: {:?}",
        lines.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count("accept failed"),
        1,
        "one line for the whole episode: {:?}",
        lines.lock().unwrap()
    );
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("accept failed") && l.contains("open_files_limit=64")),
        "the line names the limit: {:?}",
        lines.lock().unwrap()
    );

    // Descriptors free up: the listener accepts again, and says so once.
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        if let Ok(Ok(r)) =
            tokio::time::timeout(Duration::from_secs(2), http_get_quiet(addr(port))).await
        {
            served = r == 200;
            if served {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "serving again: {:?}", lines.lock().unwrap());
    assert!(
        eventually(Duration::from_secs(5), || count("accepting again") == 1).await,
        "{:?}",
        lines.lock().unwrap()
    );
}

/// A GET that reports a transport error instead of panicking (the listener may still be
/// pausing).
async fn http_get_quiet(target: std::net::SocketAddr) -> std::io::Result<u16> {
    tandem_tests::http_kit::request_from(target, None, "GET", "/", &[], b"")
        .await
        .map(|r| r.status)
}

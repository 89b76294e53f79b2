//! The cluster port and the admin API under abuse (issue 14), on a real one-node cluster:
//! peers without a cluster certificate (plain TCP, TLS with a self-signed certificate or
//! one of another CA), a certified peer sending garbage or a 4 GiB length prefix, a flood
//! of 500 connections, and admin clients sending 50 MB or malformed JSON. Each is refused
//! with a bounded allocation, counted by reason and logged, and the node stays leader in
//! the same term.

use http::Method;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_cluster::transport::ClusterTls;
use tandem_tests::admin::{ctl, exchange, Daemon};
use tandem_tests::http_kit::TestCa;
use tandem_tests::TempDir;
use tandem_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::metrics_support::{scrape_daemon as scrape, Metrics};

fn rejected(m: &Metrics, family: &str, reason: &str) -> f64 {
    m.value(family, &[("reason", reason)])
}

/// Reads until the peer closes (true) or `limit` passes (false).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A TLS connection to the Raft port presenting `client`'s certificate.
async fn tls_peer(
    raft: u16,
    client: Arc<tandem_tls::rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", raft)).await?;
    let name = tandem_tls::server_name("n1").unwrap();
    TlsConnector::from(client).connect(name, tcp).await
}

/// Raft leader and term as /v1/cluster shows them.
async fn leader_and_term(daemon: &Daemon) -> (u64, u64) {
    let s = daemon.get("/v1/cluster").await;
    (
        s["raft"]["leader"].as_u64().unwrap_or(0),
        s["raft"]["term"].as_u64().unwrap_or(0),
    )
}

/// One admin request with a body of `len` bytes, written while the answer is read (the
/// node may answer, and close, before the body is all sent). Returns the status line.
async fn admin_post_large(daemon: &Daemon, path: &str, len: usize, chunked: bool) -> String {
    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let (mut rx, mut tx) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {len}")
    };
    let head = format!("POST {path} HTTP/1.1\r\nHost: tandemd\r\n{framing}\r\n\r\n");
    let writer = tokio::spawn(async move {
        tx.write_all(head.as_bytes()).await?;
        let block = vec![b'['; 1 << 20];
        let mut sent = 0;
        while sent < len {
            let n = block.len().min(len - sent);
            if chunked {
                tx.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            }
            tx.write_all(&block[..n]).await?;
            if chunked {
                tx.write_all(b"\r\n").await?;
            }
            sent += n;
        }
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_port_and_the_admin_api_refuse_abuse_and_the_node_keeps_leading() {
    let work = TempDir::new();
    let pki = work.path("pki");
    let (code, out, err) = ctl(&["cluster", "init", "--dir", pki.to_str().unwrap(), "n1"]).await;
    assert_eq!(code, 0, "tandemctl cluster init: {out}{err}");
    let raft = free_port();
    let daemon = Daemon::start(&super::config(&work.path(""), raft, free_port())).await;
    super::wait_leader(&daemon).await;
    let pid = daemon.child.0.id();
    let (leader, term) = leader_and_term(&daemon).await;
    assert_eq!(leader, 1);

    // Plain TCP, no TLS at all: the handshake fails, the connection is closed.
    let mut plain = TcpStream::connect(("127.0.0.1", raft)).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: n1\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(5)).await);

    // TLS with a self-signed certificate, and with one of another CA: refused in the
    // handshake.
    let self_signed = rcgen::generate_simple_self_signed(vec!["n1".to_string()]).unwrap();
    let self_signed = (
        work.write("self.pem", self_signed.cert.pem()),
        work.write("self.key", self_signed.signing_key.serialize_pem()),
    );
    let rogue = TestCa::new(&work, "rogue").leaf(&work, "rogue", "n1", &["n1"]);
    for (cert, key) in [self_signed, (rogue.cert, rogue.key)] {
        let client = tandem_tls::client_config(&tandem_tls::ClientTlsSpec {
            ca: None,
            verify: false,
            alpn: vec![b"tandem-raft/1".to_vec()],
            client_cert: Some(tandem_tls::CertSpec::new(&cert, &key)),
        })
        .unwrap();
        // TLS 1.3: the client learns of the refusal on its first read.
        if let Ok(mut s) = tls_peer(raft, client).await {
            let _ = s.write_all(&[0, 0, 0, 1, 0]).await;
            let mut buf = [0u8; 16];
            let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(0)) | Ok(Err(_))),
                "{}: a peer without a cluster certificate was served: {read:?}",
                cert.display()
            );
        }
    }

    // A certified peer (n1's own files) sending garbage: a refusal, then the close.
    let certified = ClusterTls::from_dir(&pki, "n1").unwrap().client;
    let mut peer = tls_peer(raft, certified.clone())
        .await
        .expect("certified TLS");
    let mut garbage = vec![0, 0, 0, 64];
    garbage.extend(std::iter::repeat_n(0xff, 64));
    peer.write_all(&garbage).await.unwrap();
    peer.flush().await.unwrap();
    assert!(closed_within(&mut peer, Duration::from_secs(5)).await);

    // A 4 GiB length prefix: refused before any payload is read or allocated.
    let rss_before = rss_kib(pid);
    let mut peer = tls_peer(raft, certified.clone())
        .await
        .expect("certified TLS");
    peer.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    peer.write_all(&[7u8; 1024]).await.unwrap();
    peer.flush().await.unwrap();
    assert!(closed_within(&mut peer, Duration::from_secs(5)).await);

    // A flood: 500 connections at once that never handshake. Beyond the limit they are
    // closed at once; the rest when the handshake timeout passes.
    let mut flood = Vec::new();
    for _ in 0..500 {
        match TcpStream::connect(("127.0.0.1", raft)).await {
            Ok(s) => flood.push(s),
            Err(e) => panic!("connecting the flood: {e}"),
        }
    }
    // Meanwhile the node keeps leading (the listener serves its own peers the same way).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(leader_and_term(&daemon).await, (leader, term));
    let started = Instant::now();
    for mut s in flood {
        let left = Duration::from_secs(10).saturating_sub(started.elapsed());
        assert!(
            closed_within(&mut s, left).await,
            "a flood connection still open after {:?}",
            started.elapsed()
        );
    }

    // Admin: 50 MB declared, 50 MB chunked, malformed JSON.
    let fifty = 50 << 20;
    let line = admin_post_large(&daemon, "/v1/cluster/join", fifty, false).await;
    assert!(line.contains(" 413 "), "declared 50 MB: {line:?}");
    let line = admin_post_large(&daemon, "/v1/cluster/join", fifty, true).await;
    assert!(line.contains(" 413 "), "chunked 50 MB: {line:?}");
    for bad in [
        "{\"seed\": ",
        "[1,2,3]",
        "{\"seed\": \"n2:7300\", \"x\": 1}",
        "\u{0}",
    ] {
        let (status, value) = daemon
            .call(Method::POST, "/v1/cluster/join", Some(bad))
            .await;
        assert_eq!(status, 400, "{bad:?}: {value}");
        assert_eq!(value["error"]["code"], "invalid", "{value}");
    }
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );

    // Counted, logged, and the node serves on, still leading in the same term.
    let m = scrape(&daemon).await;
    let cluster = "tandem_cluster_rejected_total";
    assert_eq!(rejected(&m, cluster, "tls_handshake"), 3.0, "{}", m.text);
    assert_eq!(rejected(&m, cluster, "undecodable"), 1.0, "{}", m.text);
    assert_eq!(rejected(&m, cluster, "frame_too_large"), 1.0, "{}", m.text);
    let over = rejected(&m, cluster, "connection_limit");
    let timed_out = rejected(&m, cluster, "handshake_timeout");
    assert!(over >= 200.0, "{}", m.text);
    assert_eq!(over + timed_out, 500.0, "{}", m.text);
    let admin = "tandem_admin_rejected_total";
    assert_eq!(rejected(&m, admin, "body_too_large"), 2.0, "{}", m.text);
    assert_eq!(rejected(&m, admin, "malformed_json"), 4.0, "{}", m.text);
    let log = daemon.log();
    for reason in [
        "tls_handshake",
        "undecodable",
        "frame_too_large",
        "connection_limit",
    ] {
        let quoted = format!("reason=\"{reason}\"");
        let bare = format!("reason={reason} ");
        let warned = log
            .lines()
            .filter(|l| l.contains("refused a peer"))
            .filter(|l| l.contains(&quoted) || l.contains(&bare))
            .count();
        assert_eq!(warned, 1, "one warning for {reason}:\n{log}");
    }
    assert!(log.contains("admin request refused"), "{log}");
    assert_eq!(leader_and_term(&daemon).await, (leader, term), "{log}");
    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let (status, _, _) = exchange(stream, Method::GET, "/v1/status", &[], None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    // A certified peer is still served: a garbage-free connection stays open.
    let mut peer = tls_peer(raft, certified)
        .await
        .expect("certified TLS after");
    assert!(!closed_within(&mut peer, Duration::from_millis(300)).await);
}

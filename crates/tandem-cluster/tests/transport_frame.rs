//! Framing: `u32` big-endian length + postcard payload, bounded. Oversized frames are refused
//! before their payload is read, by the codec and by the live server (which closes that
//! connection, logs it and keeps serving); requests over the client's limit never leave it.

#[path = "transport_support/harness.rs"]
mod harness;
#[path = "transport_support/logs.rs"]
mod logs;
#[path = "raft_support/temp.rs"]
mod temp;

use std::time::Duration;

use harness::client;
use harness::pki;
use harness::raw_tls;
use harness::rpc_option;
use harness::tls;
use harness::Server;
use logs::Logs;
use openraft::error::RPCError;
use openraft::CommittedLeaderId;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::RaftNetwork;
use openraft::Vote;
use tandem_cluster::raft::types::AppendEntriesRequest;
use tandem_cluster::raft::types::VoteRequest;
use tandem_cluster::state::Command;
use tandem_cluster::transport::wire::encode_frame;
use tandem_cluster::transport::wire::read_frame;
use tandem_cluster::transport::wire::write_frame;
use tandem_cluster::transport::wire::FrameError;
use tandem_cluster::transport::wire::Reply;
use tandem_cluster::transport::wire::Request;
use tandem_cluster::transport::wire::MAX_FRAME;
use tandem_cluster::transport::NetworkOptions;
use tandem_cluster::transport::TandemNetwork;
use temp::TempDir;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;

fn vote() -> VoteRequest {
    VoteRequest::new(Vote::new(1, 9), None)
}

#[tokio::test]
async fn frame_round_trips_and_is_length_prefixed_big_endian() {
    let frame = encode_frame(&Request::Vote(vote()), MAX_FRAME).unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);

    let (mut a, mut b) = tokio::io::duplex(1024);
    write_frame(&mut a, &frame).await.unwrap();
    write_frame(&mut a, &frame).await.unwrap();
    drop(a);
    for _ in 0..2 {
        let payload = read_frame(&mut b, MAX_FRAME).await.unwrap().unwrap();
        assert_eq!(payload, frame[4..]);
        let back: Request = postcard::from_bytes(&payload).unwrap();
        assert!(matches!(back, Request::Vote(v) if v == vote()));
    }
    assert!(
        read_frame(&mut b, MAX_FRAME).await.unwrap().is_none(),
        "clean end"
    );
}

#[tokio::test]
async fn frame_over_the_limit_is_refused_before_its_payload_is_read() {
    // The writer announces 101 bytes and sends none: refused from the header alone.
    let (mut a, mut b) = tokio::io::duplex(1024);
    a.write_all(&101u32.to_be_bytes()).await.unwrap();
    let e = read_frame(&mut b, 100).await.unwrap_err();
    assert!(
        matches!(e, FrameError::TooLarge { len: 101, max: 100 }),
        "{e}"
    );
    // Exactly the limit is fine.
    a.write_all(&100u32.to_be_bytes()).await.unwrap();
    a.write_all(&[7u8; 100]).await.unwrap();
    assert_eq!(read_frame(&mut b, 100).await.unwrap().unwrap(), [7u8; 100]);

    // Encoding checks the same limit, so nothing oversized is ever sent.
    let big = Reply::Refused("x".repeat(200));
    let e = encode_frame(&big, 100).unwrap_err();
    assert!(matches!(e, FrameError::TooLarge { max: 100, .. }), "{e}");

    // A frame cut short is an error, not a short message.
    a.write_all(&10u32.to_be_bytes()).await.unwrap();
    a.write_all(&[1, 2, 3]).await.unwrap();
    drop(a);
    let e = read_frame(&mut b, 100).await.unwrap_err();
    assert!(matches!(e, FrameError::Truncated), "{e}");
}

#[tokio::test]
async fn frame_oversized_or_undecodable_closes_that_connection_and_the_server_keeps_serving() {
    let (logs, _guard) = Logs::capture();
    let cluster = pki("frame-server", &["node-1", "node-2"]);
    let store = TempDir::new("frame-server-store");
    let node_1 = tls(cluster.path(), "node-1");
    let (raft, _) = harness::raft(
        1,
        store.path(),
        harness::network(node_1.client.clone(), &[]),
    )
    .await;
    let server = Server::start(harness::bind(0).await, &node_1, raft.clone());
    let node_2 = tls(cluster.path(), "node-2");

    // An authenticated peer announces a frame one byte over the limit.
    let mut conn = raw_tls(server.addr, node_2.client.clone(), "node-1")
        .await
        .unwrap();
    let me = conn.get_ref().0.local_addr().unwrap().to_string();
    conn.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
        .await
        .unwrap();
    conn.flush().await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection");
    assert!(
        rest.is_empty(),
        "no reply to an oversized frame: {read:?} {rest:?}"
    );
    let line = logs
        .line_with(&["WARN", "reason=\"frame_too_large\"", &format!("peer={me}")])
        .await;
    assert!(line.contains("67108865 bytes"), "{line}");

    // A frame of garbage: the peer is told why, then the connection is closed.
    let mut conn = raw_tls(server.addr, node_2.client.clone(), "node-1")
        .await
        .unwrap();
    let garbage = encode_frame(&"not a request".to_string(), MAX_FRAME).unwrap();
    write_frame(&mut conn, &garbage).await.unwrap();
    let reply = read_frame(&mut conn, MAX_FRAME)
        .await
        .unwrap()
        .expect("a reply");
    let reply: Reply = postcard::from_bytes(&reply).unwrap();
    assert!(
        matches!(&reply, Reply::Refused(why) if why.contains("cannot decode")),
        "{reply:?}"
    );
    assert!(read_frame(&mut conn, MAX_FRAME).await.unwrap().is_none());

    // Everyone else is still served.
    let net = harness::network(node_2.client.clone(), &["node-1"]);
    let mut to_1 = client(&net, 1, &format!("node-1:{}", server.addr.port())).await;
    let answer = to_1
        .vote(vote(), rpc_option())
        .await
        .expect("still serving");
    assert!(answer.vote_granted);

    server.stop().await;
    raft.shutdown().await.unwrap();
}

fn entries(n: u64, bytes: usize) -> Vec<Entry<tandem_cluster::raft::TandemRaft>> {
    (1..=n)
        .map(|i| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 9), i),
            payload: EntryPayload::Normal(Command::ApplyConfig {
                version: i,
                toml: "#".repeat(bytes),
            }),
        })
        .collect()
}

#[tokio::test]
async fn frame_over_the_clients_limit_asks_openraft_for_smaller_batches() {
    let cluster = pki("frame-client", &["node-1"]);
    let node_1 = tls(cluster.path(), "node-1");
    // Nothing listens there: the request must be refused before any dialing.
    let options = NetworkOptions {
        max_frame: 1000,
        ..NetworkOptions::default()
    };
    let net = TandemNetwork::new(node_1.client.clone(), options);
    let mut to_2 = client(&net, 2, "127.0.0.1:9").await;
    let append = |n, bytes| AppendEntriesRequest {
        vote: Vote::new_committed(1, 9),
        prev_log_id: None,
        leader_commit: None,
        entries: entries(n, bytes),
    };
    let e = to_2
        .append_entries(append(8, 300), rpc_option())
        .await
        .unwrap_err();
    let RPCError::PayloadTooLarge(too_large) = &e else {
        panic!("expected PayloadTooLarge, got {e}");
    };
    assert!(too_large.to_string().contains("entries:4"), "{too_large}");
    // One entry cannot be split: that is a plain network error.
    let e = to_2
        .append_entries(append(1, 3000), rpc_option())
        .await
        .unwrap_err();
    assert!(matches!(e, RPCError::Network(_)), "{e}");
    assert!(e.to_string().contains("over the 1000-byte limit"), "{e}");
}

//! Mutual TLS on the real listener: members get answers; a client whose certificate is from
//! another CA, or who has none, is refused and the refusal is logged with its address and
//! the reason; a client refuses a server that is not the node it dialed.

#[path = "transport_support/harness.rs"]
mod harness;
#[path = "transport_support/logs.rs"]
mod logs;
#[path = "raft_support/temp.rs"]
mod temp;

use harness::client;
use harness::network;
use harness::pki;
use harness::raw_tls;
use harness::rpc_option;
use harness::tls;
use harness::Server;
use logs::Logs;
use openraft::error::RPCError;
use openraft::RaftNetwork;
use openraft::Vote;
use tandem_cluster::raft::types::VoteRequest;
use tandem_cluster::raft::Raft;
use tandem_cluster::transport::wire::encode_frame;
use tandem_cluster::transport::wire::read_frame;
use tandem_cluster::transport::wire::write_frame;
use tandem_cluster::transport::wire::Request;
use tandem_cluster::transport::wire::MAX_FRAME;
use tandem_cluster::transport::ClusterTls;
use tandem_tls::ClientTlsSpec;
use temp::TempDir;

fn vote() -> VoteRequest {
    VoteRequest::new(Vote::new(1, 9), None)
}

/// Node 1 ("node-1") of the cluster whose PKI is in `dir`, uninitialised (it still answers
/// votes), serving on a fresh loopback port.
async fn node_1(dir: &TempDir, store: &TempDir) -> (Raft, Server, ClusterTls) {
    let tls = tls(dir.path(), "node-1");
    let net = network(tls.client.clone(), &[]);
    let (raft, _) = harness::raft(1, store.path(), net).await;
    let server = Server::start(harness::bind(0).await, &tls, raft.clone());
    (raft, server, tls)
}

#[tokio::test]
async fn tls_members_get_answers() {
    let (_logs, _guard) = Logs::capture();
    let cluster = pki("tls-ok", &["node-1", "node-2"]);
    let store = TempDir::new("tls-ok-store");
    let (raft, server, _) = node_1(&cluster, &store).await;

    let peer = tls(cluster.path(), "node-2");
    let net = network(peer.client.clone(), &["node-1"]);
    let mut to_1 = client(&net, 1, &format!("node-1:{}", server.addr.port())).await;
    let answer = to_1
        .vote(vote(), rpc_option())
        .await
        .expect("vote answered");
    assert_eq!(
        answer.vote,
        Vote::new(1, 9),
        "an empty node grants the vote"
    );
    assert!(answer.vote_granted);

    server.stop().await;
    raft.shutdown().await.unwrap();
}

#[tokio::test]
async fn tls_a_client_with_a_certificate_from_another_ca_is_refused_and_logged() {
    let (logs, _guard) = Logs::capture();
    let cluster = pki("tls-ca", &["node-1"]);
    let other = pki("tls-ca-other", &["intruder"]);
    let store = TempDir::new("tls-ca-store");
    let (raft, server, _) = node_1(&cluster, &store).await;

    // It trusts the cluster's CA, so it gets past its own check of the server, and shows a
    // certificate of its own CA: only the server's client verification stands in its way.
    let intruder = tandem_tls::client_config(&ClientTlsSpec {
        ca: Some(cluster.path().join("ca.pem")),
        verify: true,
        alpn: vec![b"tandem-raft/1".to_vec()],
        client_cert: Some(other.path().join("intruder.pem"))
            .map(|cert| tandem_tls::CertSpec::new(cert, other.path().join("intruder.key"))),
    })
    .unwrap();
    let net = network(intruder.clone(), &["node-1"]);
    let mut to_1 = client(&net, 1, &format!("node-1:{}", server.addr.port())).await;
    let refused = to_1.vote(vote(), rpc_option()).await.unwrap_err();
    assert!(
        matches!(refused, RPCError::Unreachable(_)),
        "a refused certificate makes the peer unreachable: {refused}"
    );
    assert!(
        refused.to_string().contains("refused our certificate"),
        "{refused}"
    );

    // By hand, to know the client's address: the server logs that address and the reason.
    let mut conn = raw_tls(server.addr, intruder, "node-1").await.unwrap();
    let me = conn.get_ref().0.local_addr().unwrap().to_string();
    let frame = encode_frame(&Request::Vote(vote()), MAX_FRAME).unwrap();
    let _ = write_frame(&mut conn, &frame).await;
    let answer = read_frame(&mut conn, MAX_FRAME).await;
    assert!(
        !matches!(answer, Ok(Some(_))),
        "no answer for a refused client: {answer:?}"
    );
    // The first refusal of a minute is a warning, the rest debug lines (a flood cannot
    // flood the log): this one follows openraft's, so it is at debug.
    let line = logs
        .line_with(&[
            "refused a peer",
            "reason=\"tls_handshake\"",
            &format!("peer={me}"),
        ])
        .await;
    assert!(
        line.contains("UnknownIssuer"),
        "the reason is logged: {line}"
    );
    logs.line_with(&["WARN", "refused a peer", "UnknownIssuer"])
        .await;

    server.stop().await;
    raft.shutdown().await.unwrap();
}

#[tokio::test]
async fn tls_a_client_without_a_certificate_is_refused_and_logged() {
    let (logs, _guard) = Logs::capture();
    let cluster = pki("tls-anon", &["node-1"]);
    let store = TempDir::new("tls-anon-store");
    let (raft, server, _) = node_1(&cluster, &store).await;

    let anonymous = tandem_tls::client_config(&ClientTlsSpec {
        ca: Some(cluster.path().join("ca.pem")),
        verify: true,
        alpn: vec![b"tandem-raft/1".to_vec()],
        client_cert: None,
    })
    .unwrap();
    let mut conn = raw_tls(server.addr, anonymous, "node-1").await.unwrap();
    let me = conn.get_ref().0.local_addr().unwrap().to_string();
    let frame = encode_frame(&Request::Vote(vote()), MAX_FRAME).unwrap();
    let _ = write_frame(&mut conn, &frame).await;
    let answer = read_frame(&mut conn, MAX_FRAME).await;
    assert!(!matches!(answer, Ok(Some(_))), "{answer:?}");
    let line = logs
        .line_with(&["WARN", "refused a peer", &format!("peer={me}")])
        .await;
    assert!(line.contains("peer sent no certificates"), "{line}");

    server.stop().await;
    raft.shutdown().await.unwrap();
}

#[tokio::test]
async fn tls_a_client_refuses_a_server_that_is_not_the_node_it_dialed() {
    let (logs, _guard) = Logs::capture();
    let cluster = pki("tls-name", &["node-1", "node-2", "node-3"]);
    let store = TempDir::new("tls-name-store");
    let (raft, server, _) = node_1(&cluster, &store).await;

    // node-3 dials "node-2" but the address answers with node-1's certificate.
    let node_3 = tls(cluster.path(), "node-3");
    let net = network(node_3.client.clone(), &["node-2"]);
    let addr = format!("node-2:{}", server.addr.port());
    let mut to_2 = client(&net, 2, &addr).await;
    let refused = to_2.vote(vote(), rpc_option()).await.unwrap_err();
    assert!(matches!(refused, RPCError::Unreachable(_)), "{refused}");
    let why = r#"not valid for name "node-2""#;
    assert!(refused.to_string().contains(why), "{refused}");
    // The dialing side logs it too, naming the peer and why.
    let line = logs
        .line_with(&["WARN", "cannot reach peer", &format!("peer={addr}")])
        .await;
    assert!(line.contains(r#"not valid for name \"node-2\""#), "{line}");

    server.stop().await;
    raft.shutdown().await.unwrap();
}

//! What travels inside the TLS stream: length-prefixed frames, each one postcard-encoded
//! [`Request`] (client to server) or [`Reply`] (server to client).
//!
//! Frame: `u32` big-endian payload length, then the payload. A connection carries one
//! request at a time: the client writes a request frame and reads exactly one reply frame
//! before it sends the next, so no request ids are needed and a reply can never be matched
//! to the wrong request (a client that gives up on a call drops the connection with it).
//!
//! The length is checked against a limit *before* any payload byte is read or buffered, so a
//! peer cannot make a node allocate more than the limit; an oversized frame is an error and
//! the connection is closed (the stream cannot be resynchronised without reading it).
//!
//! Snapshots: openraft's default `full_snapshot` sends a snapshot as a series of
//! `InstallSnapshot` chunks of at most `Config::snapshot_max_chunk_size` bytes (3 MiB by
//! default), each one [`Request::InstallSnapshot`] frame, so [`MAX_FRAME`] bounds a chunk,
//! not a snapshot. Keep `snapshot_max_chunk_size` well under [`MAX_FRAME`].

use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;

use crate::node::ClusterOp;
use crate::node::OpReply;
use crate::raft::types::AppendEntriesRequest;
use crate::raft::types::AppendEntriesResponse;
use crate::raft::types::InstallSnapshotRequest;
use crate::raft::types::InstallSnapshotResponse;
use crate::raft::types::LogId;
use crate::raft::types::VoteRequest;
use crate::raft::types::VoteResponse;
use crate::raft::NodeId;

/// The largest frame payload either end accepts: 64 MiB, room for a snapshot chunk or a
/// large batch of log entries (sticky-table batches are the big ones) with a wide margin,
/// and still a bound on what one frame can make a node allocate.
pub const MAX_FRAME: usize = 64 << 20;

/// openraft's error answer for AppendEntries and Vote.
pub type RaftError = openraft::error::RaftError<NodeId>;
/// openraft's error answer for InstallSnapshot.
pub type SnapshotError = openraft::error::RaftError<NodeId, openraft::error::InstallSnapshotError>;

/// A Raft RPC, as openraft hands it to the network.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest),
    Vote(VoteRequest),
    InstallSnapshot(InstallSnapshotRequest),
    /// A cluster operation (a write, a membership change) for the leader; a follower that
    /// gets one forwards it once to the leader it knows. See [`crate::node::ClusterOp`].
    Op(OpRequest),
    /// Would you vote for this candidate? Asked before a real election (see
    /// [`crate::node::elector`]); answering changes nothing on the receiver.
    PreVote(PreVoteRequest),
}

/// A pre-vote: the candidate's id and the last entry of its log.
#[derive(Debug, Serialize, Deserialize)]
pub struct PreVoteRequest {
    pub candidate: NodeId,
    pub last_log_id: Option<LogId>,
}

/// A cluster operation as it travels: `forwarded` is set by the node that passed it on, so
/// a request is forwarded at most once (two nodes that disagree about the leader cannot
/// bounce it between them).
#[derive(Debug, Serialize, Deserialize)]
pub struct OpRequest {
    pub op: ClusterOp,
    pub forwarded: bool,
    /// Sent by a member that cannot reach the leader itself, through this node: it may go
    /// on to the leader, never to another relay.
    pub relayed: bool,
}

impl Request {
    /// The RPC's name, for log lines and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::AppendEntries(_) => "AppendEntries",
            Request::Vote(_) => "Vote",
            Request::InstallSnapshot(_) => "InstallSnapshot",
            Request::Op(_) => "ClusterOp",
            Request::PreVote(_) => "PreVote",
        }
    }
}

/// The answer to a [`Request`]: the receiving `Raft`'s result, error included (the client
/// turns an error into openraft's `RemoteError`), or why the server could not take it.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    AppendEntries(Result<AppendEntriesResponse, RaftError>),
    Vote(Result<VoteResponse, RaftError>),
    InstallSnapshot(Result<InstallSnapshotResponse, SnapshotError>),
    /// The server could not decode the request; it closes the connection after this.
    Refused(String),
    /// What a [`Request::Op`] did, or why it failed (the message names the cause).
    Op(Result<OpReply, String>),
    /// Whether the receiver would grant the candidate its vote now.
    PreVote(bool),
}

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("the peer closed the connection in the middle of a frame")]
    Truncated,
    #[error("the peer closed the connection without answering")]
    Closed,
    #[error("cannot encode the message: {0}")]
    Encode(postcard::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Encode `message` as one complete frame (header included), refusing it if the payload is
/// over `max`. Encoding straight after a reserved header avoids copying a large payload.
pub fn encode_frame<T: Serialize>(message: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut frame = postcard::to_extend(message, vec![0u8; 4]).map_err(FrameError::Encode)?;
    let len = frame.len() - 4;
    let header = u32::try_from(len)
        .ok()
        .filter(|_| len <= max)
        .ok_or(FrameError::TooLarge { len, max })?;
    frame[..4].copy_from_slice(&header.to_be_bytes());
    Ok(frame)
}

/// Write one frame made by [`encode_frame`] and flush it (TLS buffers otherwise).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(frame).await?;
    w.flush().await
}

/// Read one frame's payload. `Ok(None)` when the peer closed the connection cleanly between
/// frames (the normal end of a connection); [`FrameError::TooLarge`] before reading any of
/// an oversized payload.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    // Grow with the bytes that actually arrive rather than trusting the header for the
    // allocation: a peer that announces 64 MiB and sends nothing costs nothing.
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    (&mut *r).take(len as u64).read_to_end(&mut payload).await?;
    if payload.len() != len {
        return Err(FrameError::Truncated);
    }
    Ok(Some(payload))
}

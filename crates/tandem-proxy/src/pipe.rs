//! Copies bytes both ways between two TCP streams.
//!
//! Half-close is honoured: when one side stops sending (EOF), we shut down the write side
//! towards the other and keep copying the opposite direction until it ends too. A shared
//! activity clock closes the pair when neither direction moved for `idle`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Per-direction buffer. 32 KiB keeps a 1 MiB transfer to a few dozen syscalls while
/// costing 64 KiB per connection at most.
const BUF_SIZE: usize = 32 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeOutcome {
    /// Bytes from `client` to `upstream`.
    pub bytes_in: u64,
    /// Bytes from `upstream` to `client`.
    pub bytes_out: u64,
    /// Closed because nothing moved for the idle timeout.
    pub idle_timed_out: bool,
    /// Ended by an I/O error (reset, broken pipe) rather than clean EOFs.
    pub error: Option<std::io::ErrorKind>,
    /// How long the backend took to answer: from the later of the start and the first
    /// client byte sent to it, to its first byte back. None if it never sent anything.
    pub response_latency: Option<Duration>,
}

const UNSET: u64 = u64::MAX;

/// Milliseconds since `origin`, updated on every successful read.
struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.origin.elapsed().as_millis() as u64, Relaxed);
    }
    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Relaxed))
    }
}

/// Runs until both directions reached EOF, an error occurred, or the pair went idle.
pub async fn pipe(client: &mut TcpStream, upstream: &mut TcpStream, idle: Duration) -> PipeOutcome {
    let activity = Activity {
        origin: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let in_count = AtomicU64::new(0);
    let out_count = AtomicU64::new(0);
    let first_in_us = AtomicU64::new(UNSET);
    let first_out_us = AtomicU64::new(UNSET);
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let both = async {
        tokio::try_join!(
            copy_half(&mut cr, &mut uw, &activity, &in_count, &first_in_us),
            copy_half(&mut ur, &mut cw, &activity, &out_count, &first_out_us),
        )
    };
    let idle_watch = async {
        loop {
            let deadline = activity.last() + idle;
            tokio::time::sleep_until(deadline).await;
            if Instant::now() >= activity.last() + idle {
                return;
            }
        }
    };
    let mut outcome = PipeOutcome::default();
    tokio::select! {
        result = both => {
            if let Err(e) = result {
                outcome.error = Some(e.kind());
            }
        }
        _ = idle_watch => outcome.idle_timed_out = true,
    }
    outcome.bytes_in = in_count.load(Relaxed);
    outcome.bytes_out = out_count.load(Relaxed);
    let (first_in, first_out) = (first_in_us.load(Relaxed), first_out_us.load(Relaxed));
    if first_out != UNSET {
        let asked = if first_in < first_out { first_in } else { 0 };
        outcome.response_latency = Some(Duration::from_micros(first_out - asked));
    }
    outcome
}

async fn copy_half<R, W>(
    reader: &mut R,
    writer: &mut W,
    activity: &Activity,
    count: &AtomicU64,
    first_byte_us: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            // Propagate the half-close: the peer sees EOF, the other direction goes on.
            // A failed shutdown means that peer is gone; its own direction reports that.
            let _ = writer.shutdown().await;
            return Ok(());
        }
        if first_byte_us.load(Relaxed) == UNSET {
            first_byte_us.store(activity.origin.elapsed().as_micros() as u64, Relaxed);
        }
        activity.touch();
        writer.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Relaxed);
        activity.touch();
    }
}

//! Phase 5, logging: the listener's status counters when the response head goes out;
//! the access log line, the byte counters and the request duration when its body ends.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio::time::Instant;

use super::RequestCtx;
use crate::access_log::{self, AccessRecord};
use crate::metered::BodyEnd;
use crate::runtime::ListenerRuntime;

/// Counts the response's status and keeps what its end needs (the request context ends
/// here; the body may stream for a long time after).
pub(super) fn respond(
    rc: RequestCtx<'_>,
    listener: Arc<ListenerRuntime>,
    status: u16,
    started: Instant,
) -> RequestEnd {
    listener.stats.count_status(status);
    RequestEnd {
        listener,
        record: rc.record,
        body_read: rc.body_read,
        status,
        started,
    }
}

/// One request's last step, run when its response body is over (see `Metered`).
pub(super) struct RequestEnd {
    listener: Arc<ListenerRuntime>,
    record: AccessRecord,
    body_read: Option<Arc<AtomicU64>>,
    status: u16,
    started: Instant,
}

impl BodyEnd for RequestEnd {
    fn body_ended(mut self, sent: u64) {
        let total = self.started.elapsed();
        let received = self.body_read.as_ref().map_or(0, |n| n.load(Relaxed));
        let l = &self.listener;
        l.stats.request_seconds.observe(total);
        l.stats.body_bytes_in.fetch_add(received, Relaxed);
        l.stats.body_bytes_out.fetch_add(sent, Relaxed);
        self.record.finish(self.status, received, sent, total);
        if l.settings.access_log {
            access_log::emit(&self.record, &l.name, &l.settings.access_log_format);
        }
    }
}

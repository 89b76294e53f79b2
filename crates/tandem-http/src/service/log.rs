//! Phase 5, logging: the listener's status counters and the access log line.

use std::time::Duration;

use super::RequestCtx;
use crate::access_log;

pub(super) fn finish(
    rc: &mut RequestCtx<'_>,
    status: u16,
    bytes_out: Option<u64>,
    total: Duration,
) {
    let l = rc.listener;
    l.stats.count_status(status);
    rc.record.finish(status, bytes_out, total);
    if l.settings.access_log {
        access_log::emit(&rc.record, &l.name, &l.settings.access_log_format);
    }
}

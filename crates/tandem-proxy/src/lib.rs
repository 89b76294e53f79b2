//! tandem's forwarding plane: L4 TCP and UDP listeners in front of balanced backend pools.
//!
//! Layout: [`Plane`] builds listeners and pools from the cluster config; [`SharedPool`]
//! (from tandem-pool, shared with the L7 plane) is a pool that many connection tasks pick
//! from; `tcp` and `udp` hold the accept and relay loops; `pipe` copies bytes both ways
//! with half-close and an idle timeout.

mod accept_backoff;
mod pipe;
mod plane;
pub mod proxy_protocol;
mod stats;
mod tcp;
mod udp;

pub use accept_backoff::AcceptBackoff;
// The pools and what comes with them live in tandem-pool, shared with the L7 plane;
// re-exported so that users of the L4 plane find them here too.
pub use pipe::{pipe, PipeOutcome};
pub use plane::{ListenerHandle, Plane};
pub use stats::{ListenerStats, StatsSnapshot};
pub use tandem_pool::{
    bind_tcp, bind_tcp_group, bind_udp, BackendLease, BackendMetrics, BackendStatus, Clock,
    ErrorKind, HealthEvent, SharedPool, StartError, HEALTH_HISTORY, RESPONSE_BUCKETS,
    STATUS_CLASSES,
};
pub use tcp::ip_key;

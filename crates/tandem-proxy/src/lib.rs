//! tandem's forwarding plane: L4 TCP and UDP listeners in front of balanced backend pools.
//!
//! Layout: [`Plane`] builds listeners and pools from the cluster config; [`SharedPool`] is a
//! pool that many connection tasks pick from; `tcp` and `udp` hold the accept and relay
//! loops; `pipe` copies bytes both ways with half-close and an idle timeout.

mod accept_backoff;
mod backend_metrics;
mod bind;
mod clock;
mod history;
mod pipe;
mod plane;
mod pool;
pub mod proxy_protocol;
mod stats;
mod tcp;
mod udp;

pub use accept_backoff::AcceptBackoff;
pub use backend_metrics::{BackendMetrics, ErrorKind, RESPONSE_BUCKETS, STATUS_CLASSES};
pub use bind::{
    tcp_listener as bind_tcp, tcp_listener_group as bind_tcp_group, udp_socket as bind_udp,
    StartError,
};
pub use clock::Clock;
pub use history::{HealthEvent, HEALTH_HISTORY};
pub use pipe::{pipe, PipeOutcome};
pub use plane::{ListenerHandle, Plane};
pub use pool::{BackendLease, BackendStatus, SharedPool};
pub use stats::{ListenerStats, StatsSnapshot};
pub use tcp::ip_key;

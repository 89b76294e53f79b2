//! What tandem's two forwarding planes share: the L4 plane (tandem-proxy) and the L7
//! plane (tandem-http) both pick backends from a [`SharedPool`] (balancing, leases,
//! passive ejection, health history, per-backend metrics), read time through one
//! [`Clock`], and bind their listening sockets the same way (`bind`).

mod backend_metrics;
mod bind;
mod clock;
mod history;
mod pool;

pub use backend_metrics::{BackendMetrics, ErrorKind, RESPONSE_BUCKETS, STATUS_CLASSES};
pub use bind::{
    tcp_listener as bind_tcp, tcp_listener_group as bind_tcp_group, udp_socket as bind_udp,
    udp_upstream, StartError,
};
pub use clock::Clock;
pub use history::{HealthEvent, HEALTH_HISTORY};
pub use pool::{BackendLease, BackendStatus, SharedPool};

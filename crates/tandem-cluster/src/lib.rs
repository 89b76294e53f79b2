//! tandem's cluster layer. `state` is the replicated state machine, pure and deterministic
//! (no clock reads, no randomness): the cluster config, sticky-session tables and VIP
//! leases, plus the lease clock rules the proposing nodes follow. `raft` is the openraft
//! glue (kept in one module so an upgrade stays contained): type config and durable
//! storage on redb. `transport` carries Raft RPCs between nodes over mutual TLS, and
//! creates the cluster PKI that authenticates them.

pub mod lease_keeper;
pub mod lease_machine;
pub mod node;
pub mod raft;
pub mod state;
pub mod transport;

//! Backend pools and selection algorithms for tandem.
//!
//! Pure by design: no I/O, no threads, no clock reads (time is passed in as
//! a `Duration` since an arbitrary origin) and no global randomness (each
//! pool owns a seeded PRNG). That makes every decision reproducible in
//! tests and lets the proxy own all the concurrency.
//!
//! Backends are plain data in a [`Pool`]; each algorithm is a small
//! selector behind one internal trait and only ever sees the backends the
//! pool has already found eligible.

mod algorithms;
mod backend;
mod candidates;
mod client;
mod context;
mod hash;
mod passive;
mod pool;
mod prime;
mod rng;
mod settings;

pub use std::time::Duration;

pub use backend::{AdminState, Backend, BackendSpec, Health};
pub use client::{canonical_addr, canonical_ip, client_key};
pub use context::PickContext;
pub use hash::stable_hash;
pub use pool::Pool;
pub use settings::{Algorithm, PassiveEjection, PoolSettings, DEFAULT_SEED};

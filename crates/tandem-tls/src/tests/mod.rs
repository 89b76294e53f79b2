//! Tests with real certificates (made by rcgen at test time) and real, in-memory handshakes.

mod client;
mod handshake;
mod load;
mod pki;

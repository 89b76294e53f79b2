//! L7 test fixtures: a throwaway PKI written to a scratch directory (rcgen), small hyper
//! backends (plain h1/h2c or TLS) that echo what they received, a hand-made WebSocket echo
//! backend, and curl run as a child process with a deadline. Loopback only.

mod backend;
mod curl;
mod pki;
mod websocket;

pub use backend::*;
pub use curl::*;
pub use pki::*;
pub use websocket::*;

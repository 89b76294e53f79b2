//! The HTTP test kit: one backend ([`HttpBackend`], built with options: plain or TLS,
//! HTTP/1.1 or h2, what it answers, scripted raw bytes; it records requests and counts
//! requests and connections), a WebSocket echo backend, a throwaway PKI, and real
//! clients (curl, hyper, raw sockets). Loopback only.

mod answers;
mod backend;
mod clients;
mod content;
mod curl;
mod pki;
mod scripted;
mod websocket;

pub use answers::echo_header;
pub use backend::{Answer, HttpBackend, HttpBackendBuilder, Protocols, Seen};
pub use clients::*;
pub use content::{big_json, big_text};
pub use curl::*;
pub use pki::*;
pub use websocket::*;

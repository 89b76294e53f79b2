//! VRRPv3 (RFC 5798, IPv4) for tandem, in three layers:
//!
//! - [`wire`]: typed views over packet bytes plus parsed `Repr`s (VRRPv3, VRRPv2 for
//!   diagnosis, IPv4 header, ARP/Ethernet). Pure.
//! - [`machine`]: the RFC 5798 section 6 state machine, driven by inputs and a time passed
//!   in; it returns actions. Pure, so it is tested with a virtual clock.
//! - `io`: raw sockets, netlink address changes, gratuitous ARP and hooks: the thin shell
//!   that feeds the machine and carries out its actions.

pub mod io;
pub mod machine;
pub mod wire;

//! Opening listening sockets with the options a proxy wants, and errors that say which
//! listener and address failed.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `error` is in the message and deliberately not the error's `source()`: callers
    /// print chains (`{:#}`), which would repeat the OS error.
    #[error("listener {listener:?}: cannot bind {address}: {error}{hint}")]
    Bind {
        listener: String,
        address: SocketAddr,
        error: std::io::Error,
        hint: &'static str,
    },
    #[error("listener {listener:?}: no pool named {pool:?}")]
    MissingPool { listener: String, pool: String },
}

fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another process (or listener) already uses this address"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need root or CAP_NET_BIND_SERVICE"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "; the address is not on this machine (for a VIP, set net.ipv4.ip_nonlocal_bind=1)"
        }
        _ => "",
    }
}

fn bind_error(listener: &str, address: SocketAddr, source: std::io::Error) -> StartError {
    let hint = hint(&source);
    StartError::Bind {
        listener: listener.to_string(),
        address,
        error: source,
        hint,
    }
}

/// A listening TCP socket (SO_REUSEADDR, given backlog), for tokio.
pub fn tcp_listener(
    name: &str,
    address: SocketAddr,
    backlog: u32,
    v6_only: bool,
) -> Result<tokio::net::TcpListener, StartError> {
    open_tcp(address, backlog, false, v6_only)
        .and_then(|s| tokio::net::TcpListener::from_std(s.into()))
        .map_err(|e| bind_error(name, address, e))
}

/// `n` listening sockets on one address with SO_REUSEPORT, for `n` threads that each
/// accept on their own: the kernel spreads new connections over them. Port 0: the port
/// the first socket got. Left in std form (non-blocking): each is registered with the
/// runtime of the thread that accepts on it. With `n` = 1, no SO_REUSEPORT, so a second
/// process on the same address fails to bind instead of sharing the connections.
pub fn tcp_listener_group(
    name: &str,
    address: SocketAddr,
    backlog: u32,
    v6_only: bool,
    n: usize,
) -> Result<Vec<std::net::TcpListener>, StartError> {
    let reuse_port = n > 1;
    let first: std::net::TcpListener = open_tcp(address, backlog, reuse_port, v6_only)
        .map_err(|e| bind_error(name, address, e))?
        .into();
    let bound = first.local_addr().unwrap_or(address);
    let mut group = vec![first];
    for _ in 1..n {
        let socket = open_tcp(bound, backlog, reuse_port, v6_only)
            .map_err(|e| bind_error(name, bound, e))?;
        group.push(socket.into());
    }
    Ok(group)
}

/// `v6_only`: an IPv6 address (`[::]` above all) takes IPv6 clients only; false makes it
/// dual-stack, IPv4 clients arriving as IPv4-mapped addresses (handled as IPv4 everywhere).
fn open_tcp(
    address: SocketAddr,
    backlog: u32,
    reuse_port: bool,
    v6_only: bool,
) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // Restart without waiting out TIME_WAIT of the previous process's connections.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if address.is_ipv6() {
        socket.set_only_v6(v6_only)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket)
}

/// A bound UDP socket for a listener, for tokio (tandemd also probes reload addresses
/// with it).
pub fn udp_socket(
    name: &str,
    address: SocketAddr,
    v6_only: bool,
) -> Result<tokio::net::UdpSocket, StartError> {
    let open = || -> std::io::Result<tokio::net::UdpSocket> {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if address.is_ipv6() {
            socket.set_only_v6(v6_only)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        tokio::net::UdpSocket::from_std(socket.into())
    };
    open().map_err(|e| bind_error(name, address, e))
}

/// An unconnected UDP socket of the backend's family, for one flow.
pub fn udp_upstream(backend: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let local: SocketAddr = if backend.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}

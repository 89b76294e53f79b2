//! Raw IPv6 sockets for protocol 112 (RFC 5798 section 5.1.2).
//!
//! Unlike IPv4, a raw IPv6 socket delivers the payload without the IP header, so the
//! receiver asks the kernel for the hop limit (IPV6_RECVHOPLIMIT) and the destination
//! (IPV6_RECVPKTINFO) beside each message; the source comes with recvmsg's address. The
//! sender is bound to the interface's link-local address (scope: the interface) and sends
//! with hop limit 255, as the RFC requires and receivers check.

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::io::IoSliceMut;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsFd;
use tokio::io::unix::AsyncFd;

use super::socket::register;
use crate::wire::{Ipv6Info, IPPROTO_VRRP, VRRP_MULTICAST_V6, VRRP_TTL};

/// Traffic class CS6 ("network control"), as for IPv4.
const TCLASS_NETWORK_CONTROL: i32 = 0xc0;

pub struct Vrrp6Sockets {
    recv: AsyncFd<Socket>,
    send: AsyncFd<Socket>,
    index: u32,
}

impl Vrrp6Sockets {
    pub fn open(
        interface: &str,
        index: u32,
        source: Ipv6Addr,
        multicast: bool,
    ) -> io::Result<Self> {
        let proto = Some(Protocol::from(IPPROTO_VRRP as i32));
        let recv = Socket::new(Domain::IPV6, Type::RAW, proto)?;
        recv.bind_device(Some(interface.as_bytes()))?;
        if multicast {
            recv.join_multicast_v6(&VRRP_MULTICAST_V6, index)?;
        }
        setsockopt(&recv.as_fd(), sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
        setsockopt(&recv.as_fd(), sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        recv.set_nonblocking(true)?;

        let send = Socket::new(Domain::IPV6, Type::RAW, proto)?;
        send.bind_device(Some(interface.as_bytes()))?;
        send.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, index)))?;
        send.set_unicast_hops_v6(u32::from(VRRP_TTL))?;
        send.set_multicast_hops_v6(u32::from(VRRP_TTL))?;
        send.set_multicast_loop_v6(false)?;
        send.set_multicast_if_v6(index)?;
        setsockopt(&send.as_fd(), sockopt::Ipv6TClass, &TCLASS_NETWORK_CONTROL)
            .map_err(io::Error::from)?;
        send.set_recv_buffer_size(1)?;
        send.set_nonblocking(true)?;
        Ok(Vrrp6Sockets {
            recv: register(recv)?,
            send: register(send)?,
            index,
        })
    }

    /// Receives one VRRP message and what the kernel reported beside it. A message
    /// without a hop limit or destination (never seen on Linux) reports hop limit 0, so
    /// the parser rejects it.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(Ipv6Info, usize)> {
        loop {
            let mut guard = self.recv.readable().await?;
            match guard.try_io(|inner| receive(inner.get_ref(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one VRRP payload to `dst` (the kernel writes the IPv6 header; the checksum is
    /// in the payload already). Link-local destinations get the interface as scope.
    pub async fn send_to(&self, payload: &[u8], dst: Ipv6Addr) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddrV6::new(dst, 0, 0, self.index));
        loop {
            let mut guard = self.send.writable().await?;
            match guard.try_io(|inner| inner.get_ref().send_to(payload, &addr)) {
                Ok(result) => return result.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}

fn receive(socket: &Socket, buf: &mut [u8]) -> io::Result<(Ipv6Info, usize)> {
    use std::os::fd::AsRawFd;
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(libc_in6_pktinfo, i32);
    let msg = recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space[..]),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let mut info = Ipv6Info {
        src: msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED),
        dst: Ipv6Addr::UNSPECIFIED,
        hop_limit: 0,
    };
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        match cmsg {
            ControlMessageOwned::Ipv6HopLimit(limit) => {
                info.hop_limit = u8::try_from(limit).unwrap_or(0)
            }
            ControlMessageOwned::Ipv6PacketInfo(pktinfo) => {
                info.dst = Ipv6Addr::from(pktinfo.ipi6_addr.s6_addr)
            }
            _ => {}
        }
    }
    Ok((info, msg.bytes))
}

/// `struct in6_pktinfo`'s size, for the control buffer.
#[allow(non_camel_case_types)]
type libc_in6_pktinfo = [u8; 20];

//! Raw IPv4 sockets for protocol 112.
//!
//! Two sockets per instance: the receiver is bound to the interface only (a raw socket
//! bound to an address would miss multicast), joins 224.0.0.18 there and sees every VRRP
//! packet on that link; the sender is bound to our primary address so adverts carry it as
//! source, with TTL 255 and TOS 0xc0 (network control) as RFC 5798 and keepalived do.

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use tokio::io::unix::AsyncFd;

use crate::wire::{IPPROTO_VRRP, VRRP_MULTICAST_V4, VRRP_TTL};

/// DSCP CS6 ("network control"), as keepalived sets it.
const TOS_NETWORK_CONTROL: u32 = 0xc0;

pub struct VrrpSockets {
    recv: AsyncFd<Socket>,
    send: AsyncFd<Socket>,
}

impl VrrpSockets {
    pub fn open(
        interface: &str,
        index: u32,
        source: Ipv4Addr,
        multicast: bool,
    ) -> io::Result<Self> {
        let proto = Some(Protocol::from(IPPROTO_VRRP as i32));
        let recv = Socket::new(Domain::IPV4, Type::RAW, proto)?;
        recv.bind_device(Some(interface.as_bytes()))?;
        if multicast {
            recv.join_multicast_v4_n(&VRRP_MULTICAST_V4, &InterfaceIndexOrAddress::Index(index))?;
        }
        recv.set_nonblocking(true)?;

        let send = Socket::new(Domain::IPV4, Type::RAW, proto)?;
        send.bind_device(Some(interface.as_bytes()))?;
        send.bind(&SockAddr::from(SocketAddrV4::new(source, 0)))?;
        send.set_ttl_v4(VRRP_TTL as u32)?;
        send.set_multicast_ttl_v4(VRRP_TTL as u32)?;
        send.set_multicast_loop_v4(false)?;
        send.set_multicast_if_v4(&source)?;
        send.set_tos_v4(TOS_NETWORK_CONTROL)?;
        // This socket only sends; keep what it would queue on receive to a minimum.
        send.set_recv_buffer_size(1)?;
        send.set_nonblocking(true)?;
        Ok(VrrpSockets {
            recv: register(recv)?,
            send: register(send)?,
        })
    }

    /// Receives one IPv4 packet (header included, as Linux raw sockets deliver it).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.recv.readable().await?;
            let uninit = unsafe_as_uninit(buf);
            match guard.try_io(|inner| inner.get_ref().recv(uninit)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one VRRP payload to `dst` (the kernel writes the IP header).
    pub async fn send_to(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddrV4::new(dst, 0));
        loop {
            let mut guard = self.send.writable().await?;
            match guard.try_io(|inner| inner.get_ref().send_to(payload, &addr)) {
                Ok(result) => return result.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}

/// socket2 reads into `MaybeUninit<u8>`; an initialised buffer is a valid one.
fn unsafe_as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: u8 and MaybeUninit<u8> have the same layout, and the buffer is initialised;
    // recv only writes bytes, never de-initialises them.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}

pub(super) fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: the AsyncFd owns the socket, so the descriptor stays open for as long as it
    // is registered, and nothing else closes it.
    unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)
}

//! Reads the kernel fence ([`super::kernel_fence`]) from the current thread's network
//! namespace without running `nft` (too slow for an observer sampling every 10 ms): one
//! nfnetlink dump of the `held` set of table `inet tandem_fence`. A VIP whose address is
//! configured but whose element is absent or expired is silenced by the kernel: it is not
//! held. The drills' observer and `tandem-holders` (bench/cluster.sh) use it.

use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use std::net::IpAddr;
use std::os::fd::AsRawFd;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETSETELEM: u16 = 13;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_EXPIRATION: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;

/// What the fence says of `vip` in this thread's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceState {
    /// No `inet tandem_fence` table: the address alone decides.
    NoFence,
    /// The VIP's element is present and not expired: traffic passes.
    Open,
    /// The table exists and the VIP has no live element: the kernel drops its traffic.
    Closed,
}

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// Attributes of a netlink payload: (type without flags, payload).
fn attrs(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    out
}

/// The fence state of `vip` in this thread's namespace (IPv4 VIPs live in the `held` set,
/// IPv6 ones in `held6`).
pub fn fence_state(vip: impl Into<IpAddr>) -> std::io::Result<FenceState> {
    let vip: IpAddr = vip.into();
    let (set, octets): (&[u8], Vec<u8>) = match vip {
        IpAddr::V4(v4) => (b"held\0", v4.octets().to_vec()),
        IpAddr::V6(v6) => (b"held6\0", v6.octets().to_vec()),
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    let mut body = vec![NFPROTO_INET, 0, 0, 0];
    attr(&mut body, NFTA_SET_ELEM_LIST_TABLE, b"tandem_fence\0");
    attr(&mut body, NFTA_SET_ELEM_LIST_SET, set);
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    sendto(
        fd.as_raw_fd(),
        &msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut open = false;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut data = &buf[..n];
        while data.len() >= 16 {
            let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes([data[4], data[5]]);
            if len < 16 || len > data.len() {
                return Ok(if open {
                    FenceState::Open
                } else {
                    FenceState::Closed
                });
            }
            match kind {
                NLMSG_DONE => {
                    return Ok(if open {
                        FenceState::Open
                    } else {
                        FenceState::Closed
                    })
                }
                NLMSG_ERROR => {
                    let code = i32::from_ne_bytes(data[16..20].try_into().unwrap());
                    match -code {
                        0 => {}
                        c if c == nix::libc::ENOENT => return Ok(FenceState::NoFence),
                        c => return Err(std::io::Error::from_raw_os_error(c)),
                    }
                }
                _ => {
                    // nfgenmsg (4 bytes), then the attributes.
                    for (k, elements) in attrs(&data[20..len]) {
                        if k != NFTA_SET_ELEM_LIST_ELEMENTS {
                            continue;
                        }
                        for (k, elem) in attrs(elements) {
                            if k != NFTA_LIST_ELEM {
                                continue;
                            }
                            let fields = attrs(elem);
                            let key = fields
                                .iter()
                                .find(|(k, _)| *k == NFTA_SET_ELEM_KEY)
                                .and_then(|(_, key)| {
                                    attrs(key).into_iter().find(|(k, _)| *k == NFTA_DATA_VALUE)
                                })
                                .map(|(_, v)| v);
                            let expires = fields
                                .iter()
                                .find(|(k, _)| *k == NFTA_SET_ELEM_EXPIRATION)
                                .map(|(_, v)| u64::from_be_bytes(v[..8].try_into().unwrap()));
                            if key == Some(&octets[..]) && expires != Some(0) {
                                open = true;
                            }
                        }
                    }
                }
            }
            data = &data[len.next_multiple_of(4).min(data.len())..];
        }
    }
}

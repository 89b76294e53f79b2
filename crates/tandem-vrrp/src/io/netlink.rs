//! Interface facts and virtual-address changes over rtnetlink.
//!
//! VIPs are installed with a finite kernel lifetime (valid_lft = preferred_lft), renewed
//! while we are master. If the daemon is SIGKILLed or hangs, the kernel drops the address
//! by itself when the lifetime runs out, so a dead node stops answering ARP for the VIP
//! (keepalived leaves it configured forever in that case).

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage, CacheInfo};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// What we need to know of one interface.
#[derive(Clone, Debug)]
pub struct LinkInfo {
    pub index: u32,
    pub mac: [u8; 6],
    /// Administratively up and with carrier.
    pub up: bool,
}

/// One rtnetlink connection (its task runs on the current tokio runtime).
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a netlink socket: {0} (tandemd needs CAP_NET_ADMIN)")]
    Open(std::io::Error),
    #[error("interface {0:?} not found; check node.vrrp.interface")]
    NoSuchInterface(String),
    #[error("{what} on interface #{index}: {source}")]
    Request {
        what: String,
        index: u32,
        source: rtnetlink::Error,
    },
}

impl Netlink {
    pub fn open() -> Result<Self, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Open)?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    pub async fn link(&self, name: &str) -> Result<LinkInfo, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => {
                let mac = msg
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                            let mut m = [0u8; 6];
                            m.copy_from_slice(bytes);
                            Some(m)
                        }
                        _ => None,
                    })
                    .unwrap_or([0; 6]);
                let flags = msg.header.flags;
                Ok(LinkInfo {
                    index: msg.header.index,
                    mac,
                    up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
                })
            }
            _ => Err(NetlinkError::NoSuchInterface(name.to_string())),
        }
    }

    /// IPv4 addresses on the interface, in kernel order (the primary first).
    pub async fn ipv4_addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError> {
        let mut out = Vec::new();
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = stream.try_next().await.map_err(|e| NetlinkError::Request {
            what: "listing addresses".into(),
            index,
            source: e,
        })? {
            if let Some(ip) = address_of(&msg) {
                out.push((ip, msg.header.prefix_len));
            }
        }
        Ok(out)
    }

    /// Adds (or renews) `ip/prefix` with a finite lifetime.
    pub async fn add_with_lifetime(
        &self,
        index: u32,
        ip: Ipv4Addr,
        prefix: u8,
        lifetime: Duration,
    ) -> Result<(), NetlinkError> {
        let secs = lifetime.as_secs().clamp(1, u32::MAX as u64 - 1) as u32;
        let mut request = self
            .handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .replace();
        let mut info = CacheInfo::default();
        info.ifa_valid = secs;
        info.ifa_preferred = secs;
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::CacheInfo(info));
        request.execute().await.map_err(|e| NetlinkError::Request {
            what: format!("adding {ip}/{prefix}"),
            index,
            source: e,
        })
    }

    /// Removes `ip` from the interface; absent already is fine.
    pub async fn remove(&self, index: u32, ip: Ipv4Addr) -> Result<bool, NetlinkError> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(IpAddr::V4(ip))
            .execute();
        let mut removed = false;
        while let Some(msg) = stream.try_next().await.map_err(|e| NetlinkError::Request {
            what: format!("looking up {ip}"),
            index,
            source: e,
        })? {
            if address_of(&msg) != Some(ip) {
                continue;
            }
            match self.handle.address().del(msg).execute().await {
                Ok(()) => removed = true,
                // Gone between the lookup and the delete (e.g. its lifetime ran out).
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_eaddrnotavail() => {
                }
                Err(e) => {
                    return Err(NetlinkError::Request {
                        what: format!("removing {ip}"),
                        index,
                        source: e,
                    })
                }
            }
        }
        Ok(removed)
    }
}

fn libc_eaddrnotavail() -> i32 {
    nix::errno::Errno::EADDRNOTAVAIL as i32
}

fn address_of(msg: &AddressMessage) -> Option<Ipv4Addr> {
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(*ip),
            _ => {}
        }
    }
    local.or(address)
}

//! Interface facts and virtual-address changes over rtnetlink.
//!
//! VIPs are installed with a finite kernel lifetime (valid_lft; IPv4 preferred_lft too), renewed
//! while we are master. If the daemon is SIGKILLed or hangs, the kernel drops the address
//! by itself when the lifetime runs out, so a dead node stops answering ARP for the VIP
//! (keepalived leaves it configured forever in that case).
//!
//! IPv6 VIPs are added with IFA_F_NODAD: duplicate address detection would keep a new
//! master's address tentative (unusable) for a second or more, and would fail it outright
//! while the old master's lifetime has not yet run out (keepalived users see FAULT states
//! from exactly that). VRRP already decides who holds the address. They are also added
//! deprecated (preferred_lft 0): source address selection (RFC 6724 rule 3) then never
//! picks the VIP for the node's own connections. Otherwise a VIP in the interface's /64
//! can become the source of Raft, health-check and backend traffic, whose answers go to
//! the new holder after a failover (IPv4 VIPs are secondary addresses, never chosen).

use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
        Ok(self
            .addresses(index)
            .await?
            .into_iter()
            .filter_map(|(ip, len, _)| match ip {
                IpAddr::V4(v4) => Some((v4, len)),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// The interface's usable (not tentative, not failed) IPv6 link-local address, the
    /// source of IPv6 adverts (RFC 5798 section 5.1.2.1).
    pub async fn ipv6_link_local(&self, index: u32) -> Result<Option<Ipv6Addr>, NetlinkError> {
        let unusable = AddressFlags::Tentative | AddressFlags::Dadfailed;
        Ok(self
            .addresses(index)
            .await?
            .into_iter()
            .find_map(|(ip, _, flags)| match ip {
                IpAddr::V6(v6) if crate::wire::is_link_local(v6) && !flags.intersects(unusable) => {
                    Some(v6)
                }
                _ => None,
            }))
    }

    /// Every address on the interface with its prefix length and flags.
    async fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8, AddressFlags)>, NetlinkError> {
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
                let flags = msg
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        AddressAttribute::Flags(f) => Some(*f),
                        _ => None,
                    })
                    .unwrap_or_else(|| {
                        AddressFlags::from_bits_retain(msg.header.flags.bits().into())
                    });
                out.push((ip, msg.header.prefix_len, flags));
            }
        }
        Ok(out)
    }

    /// Adds (or renews) `ip/prefix` with a finite lifetime (IPv6: without DAD, deprecated).
    pub async fn add_with_lifetime(
        &self,
        index: u32,
        ip: IpAddr,
        prefix: u8,
        lifetime: Duration,
    ) -> Result<(), NetlinkError> {
        let secs = lifetime.as_secs().clamp(1, u32::MAX as u64 - 1) as u32;
        let mut request = self.handle.address().add(index, ip, prefix).replace();
        if ip.is_ipv6() {
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let mut info = CacheInfo::default();
        info.ifa_valid = secs;
        // Deprecated IPv6 VIPs still receive and answer (neighbour solicitations,
        // connections to them); they are only never chosen as a source.
        info.ifa_preferred = if ip.is_ipv6() { 0 } else { secs };
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
    pub async fn remove(&self, index: u32, ip: IpAddr) -> Result<bool, NetlinkError> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(ip)
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

fn address_of(msg: &AddressMessage) -> Option<IpAddr> {
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    local.or(address)
}

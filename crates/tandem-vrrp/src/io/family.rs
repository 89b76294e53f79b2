//! The one place the speaker's I/O differs by address family (RFC 5798: an instance is
//! IPv4 or IPv6): which sockets, which codec, which multicast group. Everything above it
//! (the state machine, the hold machine, the speaker loop) sees `IpAddr`s only.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::socket::VrrpSockets;
use super::socket6::Vrrp6Sockets;
use crate::wire::{
    parse_advert, parse_advert_v6, Advert, Vrrp6Repr, VrrpRepr, WireError, VRRP_MULTICAST_V4,
    VRRP_MULTICAST_V6,
};

/// A received VRRP message, family-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Received {
    V3 {
        src: IpAddr,
        vrid: u8,
        priority: u8,
        max_advert_int: u16,
        addresses: Vec<IpAddr>,
    },
    /// VRRPv2 (IPv4 only): reported, never acted on.
    V2 { src: IpAddr, vrid: u8 },
}

/// An advert to send, family-neutral.
pub(super) struct Outgoing<'a> {
    pub vrid: u8,
    pub priority: u8,
    pub max_advert_int: u16,
    pub addresses: &'a [IpAddr],
}

pub(super) enum AdvertSockets {
    V4(VrrpSockets),
    V6(Vrrp6Sockets),
}

impl AdvertSockets {
    /// Opens the sockets of `source`'s family.
    pub fn open(interface: &str, index: u32, source: IpAddr, multicast: bool) -> io::Result<Self> {
        Ok(match source {
            IpAddr::V4(src) => {
                AdvertSockets::V4(VrrpSockets::open(interface, index, src, multicast)?)
            }
            IpAddr::V6(src) => {
                AdvertSockets::V6(Vrrp6Sockets::open(interface, index, src, multicast)?)
            }
        })
    }

    /// Where multicast adverts go: 224.0.0.18 or ff02::12.
    pub fn multicast_group(&self) -> IpAddr {
        match self {
            AdvertSockets::V4(_) => IpAddr::V4(VRRP_MULTICAST_V4),
            AdvertSockets::V6(_) => IpAddr::V6(VRRP_MULTICAST_V6),
        }
    }

    /// Receives one message: Err is an I/O failure, Ok(Err) a packet the codec rejected.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Result<Received, WireError>> {
        Ok(match self {
            AdvertSockets::V4(sockets) => {
                let n = sockets.recv(buf).await?;
                parse_advert(&buf[..n]).map(|(ip, advert)| match advert {
                    Advert::V3(v3) => Received::V3 {
                        src: IpAddr::V4(ip.src),
                        vrid: v3.vrid,
                        priority: v3.priority,
                        max_advert_int: v3.max_advert_int,
                        addresses: v3.addresses.into_iter().map(IpAddr::V4).collect(),
                    },
                    Advert::V2(v2) => Received::V2 {
                        src: IpAddr::V4(ip.src),
                        vrid: v2.vrid,
                    },
                })
            }
            AdvertSockets::V6(sockets) => {
                let (info, n) = sockets.recv(buf).await?;
                parse_advert_v6(info, &buf[..n]).map(|v3| Received::V3 {
                    src: IpAddr::V6(info.src),
                    vrid: v3.vrid,
                    priority: v3.priority,
                    max_advert_int: v3.max_advert_int,
                    addresses: v3.addresses.into_iter().map(IpAddr::V6).collect(),
                })
            }
        })
    }

    /// Encodes (checksum over the family's pseudo-header) and sends one advert. Addresses
    /// of the other family are left out (config validation keeps them apart).
    pub async fn send(&self, advert: &Outgoing<'_>, src: IpAddr, dst: IpAddr) -> io::Result<()> {
        let wrong_family = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("advert from {src} to {dst}: address families differ from the instance's"),
            )
        };
        match (self, src, dst) {
            (AdvertSockets::V4(sockets), IpAddr::V4(src), IpAddr::V4(dst)) => {
                let repr = VrrpRepr {
                    vrid: advert.vrid,
                    priority: advert.priority,
                    max_advert_int: advert.max_advert_int,
                    addresses: v4_only(advert.addresses),
                };
                sockets.send_to(&repr.to_bytes(src, dst), dst).await
            }
            (AdvertSockets::V6(sockets), IpAddr::V6(src), IpAddr::V6(dst)) => {
                let repr = Vrrp6Repr {
                    vrid: advert.vrid,
                    priority: advert.priority,
                    max_advert_int: advert.max_advert_int,
                    addresses: v6_only(advert.addresses),
                };
                sockets.send_to(&repr.to_bytes(src, dst), dst).await
            }
            _ => Err(wrong_family()),
        }
    }
}

fn v4_only(addresses: &[IpAddr]) -> Vec<Ipv4Addr> {
    addresses
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect()
}

fn v6_only(addresses: &[IpAddr]) -> Vec<Ipv6Addr> {
    addresses
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
        .collect()
}

/// How long to wait for the interface's link-local address to leave duplicate address
/// detection (1 s on Linux defaults) before giving up on an IPv6 instance.
const LINK_LOCAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The source address of the instance's adverts: for IPv4 `source` or the interface's
/// first IPv4 address that is not a VIP; for IPv6 the interface's link-local address.
pub(super) async fn resolve_source(
    spec: &super::InstanceSpec,
    netlink: &super::Netlink,
    index: u32,
) -> Result<IpAddr, super::SpeakerError> {
    let v6 = spec.is_ipv6();
    if spec.addresses.iter().any(|(ip, _)| ip.is_ipv6() != v6) {
        return Err(super::SpeakerError::MixedFamilies(spec.group.clone()));
    }
    if v6 {
        let deadline = tokio::time::Instant::now() + LINK_LOCAL_WAIT;
        loop {
            if let Some(ll) = netlink.ipv6_link_local(index).await? {
                return Ok(IpAddr::V6(ll));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(super::SpeakerError::NoLinkLocal(
                    spec.interface.clone(),
                    LINK_LOCAL_WAIT,
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    if let Some(source) = spec.source.filter(|s| s.is_ipv4()) {
        return Ok(source);
    }
    netlink
        .ipv4_addresses(index)
        .await?
        .into_iter()
        .map(|(ip, _)| IpAddr::V4(ip))
        .find(|ip| !spec.addresses.iter().any(|(vip, _)| vip == ip))
        .ok_or_else(|| super::SpeakerError::NoSourceAddress(spec.interface.clone()))
}

//! Gratuitous ARP (IPv4 VIPs) and unsolicited neighbour advertisements (IPv6 VIPs) on
//! their own thread: pnet_datalink's sender is blocking, and a burst must never stall the
//! protocol loop.

use std::net::IpAddr;
use std::sync::mpsc;

use crate::wire::{gratuitous_arp_frame, unsolicited_na_frame};

/// Sends announcement frames on one interface.
pub struct GarpSender {
    queue: mpsc::Sender<Vec<Vec<u8>>>,
}

impl GarpSender {
    /// Opens a layer-2 channel on `interface` (needs CAP_NET_RAW) and starts the thread.
    pub fn open(interface: &str) -> std::io::Result<GarpSender> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| std::io::Error::other(format!("interface {interface:?} not found")))?;
        let config = pnet_datalink::Config {
            promiscuous: false,
            read_buffer_size: 2048,
            ..Default::default()
        };
        let mut tx = match pnet_datalink::channel(&iface, config)? {
            pnet_datalink::Channel::Ethernet(tx, _rx) => tx,
            _ => return Err(std::io::Error::other("unsupported datalink channel")),
        };
        let (queue, frames) = mpsc::channel::<Vec<Vec<u8>>>();
        let name = interface.to_string();
        std::thread::Builder::new()
            .name(format!("garp-{name}"))
            .spawn(move || {
                for burst in frames {
                    for frame in burst {
                        match tx.send_to(&frame, None) {
                            Some(Ok(())) => {}
                            Some(Err(e)) => tracing::warn!(interface = %name, error = %e, "VIP announcement not sent"),
                            None => tracing::warn!(interface = %name, "VIP announcement not sent: no buffer"),
                        }
                    }
                }
            })?;
        Ok(GarpSender { queue })
    }

    /// Queues `count` announcements for each address: a gratuitous ARP for an IPv4 one,
    /// an unsolicited neighbour advertisement with the override flag for an IPv6 one.
    pub fn announce(&self, mac: [u8; 6], addresses: &[IpAddr], count: u32) {
        let mut burst = Vec::new();
        for _ in 0..count {
            for ip in addresses {
                burst.push(match ip {
                    IpAddr::V4(v4) => gratuitous_arp_frame(mac, *v4).to_vec(),
                    IpAddr::V6(v6) => unsolicited_na_frame(mac, *v6).to_vec(),
                });
            }
        }
        let _ = self.queue.send(burst);
    }
}

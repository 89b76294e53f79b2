//! The kernel fence: nftables rules that silence a VIP unless this node's lease permits it,
//! with millisecond precision and without any action of the daemon once a permit ends.
//!
//! Two tables named `tandem_fence` (family `inet` for IP, family `arp` for ARP, since a rule
//! can only use sets of its own table) each hold:
//!
//! - `vips`: every VIP this node may ever hold under a lease (fixed at start);
//! - `held`: the VIPs this node may hold *now*, each element with a timeout that ends when
//!   the lease's hold window does;
//! - rules dropping IP traffic to and from a VIP, ARP requests for it and ARP packets sent
//!   from it, unless the VIP is in `held`.
//!
//! IPv6 VIPs have their own pair of sets in the `inet` table (`vips6`, `held6`: a set has
//! one address type) and the same rules with `ip6`. That also silences the neighbour
//! advertisements announcing an IPv6 VIP: Linux answers a solicitation for an address of
//! its own from that address, so the egress rule drops the answer once the lease lapses
//! (IPv6 has no ARP table to fence; neighbour discovery is ICMPv6 inside IPv6).
//!
//! The holder refreshes its elements after every confirmed renewal ([`KernelFence::permit`]).
//! A SIGKILLed, frozen or wedged daemon therefore stops answering for the VIP when the last
//! element times out: the kernel checks an element's expiry on every lookup, so the fence
//! closes within a few milliseconds of the hold window (measured in docs/cluster.md). The
//! address lifetime (`valid_lft`) stays as a coarse second backstop that eventually removes
//! the address itself.
//!
//! Elements are refreshed by one `nft -f -` transaction ("add, delete, add with the new
//! timeout"), which works on every kernel with set timeouts (kernels before 6.10 do not
//! update the timeout of an element that already exists). The timeout is computed just
//! before `nft` starts, so the element may end later than the hold window by at most the
//! time `nft` took; [`KernelFence::permit`] returns that figure so the caller can check it
//! against the lateness the lease timing allows (`kernel_late`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// The tables' name in both families.
pub const TABLE: &str = "tandem_fence";

#[derive(Debug, thiserror::Error)]
pub enum KernelFenceError {
    #[error(
        "cannot run `nft` ({0}): the kernel fence of Raft-fenced VIPs needs nftables \
         (apt-get install nftables; kernel modules nf_tables and nft_set_hash). Or set \
         node.cluster.lease.kernel_fence = \"address-lifetime\" for the slower whole-second fence"
    )]
    NoNft(std::io::Error),
    #[error(
        "nft refused the {what} of the VIP fence (table {family} {TABLE}): {stderr}. tandemd \
         needs CAP_NET_ADMIN and a kernel with nf_tables set timeouts"
    )]
    Refused {
        what: &'static str,
        family: &'static str,
        stderr: String,
    },
}

/// The fence of one node's leased VIPs.
pub struct KernelFence {
    vips: Vec<IpAddr>,
    /// How late an element may end after the time it was computed for (the lease
    /// timing's `kernel_late`); a slower refresh is logged by the speaker.
    allowed_lateness: Duration,
}

impl KernelFence {
    /// Installs both tables, replacing any left by an earlier run (a crash leaves them in
    /// place; they then keep the VIPs silent, which is the safe state).
    pub async fn install(
        vips: &[IpAddr],
        allowed_lateness: Duration,
    ) -> Result<KernelFence, KernelFenceError> {
        let fence = KernelFence {
            vips: vips.to_vec(),
            allowed_lateness,
        };
        nft(&fence.ruleset(), "installation", "inet/arp").await?;
        tracing::info!(vips = ?fence.vips, "kernel fence installed (nftables table {TABLE}): the VIPs stay silent unless the lease permits them");
        Ok(fence)
    }

    pub fn allowed_lateness(&self) -> Duration {
        self.allowed_lateness
    }

    /// The VIPs this fence covers.
    pub fn vips(&self) -> &[IpAddr] {
        &self.vips
    }

    fn ruleset(&self) -> String {
        let elements = |list: String| {
            if list.is_empty() {
                String::new()
            } else {
                format!(" elements = {{ {list} }};")
            }
        };
        let (v4, v6) = split(&self.vips);
        let elements6 = elements(join(&v6));
        let elements = elements(join(&v4));
        let mut s = String::new();
        for family in ["inet", "arp"] {
            // "add then delete" removes a leftover table without failing when there is none.
            s += &format!("add table {family} {TABLE}\ndelete table {family} {TABLE}\n");
        }
        s += &format!(
            "table inet {TABLE} {{\n\
             \tset vips {{ type ipv4_addr;{elements} }}\n\
             \tset held {{ type ipv4_addr; flags timeout; }}\n\
             \tset vips6 {{ type ipv6_addr;{elements6} }}\n\
             \tset held6 {{ type ipv6_addr; flags timeout; }}\n\
             \tchain ingress {{ type filter hook prerouting priority -300; policy accept; \
             ip daddr @vips ip daddr != @held counter drop; \
             ip6 daddr @vips6 ip6 daddr != @held6 counter drop; }}\n\
             \tchain egress {{ type filter hook output priority -300; policy accept; \
             ip saddr @vips ip saddr != @held counter drop; \
             ip6 saddr @vips6 ip6 saddr != @held6 counter drop; }}\n\
             }}\n\
             table arp {TABLE} {{\n\
             \tset vips {{ type ipv4_addr;{elements} }}\n\
             \tset held {{ type ipv4_addr; flags timeout; }}\n\
             \tchain ingress {{ type filter hook input priority 0; policy accept; \
             arp daddr ip @vips arp daddr ip != @held counter drop; }}\n\
             \tchain egress {{ type filter hook output priority 0; policy accept; \
             arp saddr ip @vips arp saddr ip != @held counter drop; }}\n\
             }}\n"
        );
        s
    }

    /// Lets `ips` through for `window` from now (and no longer). Returns how long `nft` took:
    /// the elements end at most that much after `now + window`.
    pub async fn permit(
        &self,
        ips: &[IpAddr],
        until: Instant,
    ) -> Result<Duration, KernelFenceError> {
        let started = Instant::now();
        let window = until.saturating_duration_since(started);
        let ms = window.as_millis() as u64;
        if ms == 0 || ips.is_empty() {
            self.revoke(ips).await?;
            return Ok(Duration::ZERO);
        }
        let mut s = String::new();
        for (family, set, ips) in held_sets(ips) {
            let list = join(&ips);
            s += &format!(
                "add element {family} {TABLE} {set} {{ {list} }}\n\
                 delete element {family} {TABLE} {set} {{ {list} }}\n\
                 add element {family} {TABLE} {set} {{ {} }}\n",
                ips.iter()
                    .map(|ip| format!("{ip} timeout {ms}ms"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        nft(&s, "refresh", "inet/arp").await?;
        Ok(started.elapsed())
    }

    /// Silences `ips` now.
    pub async fn revoke(&self, ips: &[IpAddr]) -> Result<(), KernelFenceError> {
        if ips.is_empty() {
            return Ok(());
        }
        let mut s = String::new();
        for (family, set, ips) in held_sets(ips) {
            let list = join(&ips);
            s += &format!(
                "add element {family} {TABLE} {set} {{ {list} }}\n\
                 delete element {family} {TABLE} {set} {{ {list} }}\n"
            );
        }
        nft(&s, "revocation", "inet/arp").await?;
        Ok(())
    }

    /// Puts the tables back after someone removed them (`nft flush ruleset`, a firewall
    /// reload): everything silenced until the next permit.
    pub async fn reinstall(&self) -> Result<(), KernelFenceError> {
        nft(&self.ruleset(), "re-installation", "inet/arp").await?;
        Ok(())
    }

    /// Clean stop: the tables go (the addresses are gone already).
    pub async fn remove(&self) {
        let mut s = String::new();
        for family in ["inet", "arp"] {
            s += &format!("add table {family} {TABLE}\ndelete table {family} {TABLE}\n");
        }
        match nft(&s, "removal", "inet/arp").await {
            Ok(()) => tracing::info!("kernel fence removed (nftables table {TABLE})"),
            Err(e) => tracing::warn!(error = %e, "kernel fence not removed"),
        }
    }
}

/// IPv4 and IPv6 addresses apart.
fn split(ips: &[IpAddr]) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for ip in ips {
        match ip {
            IpAddr::V4(a) => v4.push(*a),
            IpAddr::V6(a) => v6.push(*a),
        }
    }
    (v4, v6)
}

/// The `held` sets `ips` go in: IPv4 in inet `held` and arp `held`, IPv6 in inet
/// `held6`. Sets with nothing to change are left out (nft refuses an empty element list).
fn held_sets(ips: &[IpAddr]) -> Vec<(&'static str, &'static str, Vec<IpAddr>)> {
    let (v4, v6) = split(ips);
    let v4: Vec<IpAddr> = v4.into_iter().map(IpAddr::V4).collect();
    let v6: Vec<IpAddr> = v6.into_iter().map(IpAddr::V6).collect();
    let mut out = Vec::new();
    if !v4.is_empty() {
        out.push(("inet", "held", v4.clone()));
        out.push(("arp", "held", v4));
    }
    if !v6.is_empty() {
        out.push(("inet", "held6", v6));
    }
    out
}

fn join<T: std::fmt::Display>(ips: &[T]) -> String {
    ips.iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one nft transaction (the whole script commits or nothing does).
async fn nft(
    script: &str,
    what: &'static str,
    family: &'static str,
) -> Result<(), KernelFenceError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(KernelFenceError::NoNft)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(KernelFenceError::NoNft)?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(KernelFenceError::NoNft)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(KernelFenceError::Refused {
            what,
            family,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

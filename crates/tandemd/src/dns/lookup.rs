//! One lookup of a backend address with hickory-resolver: A/AAAA records of a name, or
//! the SRV records of a service name with each target's addresses.

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tandem_config::BackendAddress;

use super::schedule::{Answer, Endpoint};

/// The resolver of `[node.dns]`: its `resolvers` (UDP, TCP when an answer is truncated),
/// or the system's resolv.conf when there are none.
pub fn resolver(dns: &tandem_config::dns::NodeDns) -> anyhow::Result<TokioResolver> {
    let mut builder = if dns.resolvers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| {
            anyhow::anyhow!(
                "reading the system's DNS settings (/etc/resolv.conf): {e}; fix that file or \
                 set node.dns.resolvers"
            )
        })?
    } else {
        let mut config = ResolverConfig::default();
        for &server in &dns.resolvers {
            let at_port = |mut c: ConnectionConfig| {
                c.port = server.port();
                c
            };
            let connections = vec![
                at_port(ConnectionConfig::udp()),
                at_port(ConnectionConfig::tcp()),
            ];
            config.add_name_server(NameServerConfig::new(server.ip(), true, connections));
        }
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
    };
    let options = builder.options_mut();
    // tandem schedules its own lookups by TTL; hickory's cache would only answer them
    // from memory with a shrinking TTL.
    options.cache_size = 0;
    // A server that is gone is noticed within seconds (unanswered UDP only times out).
    options.timeout = Duration::from_secs(2);
    options.attempts = 1;
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("building the DNS resolver of [node.dns]: {e}"))
}

/// Looks `address` up once. The TTL is the shortest of the records used.
pub async fn lookup(resolver: &TokioResolver, address: &BackendAddress) -> Answer {
    match address {
        BackendAddress::Ip(a) => Ok((
            vec![Endpoint {
                address: *a,
                weight: 1,
            }],
            Duration::MAX,
        )),
        BackendAddress::Name { host, port } => {
            let (ips, valid_until) = lookup_ips(resolver, host).await?;
            let endpoints = ips
                .into_iter()
                .map(|ip| Endpoint {
                    address: SocketAddr::new(ip, *port),
                    weight: 1,
                })
                .collect();
            Ok((endpoints, ttl_left(valid_until)))
        }
        BackendAddress::Srv { name } => {
            let srv = resolver
                .srv_lookup(fqdn(name))
                .await
                .map_err(|e| describe(name, "SRV", &e))?;
            let mut valid_until = srv.valid_until();
            let mut endpoints = Vec::new();
            let records = srv.answers().iter().filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(srv),
                _ => None,
            });
            for record in records {
                let target = record.target.to_utf8();
                let (ips, until) = lookup_ips(resolver, &target).await?;
                valid_until = valid_until.min(until);
                // Weight 0 is "least preferred" in SRV; here it must still be pickable.
                let weight = u32::from(record.weight).clamp(1, 10_000);
                endpoints.extend(ips.into_iter().map(|ip| Endpoint {
                    address: SocketAddr::new(ip, record.port),
                    weight,
                }));
            }
            Ok((endpoints, ttl_left(valid_until)))
        }
    }
}

async fn lookup_ips(
    resolver: &TokioResolver,
    host: &str,
) -> Result<(Vec<std::net::IpAddr>, Instant), String> {
    let found = resolver
        .lookup_ip(fqdn(host))
        .await
        .map_err(|e| describe(host, "A/AAAA", &e))?;
    Ok((found.iter().collect(), found.valid_until()))
}

/// Names in the config are absolute: no search-domain guessing (a trailing dot for
/// hickory), except single labels such as `localhost`, left to the hosts file and search.
fn fqdn(name: &str) -> String {
    if name.contains('.') && !name.ends_with('.') {
        format!("{name}.")
    } else {
        name.to_string()
    }
}

fn ttl_left(valid_until: Instant) -> Duration {
    valid_until.saturating_duration_since(Instant::now())
}

/// The resolver's answer in words: "no such name", "no A/AAAA record", or the error.
fn describe(name: &str, kind: &str, e: &NetError) -> String {
    if e.is_nx_domain() {
        format!("{name}: no such name (NXDOMAIN)")
    } else if e.is_no_records_found() {
        format!("{name}: no {kind} record")
    } else {
        format!("{name}: {e}")
    }
}

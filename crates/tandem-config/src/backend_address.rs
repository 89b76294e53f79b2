//! Where a backend is: an IP address and port, a DNS name and port (A/AAAA records), or an
//! SRV name (`_http._tcp.example.com`) whose records give the port and weight.
//!
//! Written as one string in `[[pool.backend]] address` and in the admin API. A name is
//! resolved by the daemon (tandemd's `dns` module); the pools only ever see IP addresses.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BackendAddress {
    /// `198.51.100.7:8080`, `[2001:db8::7]:8080`.
    Ip(SocketAddr),
    /// `app.internal:8080`: every A and AAAA record of the name, at this port.
    Name { host: String, port: u16 },
    /// `_http._tcp.app.internal`: every SRV record, each target resolved, with the
    /// record's port and weight.
    Srv { name: String },
}

impl BackendAddress {
    /// The socket address, when the address is an IP (not a name to resolve).
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            BackendAddress::Ip(a) => Some(*a),
            _ => None,
        }
    }

    /// The DNS name to resolve, when the address is one.
    pub fn dns_name(&self) -> Option<&str> {
        match self {
            BackendAddress::Ip(_) => None,
            BackendAddress::Name { host, .. } => Some(host),
            BackendAddress::Srv { name } => Some(name),
        }
    }

    /// The written port (an SRV address has none: its records give it).
    pub fn port(&self) -> Option<u16> {
        match self {
            BackendAddress::Ip(a) => Some(a.port()),
            BackendAddress::Name { port, .. } => Some(*port),
            BackendAddress::Srv { .. } => None,
        }
    }
}

impl From<SocketAddr> for BackendAddress {
    fn from(a: SocketAddr) -> Self {
        BackendAddress::Ip(a)
    }
}

impl fmt::Display for BackendAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAddress::Ip(a) => write!(f, "{a}"),
            BackendAddress::Name { host, port } => write!(f, "{host}:{port}"),
            BackendAddress::Srv { name } => write!(f, "{name}"),
        }
    }
}

const EXPECTED: &str = "expected IP:port, [IPv6]:port, host:port, or an SRV name such as \
                        _http._tcp.example.com";

impl FromStr for BackendAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(a) = text.parse::<SocketAddr>() {
            return Ok(BackendAddress::Ip(a));
        }
        if text.starts_with('_') && !text.contains(':') {
            check_dns_name(text, true).map_err(|why| format!("{text:?}: {why}"))?;
            let labels: Vec<&str> = text.trim_end_matches('.').split('.').collect();
            if labels.len() < 3 || !labels[1].starts_with('_') {
                return Err(format!(
                    "{text:?}: an SRV name is _service._proto.name (e.g. _http._tcp.example.com)"
                ));
            }
            return Ok(BackendAddress::Srv {
                name: text.to_string(),
            });
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("{text:?} has no port; {EXPECTED}"));
        };
        if host.contains(':') || host.starts_with('[') {
            return Err(format!(
                "{text:?} is not a valid IPv6 address and port; {EXPECTED}"
            ));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: port {port:?} is not a number from 0 to 65535"))?;
        if host.parse::<std::net::Ipv4Addr>().is_ok()
            || host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err(format!(
                "{text:?} is not a valid IPv4 address and port; {EXPECTED}"
            ));
        }
        check_dns_name(host, false).map_err(|why| format!("{text:?}: {why}; {EXPECTED}"))?;
        Ok(BackendAddress::Name {
            host: host.to_string(),
            port,
        })
    }
}

/// Letters, digits and hyphens in labels of 1 to 63 characters, 253 in all; SRV names
/// also allow the leading underscore of their service and protocol labels.
fn check_dns_name(name: &str, srv: bool) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("a DNS name has 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let body = if srv {
            label.strip_prefix('_').unwrap_or(label)
        } else {
            label
        };
        if label.is_empty() || label.len() > 63 {
            return Err(format!("label {label:?} must have 1 to 63 characters"));
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || body.starts_with('-')
            || body.ends_with('-')
        {
            return Err(format!(
                "label {label:?} may hold only letters, digits and inner hyphens"
            ));
        }
    }
    Ok(())
}

impl Serialize for BackendAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BackendAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_name_and_srv_addresses_parse_and_print_back() {
        for (text, expect) in [
            (
                "198.51.100.7:80",
                BackendAddress::Ip("198.51.100.7:80".parse().unwrap()),
            ),
            (
                "[2001:db8::7]:443",
                BackendAddress::Ip("[2001:db8::7]:443".parse().unwrap()),
            ),
            (
                "app.internal:8080",
                BackendAddress::Name {
                    host: "app.internal".into(),
                    port: 8080,
                },
            ),
            (
                "localhost:9999",
                BackendAddress::Name {
                    host: "localhost".into(),
                    port: 9999,
                },
            ),
            (
                "_http._tcp.app.internal",
                BackendAddress::Srv {
                    name: "_http._tcp.app.internal".into(),
                },
            ),
        ] {
            let parsed: BackendAddress = text.parse().unwrap();
            assert_eq!(parsed, expect, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn malformed_addresses_are_refused_with_the_reason() {
        for (text, why) in [
            ("app.internal", "has no port"),
            ("app.internal:http", "is not a number"),
            ("app.internal:70000", "is not a number"),
            ("198.51.100.300:80", "not a valid IPv4"),
            ("2001:db8::1:80", "not a valid IPv6"),
            ("bad_name.example:80", "only letters, digits"),
            ("-bad.example:80", "only letters, digits"),
            ("a..b:80", "1 to 63"),
            ("_http.example", "SRV name is _service._proto.name"),
        ] {
            let err = text.parse::<BackendAddress>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}

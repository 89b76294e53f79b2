//! Access rules: a small WAF evaluated before routing. The first rule
//! whose conditions all hold decides; no matching rule allows.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use regex::Regex;

use crate::path::{normalize_path, path_has_prefix};
use crate::{canonical_ip, Headers, RequestView};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Deny,
}

/// One rule. Every condition given must hold (AND); within a list, any
/// element will do (OR). A rule with no conditions matches everything,
/// which makes a final catch-all ("deny everything else").
#[derive(Clone, Debug)]
pub struct AccessRule {
    pub action: RuleAction,
    /// Any of these; empty = any client. An IPv4-mapped IPv6 client counts
    /// as its IPv4 address, and a mapped net ("::ffff:10.0.0.0/104") as the
    /// IPv4 net it covers.
    pub client_cidrs: Vec<IpNet>,
    /// Any of these (uppercase); empty = any method.
    pub methods: Vec<String>,
    /// Segment-aware prefix of the normalised path (see `path_has_prefix`).
    pub path_prefix: Option<String>,
    /// Searched in the normalised path; unanchored, so write "^/admin" to
    /// anchor.
    pub path_regex: Option<Regex>,
    /// (lowercase name, regex searched in the header's first value); a
    /// missing header does not match.
    pub header_regex: Option<(String, Regex)>,
}

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Denied by the rule at this index (for logs and metrics).
    Deny {
        rule: usize,
    },
}

/// An ordered rule list.
#[derive(Clone, Debug, Default)]
pub struct AccessRules {
    rules: Vec<AccessRule>,
}

/// An IPv4-mapped IPv6 net ("::ffff:0:0/96" and longer) as the IPv4 net it
/// covers, so it matches clients that `canonical_ip` turned into IPv4.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

impl AccessRule {
    fn matches<H: Headers + ?Sized>(
        &self,
        client: IpAddr,
        req: &RequestView<'_, H>,
        path: &str,
    ) -> bool {
        (self.client_cidrs.is_empty() || self.client_cidrs.iter().any(|n| n.contains(&client)))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path_has_prefix(path, p))
            && self.path_regex.as_ref().is_none_or(|r| r.is_match(path))
            && self
                .header_regex
                .as_ref()
                .is_none_or(|(name, r)| req.headers.get(name).is_some_and(|v| r.is_match(v)))
    }
}

impl AccessRules {
    /// Rules in evaluation order. Nets are truncated to their network and
    /// mapped nets turned into IPv4; methods are uppercased and header
    /// names lowercased, so the per-request work is comparisons only.
    pub fn new(mut rules: Vec<AccessRule>) -> Self {
        for rule in &mut rules {
            for net in &mut rule.client_cidrs {
                *net = canonical_net(net.trunc());
            }
            for m in &mut rule.methods {
                m.make_ascii_uppercase();
            }
            if let Some((name, _)) = &mut rule.header_regex {
                name.make_ascii_lowercase();
            }
        }
        AccessRules { rules }
    }

    /// The first matching rule's action; Allow when none matches.
    pub fn evaluate<H: Headers + ?Sized>(
        &self,
        client: IpAddr,
        req: &RequestView<'_, H>,
    ) -> Verdict {
        if self.rules.is_empty() {
            return Verdict::Allow;
        }
        let client = canonical_ip(client);
        let path = normalize_path(req.path);
        let hit = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(client, req, &path));
        match hit {
            Some((rule, r)) if r.action == RuleAction::Deny => Verdict::Deny { rule },
            _ => Verdict::Allow,
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_nets_become_v4() {
        let net: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(canonical_net(net), "10.0.0.0/8".parse::<IpNet>().unwrap());
        let plain: IpNet = "2001:db8::/32".parse().unwrap();
        assert_eq!(canonical_net(plain), plain);
        let all: IpNet = "::/0".parse().unwrap();
        assert_eq!(canonical_net(all), all);
    }
}

//! Header rules, path rewrites and HSTS of HTTP listeners and routes, as written in the
//! file, and the value templates they share with the L7 plane: `"{client_ip}"` and
//! friends are parsed here once, by check-config and by the plane that compiles them.

use crate::duration::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What to do to requests on their way to the backend and to responses on their way to
/// the client. On a listener and on a route; the listener's rules run first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub request: HeaderOps,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub response: HeaderOps,
}

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// One direction's rules, applied in this order: `remove`, then `set` (replaces every
/// value of the name), then `add` (appends one more value).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// A route's path rewrite, acting on the route's `path_prefix`: strip it, or replace it.
/// The query string is kept as it was.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// `/api/users?id=3` under `path_prefix = "/api"` reaches the backend as `/users?id=3`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strip_prefix: bool,
    /// `/api/users` under `path_prefix = "/api/"` with `"/v2/"` reaches it as `/v2/users`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix: Option<String>,
}

impl Rewrite {
    /// What replaces the route's prefix ("" when stripping).
    pub fn replacement(&self) -> &str {
        self.replace_prefix.as_deref().unwrap_or("")
    }
}

/// `Strict-Transport-Security` on a TLS listener's responses: the header text as written,
/// or its parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Hsts {
    /// `hsts = "max-age=31536000; includeSubDomains"`, sent as written.
    Text(String),
    /// `hsts = { max_age = "365d", include_subdomains = true, preload = false }`.
    Parts(HstsParts),
}

/// Read by hand rather than as an untagged enum: serde's untagged errors say only "did not
/// match any variant", hiding the misspelt key or bad duration inside the table.
impl<'de> Deserialize<'de> for Hsts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HstsVisitor;
        impl<'de> serde::de::Visitor<'de> for HstsVisitor {
            type Value = Hsts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a header value such as \"max-age=31536000\" or a table { max_age, include_subdomains, preload }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Hsts, E> {
                Ok(Hsts::Text(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Hsts, A::Error> {
                HstsParts::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Hsts::Parts)
            }
        }
        d.deserialize_any(HstsVisitor)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HstsParts {
    pub max_age: HumanDuration,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

impl Hsts {
    /// The header value sent (checked by validation; see `validate_headers`).
    pub fn header_value(&self) -> String {
        match self {
            Hsts::Text(text) => text.trim().to_string(),
            Hsts::Parts(p) => {
                let mut v = format!("max-age={}", p.max_age.get().as_secs());
                if p.include_subdomains {
                    v.push_str("; includeSubDomains");
                }
                if p.preload {
                    v.push_str("; preload");
                }
                v
            }
        }
    }
}

/// A fact about a request that a header value may name as `{variable}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variable {
    /// The client's address, as in X-Forwarded-For.
    ClientIp,
    ClientPort,
    /// The request's id (the client's X-Request-Id when valid, else one tandem made).
    RequestId,
    /// The request's one authority as the client sent it (`host[:port]`).
    Host,
    /// The same, lower case, without port or trailing dot.
    Hostname,
    /// `http` or `https`.
    Scheme,
    /// The TLS server name the client asked for (empty: none, or no TLS).
    TlsSni,
    /// `TLSv1.2` or `TLSv1.3` (empty without TLS).
    TlsVersion,
}

impl Variable {
    pub const ALL: [(&'static str, Variable); 8] = [
        ("client_ip", Variable::ClientIp),
        ("client_port", Variable::ClientPort),
        ("request_id", Variable::RequestId),
        ("host", Variable::Host),
        ("hostname", Variable::Hostname),
        ("scheme", Variable::Scheme),
        ("tls_sni", Variable::TlsSni),
        ("tls_version", Variable::TlsVersion),
    ];

    fn named(name: &str) -> Option<Variable> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// One piece of a header value template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(Variable),
}

/// Parses a header value template: text with `{variable}`s; `{{` and `}}` are literal
/// braces. The text must be a valid header value: visible ASCII, spaces and tabs, with no
/// space at either end.
pub fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    if template.starts_with([' ', '\t']) || template.ends_with([' ', '\t']) {
        return Err("has a space at one end (header values are trimmed in transit)".into());
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let rest = chars.as_str();
                if let Some(after) = rest.strip_prefix('{') {
                    text.push('{');
                    chars = after.chars();
                    continue;
                }
                let Some(end) = rest.find('}') else {
                    return Err("has a '{' without its '}' (write {{ for a literal brace)".into());
                };
                let name = &rest[..end];
                let var = Variable::named(name).ok_or_else(|| {
                    let known: Vec<String> = Variable::ALL
                        .iter()
                        .map(|(n, _)| format!("{{{n}}}"))
                        .collect();
                    format!("unknown variable {{{name}}}; known: {}", known.join(", "))
                })?;
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Var(var));
                chars = rest[end + 1..].chars();
            }
            '}' => {
                let rest = chars.as_str();
                let Some(after) = rest.strip_prefix('}') else {
                    return Err("has a '}' without its '{' (write }} for a literal brace)".into());
                };
                text.push('}');
                chars = after.chars();
            }
            c if c == '\t' || (' '..='~').contains(&c) => text.push(c),
            c => {
                return Err(format!(
                    "holds {c:?}: header values here are visible ASCII, spaces and tabs"
                ))
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_variables() {
        assert_eq!(
            parse_template("for={client_ip};id={request_id}").unwrap(),
            vec![
                Piece::Text("for=".into()),
                Piece::Var(Variable::ClientIp),
                Piece::Text(";id=".into()),
                Piece::Var(Variable::RequestId),
            ]
        );
        assert_eq!(
            parse_template("{{literal}}").unwrap(),
            vec![Piece::Text("{literal}".into())]
        );
        assert_eq!(parse_template("").unwrap(), vec![]);
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        let err = |t| parse_template(t).unwrap_err();
        assert!(err("{client_addr}").contains("unknown variable {client_addr}; known: {client_ip}"));
        assert!(err("{host").contains("without its '}'"));
        assert!(err("a}b").contains("without its '{'"));
        assert!(err("a\nb").contains("visible ASCII"));
        assert!(err("café").contains("visible ASCII"));
        assert!(err(" x").contains("space at one end"));
    }

    #[test]
    fn hsts_parts_make_the_header() {
        let parts = Hsts::Parts(HstsParts {
            max_age: HumanDuration::from_secs(31_536_000),
            include_subdomains: true,
            preload: false,
        });
        assert_eq!(parts.header_value(), "max-age=31536000; includeSubDomains");
        assert_eq!(
            Hsts::Text(" max-age=60 ".into()).header_value(),
            "max-age=60"
        );
    }
}

//! Header rules compiled once per config: names parsed into `HeaderName`s, values without
//! variables into ready `HeaderValue`s, the others into pieces filled in per request from
//! [`Vars`]. check-config has refused what would not compile (`tandem-config`'s
//! `validate_headers`), so compiling here fails only on a config that skipped validation.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use tandem_config::header_rules::{self as config, parse_template, Piece, Variable};

/// A listener's or a route's rules, both directions.
#[derive(Debug, Default)]
pub struct HeaderRules {
    pub request: HeaderOps,
    pub response: HeaderOps,
}

impl HeaderRules {
    pub fn compile(rules: &config::HeaderRules) -> Result<Self, String> {
        Ok(HeaderRules {
            request: HeaderOps::compile(&rules.request).map_err(|e| format!("request: {e}"))?,
            response: HeaderOps::compile(&rules.response).map_err(|e| format!("response: {e}"))?,
        })
    }
}

/// One direction: remove, then set, then add.
#[derive(Debug, Default)]
pub struct HeaderOps {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, Template)>,
    add: Vec<(HeaderName, Template)>,
}

#[derive(Debug)]
enum Template {
    /// No variables: the value is made once.
    Fixed(HeaderValue),
    Pieces(Vec<Piece>),
}

/// The TLS facts of a client connection, read once after its handshake.
#[derive(Clone, Debug, Default)]
pub struct TlsFacts {
    pub sni: Option<String>,
    /// "TLSv1.2" or "TLSv1.3".
    pub version: &'static str,
}

/// What `{variables}` stand for in one request.
pub struct Vars<'a> {
    pub client: std::net::SocketAddr,
    pub request_id: &'a str,
    pub host: Option<&'a str>,
    pub https: bool,
    pub tls: Option<&'a TlsFacts>,
}

impl Vars<'_> {
    fn push(&self, var: Variable, out: &mut String) {
        use std::fmt::Write;
        match var {
            Variable::ClientIp => {
                let _ = write!(out, "{}", self.client.ip());
            }
            Variable::ClientPort => {
                let _ = write!(out, "{}", self.client.port());
            }
            Variable::RequestId => out.push_str(self.request_id),
            Variable::Host => out.push_str(self.host.unwrap_or_default()),
            Variable::Hostname => out.push_str(
                &self
                    .host
                    .map(tandem_policy::normalize_host)
                    .unwrap_or_default(),
            ),
            Variable::Scheme => out.push_str(if self.https { "https" } else { "http" }),
            Variable::TlsSni => {
                out.push_str(self.tls.and_then(|t| t.sni.as_deref()).unwrap_or_default())
            }
            Variable::TlsVersion => out.push_str(self.tls.map(|t| t.version).unwrap_or_default()),
        }
    }
}

impl HeaderOps {
    fn compile(ops: &config::HeaderOps) -> Result<Self, String> {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("header {n:?}: {e}"))
        };
        let templates = |map: &std::collections::BTreeMap<String, String>| {
            map.iter()
                .map(|(n, v)| {
                    Ok((
                        name(n)?,
                        Template::compile(v).map_err(|e| format!("{n}: {e}"))?,
                    ))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(HeaderOps {
            remove: ops
                .remove
                .iter()
                .map(|n| name(n))
                .collect::<Result<_, _>>()?,
            set: templates(&ops.set)?,
            add: templates(&ops.add)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Applies the rules to `headers`. A `set` whose value comes out empty (`{tls_sni}`
    /// without TLS) removes the header, so a client cannot supply what the rule would
    /// have written; an `add` that comes out empty adds nothing.
    pub fn apply(&self, headers: &mut HeaderMap, vars: &Vars<'_>) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, template) in &self.set {
            match template.value(vars) {
                Some(v) => {
                    headers.insert(name.clone(), v);
                }
                None => {
                    headers.remove(name);
                }
            }
        }
        for (name, template) in &self.add {
            if let Some(v) = template.value(vars) {
                headers.append(name.clone(), v);
            }
        }
    }
}

impl Template {
    fn compile(text: &str) -> Result<Self, String> {
        let pieces = parse_template(text)?;
        if pieces.iter().all(|p| matches!(p, Piece::Text(_))) {
            return HeaderValue::from_str(text.replace("{{", "{").replace("}}", "}").as_str())
                .map(Template::Fixed)
                .map_err(|e| e.to_string());
        }
        Ok(Template::Pieces(pieces))
    }

    /// The value for this request; None when it is empty.
    fn value(&self, vars: &Vars<'_>) -> Option<HeaderValue> {
        let pieces = match self {
            Template::Fixed(v) => return (!v.is_empty()).then(|| v.clone()),
            Template::Pieces(pieces) => pieces,
        };
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => vars.push(*v, &mut out),
            }
        }
        let out = out.trim();
        if out.is_empty() {
            return None;
        }
        // Every variable is a checked value (address, id, authority, SNI), so this holds.
        HeaderValue::from_str(out).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn remove_then_set_then_add_with_variables() {
        let rules = HeaderOps::compile(&config::HeaderOps {
            remove: vec!["x-debug".into(), "x-twice".into()],
            set: map(&[
                ("x-twice", "set"),
                ("x-client", "{client_ip}:{client_port} {scheme} {{literal}}"),
                ("x-sni", "{tls_sni}"),
            ]),
            add: map(&[
                ("x-twice", "added"),
                ("x-id", "id-{request_id}"),
                ("x-none", "{tls_version}"),
            ]),
        })
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-debug", HeaderValue::from_static("1"));
        h.append("x-twice", HeaderValue::from_static("old"));
        h.insert("x-sni", HeaderValue::from_static("spoofed"));
        let vars = Vars {
            client: "192.0.2.7:4242".parse().unwrap(),
            request_id: "abc",
            host: Some("www.example.test:8080"),
            https: false,
            tls: None,
        };
        rules.apply(&mut h, &vars);
        assert!(h.get("x-debug").is_none());
        let twice: Vec<_> = h.get_all("x-twice").iter().collect();
        assert_eq!(twice, ["set", "added"]);
        assert_eq!(h.get("x-client").unwrap(), "192.0.2.7:4242 http {literal}");
        assert_eq!(h.get("x-id").unwrap(), "id-abc");
        assert!(
            h.get("x-sni").is_none(),
            "an empty set removes the client's value"
        );
        assert!(h.get("x-none").is_none());
    }
}

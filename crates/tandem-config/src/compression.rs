//! Response compression of an HTTP listener (or one of its routes): which encodings,
//! from what size, for which content types, at what level (docs/http.md "Compression").

use crate::validate::Problems;
use serde::{Deserialize, Serialize};

/// The encodings tandem can produce, in the names of Accept-Encoding / Content-Encoding.
pub const ALGORITHMS: [&str; 3] = ["br", "zstd", "gzip"];

/// Bodies of a known length under this many bytes are sent as they are (by default).
pub const DEFAULT_MIN_SIZE: u64 = 1024;

/// A `min_size` above this is a typo (1 GiB).
const MAX_MIN_SIZE: u64 = 1 << 30;

/// `compression = { ... }` on a listener or a route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// On a route: `false` turns the listener's compression off for this route.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Server preference, best first; a client's q-values decide before this order.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Bodies whose length is known and under this are not compressed.
    #[serde(default = "default_min_size")]
    pub min_size: u64,
    /// Media types compressed: `type/subtype` or `type/*` (parameters ignored).
    #[serde(default = "default_content_types")]
    pub content_types: Vec<String>,
    /// Per-encoding levels (defaults: gzip 6, br 4, zstd 3).
    #[serde(default)]
    pub level: Levels,
}

/// Compression levels by encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// 1 (fastest) to 9 (smallest); default 6, as commonly used (nginx's default is 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<u32>,
    /// 0 to 11; default 4 (11 is for static files, far too slow per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub br: Option<u32>,
    /// 1 to 19; default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd: Option<u32>,
}

impl Levels {
    pub fn gzip(&self) -> u32 {
        self.gzip.unwrap_or(6)
    }
    pub fn br(&self) -> u32 {
        self.br.unwrap_or(4)
    }
    pub fn zstd(&self) -> u32 {
        self.zstd.unwrap_or(3)
    }
}

fn yes() -> bool {
    true
}

fn default_algorithms() -> Vec<String> {
    ALGORITHMS.iter().map(|a| a.to_string()).collect()
}

fn default_min_size() -> u64 {
    DEFAULT_MIN_SIZE
}

/// Text-like types worth compressing (images, video and archives are compressed already).
pub fn default_content_types() -> Vec<String> {
    [
        "text/*",
        "application/json",
        "application/javascript",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/manifest+json",
        "application/wasm",
        "image/svg+xml",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect()
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enabled: true,
            algorithms: default_algorithms(),
            min_size: DEFAULT_MIN_SIZE,
            content_types: default_content_types(),
            level: Levels::default(),
        }
    }
}

/// RFC 9110 token characters (media type and subtype names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `pattern` is a `type/subtype` or `type/*` media type pattern.
pub fn valid_content_type_pattern(pattern: &str) -> bool {
    match pattern.split_once('/') {
        Some((ty, sub)) => {
            is_token(ty)
                && ty != "*"
                && !ty.contains('*')
                && (sub == "*" || (is_token(sub) && !sub.contains('*')))
        }
        None => false,
    }
}

pub(crate) fn validate_compression(p: &mut Problems, at: &str, c: &Compression) {
    let at = format!("{at}.compression");
    if c.algorithms.is_empty() && c.enabled {
        p.add(
            format!("{at}.algorithms"),
            "give at least one of \"br\", \"zstd\", \"gzip\" (or enabled = false)",
        );
    }
    for (i, a) in c.algorithms.iter().enumerate() {
        if !ALGORITHMS.contains(&a.as_str()) {
            p.add(
                format!("{at}.algorithms[{i}]"),
                format!("unknown encoding {a:?}: must be \"br\", \"zstd\" or \"gzip\""),
            );
        } else if c.algorithms[..i].contains(a) {
            p.add(
                format!("{at}.algorithms[{i}]"),
                format!("{a:?} is listed twice"),
            );
        }
    }
    if c.min_size > MAX_MIN_SIZE {
        p.add(
            format!("{at}.min_size"),
            format!(
                "{} bytes is more than 1 GiB: no response would be compressed",
                c.min_size
            ),
        );
    }
    if c.content_types.is_empty() && c.enabled {
        p.add(
            format!("{at}.content_types"),
            "give at least one media type (such as \"text/*\")",
        );
    }
    for (i, t) in c.content_types.iter().enumerate() {
        if !valid_content_type_pattern(t) {
            p.add(
                format!("{at}.content_types[{i}]"),
                format!("{t:?} is not a media type pattern such as \"text/html\" or \"text/*\""),
            );
        }
    }
    for (name, level, range) in [
        ("gzip", c.level.gzip, 1..=9),
        ("br", c.level.br, 0..=11),
        ("zstd", c.level.zstd, 1..=19),
    ] {
        if let Some(l) = level {
            if !range.contains(&l) {
                p.add(
                    format!("{at}.level.{name}"),
                    format!("must be between {} and {}", range.start(), range.end()),
                );
            }
        }
    }
}

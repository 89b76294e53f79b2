//! Cookie persistence without a server-side table: the cookie names the
//! backend itself, so any node of the cluster can honour it.

use std::time::Duration;

use tandem_balance::stable_hash;

/// The cookie value naming a backend: the lowercase hex of
/// `tandem_balance::stable_hash` of its id, 16 characters. Clients see an
/// opaque token rather than an internal address, and every node computes
/// the same token. (It is a hash, not a secret: an attacker who can guess
/// candidate ids can confirm a guess offline.)
pub fn persistence_value(backend_id: &str) -> String {
    format!("{:016x}", stable_hash(backend_id.as_bytes()))
}

/// Index of the first backend whose `persistence_value` equals `value`
/// (hex compared case-insensitively). Anything that is not 16 hex digits
/// matches nothing, so a forged cookie simply falls back to balancing.
pub fn backend_for_cookie<'a>(
    value: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Option<usize> {
    if value.len() != 16 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let wanted = u64::from_str_radix(value, 16).ok()?;
    ids.into_iter()
        .position(|id| stable_hash(id.as_bytes()) == wanted)
}

/// Value of cookie `name` in one or more Cookie header values
/// ("a=1; b=2"). Pairs are split on ';' and trimmed of spaces and tabs;
/// names compare exactly (cookie names are case-sensitive); a value in
/// double quotes is returned without them. The first occurrence wins, as
/// browsers send the most specific cookie first.
pub fn find_cookie<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| n.trim_matches([' ', '\t']) == name)
        .map(|(_, v)| {
            let v = v.trim_matches([' ', '\t']);
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
}

/// Whether `name` is a valid cookie name (an RFC 9110 token). `set_cookie`
/// does not check, so that it cannot fail; the config layer should, since
/// a name with ';' or a line break would corrupt the header.
pub fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The SameSite attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// A Set-Cookie value:
/// "NAME=VALUE; Path=/; HttpOnly[; Secure][; SameSite=…][; Max-Age=N]".
/// SameSite=None forces Secure, because browsers reject the cookie
/// otherwise. Max-Age is rounded up to whole seconds: rounding down would
/// turn a sub-second lifetime into Max-Age=0, which deletes the cookie.
/// Without Max-Age it is a session cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    secure: bool,
    same_site: Option<SameSite>,
    max_age: Option<Duration>,
) -> String {
    let mut out = format!("{name}={value}; Path=/; HttpOnly");
    if secure || same_site == Some(SameSite::None) {
        out.push_str("; Secure");
    }
    if let Some(s) = same_site {
        out.push_str(match s {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        });
    }
    if let Some(age) = max_age {
        let secs = age.as_secs() + u64::from(age.subsec_nanos() > 0);
        out.push_str(&format!("; Max-Age={secs}"));
    }
    out
}

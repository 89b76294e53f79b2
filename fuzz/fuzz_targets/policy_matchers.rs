//! The route and access-rule matchers' parsers and normalisers: host patterns, Host
//! normalisation, path normalisation and prefix matching, cookie lookup. Never panic; a
//! pattern that parses matches its own normalised host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_policy::{find_cookie, normalize_host, normalize_path, path_has_prefix, HostPattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(HostPattern::Exact(name)) = HostPattern::parse(a) {
        assert!(HostPattern::Exact(name.clone()).matches(&normalize_host(&name)));
    }
    if let Ok(p) = HostPattern::parse(a) {
        let _ = p.matches(&normalize_host(b));
    }
    let path = normalize_path(a);
    let _ = path_has_prefix(&path, b);
    let _ = find_cookie(text.split('\n'), a);
});

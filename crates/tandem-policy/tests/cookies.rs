//! Cookie persistence: values, parsing, Set-Cookie.

use std::time::Duration;

use tandem_policy::{
    backend_for_cookie, find_cookie, persistence_value, set_cookie, valid_cookie_name, SameSite,
};

#[test]
fn persistence_value_is_stable_hex_and_round_trips() {
    let v = persistence_value("backend-1");
    // Pinned: tandem_balance's own test pins stable_hash(b"backend-1").
    assert_eq!(v, "363540f699aea3ce");
    assert_eq!(v.len(), 16);
    assert_eq!(
        persistence_value(""),
        format!("{:016x}", tandem_balance::stable_hash(b""))
    );
    let ids = ["10.0.0.1:80", "10.0.0.2:80", "backend-1"];
    for (i, id) in ids.iter().enumerate() {
        let value = persistence_value(id);
        assert!(!value.contains(id));
        assert_eq!(backend_for_cookie(&value, ids), Some(i));
        assert_eq!(backend_for_cookie(&value.to_uppercase(), ids), Some(i));
    }
    assert_eq!(backend_for_cookie(&v, ["x", "y"]), None);
    for forged in [
        "",
        "363540f699aea3c",
        "363540f699aea3ce0",
        "+63540f699aea3ce",
        "363540f699aea3cg",
        "backend-1",
    ] {
        assert_eq!(backend_for_cookie(forged, ids), None, "{forged}");
    }
}

#[test]
fn find_cookie_parses_spaces_quotes_and_several_headers() {
    let h = ["a=1;b=2", "  srv = abc ;\tc=\"quoted\" ; flag; d=x=y"];
    assert_eq!(find_cookie(h, "a"), Some("1"));
    assert_eq!(find_cookie(h, "b"), Some("2"));
    assert_eq!(find_cookie(h, "srv"), Some("abc"));
    assert_eq!(find_cookie(h, "c"), Some("quoted"));
    assert_eq!(find_cookie(h, "d"), Some("x=y"));
    assert_eq!(find_cookie(h, "flag"), None);
    assert_eq!(find_cookie(h, "A"), None);
    assert_eq!(find_cookie(h, ""), None);
    assert_eq!(find_cookie(["a=first", "a=second"], "a"), Some("first"));
    assert_eq!(find_cookie(["empty="], "empty"), Some(""));
    assert_eq!(find_cookie(Vec::<&str>::new(), "a"), None);
    // Not fooled by names that merely end with the wanted one.
    assert_eq!(find_cookie(["xsrv=1; srv=2"], "srv"), Some("2"));
}

#[test]
fn set_cookie_attributes() {
    assert_eq!(
        set_cookie("srv", "abc", false, None, None),
        "srv=abc; Path=/; HttpOnly"
    );
    assert_eq!(
        set_cookie(
            "srv",
            "abc",
            true,
            Some(SameSite::Lax),
            Some(Duration::from_secs(3600))
        ),
        "srv=abc; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=3600"
    );
    assert_eq!(
        set_cookie("srv", "abc", false, Some(SameSite::Strict), None),
        "srv=abc; Path=/; HttpOnly; SameSite=Strict"
    );
    // SameSite=None is only accepted by browsers with Secure.
    assert_eq!(
        set_cookie("srv", "abc", false, Some(SameSite::None), None),
        "srv=abc; Path=/; HttpOnly; Secure; SameSite=None"
    );
    // Rounded up, so a short lifetime never becomes a deletion.
    assert!(
        set_cookie("s", "v", false, None, Some(Duration::from_millis(1))).ends_with("; Max-Age=1")
    );
    assert!(set_cookie("s", "v", false, None, Some(Duration::ZERO)).ends_with("; Max-Age=0"));
}

#[test]
fn cookie_names_are_tokens() {
    assert!(valid_cookie_name("tandem_srv"));
    assert!(valid_cookie_name("SRV-1.x"));
    for bad in ["", "a b", "a;b", "a=b", "a\r\nSet-Cookie: x", "é"] {
        assert!(!valid_cookie_name(bad), "{bad:?}");
    }
}

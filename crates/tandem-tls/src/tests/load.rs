//! load_cert and check_certs against good and broken files.

use super::pki::{Ca, TempDir};
use crate::{check_certs, load_cert, CertSpec, TlsError};
use rcgen::{date_time_ymd, DnType};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> SystemTime {
    SystemTime::now()
}

#[test]
fn good_ecdsa_cert_loads_with_its_names() {
    let dir = TempDir::new();
    let ca = Ca::new("test ca");
    let spec = dir.write_pair(
        "site",
        &ca.leaf(&["Site.Example.Test", "*.Apps.Example.Test"]),
    );
    let cert = load_cert(&spec, now()).expect("loads");
    assert_eq!(cert.names, ["site.example.test", "*.apps.example.test"]);
    assert_eq!(cert.spec, spec);
    assert_eq!(cert.key.cert.len(), 1);
    assert!(cert.not_after > now() + Duration::from_secs(100 * 365 * 86400));
}

#[test]
fn good_ed25519_cert_loads() {
    let dir = TempDir::new();
    let ca = Ca::new("test ca");
    let pair = ca.leaf_with(&["ed.example.test"], &rcgen::PKCS_ED25519, |_| {});
    let cert = load_cert(&dir.write_pair("ed", &pair), now()).expect("loads");
    assert_eq!(cert.names, ["ed.example.test"]);
    assert_eq!(
        cert.key.key.algorithm(),
        rustls::SignatureAlgorithm::ED25519
    );
}

#[test]
fn common_name_is_used_only_without_dns_names() {
    let dir = TempDir::new();
    let ca = Ca::new("test ca");
    let pair = ca.leaf_with(&[], &rcgen::PKCS_ECDSA_P256_SHA256, |p| {
        p.distinguished_name
            .push(DnType::CommonName, "Legacy.Example.Test");
    });
    let cert = load_cert(&dir.write_pair("legacy", &pair), now()).expect("loads");
    assert_eq!(cert.names, ["legacy.example.test"]);
}

#[test]
fn chain_is_kept_leaf_first() {
    let dir = TempDir::new();
    let ca = Ca::new("test ca");
    let cert = load_cert(
        &dir.write_pair("chained", &ca.chained_leaf(&["c.test"])),
        now(),
    )
    .expect("loads");
    assert_eq!(cert.key.cert.len(), 2);
    assert_eq!(cert.names, ["c.test"]);
}

#[test]
fn cert_and_key_may_share_one_file() {
    let dir = TempDir::new();
    let pair = Ca::new("test ca").leaf(&["both.test"]);
    let path = dir.write("both.pem", format!("{}{}", pair.key_pem, pair.cert_pem));
    load_cert(&CertSpec::new(&path, &path), now()).expect("loads");
}

#[test]
fn unreadable_files_are_named() {
    let dir = TempDir::new();
    let pair = Ca::new("test ca").leaf(&["x.test"]);
    let good = dir.write_pair("x", &pair);
    let missing = dir.path("missing.pem");

    let spec = CertSpec::new(&missing, &good.key);
    let err = load_cert(&spec, now()).unwrap_err();
    assert!(matches!(err, TlsError::ReadCert { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read certificate file {}: No such file or directory",
            missing.display()
        )
    );

    let err = load_cert(&CertSpec::new(&good.cert, &missing), now()).unwrap_err();
    assert!(err.to_string().starts_with(&format!(
        "cannot read private key file {}:",
        missing.display()
    )));

    // A directory opens but cannot be read: still a read error naming the path.
    let err = load_cert(&CertSpec::new(dir.path(""), &good.key), now()).unwrap_err();
    assert!(matches!(err, TlsError::ReadCert { .. }), "{err:?}");
}

#[test]
fn files_without_pem_say_what_they_lack() {
    let dir = TempDir::new();
    let pair = Ca::new("test ca").leaf(&["x.test"]);
    let good = dir.write_pair("x", &pair);
    let empty = dir.write("empty.pem", "");
    let garbage = dir.write("garbage.pem", "hello\nthis is not PEM\n\x00\x01\x02");

    for bad in [&empty, &garbage] {
        let err = load_cert(&CertSpec::new(bad, &good.key), now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} holds no PEM certificate (expected a -----BEGIN CERTIFICATE----- block)",
                bad.display()
            )
        );
        let err = load_cert(&CertSpec::new(&good.cert, bad), now()).unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!(
            "{} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM",
            bad.display()
        )));
    }

    // A key file holding only a certificate has no key either.
    let err = load_cert(&CertSpec::new(&good.cert, &good.cert), now()).unwrap_err();
    assert!(matches!(err, TlsError::NoKey { .. }), "{err:?}");

    let broken = dir.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    );
    let err = load_cert(&CertSpec::new(&broken, &good.key), now()).unwrap_err();
    assert!(matches!(err, TlsError::BadPem { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with(&format!("{} is not valid PEM", broken.display())));
}

#[test]
fn key_of_another_certificate_is_a_mismatch() {
    let dir = TempDir::new();
    let ca = Ca::new("test ca");
    let a = dir.write_pair("a", &ca.leaf(&["a.test"]));
    let b = dir.write_pair("b", &ca.leaf(&["b.test"]));
    let err = load_cert(&CertSpec::new(&a.cert, &b.key), now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the key in {} does not match the certificate in {}",
            b.key.display(),
            a.cert.display()
        )
    );
}

#[test]
fn unsupported_key_type_is_reported() {
    let dir = TempDir::new();
    let good = dir.write_pair("x", &Ca::new("test ca").leaf(&["x.test"]));
    // Well-formed PEM whose content is no key ring can parse.
    let odd = dir.write(
        "odd.key",
        "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END PRIVATE KEY-----\n",
    );
    let err = load_cert(&CertSpec::new(&good.cert, &odd), now()).unwrap_err();
    assert!(matches!(err, TlsError::UnsupportedKey { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!(
        "unsupported private key type in {}: ",
        odd.display()
    )));
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let dir = TempDir::new();
    let ca = Ca::new("test ca");
    let expired = ca.leaf_with(&["old.test"], &rcgen::PKCS_ECDSA_P256_SHA256, |p| {
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
    });
    let expired = dir.write_pair("old", &expired);
    let err = load_cert(&expired, now()).unwrap_err();
    assert!(matches!(err, TlsError::Expired { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!(
        "certificate {} expired on 2021-01-01 00:00:00 UTC",
        expired.cert.display()
    )));

    let future = ca.leaf_with(&["new.test"], &rcgen::PKCS_ED25519, |p| {
        p.not_before = date_time_ymd(2090, 6, 1);
        p.not_after = date_time_ymd(2091, 1, 1);
    });
    let future = dir.write_pair("new", &future);
    let err = load_cert(&future, now()).unwrap_err();
    assert!(err.to_string().starts_with(&format!(
        "certificate {} is not valid before 2090-06-01 00:00:00 UTC",
        future.cert.display()
    )));
    // ...and valid once the clock gets there: `now` is honoured.
    let then = UNIX_EPOCH + Duration::from_secs(3_799_900_000); // 2090-06-01 is 3_799_958_400
    assert!(load_cert(&future, then).is_err());
    let later = UNIX_EPOCH + Duration::from_secs(3_800_000_000);
    assert!(load_cert(&future, later).is_ok());
}

#[test]
fn check_certs_reports_every_problem() {
    let dir = TempDir::new();
    let ca = Ca::new("test ca");
    let good = dir.write_pair("good", &ca.leaf(&["good.test"]));
    let other = dir.write_pair("other", &ca.leaf(&["other.test"]));
    let expired = ca.leaf_with(&["old.test"], &rcgen::PKCS_ECDSA_P256_SHA256, |p| {
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
    });
    let expired = dir.write_pair("old", &expired);
    let specs = [
        good.clone(),
        CertSpec::new(dir.path("nope.pem"), dir.path("nope.key")),
        CertSpec::new(&good.cert, &other.key),
        CertSpec::new(&expired.cert, &other.key),
        other.clone(),
    ];
    let problems = check_certs(&specs, now());
    let kinds: Vec<&str> = problems
        .iter()
        .map(|p| match p {
            TlsError::ReadCert { .. } => "read cert",
            TlsError::ReadKey { .. } => "read key",
            TlsError::KeyMismatch { .. } => "mismatch",
            TlsError::Expired { .. } => "expired",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["read cert", "read key", "mismatch", "expired", "mismatch"],
        "{problems:#?}"
    );
    assert!(check_certs(&[good, other], now()).is_empty());
}

//! What the admin API (`tandemctl --json status`) says about the ACME certificate DOMAIN.

use std::time::{Duration, Instant};

use super::DOMAIN;

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The ACME certificate DOMAIN in a `tandemctl --json status` answer; panics (with the
/// answer) when it is not listed.
pub fn acme_entry(status: &serde_json::Value) -> serde_json::Value {
    status["acme"]
        .as_array()
        .and_then(|certs| certs.iter().find(|c| c["certificate"] == DOMAIN))
        .cloned()
        .unwrap_or_else(|| panic!("no ACME certificate {DOMAIN} in the status: {status:#}"))
}

/// Polls `status` (a `--json status` answer) until DOMAIN's entry is in `state`, at most
/// `limit`: an order that just stored its certificate is seen finished within a tick.
pub async fn wait_acme_state(
    status: impl Fn() -> Option<serde_json::Value>,
    state: &str,
    limit: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let entry = status().map(|s| acme_entry(&s));
        match entry {
            Some(e) if e["state"] == state => return e,
            other => assert!(
                Instant::now() < deadline,
                "the ACME certificate is not {state} within {limit:?}: {other:#?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks a status entry of a certificate in force: valid, expiring in the future, renewed
/// between now and then.
pub fn assert_valid_entry(entry: &serde_json::Value, context: &str) {
    let now = unix_now();
    assert_eq!(entry["state"], "valid", "{context}: {entry:#}");
    let not_after = entry["not_after"].as_u64().unwrap_or(0);
    let renew_at = entry["renew_at"].as_u64().unwrap_or(0);
    assert!(
        not_after > now,
        "{context}: not_after {not_after} is not after now {now}"
    );
    assert!(
        renew_at > now && renew_at < not_after,
        "{context}: renew_at {renew_at} is not between now {now} and not_after {not_after}"
    );
    assert!(entry["last_error"].is_null(), "{context}: {entry:#}");
}

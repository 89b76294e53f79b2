//! Human renderings of the API's JSON answers. Each takes the JSON as the API sent it, so
//! `--json` and the tables always show the same facts.

use serde_json::Value;
use std::time::Duration;

use crate::table::{ago, cell, human_duration, millis, when, Table};

pub fn status(v: &Value) -> String {
    let mut out = format!(
        "node {} (tandemd {}), up {}, config version {}\n\n",
        cell(&v["node"]),
        cell(&v["version"]),
        human_duration(Duration::from_secs(
            v["uptime_seconds"].as_u64().unwrap_or(0)
        )),
        cell(&v["config_version"]),
    );
    let mut t = Table::new(&[
        "LISTENER",
        "PROTOCOL",
        "ADDRESS",
        "POOL",
        "ACTIVE",
        "CONNECTIONS",
        "REQUESTS",
    ]);
    for l in v["listeners"].as_array().into_iter().flatten() {
        let c = &l["counters"];
        let protocol = match (cell(&l["protocol"]).as_str(), l["tls"].as_bool()) {
            ("http", Some(true)) => "https".to_string(),
            (p, _) => p.to_string(),
        };
        t.row(vec![
            cell(&l["name"]),
            protocol,
            cell(&l["address"]),
            cell(&l["pool"]),
            cell(&c["active"]),
            cell(if c["accepted"].is_null() {
                &c["connections"]
            } else {
                &c["accepted"]
            }),
            cell(&c["requests"]),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(&acme(&v["acme"]));
    for p in v["pools"].as_array().into_iter().flatten() {
        out.push('\n');
        out.push_str(&pool(p));
    }
    out
}

/// ACME certificates: state, expiry, renewal, last order; a failed order's error and
/// next try under the table. Nothing without `[listener.tls.acme]`.
fn acme(certs: &Value) -> String {
    let Some(certs) = certs.as_array().filter(|c| !c.is_empty()) else {
        return String::new();
    };
    let mut t = Table::new(&[
        "ACME CERTIFICATE",
        "STATE",
        "EXPIRES",
        "RENEWAL",
        "LAST ORDER",
    ]);
    let mut errors = String::new();
    for c in certs {
        t.row(vec![
            cell(&c["certificate"]),
            cell(&c["state"]),
            when(&c["not_after"]),
            when(&c["renew_at"]),
            when(&c["last_order"]),
        ]);
        if let Some(e) = c["last_error"].as_str() {
            errors.push_str(&format!(
                "  {}: last order failed ({} in all), retry {}: {e}\n",
                cell(&c["certificate"]),
                cell(&c["failed_orders"]),
                when(&c["retry_at"]),
            ));
        }
    }
    format!("\n{}{errors}", t.render())
}

pub fn pools(v: &Value) -> String {
    let pools: Vec<String> = v["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(pool)
        .collect();
    if pools.is_empty() {
        return "no pools\n".into();
    }
    pools.join("\n")
}

/// One pool: a header line and its backends, with what an operator asks first (why is it
/// down, is it drained) in the last column.
pub fn pool(p: &Value) -> String {
    let mut out = format!("pool {} ({}", cell(&p["name"]), cell(&p["algorithm"]));
    if p["in_panic"].as_bool() == Some(true) {
        out.push_str(", PANIC: too few healthy backends, balancing over all");
    }
    out.push_str(")\n");
    let mut t = Table::new(&[
        "BACKEND", "ADDRESS", "STATE", "HEALTH", "WEIGHT", "ACTIVE", "PICKS", "LATENCY", "NOTES",
    ])
    .indented(2);
    for b in p["backends"].as_array().into_iter().flatten() {
        t.row(vec![
            cell(&b["id"]),
            address(b),
            cell(&b["state"]),
            cell(&b["health"]),
            cell(&b["weight"]),
            cell(&b["active"]),
            cell(&b["total_picks"]),
            millis(&b["latency_ms"]),
            notes(b),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// The address, and the DNS name it was resolved from when there is one.
fn address(b: &Value) -> String {
    match b["dns_name"].as_str() {
        Some(name) => format!("{} ({name})", cell(&b["address"])),
        None => cell(&b["address"]),
    }
}

fn notes(b: &Value) -> String {
    let mut notes = Vec::new();
    if b["drained"].as_bool() == Some(true) {
        notes.push("drained".to_string());
    }
    if b["ejected"].as_bool() == Some(true) {
        notes.push("ejected".to_string());
    }
    if let Some(last) = b["health_history"].as_array().and_then(|h| h.last()) {
        notes.push(format!(
            "{} {}: {}",
            cell(&last["health"]),
            ago(last["at"].as_u64().unwrap_or(0)),
            cell(&last["reason"])
        ));
    }
    notes.join("; ")
}

/// One backend in full, with its health history.
pub fn backend(b: &Value) -> String {
    let mut out = format!(
        "backend {} at {}: {}, health {}, weight {}, {} active connection(s), {} picks{}{}\n",
        cell(&b["id"]),
        address(b),
        cell(&b["state"]),
        cell(&b["health"]),
        cell(&b["weight"]),
        cell(&b["active"]),
        cell(&b["total_picks"]),
        if b["drained"].as_bool() == Some(true) {
            ", drained"
        } else {
            ""
        },
        if b["ejected"].as_bool() == Some(true) {
            ", ejected"
        } else {
            ""
        },
    );
    for e in b["health_history"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {} {}: {}\n",
            cell(&e["health"]),
            ago(e["at"].as_u64().unwrap_or(0)),
            cell(&e["reason"])
        ));
    }
    out
}

pub fn vrrp(v: &Value) -> String {
    let instances = v["instances"].as_array().cloned().unwrap_or_default();
    if instances.is_empty() {
        return "no VRRP on this node (its config has no [node.vrrp])\n".into();
    }
    let mut t = Table::new(&[
        "GROUP",
        "VRID",
        "STATE",
        "PRIORITY",
        "EFFECTIVE",
        "MASTER",
        "VIPS",
        "LAST TRANSITION",
    ]);
    for i in &instances {
        let last = &i["last_transition"];
        let transition = if last.is_null() {
            "-".to_string()
        } else {
            format!(
                "{} -> {} {}: {}",
                cell(&last["from"]),
                cell(&last["to"]),
                ago(last["at"].as_u64().unwrap_or(0)),
                cell(&last["reason"])
            )
        };
        t.row(vec![
            cell(&i["group"]),
            cell(&i["vrid"]),
            cell(&i["state"]),
            cell(&i["priority"]),
            cell(&i["effective_priority"]),
            cell(&i["master"]),
            match (
                i["holds_addresses"].as_bool(),
                i["kernel_fence_left_ms"].as_u64(),
                i["fenced_out"].as_bool(),
            ) {
                (Some(true), Some(ms), _) => format!("held, fence {ms}ms"),
                (Some(true), None, _) => "held".into(),
                (_, _, Some(true)) => "- (no lease can be had)".into(),
                _ => "-".into(),
            },
            transition,
        ]);
    }
    t.render()
}

/// What a change did (`applied` in write answers).
pub fn applied(report: &Value) -> String {
    let mut parts = vec![format!("config version {}", cell(&report["version"]))];
    for (key, label) in [
        ("listeners_added", "listeners added"),
        ("listeners_removed", "listeners removed"),
        ("pools_added", "pools added"),
        ("pools_removed", "pools removed"),
        ("pools_updated", "pools updated"),
        ("checks_restarted", "health checks restarted"),
    ] {
        let names: Vec<String> = report[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        if !names.is_empty() {
            parts.push(format!("{label}: {}", names.join(", ")));
        }
    }
    let mut out = parts.join("; ");
    out.push('\n');
    for w in report["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("warning: {}\n", cell(w)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_certificates_show_their_state_and_a_failed_order_its_error() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let certs = serde_json::json!([
            {"certificate": "a.test", "state": "valid", "not_after": now + 90 * 86_400,
             "renew_at": now + 60 * 86_400, "last_order": now - 5, "last_error": null,
             "retry_at": null, "failed_orders": 0},
            {"certificate": "b.test", "state": "failed", "not_after": null,
             "renew_at": null, "last_order": now - 2, "last_error": "connection refused",
             "retry_at": now + 15, "failed_orders": 3},
        ]);
        let text = acme(&certs);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("ACME CERTIFICATE"), "{text}");
        assert!(
            lines[2].starts_with("a.test") && lines[2].contains("valid"),
            "{text}"
        );
        assert!(
            lines[2].contains("in 89d23h") || lines[2].contains("in 90d00h"),
            "expiry: {text}"
        );
        assert!(lines[2].ends_with("s ago"), "last order: {text}");
        assert!(
            lines[3].starts_with("b.test") && lines[3].contains("failed"),
            "{text}"
        );
        assert!(
            lines[4].contains("b.test: last order failed (3 in all), retry in 1")
                && lines[4].ends_with("connection refused"),
            "{text}"
        );
        assert_eq!(acme(&serde_json::json!([])), "");
        assert_eq!(acme(&serde_json::Value::Null), "");
    }
}

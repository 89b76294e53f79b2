//! Human renderings of the API's JSON answers. Each takes the JSON as the API sent it, so
//! `--json` and the tables always show the same facts.

use serde_json::Value;
use std::time::Duration;

use crate::table::{ago, cell, human_duration, millis, Table};

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
    for p in v["pools"].as_array().into_iter().flatten() {
        out.push('\n');
        out.push_str(&pool(p));
    }
    out
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

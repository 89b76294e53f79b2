//! `tandemctl top`: rates computed from the deltas of two `/v1/status` counters, redrawn
//! every interval. On a terminal the screen is cleared (ANSI); in a pipe each sample is a
//! block of plain lines, and with `--json` one JSON object per line.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::client::{Client, Failure};
use crate::out;
use crate::table::{cell, millis, Table};

pub async fn run(
    client: &Client,
    interval: Duration,
    count: Option<u64>,
    as_json: bool,
) -> Result<(), Failure> {
    let tty = std::io::stdout().is_terminal();
    let mut previous = client.get("/v1/status").await?;
    let mut taken = Instant::now();
    let mut shown = 0u64;
    while count.is_none_or(|c| shown < c) {
        tokio::time::sleep(interval).await;
        let current = client.get("/v1/status").await?;
        let elapsed = taken.elapsed();
        taken = Instant::now();
        shown += 1;
        let sample = rates(&previous, &current, elapsed);
        if as_json {
            out(&format!("{sample}\n"));
        } else {
            let clear = if tty {
                "\x1b[H\x1b[2J"
            } else if shown > 1 {
                "\n"
            } else {
                ""
            };
            out(&format!(
                "{clear}{}",
                render(&current, &sample, interval, shown)
            ));
        }
        previous = current;
    }
    Ok(())
}

fn per_second(now: &Value, before: Option<&Value>, elapsed: Duration) -> Value {
    let (Some(now), Some(before)) = (now.as_u64(), before.and_then(Value::as_u64)) else {
        return Value::Null;
    };
    // A counter that went down belongs to a listener replaced by a reload: no rate.
    let delta = now.saturating_sub(before) as f64;
    json!((delta / elapsed.as_secs_f64().max(0.001) * 10.0).round() / 10.0)
}

/// The rates between two status answers, as JSON (what `--json` prints).
pub fn rates(before: &Value, now: &Value, elapsed: Duration) -> Value {
    let old_listeners: HashMap<String, &Value> = before["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| (cell(&l["name"]), &l["counters"]))
        .collect();
    let listeners: Vec<Value> = now["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let c = &l["counters"];
            let old = old_listeners.get(&cell(&l["name"])).copied();
            let connections = if c["accepted"].is_null() { "connections" } else { "accepted" };
            json!({
                "name": l["name"],
                "protocol": l["protocol"],
                "active": c["active"],
                "connections_per_s": per_second(&c[connections], old.map(|o| &o[connections]), elapsed),
                "requests_per_s": per_second(&c["requests"], old.map(|o| &o["requests"]), elapsed),
            })
        })
        .collect();
    let mut old_backends = HashMap::new();
    for p in before["pools"].as_array().into_iter().flatten() {
        for b in p["backends"].as_array().into_iter().flatten() {
            old_backends.insert((cell(&p["name"]), cell(&b["id"])), b);
        }
    }
    let mut backends = Vec::new();
    for p in now["pools"].as_array().into_iter().flatten() {
        for b in p["backends"].as_array().into_iter().flatten() {
            let old = old_backends
                .get(&(cell(&p["name"]), cell(&b["id"])))
                .copied();
            backends.push(json!({
                "pool": p["name"],
                "id": b["id"],
                "state": b["state"],
                "health": b["health"],
                "active": b["active"],
                "picks_per_s": per_second(&b["total_picks"], old.map(|o| &o["total_picks"]), elapsed),
                "latency_ms": b["latency_ms"],
            }));
        }
    }
    json!({
        "interval_seconds": elapsed.as_secs_f64(),
        "listeners": listeners,
        "backends": backends,
    })
}

fn render(status: &Value, sample: &Value, interval: Duration, n: u64) -> String {
    let mut out = format!(
        "tandem top: node {}, config version {}, sample {n}, every {} (Ctrl-C to stop)\n\n",
        cell(&status["node"]),
        cell(&status["config_version"]),
        tandem_config::format_duration(interval),
    );
    let mut t = Table::new(&["LISTENER", "PROTOCOL", "ACTIVE", "CONN/S", "REQ/S"]);
    for l in sample["listeners"].as_array().into_iter().flatten() {
        t.row(vec![
            cell(&l["name"]),
            cell(&l["protocol"]),
            cell(&l["active"]),
            cell(&l["connections_per_s"]),
            cell(&l["requests_per_s"]),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut t = Table::new(&[
        "POOL", "BACKEND", "STATE", "HEALTH", "ACTIVE", "PICKS/S", "LATENCY",
    ]);
    for b in sample["backends"].as_array().into_iter().flatten() {
        t.row(vec![
            cell(&b["pool"]),
            cell(&b["id"]),
            cell(&b["state"]),
            cell(&b["health"]),
            cell(&b["active"]),
            cell(&b["picks_per_s"]),
            millis(&b["latency_ms"]),
        ]);
    }
    out.push_str(&t.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_counter_deltas() {
        let before = json!({
            "listeners": [{"name": "web", "protocol": "tcp", "counters": {"accepted": 10, "active": 1}}],
            "pools": [{"name": "p", "backends": [{"id": "a", "total_picks": 4}]}],
        });
        let now = json!({
            "listeners": [
                {"name": "web", "protocol": "tcp", "counters": {"accepted": 30, "active": 2}},
                {"name": "new", "protocol": "http", "counters": {"connections": 5, "requests": 9}},
            ],
            "pools": [{"name": "p", "backends": [{"id": "a", "total_picks": 14}, {"id": "b", "total_picks": 3}]}],
        });
        let r = rates(&before, &now, Duration::from_secs(2));
        assert_eq!(r["listeners"][0]["connections_per_s"], json!(10.0));
        assert_eq!(r["listeners"][0]["active"], json!(2));
        assert_eq!(
            r["listeners"][1]["requests_per_s"],
            Value::Null,
            "no earlier sample"
        );
        assert_eq!(r["backends"][0]["picks_per_s"], json!(5.0));
        assert_eq!(r["backends"][1]["picks_per_s"], Value::Null);
    }
}

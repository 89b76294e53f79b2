//! The HTML status page: rendered on the server from a [`Snapshot`], one small inline
//! stylesheet, no script and no external asset, so it works from the binary alone, in
//! any browser, and refreshes itself with a meta refresh. Narrow screens (a phone) get
//! the same tables, scrolling sideways inside their card rather than shrinking the text.

use std::fmt::Write;

use super::snapshot::Snapshot;

/// Seconds between the page's own refreshes.
pub const REFRESH_SECONDS: u32 = 5;

const STYLE: &str = "
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--mute:#5b6475;--line:#e3e6eb;
--up:#137333;--upbg:#e6f4ea;--down:#b3261e;--downbg:#fce8e6;--warn:#8a5a00;--warnbg:#fef3d6}
@media (prefers-color-scheme:dark){:root{--bg:#14171c;--card:#1d2128;--ink:#e6e9ef;
--mute:#9aa3b2;--line:#2c313a;--upbg:#16341f;--up:#81c995;--downbg:#3d1a18;--down:#f28b82;
--warnbg:#3a2e10;--warn:#fdd663}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;
background:var(--bg);color:var(--ink)}
header{padding:12px 16px;background:var(--card);border-bottom:1px solid var(--line);
display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline}
header h1{font-size:18px;margin:0}
header span{color:var(--mute);font-size:13px}
main{padding:12px;display:grid;gap:12px;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr))}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;overflow-x:auto}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0;padding:10px 12px;border-bottom:1px solid var(--line)}
h2 small{color:var(--mute);font-weight:normal}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 12px;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
th{color:var(--mute);font-weight:600;font-size:12px;text-transform:uppercase}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:last-child td{border-bottom:0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:700}
.up{background:var(--upbg);color:var(--up)}
.down{background:var(--downbg);color:var(--down)}
.warn{background:var(--warnbg);color:var(--warn)}
.mute{color:var(--mute)}
tr.bad td{background:var(--downbg)}
p.empty{margin:0;padding:10px 12px;color:var(--mute)}
footer{padding:4px 16px 16px;color:var(--mute);font-size:12px}
";

/// `text` with the five HTML special characters escaped (names come from the config).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The whole page for `snap`.
pub fn render(snap: &Snapshot) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>tandem {node}: status</title><style>{STYLE}</style></head><body>\
         <header><h1>tandem <span id=\"node\">{node}</span></h1>\
         <span>version {version}</span><span>config v{config}</span>\
         <span>up {uptime}</span><span>refreshes every {REFRESH_SECONDS}s</span></header><main>",
        node = escape(&snap.node),
        version = snap.version,
        config = snap.config_version,
        uptime = duration(snap.uptime_seconds),
    );
    listeners(&mut h, snap);
    vips(&mut h, snap);
    pools(&mut h, snap);
    cluster(&mut h, snap);
    events(&mut h, snap);
    let _ = write!(
        h,
        "</main><footer>Read-only. JSON: <a href=\"status\">/status</a> · \
         Prometheus: <a href=\"metrics\">/metrics</a></footer></body></html>"
    );
    h
}

fn listeners(h: &mut String, snap: &Snapshot) {
    h.push_str(
        "<section id=\"listeners\"><h2>Listeners</h2><table><tr><th>name</th><th>protocol</th>\
         <th>address</th><th>pool</th><th>rate</th><th>active</th></tr>",
    );
    for l in &snap.listeners {
        let v = &l.listener;
        let unit = if v.protocol == "http" {
            "req/s"
        } else {
            "conn/s"
        };
        let proto = if v.tls {
            format!("{} (tls)", v.protocol)
        } else {
            v.protocol.to_string()
        };
        let _ = write!(
            h,
            "<tr id=\"listener-{id}\"><td>{name}</td><td>{proto}</td><td>{addr}</td><td>{pool}</td>\
             <td class=\"n\">{rate:.1} {unit}</td><td class=\"n\">{active}</td></tr>",
            id = escape(&v.name),
            name = escape(&v.name),
            addr = escape(&v.address),
            pool = escape(&v.pool),
            rate = l.per_second,
            active = l.active,
        );
    }
    h.push_str("</table></section>");
}

fn pools(h: &mut String, snap: &Snapshot) {
    for p in &snap.pools {
        let up = p.backends.iter().filter(|b| b.health == "up").count();
        let panic = if p.in_panic {
            format!(" {}", badge("warn", "panic"))
        } else {
            String::new()
        };
        let algorithm = p.algorithm.as_str().unwrap_or("?");
        let _ = write!(
            h,
            "<section class=\"wide\" id=\"pool-{id}\"><h2>Pool {name} <small>{algorithm} · {up}/{total} up</small>{panic}</h2>\
             <table><tr><th>backend</th><th>address</th><th>health</th><th>state</th><th>weight</th>\
             <th>active</th><th>picks</th><th>latency</th><th>last change</th></tr>",
            id = escape(&p.name),
            name = escape(&p.name),
            total = p.backends.len(),
        );
        for b in &p.backends {
            let health = if b.ejected {
                badge("down", "ejected")
            } else {
                badge(if b.health == "up" { "up" } else { "down" }, b.health)
            };
            let state = match b.state {
                "enabled" => badge("up", "enabled"),
                "drain" if b.drained => badge("warn", "drained"),
                other => badge("warn", other),
            };
            let latency = b
                .latency_ms
                .map_or_else(|| "–".to_string(), |ms| format!("{ms:.1} ms"));
            let last = b.health_history.last().map_or_else(String::new, |e| {
                format!(
                    "{} ago: {}",
                    duration(snap.at.saturating_sub(e.at)),
                    escape(&e.reason)
                )
            });
            let _ = write!(
                h,
                "<tr id=\"backend-{pool}-{id}\" class=\"{class}\"><td>{id}</td><td>{addr}</td>\
                 <td>{health}</td><td>{state}</td><td class=\"n\">{weight}</td>\
                 <td class=\"n\">{active}</td><td class=\"n\">{picks}</td><td class=\"n\">{latency}</td>\
                 <td class=\"mute\">{last}</td></tr>",
                pool = escape(&p.name),
                id = escape(&b.id),
                class = if b.health == "up" && !b.ejected { "ok" } else { "bad" },
                addr = escape(&b.address),
                weight = b.weight,
                active = b.active,
                picks = b.total_picks,
            );
        }
        h.push_str("</table></section>");
    }
}

fn vips(h: &mut String, snap: &Snapshot) {
    h.push_str("<section id=\"vips\"><h2>VIP groups</h2>");
    if snap.vrrp.is_empty() {
        h.push_str("<p class=\"empty\">No VRRP on this node.</p></section>");
        return;
    }
    h.push_str(
        "<table><tr><th>group</th><th>vrid</th><th>state</th><th>priority</th><th>holder</th>\
         <th>lease left</th></tr>",
    );
    for v in &snap.vrrp {
        let state = match v.state.as_str() {
            "MASTER" => badge("up", &v.state),
            "FAULT" => badge("down", &v.state),
            other => badge("warn", other),
        };
        let (holder, left) = lease_of(snap, &v.group);
        let holder = holder.unwrap_or_else(|| v.master.clone().unwrap_or_else(|| "–".into()));
        let _ = write!(
            h,
            "<tr id=\"vip-{g}\"><td>{g}</td><td class=\"n\">{vrid}</td><td>{state}</td>\
             <td class=\"n\">{prio}</td><td>{holder}</td><td class=\"n\">{left}</td></tr>",
            g = escape(&v.group),
            vrid = v.vrid,
            prio = v.effective_priority,
            holder = escape(&holder),
        );
    }
    h.push_str("</table></section>");
}

/// The lease holder's name (or id) and this node's hold time left, in a cluster.
fn lease_of(snap: &Snapshot, group: &str) -> (Option<String>, String) {
    let Some(c) = &snap.cluster else {
        return (None, "–".into());
    };
    let holder = c
        .raft
        .leases
        .iter()
        .find(|l| l.group == group)
        .and_then(|l| l.holder)
        .map(|id| {
            if id == c.raft.id {
                format!("{} (this node)", c.raft.name)
            } else {
                format!("raft id {id}")
            }
        });
    let left = c
        .vip_groups
        .iter()
        .find(|g| g.group == group && g.holding)
        .map_or_else(|| "–".into(), |g| format!("{} ms", g.hold_left_ms));
    (holder, left)
}

fn cluster(h: &mut String, snap: &Snapshot) {
    let Some(c) = &snap.cluster else {
        return;
    };
    let r = &c.raft;
    let leader = r
        .leader
        .map_or_else(|| badge("down", "no leader"), |id| format!("raft id {id}"));
    let _ = write!(
        h,
        "<section id=\"cluster\"><h2>Cluster <small>{state}, term {term}, leader {leader}</small></h2>\
         <table><tr><th>raft id</th><th>address</th><th>voter</th><th>last contact</th></tr>",
        state = escape(&r.state),
        term = r.term,
    );
    for m in &r.members {
        let contact = match m.last_contact_ms {
            _ if m.id == r.id => "this node".to_string(),
            Some(ms) if ms < 2_000 => badge("up", &format!("{ms} ms ago")),
            Some(ms) => badge("down", &format!("{} ago", duration(ms / 1000))),
            None => badge("down", "never"),
        };
        let _ = write!(
            h,
            "<tr><td class=\"n\">{id}</td><td>{addr}</td><td>{voter}</td><td>{contact}</td></tr>",
            id = m.id,
            addr = escape(&m.addr),
            voter = if m.voter { "yes" } else { "learner" },
        );
    }
    h.push_str("</table></section>");
}

fn events(h: &mut String, snap: &Snapshot) {
    h.push_str("<section class=\"wide\" id=\"events\"><h2>Recent events</h2>");
    if snap.events.is_empty() {
        h.push_str("<p class=\"empty\">Nothing has happened yet.</p></section>");
        return;
    }
    h.push_str("<table><tr><th>when</th><th>what</th><th></th></tr>");
    for e in &snap.events {
        let class = match e.level {
            "up" => "up",
            "down" => "down",
            _ => "warn",
        };
        let _ = write!(
            h,
            "<tr><td class=\"mute\">{ago} ago</td><td>{subject}</td><td>{what}</td></tr>",
            ago = duration(snap.at.saturating_sub(e.at)),
            subject = escape(&e.subject),
            what = badge(class, &e.what),
        );
    }
    h.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(600), "10m");
        assert_eq!(duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(duration(3 * 86_400), "3d 0h");
    }
}

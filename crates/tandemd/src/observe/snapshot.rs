//! What the status page and `/status` show: one serde value gathered from the running
//! node at request time, with listener rates computed against the previous request's
//! counters (nothing runs between requests).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::admin::views::{self, ListenerView, PoolView, VrrpInstanceView};
use crate::Node;

#[derive(Serialize)]
pub struct Snapshot {
    pub node: String,
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub config_version: u64,
    /// Unix time in seconds when this was gathered.
    pub at: u64,
    pub listeners: Vec<ListenerRate>,
    pub pools: Vec<PoolView>,
    pub vrrp: Vec<VrrpInstanceView>,
    pub cluster: Option<ClusterPart>,
    /// Newest first: health changes of backends and VRRP transitions.
    pub events: Vec<Event>,
}

#[derive(Serialize)]
pub struct ListenerRate {
    #[serde(flatten)]
    pub listener: ListenerView,
    /// Connections (TCP, UDP flows) or requests (HTTP) per second since the previous look.
    pub per_second: f64,
    /// Open connections (TCP, HTTP) or flows (UDP) now.
    pub active: u64,
}

#[derive(Serialize)]
pub struct ClusterPart {
    pub raft: crate::metrics::ClusterStatus,
    /// This node's lease keeper per VIP group (its hold window, what it wants).
    pub vip_groups: Vec<crate::metrics::GroupView>,
}

#[derive(Serialize)]
pub struct Event {
    /// Unix time in seconds.
    pub at: u64,
    /// "backend pool/id" or "vrrp group".
    pub subject: String,
    pub what: String,
    /// "up", "down" or a VRRP state, for colouring.
    pub level: &'static str,
}

/// The previous counters per listener, to turn counters into rates.
#[derive(Default)]
pub struct Rates {
    last: Mutex<Option<Sample>>,
}

/// When, each listener's counter then, and the rates computed at that moment.
type Sample = (Instant, BTreeMap<String, u64>, BTreeMap<String, f64>);

/// How many events the page lists.
const EVENTS: usize = 25;

/// The counter a listener's rate is computed from.
fn rate_counter(l: &ListenerView) -> u64 {
    let key = if l.protocol == "http" {
        "requests"
    } else {
        "accepted"
    };
    l.counters.get(key).copied().unwrap_or(0)
}

impl Rates {
    /// Rates per listener: counter deltas over the time since the previous sample. Looks
    /// less than half a second apart reuse the previous rates (a page and a script
    /// polling together would otherwise see noise).
    fn update(&self, listeners: &[ListenerView]) -> BTreeMap<String, f64> {
        let now = Instant::now();
        let counts: BTreeMap<String, u64> = listeners
            .iter()
            .map(|l| (l.name.clone(), rate_counter(l)))
            .collect();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let rates = match last.as_ref() {
            Some((at, _, rates)) if now.duration_since(*at).as_secs_f64() < 0.5 => {
                return rates.clone()
            }
            Some((at, before, _)) => {
                let secs = now.duration_since(*at).as_secs_f64();
                counts
                    .iter()
                    .map(|(name, &n)| {
                        let was = before.get(name).copied().unwrap_or(n);
                        (name.clone(), n.saturating_sub(was) as f64 / secs)
                    })
                    .collect()
            }
            None => BTreeMap::new(),
        };
        *last = Some((now, counts, rates.clone()));
        rates
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Gathers the snapshot of `node`.
pub async fn gather(node: &Node, rates: &Rates) -> Snapshot {
    let status = views::status(node);
    let per_second = rates.update(&status.listeners);
    let listeners = status
        .listeners
        .into_iter()
        .map(|l| ListenerRate {
            per_second: per_second.get(&l.name).copied().unwrap_or(0.0),
            active: l.counters.get("active").copied().unwrap_or(0),
            listener: l,
        })
        .collect();
    let vrrp = views::vrrp(node).await.instances;
    let cluster = match node.cluster() {
        Some(c) => Some(ClusterPart {
            raft: c.status().await,
            vip_groups: c.keeper.views(),
        }),
        None => None,
    };
    let events = events(&status.pools, &vrrp);
    Snapshot {
        node: status.node,
        version: status.version,
        uptime_seconds: status.uptime_seconds,
        config_version: status.config_version,
        at: unix_now(),
        listeners,
        pools: status.pools,
        vrrp,
        cluster,
        events,
    }
}

fn events(pools: &[PoolView], vrrp: &[VrrpInstanceView]) -> Vec<Event> {
    let mut events = Vec::new();
    for p in pools {
        for b in &p.backends {
            for h in &b.health_history {
                events.push(Event {
                    at: h.at,
                    subject: format!("backend {}/{}", p.name, b.id),
                    what: format!("{}: {}", h.health, h.reason),
                    level: h.health,
                });
            }
        }
    }
    for v in vrrp {
        if let Some(t) = &v.last_transition {
            events.push(Event {
                at: t.at,
                subject: format!("vrrp {}", v.group),
                what: format!("{} -> {}: {}", t.from, t.to, t.reason),
                level: "vrrp",
            });
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.at));
    events.truncate(EVENTS);
    events
}

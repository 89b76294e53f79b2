//! Prometheus exposition of a node's state, built at scrape time from the counters the
//! planes keep (prometheus-client's text encoder; no hand-written format).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;

use crate::Node;

type Labels = Vec<(String, String)>;

/// The text exposition of every metric of `node`.
pub async fn render(node: &Node) -> String {
    let mut registry = Registry::with_prefix("tandem");
    let uptime = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    uptime.set(node.uptime().as_secs_f64());
    registry.register(
        "process_uptime_seconds",
        "Seconds since the node started",
        uptime,
    );

    let accepted = Family::<Labels, Counter>::default();
    for l in node.plane().listeners() {
        let labels = vec![("listener".to_string(), l.name.clone())];
        accepted
            .get_or_create(&labels)
            .inc_by(l.stats.accepted.load(Relaxed));
    }
    for l in node.http().listeners() {
        let labels = vec![("listener".to_string(), l.name.clone())];
        accepted
            .get_or_create(&labels)
            .inc_by(l.stats.connections.load(Relaxed));
    }
    registry.register(
        "listener_connections_accepted",
        "Connections (or UDP flows) accepted",
        accepted,
    );

    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}
